//! Samples and the staleness marker.

/// The bit pattern Prometheus uses to mark a series stale: a signalling NaN that no
/// arithmetic produces. Stored and returned bit-exact.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as an `f64`.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (not merely any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: a millisecond timestamp and a value.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

impl Sample {
    pub fn new(t: i64, v: f64) -> Self {
        Sample { t, v }
    }
}

/// Bitwise equality, so that NaN payloads compare as stored.
impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

impl Eq for Sample {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_nan_is_distinct_from_plain_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert!(stale_nan().is_nan());
        assert_eq!(Sample::new(1, stale_nan()), Sample::new(1, stale_nan()));
        assert_ne!(Sample::new(1, stale_nan()), Sample::new(1, f64::NAN));
    }
}
