//! The two Parquet schemas of a block and the value codec (see `docs/format/block.md`).
//!
//! A float is stored as `v_mantissa / 10^v_scale` when that division reproduces its
//! bits exactly (most metric values are short decimals), and otherwise in `v_raw`
//! (NaNs with their payload, infinities, -0.0, and full-precision values).
//! A timestamp is stored as its residual from the series' regular grid:
//! `t = t_start + (row - first_row) * t_step + t_residual`, which is zero for most
//! scrapes, so it costs almost nothing once compressed.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

pub(crate) mod col {
    pub(crate) const SERIES_ID: &str = "series_id";
    pub(crate) const LABELS: &str = "labels";
    pub(crate) const MIN_TIME: &str = "min_time";
    pub(crate) const MAX_TIME: &str = "max_time";
    pub(crate) const FIRST_ROW: &str = "first_row";
    pub(crate) const NUM_ROWS: &str = "num_rows";
    pub(crate) const T_START: &str = "t_start";
    pub(crate) const T_STEP: &str = "t_step";
    pub(crate) const T_RESIDUAL: &str = "t_residual";
    pub(crate) const V_MANTISSA: &str = "v_mantissa";
    pub(crate) const V_SCALE: &str = "v_scale";
    pub(crate) const V_RAW: &str = "v_raw";
    // samples.parquet of a downsampled block: one row per series and window
    pub(crate) const T: &str = "t";
    pub(crate) const COUNT: &str = "count";
    pub(crate) const SUM: &str = "sum";
    pub(crate) const MIN: &str = "min";
    pub(crate) const MAX: &str = "max";
    pub(crate) const FIRST_T: &str = "first_t";
    pub(crate) const FIRST: &str = "first";
    pub(crate) const LAST_T: &str = "last_t";
    pub(crate) const LAST: &str = "last";
    pub(crate) const RESETS: &str = "resets";
    pub(crate) const CORRECTION: &str = "correction";
    pub(crate) const STALE_END: &str = "stale_end";
}

/// Exact powers of ten as f64 (every one up to 1e22 is representable).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Largest mantissa magnitude that converts to f64 exactly.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

/// `(mantissa, scale)` with `mantissa as f64 / 10^scale` bit-identical to `v`, or
/// `None` when no such pair exists (the value goes to `v_raw`).
pub(crate) fn encode_value(v: f64) -> Option<(i64, i8)> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    for (k, p) in POW10.iter().enumerate() {
        let m = (v * p).round();
        if m.abs() >= MAX_MANTISSA {
            return None;
        }
        if (m / p).to_bits() == v.to_bits() {
            return Some((m as i64, k as i8));
        }
    }
    None
}

/// The mantissa of `v` at exactly `scale`, if `mantissa / 10^scale` reproduces its
/// bits (a series stores most samples at one common scale, so consecutive mantissas
/// stay comparable and compress well).
pub(crate) fn encode_at(v: f64, scale: i8) -> Option<i64> {
    let p = POW10.get(usize::try_from(scale).ok()?)?;
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    let m = (v * p).round();
    (m.abs() < MAX_MANTISSA && (m / p).to_bits() == v.to_bits()).then_some(m as i64)
}

/// The inverse of [`encode_value`]; `None` for a scale no writer produces.
pub(crate) fn decode_value(mantissa: i64, scale: i8) -> Option<f64> {
    let p = POW10.get(usize::try_from(scale).ok()?)?;
    Some(mantissa as f64 / p)
}

pub(crate) fn labels_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

pub(crate) fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::SERIES_ID, DataType::UInt32, false),
        Field::new(col::LABELS, labels_type(), false),
        Field::new(col::MIN_TIME, DataType::Int64, false),
        Field::new(col::MAX_TIME, DataType::Int64, false),
        Field::new(col::FIRST_ROW, DataType::UInt64, false),
        Field::new(col::NUM_ROWS, DataType::UInt32, false),
        Field::new(col::T_START, DataType::Int64, false),
        Field::new(col::T_STEP, DataType::Int64, false),
    ]))
}

pub(crate) fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::SERIES_ID, DataType::UInt32, false),
        Field::new(col::T_RESIDUAL, DataType::Int64, false),
        Field::new(col::V_MANTISSA, DataType::Int64, false),
        Field::new(col::V_SCALE, DataType::Int8, false),
        Field::new(col::V_RAW, DataType::Float64, true),
    ]))
}

/// `samples.parquet` of a downsampled block (resolution > 0): one row per series
/// and window, sorted by series then window start. Column order is the format.
pub(crate) fn aggr_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::SERIES_ID, DataType::UInt32, false),
        Field::new(col::T, DataType::Int64, false),
        Field::new(col::COUNT, DataType::UInt32, false),
        Field::new(col::SUM, DataType::Float64, false),
        Field::new(col::MIN, DataType::Float64, false),
        Field::new(col::MAX, DataType::Float64, false),
        Field::new(col::FIRST_T, DataType::Int64, false),
        Field::new(col::FIRST, DataType::Float64, false),
        Field::new(col::LAST_T, DataType::Int64, false),
        Field::new(col::LAST, DataType::Float64, false),
        Field::new(col::RESETS, DataType::UInt32, false),
        Field::new(col::CORRECTION, DataType::Float64, false),
        Field::new(col::STALE_END, DataType::Boolean, false),
    ]))
}

/// The grid step of a series: its most common sample spacing (0 for one sample).
pub(crate) fn grid_step(ts: &[i64], scratch: &mut Vec<i64>) -> i64 {
    scratch.clear();
    scratch.extend(ts.windows(2).map(|w| w[1] - w[0]));
    if scratch.is_empty() {
        return 0;
    }
    scratch.sort_unstable();
    let (mut best, mut best_n, mut i) = (scratch[0], 0, 0);
    while i < scratch.len() {
        let j = scratch[i..].partition_point(|&d| d == scratch[i]) + i;
        if j - i > best_n {
            (best, best_n) = (scratch[i], j - i);
        }
        i = j;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_bit_exactly() {
        for v in [0.0, 1.0, -1.5, 0.1, 0.3, 123.456, 1e-9, 1.7e12, 42e300, f64::MIN_POSITIVE, 1.0 / 3.0] {
            match encode_value(v) {
                Some((m, k)) => assert_eq!(decode_value(m, k).unwrap().to_bits(), v.to_bits(), "{v}"),
                None => assert!(v.abs() > 1e15 || v.abs() < 1e-10 || v == 1.0 / 3.0, "{v} should encode"),
            }
        }
        assert_eq!(encode_value(0.1), Some((1, 1)));
        assert_eq!(encode_value(1500.0), Some((1500, 0)));
        assert_eq!(encode_value(-0.0), None);
        assert_eq!(encode_value(f64::NAN), None);
        assert_eq!(encode_value(f64::INFINITY), None);
    }

    #[test]
    fn grid_step_is_the_most_common_spacing() {
        let mut s = Vec::new();
        assert_eq!(grid_step(&[0, 15_000, 30_001, 45_000, 60_000, 90_000], &mut s), 15_000);
        assert_eq!(grid_step(&[5], &mut s), 0);
    }
}
