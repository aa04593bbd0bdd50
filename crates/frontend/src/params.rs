//! Request parameters as Prometheus's API takes them (query string, and a form body
//! for POST): times and durations, parsed as Strata's server and Prometheus parse
//! them, so the frontend refuses exactly what its downstream would.
//!
//! The server has the same parsers (`strata-server`'s `params.rs`); when the server
//! calls the frontend's layers in-process the two should become one.

use crate::error::{Error, Result};

/// Prometheus's minimum and maximum API times, in milliseconds.
pub(crate) const MIN_TIME: i64 = -9_223_309_901_257_974;
pub(crate) const MAX_TIME: i64 = 9_223_309_901_257_974;

/// Most points a range query may return per series (Prometheus's 11,000).
pub(crate) const MAX_POINTS: i64 = 11_000;

/// Parses an API time: Unix seconds with optional fraction, or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let invalid = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(invalid());
        }
        return Ok((f * 1000.0).round().clamp(MIN_TIME as f64, MAX_TIME as f64) as i64);
    }
    match s {
        "-292273086-05-16T16:47:06Z" => return Ok(MIN_TIME),
        "292277025-08-18T07:12:54.999999999Z" => return Ok(MAX_TIME),
        _ => {}
    }
    parse_rfc3339(s).ok_or_else(invalid)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let (base, offset_ms) = if let Some(b) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        (b, 0i64)
    } else {
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

/// Parses an API duration in milliseconds: seconds as a number, or Prometheus syntax
/// (`1h30m`). Values overflowing `int64` nanoseconds are refused.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_nan() {
            return Err(format!("cannot parse {s:?} to a valid duration"));
        }
        let nanos = f * 1e9;
        if nanos >= i64::MAX as f64 || nanos < i64::MIN as f64 {
            return Err(format!("cannot parse {s:?} to a valid duration. It overflows int64"));
        }
        return Ok((f * 1000.0).round() as i64);
    }
    prom_duration_ms(s).ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

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
    if rest.is_empty() {
        return None;
    }
    let (mut next_unit, mut total) = (0, 0i64);
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
    total.checked_mul(1_000_000)?;
    Some(total)
}

/// All `key=value` pairs of a request, query string first.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn required(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| Error::BadData(format!("invalid parameter {key:?}: missing")))
    }

    pub(crate) fn time(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| parse_time(v).map_err(|e| Error::BadData(format!("invalid parameter {key:?}: {e}"))))
            .transpose()
    }

    /// The query text (non-empty).
    pub(crate) fn query(&self) -> Result<&str> {
        self.get("query").ok_or_else(|| Error::BadData("invalid parameter \"query\": query must not be empty".into()))
    }

    /// `start`, `end`, `step` of a range query, checked as Prometheus checks them.
    pub(crate) fn range(&self) -> Result<(i64, i64, i64)> {
        self.required("start")?;
        let start = self.time("start")?.unwrap_or(0);
        self.required("end")?;
        let end = self.time("end")?.unwrap_or(0);
        if end < start {
            return Err(Error::BadData(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            ));
        }
        let step = parse_duration(self.required("step")?)
            .map_err(|e| Error::BadData(format!("invalid parameter \"step\": {e}")))?;
        if step <= 0 {
            return Err(Error::BadData(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if (end - start) / step > MAX_POINTS {
            return Err(Error::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        Ok((start, end, step))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("1700000000.123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_time("2023-11-15T00:13:20+02:00").unwrap(), 1_700_000_000_000);
        assert!(parse_time("NaN").is_err() && parse_time("\u{20ac}a\u{20ac}").is_err());
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("0.5").unwrap(), 500);
        assert!(parse_duration("1m1h").is_err() && parse_duration("1e300").is_err());
    }

    #[test]
    fn range_checks() {
        let p = |pairs: &[(&str, &str)]| Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert_eq!(p(&[("start", "0"), ("end", "60"), ("step", "15")]).range().unwrap(), (0, 60_000, 15_000));
        for bad in [
            p(&[("end", "60"), ("step", "15")]),
            p(&[("start", "60"), ("end", "0"), ("step", "15")]),
            p(&[("start", "0"), ("end", "60"), ("step", "0")]),
            p(&[("start", "0"), ("end", "60000"), ("step", "1")]),
            p(&[("start", "x"), ("end", "60"), ("step", "1")]),
        ] {
            assert_eq!(bad.range().unwrap_err().status(), 400);
        }
    }

    proptest! {
        #[test]
        fn parsers_are_total(s in "\\PC{0,30}") {
            let _ = parse_time(&s);
            let _ = parse_duration(&s);
            let p = Params(vec![("start".into(), s.clone()), ("end".into(), s.clone()), ("step".into(), s)]);
            if let Err(e) = p.range() { prop_assert_eq!(e.status(), 400); }
        }
    }
}
