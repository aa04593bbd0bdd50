//! WAL record payloads: series, samples and metadata, each for one tenant.
//! The byte layout is specified in `docs/format/wal.md`.

use strata_model::Sample;

/// Record type bytes.
pub(crate) const TYPE_SERIES: u8 = 1;
pub(crate) const TYPE_SAMPLES: u8 = 2;
pub(crate) const TYPE_METADATA: u8 = 3;

/// A decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// New series and the references later sample records use for them.
    Series { tenant: String, series: Vec<SeriesEntry> },
    /// Samples for series announced earlier in the log.
    Samples { tenant: String, samples: Vec<RefSample> },
    /// Metric family metadata (type, help, unit).
    Metadata { tenant: String, entries: Vec<MetadataEntry> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesEntry {
    pub series_ref: u64,
    /// Label pairs sorted by name.
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    pub series_ref: u64,
    pub sample: Sample,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataEntry {
    pub family: String,
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown record type {0}")]
    UnknownType(u8),
    #[error("record payload truncated")]
    Truncated,
    #[error("record string is not UTF-8")]
    NotUtf8,
    #[error("{0} trailing bytes after record payload")]
    Trailing(usize),
}

/// Appends the encoding of a series record to `out` and returns its type byte.
pub(crate) fn encode_series<'a, L>(out: &mut Vec<u8>, tenant: &str, series: impl ExactSizeIterator<Item = (u64, L)>)
where
    L: ExactSizeIterator<Item = (&'a str, &'a str)>,
{
    put_str(out, tenant);
    put_uvarint(out, series.len() as u64);
    for (r, labels) in series {
        put_uvarint(out, r);
        put_uvarint(out, labels.len() as u64);
        for (n, v) in labels {
            put_str(out, n);
            put_str(out, v);
        }
    }
}

/// Appends the encoding of a samples record to `out`: timestamps are stored as
/// deltas from the first sample's, values as raw IEEE-754 bits.
pub(crate) fn encode_samples(out: &mut Vec<u8>, tenant: &str, samples: &[RefSample]) {
    put_str(out, tenant);
    put_uvarint(out, samples.len() as u64);
    let base = samples.first().map_or(0, |s| s.sample.t);
    put_varint(out, base);
    for s in samples {
        put_uvarint(out, s.series_ref);
        put_varint(out, s.sample.t.wrapping_sub(base));
        out.extend_from_slice(&s.sample.v.to_bits().to_le_bytes());
    }
}

pub(crate) fn encode_metadata(out: &mut Vec<u8>, tenant: &str, entries: &[MetadataEntry]) {
    put_str(out, tenant);
    put_uvarint(out, entries.len() as u64);
    for e in entries {
        put_str(out, &e.family);
        put_str(out, &e.kind);
        put_str(out, &e.help);
        put_str(out, &e.unit);
    }
}

/// Encodes a whole record (type byte is returned separately). Used by tests and tools.
pub(crate) fn encode(rec: &Record) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    match rec {
        Record::Series { tenant, series } => {
            encode_series(
                &mut out,
                tenant,
                series.iter().map(|s| (s.series_ref, s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))),
            );
            (TYPE_SERIES, out)
        }
        Record::Samples { tenant, samples } => {
            encode_samples(&mut out, tenant, samples);
            (TYPE_SAMPLES, out)
        }
        Record::Metadata { tenant, entries } => {
            encode_metadata(&mut out, tenant, entries);
            (TYPE_METADATA, out)
        }
    }
}

/// Decodes a record payload of type `typ`.
pub(crate) fn decode(typ: u8, payload: &[u8]) -> Result<Record, DecodeError> {
    let mut d = Decoder { buf: payload };
    let tenant = d.string()?;
    let rec = match typ {
        TYPE_SERIES => {
            let n = d.count()?;
            let mut series = Vec::with_capacity(n);
            for _ in 0..n {
                let series_ref = d.uvarint()?;
                let nl = d.count()?;
                let mut labels = Vec::with_capacity(nl);
                for _ in 0..nl {
                    labels.push((d.string()?, d.string()?));
                }
                series.push(SeriesEntry { series_ref, labels });
            }
            Record::Series { tenant, series }
        }
        TYPE_SAMPLES => {
            let n = d.count()?;
            let base = d.varint()?;
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let series_ref = d.uvarint()?;
                let t = base.wrapping_add(d.varint()?);
                let v = f64::from_bits(u64::from_le_bytes(d.take(8)?.try_into().expect("8 bytes")));
                samples.push(RefSample { series_ref, sample: Sample::new(t, v) });
            }
            Record::Samples { tenant, samples }
        }
        TYPE_METADATA => {
            let n = d.count()?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(MetadataEntry {
                    family: d.string()?,
                    kind: d.string()?,
                    help: d.string()?,
                    unit: d.string()?,
                });
            }
            Record::Metadata { tenant, entries }
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    if !d.buf.is_empty() {
        return Err(DecodeError::Trailing(d.buf.len()));
    }
    Ok(rec)
}

fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut x = 0u64;
        let mut s = 0u32;
        for i in 0..10 {
            let b = *self.take(1)?.first().expect("one byte");
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(DecodeError::Truncated);
                }
                return Ok(x | (u64::from(b) << s));
            }
            x |= u64::from(b & 0x7f) << s;
            s += 7;
        }
        Err(DecodeError::Truncated)
    }

    fn varint(&mut self) -> Result<i64, DecodeError> {
        let ux = self.uvarint()?;
        Ok(((ux >> 1) as i64) ^ -((ux & 1) as i64))
    }

    /// A length prefix, bounded by the bytes left so a corrupt count cannot make us
    /// allocate more than the payload could hold.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.uvarint()?;
        if n > self.buf.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.count()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        let tenant = "[a-z0-9-]{1,20}";
        let series = prop::collection::vec(
            (any::<u64>(), prop::collection::vec(("[a-z_]{1,10}", "\\PC{0,20}"), 0..8))
                .prop_map(|(series_ref, labels)| SeriesEntry { series_ref, labels }),
            0..20,
        );
        let samples = prop::collection::vec(
            (any::<u64>(), any::<i64>(), any::<u64>())
                .prop_map(|(r, t, v)| RefSample { series_ref: r, sample: Sample::new(t, f64::from_bits(v)) }),
            0..50,
        );
        let meta = prop::collection::vec(
            ("[a-z_]{1,10}", "counter|gauge|histogram", "\\PC{0,30}", "[a-z]{0,5}")
                .prop_map(|(family, kind, help, unit)| MetadataEntry { family, kind, help, unit }),
            0..5,
        );
        prop_oneof![
            (tenant, series).prop_map(|(tenant, series)| Record::Series { tenant, series }),
            (tenant, samples).prop_map(|(tenant, samples)| Record::Samples { tenant, samples }),
            (tenant, meta).prop_map(|(tenant, entries)| Record::Metadata { tenant, entries }),
        ]
    }

    /// Record equality with floats compared by bits.
    fn same(a: &Record, b: &Record) -> bool {
        match (a, b) {
            (Record::Samples { tenant: ta, samples: sa }, Record::Samples { tenant: tb, samples: sb }) => {
                ta == tb
                    && sa.len() == sb.len()
                    && sa.iter().zip(sb).all(|(x, y)| x.series_ref == y.series_ref && x.sample == y.sample)
            }
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn roundtrip_is_bit_exact(rec in arb_record()) {
            let (typ, payload) = encode(&rec);
            let back = decode(typ, &payload).unwrap();
            prop_assert!(same(&rec, &back), "{:?} != {:?}", rec, back);
        }

        #[test]
        fn truncation_is_detected(rec in arb_record(), cut in any::<prop::sample::Index>()) {
            let (typ, payload) = encode(&rec);
            if !payload.is_empty() {
                let at = cut.index(payload.len());
                // Any strict prefix either fails or (for prefixes that happen to be a
                // valid shorter record) never panics.
                let _ = decode(typ, &payload[..at]);
            }
        }

        #[test]
        fn garbage_never_panics(typ in 0u8..5, bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(typ, &bytes);
        }
    }

    #[test]
    fn stale_nan_survives() {
        let rec = Record::Samples {
            tenant: "t".into(),
            samples: vec![RefSample { series_ref: 1, sample: Sample::new(5, strata_model::stale_nan()) }],
        };
        let (typ, payload) = encode(&rec);
        assert!(same(&decode(typ, &payload).unwrap(), &rec));
    }
}
