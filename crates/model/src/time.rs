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
