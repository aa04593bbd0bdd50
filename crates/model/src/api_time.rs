//! Times and durations as Prometheus's HTTP API spells them (`time`, `start`,
//! `step`, `lookback_delta`…), parsed to milliseconds. Total: any string gives a
//! value or an error in Prometheus's words, never a panic. Shared by the server and
//! the query frontend, so both refuse exactly the same input.

/// Prometheus's minimum and maximum API times, in milliseconds.
pub const MIN_TIME: i64 = -9_223_309_901_257_974;
pub const MAX_TIME: i64 = 9_223_309_901_257_974;

/// Parses a Prometheus API time: Unix seconds with optional fraction, or RFC 3339.
/// Total: any string gives a time or an error, never a panic.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let invalid = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(invalid());
        }
        return Ok((f * 1000.0).round().clamp(MIN_TIME as f64, MAX_TIME as f64) as i64);
    }
    // Prometheus's own spellings of its minimum and maximum times, which clients
    // (client_golang among them) send for "unbounded".
    match s {
        "-292273086-05-16T16:47:06Z" => return Ok(MIN_TIME),
        "292277025-08-18T07:12:54.999999999Z" => return Ok(MAX_TIME),
        _ => {}
    }
    parse_rfc3339(s).ok_or_else(invalid)
}

/// RFC 3339 with `Z` or a `±hh:mm` offset, and optional fractional seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let (base, offset_ms) = if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        (b, 0i64)
    } else {
        // The offset is the last six bytes, all ASCII: `get` refuses a cut inside a
        // multi-byte character instead of panicking as `split_at` would.
        let pos = s.len().checked_sub(6)?;
        let (b, off) = (s.get(..pos)?, s.get(pos..)?.as_bytes());
        let sign = match off[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        if off[3] != b':' || !off[1..3].iter().chain(&off[4..6]).all(u8::is_ascii_digit) {
            return None;
        }
        let num = |d: &[u8]| i64::from(d[0] - b'0') * 10 + i64::from(d[1] - b'0');
        let (h, m) = (num(&off[1..3]), num(&off[4..6]));
        if h > 23 || m > 59 {
            return None;
        }
        (b, sign * (h * 3600 + m * 60) * 1000)
    };
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let ms = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_millis()).ok()?,
    };
    Some(ms.saturating_sub(offset_ms))
}

/// Nanoseconds per millisecond: Prometheus holds durations as `int64` nanoseconds
/// and refuses any that do not fit.
pub const NANOS_PER_MS: i64 = 1_000_000;

/// Most points a range query may return per series (Prometheus's 11,000).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// A range query's `start`, `end` and `step` (as given; `None` or empty when
/// absent), checked as Prometheus checks them: all present, end not before start,
/// a positive step, at most 11,000 points. Milliseconds; the error is the whole
/// message Prometheus answers with (a 400 `bad_data`). The one copy the server and
/// the query frontend both use.
pub fn range_steps(start: Option<&str>, end: Option<&str>, step: Option<&str>) -> Result<(i64, i64, i64), String> {
    let required = |key: &str, v: Option<&str>| -> Result<String, String> {
        v.filter(|v| !v.is_empty()).map(String::from).ok_or_else(|| format!("invalid parameter {key:?}: missing"))
    };
    let time = |key: &str, v: Option<&str>| -> Result<i64, String> {
        parse_time(&required(key, v)?).map_err(|e| format!("invalid parameter {key:?}: {e}"))
    };
    let start = time("start", start)?;
    let end = time("end", end)?;
    if end < start {
        return Err("invalid parameter \"end\": end timestamp must not be before start time".into());
    }
    let step = parse_duration(&required("step", step)?).map_err(|e| format!("invalid parameter \"step\": {e}"))?;
    if step <= 0 {
        return Err("invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into());
    }
    // Times are clamped to Prometheus's range, so the difference cannot overflow.
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into());
    }
    Ok((start, end, step))
}

/// Parses a duration as Prometheus's API does: seconds as a number (possibly
/// negative or fractional), or Prometheus syntax such as `1h30m`, in milliseconds.
/// A value that overflows `int64` nanoseconds is refused in Prometheus's words.
/// Callers check the sign (a step must be positive, for example).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let nanos = f * 1e9;
        if f.is_nan() {
            return Err(format!("cannot parse {s:?} to a valid duration"));
        }
        // `i64::MAX as f64` rounds up to 2^63, so `>=` is the exact bound.
        if nanos >= i64::MAX as f64 || nanos < i64::MIN as f64 {
            return Err(format!("cannot parse {s:?} to a valid duration. It overflows int64"));
        }
        return Ok((f * 1000.0).round() as i64);
    }
    prom_duration_ms(s).ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

/// Prometheus duration syntax: unit terms `y w d h m s ms` in that order, each at
/// most once, e.g. `1h30m`; `0` alone is zero. `None` when malformed or when the
/// total overflows `int64` nanoseconds.
fn prom_duration_ms(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s.as_bytes();
    let mut next_unit = 0;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let mut n: i64 = 0;
        for &d in &rest[..digits] {
            n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
        }
        rest = &rest[digits..];
        let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let idx = UNITS.iter().position(|(u, _)| u.as_bytes() == unit)?;
        if idx < next_unit {
            return None;
        }
        next_unit = idx + 1;
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    total.checked_mul(NANOS_PER_MS)?;
    Some(total)
}
