//! Time ranges in milliseconds since the Unix epoch.

/// A closed interval `[start, end]` of millisecond timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    pub fn new(start: i64, end: i64) -> Self {
        TimeRange { start, end }
    }

    /// Every representable timestamp.
    pub fn all() -> Self {
        TimeRange { start: i64::MIN, end: i64::MAX }
    }

    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t <= self.end
    }

    /// Whether `[min, max]` shares at least one timestamp with this range.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        min <= self.end && max >= self.start
    }
}

/// The wall clock in milliseconds since the Unix epoch (negative before it).
pub fn now_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A resolution or short duration the way it is written in configs: `5m`, `1h`,
/// `30s`, `250ms`.
pub fn format_resolution(ms: i64) -> String {
    match ms {
        0 => "0s".to_string(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// RFC 3339 in UTC with milliseconds (`2026-12-02T15:01:27.838Z`) for any `ms`
/// whose year is 0000 to 9999; beyond those (a damaged or hand-made meta.json,
/// i64 bounds) the raw milliseconds and `(out of range)`. For logs and tools: block
/// and sample times are milliseconds, which people do not read. Never panics.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    let (y, mo, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return format!("{ms}ms (out of range)");
    }
    let (h, mi, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

const DAY_MS: i64 = 86_400_000;

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01, for
/// every `i64` (Howard Hinnant's `civil_from_days`; the arithmetic cannot overflow:
/// |days| < 2^37 for any i64 of milliseconds, and years are returned as i64).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Serde helpers for durations in configuration files, written the humantime way
/// (`15s`, `1h30m`): `#[serde(deserialize_with = "strata_model::config_duration::required")]`.
pub mod config_duration {
    use std::time::Duration;

    use serde::Deserialize;

    /// A duration field.
    pub fn required<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }

    /// An optional duration field (absent: `None`, with `#[serde(default)]`).
    pub fn optional<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        required(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_milliseconds() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_ms(1_796_223_693_369), "2026-12-02T15:01:33.369Z");
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339_ms(i64::MAX), format!("{}ms (out of range)", i64::MAX));
        assert_eq!(format_rfc3339_ms(i64::MIN), format!("{}ms (out of range)", i64::MIN));
    }
}
