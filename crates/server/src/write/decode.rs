//! Zero-copy decoders for remote write 1.0 and 2.0 requests.
//!
//! The generated prost types would allocate a `String` per label per series per
//! request; on the ingest hot path we read the protobuf wire format directly and
//! borrow every string from the decompressed body. Field numbers follow
//! `proto/prometheus/*.proto` and `proto/io/prometheus/write/v2/types.proto`.

use std::ops::Range;

use strata_model::Sample;

/// A decoded request, borrowing from the decompressed body. Series labels and
/// samples live in flat vectors; each series names its ranges in them.
#[derive(Debug, Default)]
pub struct DecodedWrite<'a> {
    pub(crate) labels: Vec<(&'a str, &'a str)>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) series: Vec<SeriesSpan>,
    pub(crate) metadata: Vec<MetadataIn<'a>>,
    pub(crate) exemplars: u64,
    pub(crate) histograms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct SeriesSpan {
    pub(crate) labels: Range<usize>,
    pub(crate) samples: Range<usize>,
    /// Remote write 2.0 created timestamp (0 when absent).
    pub(crate) created_timestamp: i64,
    pub(crate) histograms: u64,
    pub(crate) exemplars: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct MetadataIn<'a> {
    pub(crate) family: &'a str,
    pub(crate) kind: &'static str,
    pub(crate) help: &'a str,
    pub(crate) unit: &'a str,
}

/// A malformed request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated protobuf message")]
    Truncated,
    #[error("invalid protobuf wire type {0}")]
    WireType(u8),
    #[error("protobuf field {field} has wire type {got}, expected {want}")]
    FieldType { field: u32, got: u8, want: u8 },
    #[error("label name or value is not valid UTF-8")]
    NotUtf8,
    #[error("symbol reference {0} is out of range of the symbol table")]
    SymbolRef(u32),
    #[error("labels_refs has an odd number of entries")]
    OddLabelRefs,
    #[error("the first symbol must be the empty string")]
    FirstSymbolNotEmpty,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl DecodedWrite<'_> {
    /// Number of series in the request.
    pub fn series_len(&self) -> usize {
        self.series.len()
    }

    /// Number of float samples in the request.
    pub fn samples_len(&self) -> usize {
        self.samples.len()
    }
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut x = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
            self.buf = rest;
            x |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err(DecodeError::Truncated)
    }

    fn key(&mut self) -> Result<(u32, u8)> {
        let k = self.varint()?;
        let wt = (k & 7) as u8;
        if !matches!(wt, VARINT | FIXED64 | LEN | FIXED32) {
            return Err(DecodeError::WireType(wt));
        }
        Ok(((k >> 3) as u32, wt))
    }

    fn fixed64(&mut self) -> Result<u64> {
        if self.buf.len() < 8 {
            return Err(DecodeError::Truncated);
        }
        let (b, rest) = self.buf.split_at(8);
        self.buf = rest;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        if n > self.buf.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        let (b, rest) = self.buf.split_at(n as usize);
        self.buf = rest;
        Ok(b)
    }

    fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::NotUtf8)
    }

    fn skip(&mut self, wt: u8) -> Result<()> {
        match wt {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            _ => {
                if self.buf.len() < 4 {
                    return Err(DecodeError::Truncated);
                }
                self.buf = &self.buf[4..];
                Ok(())
            }
        }
    }
}

fn expect(field: u32, got: u8, want: u8) -> Result<()> {
    if got == want { Ok(()) } else { Err(DecodeError::FieldType { field, got, want }) }
}

/// Decodes a `prometheus.Sample`.
fn sample(buf: &[u8]) -> Result<Sample> {
    let mut r = Reader::new(buf);
    let mut s = Sample::new(0, 0.0);
    while !r.is_empty() {
        match r.key()? {
            (1, wt) => {
                expect(1, wt, FIXED64)?;
                s.v = f64::from_bits(r.fixed64()?);
            }
            (2, wt) => {
                expect(2, wt, VARINT)?;
                s.t = r.varint()? as i64;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(s)
}

/// Decodes a remote write 1.0 `prometheus.WriteRequest`.
pub fn decode_v1(buf: &[u8]) -> Result<DecodedWrite<'_>> {
    let mut out = DecodedWrite::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, wt) => {
                expect(1, wt, LEN)?;
                let ts = r.bytes()?;
                series_v1(ts, &mut out)?;
            }
            (3, wt) => {
                expect(3, wt, LEN)?;
                let m = r.bytes()?;
                out.metadata.push(metadata_v1(m)?);
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(out)
}

/// The labels of a remote write 1.0 request's first series, without decoding the
/// rest: what the HA tracker decides on, so a request from a non-elected replica is
/// answered before the full decode. A request without series has none.
pub fn first_labels_v1(buf: &[u8]) -> Result<Vec<(&str, &str)>> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, wt) => {
                expect(1, wt, LEN)?;
                let mut sr = Reader::new(r.bytes()?);
                let mut labels = Vec::new();
                while !sr.is_empty() {
                    match sr.key()? {
                        (1, wt) => {
                            expect(1, wt, LEN)?;
                            let mut lr = Reader::new(sr.bytes()?);
                            let (mut name, mut value) = ("", "");
                            while !lr.is_empty() {
                                match lr.key()? {
                                    (1, LEN) => name = lr.str()?,
                                    (2, LEN) => value = lr.str()?,
                                    (_, wt) => lr.skip(wt)?,
                                }
                            }
                            labels.push((name, value));
                        }
                        (_, wt) => sr.skip(wt)?,
                    }
                }
                return Ok(labels);
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(Vec::new())
}

/// The number of samples in a remote write 1.0 request, counted without decoding them.
pub fn count_samples_v1(buf: &[u8]) -> Result<u64> {
    let mut n = 0;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, wt) => {
                expect(1, wt, LEN)?;
                let mut sr = Reader::new(r.bytes()?);
                while !sr.is_empty() {
                    match sr.key()? {
                        (2, wt) => {
                            expect(2, wt, LEN)?;
                            sr.bytes()?;
                            n += 1;
                        }
                        (_, wt) => sr.skip(wt)?,
                    }
                }
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(n)
}

fn series_v1<'a>(buf: &'a [u8], out: &mut DecodedWrite<'a>) -> Result<()> {
    let l0 = out.labels.len();
    let s0 = out.samples.len();
    let mut span = SeriesSpan { labels: 0..0, samples: 0..0, created_timestamp: 0, histograms: 0, exemplars: 0 };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, wt) => {
                expect(1, wt, LEN)?;
                let mut lr = Reader::new(r.bytes()?);
                let (mut name, mut value) = ("", "");
                while !lr.is_empty() {
                    match lr.key()? {
                        (1, wt) => {
                            expect(1, wt, LEN)?;
                            name = lr.str()?;
                        }
                        (2, wt) => {
                            expect(2, wt, LEN)?;
                            value = lr.str()?;
                        }
                        (_, wt) => lr.skip(wt)?,
                    }
                }
                out.labels.push((name, value));
            }
            (2, wt) => {
                expect(2, wt, LEN)?;
                out.samples.push(sample(r.bytes()?)?);
            }
            (3, wt) => {
                expect(3, wt, LEN)?;
                r.bytes()?;
                span.exemplars += 1;
            }
            (4, wt) => {
                expect(4, wt, LEN)?;
                r.bytes()?;
                span.histograms += 1;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    span.labels = l0..out.labels.len();
    span.samples = s0..out.samples.len();
    out.exemplars += span.exemplars;
    out.histograms += span.histograms;
    out.series.push(span);
    Ok(())
}

fn metric_type(t: u64) -> &'static str {
    match t {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

fn metadata_v1(buf: &[u8]) -> Result<MetadataIn<'_>> {
    let mut m = MetadataIn { family: "", kind: "unknown", help: "", unit: "" };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, wt) => {
                expect(1, wt, VARINT)?;
                m.kind = metric_type(r.varint()?);
            }
            (2, wt) => {
                expect(2, wt, LEN)?;
                m.family = r.str()?;
            }
            (4, wt) => {
                expect(4, wt, LEN)?;
                m.help = r.str()?;
            }
            (5, wt) => {
                expect(5, wt, LEN)?;
                m.unit = r.str()?;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(m)
}

/// Decodes a remote write 2.0 `io.prometheus.write.v2.Request`. Symbols are read
/// first, wherever they sit in the message, so references resolve in one pass.
pub fn decode_v2(buf: &[u8]) -> Result<DecodedWrite<'_>> {
    let mut symbols: Vec<&str> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (4, wt) => {
                expect(4, wt, LEN)?;
                symbols.push(r.str()?);
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    if symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(DecodeError::FirstSymbolNotEmpty);
    }
    let mut out = DecodedWrite::default();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (5, wt) => {
                expect(5, wt, LEN)?;
                series_v2(r.bytes()?, &symbols, &mut out)?;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok(out)
}

fn symbol<'a>(symbols: &[&'a str], i: u64) -> Result<&'a str> {
    symbols.get(i as usize).copied().ok_or(DecodeError::SymbolRef(i as u32))
}

fn series_v2<'a>(buf: &'a [u8], symbols: &[&'a str], out: &mut DecodedWrite<'a>) -> Result<()> {
    let l0 = out.labels.len();
    let s0 = out.samples.len();
    let mut span = SeriesSpan { labels: 0..0, samples: 0..0, created_timestamp: 0, histograms: 0, exemplars: 0 };
    let mut refs: Vec<u64> = Vec::new();
    let mut meta: Option<(u64, u64, u64)> = None;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => {
                let mut pr = Reader::new(r.bytes()?);
                while !pr.is_empty() {
                    refs.push(pr.varint()?);
                }
            }
            (1, VARINT) => refs.push(r.varint()?),
            (1, wt) => return Err(DecodeError::FieldType { field: 1, got: wt, want: LEN }),
            (2, wt) => {
                expect(2, wt, LEN)?;
                out.samples.push(sample(r.bytes()?)?);
            }
            (3, wt) => {
                expect(3, wt, LEN)?;
                r.bytes()?;
                span.histograms += 1;
            }
            (4, wt) => {
                expect(4, wt, LEN)?;
                r.bytes()?;
                span.exemplars += 1;
            }
            (5, wt) => {
                expect(5, wt, LEN)?;
                let mut mr = Reader::new(r.bytes()?);
                let (mut t, mut help, mut unit) = (0, 0, 0);
                while !mr.is_empty() {
                    match mr.key()? {
                        (1, VARINT) => t = mr.varint()?,
                        (3, VARINT) => help = mr.varint()?,
                        (4, VARINT) => unit = mr.varint()?,
                        (f @ (1 | 3 | 4), wt) => {
                            return Err(DecodeError::FieldType { field: f, got: wt, want: VARINT });
                        }
                        (_, wt) => mr.skip(wt)?,
                    }
                }
                meta = Some((t, help, unit));
            }
            (6, wt) => {
                expect(6, wt, VARINT)?;
                span.created_timestamp = r.varint()? as i64;
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    if !refs.len().is_multiple_of(2) {
        return Err(DecodeError::OddLabelRefs);
    }
    let mut family = "";
    for pair in refs.chunks_exact(2) {
        let (n, v) = (symbol(symbols, pair[0])?, symbol(symbols, pair[1])?);
        if n == strata_model::METRIC_NAME {
            family = v;
        }
        out.labels.push((n, v));
    }
    if let Some((t, help, unit)) = meta {
        let (help, unit) = (symbol(symbols, help)?, symbol(symbols, unit)?);
        if !family.is_empty() && (t != 0 || !help.is_empty() || !unit.is_empty()) {
            out.metadata.push(MetadataIn { family, kind: metric_type(t), help, unit });
        }
    }
    span.labels = l0..out.labels.len();
    span.samples = s0..out.samples.len();
    out.exemplars += span.exemplars;
    out.histograms += span.histograms;
    out.series.push(span);
    Ok(())
}

#[cfg(test)]
mod tests {
    use strata_proto::Message;
    use strata_proto::prometheus as v1;
    use strata_proto::write_v2 as v2;

    use super::*;

    fn label(n: &str, v: &str) -> v1::Label {
        v1::Label { name: n.into(), value: v.into() }
    }

    #[test]
    fn the_ha_peeks_find_the_first_series_labels_and_count_every_sample() {
        let req = v1::WriteRequest {
            timeseries: vec![
                v1::TimeSeries {
                    labels: vec![
                        v1::Label { name: "__replica__".into(), value: "r1".into() },
                        v1::Label { name: "cluster".into(), value: "eu".into() },
                    ],
                    samples: vec![v1::Sample { value: 1.0, timestamp: 1 }, v1::Sample { value: 2.0, timestamp: 2 }],
                    ..Default::default()
                },
                v1::TimeSeries {
                    labels: vec![v1::Label { name: "cluster".into(), value: "us".into() }],
                    samples: vec![v1::Sample { value: 3.0, timestamp: 3 }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let buf = req.encode_to_vec();
        assert_eq!(first_labels_v1(&buf).unwrap(), vec![("__replica__", "r1"), ("cluster", "eu")]);
        assert_eq!(count_samples_v1(&buf).unwrap(), 3);
        assert_eq!(decode_v1(&buf).unwrap().samples_len(), 3);
        assert!(first_labels_v1(&[]).unwrap().is_empty());
        for cut in 0..buf.len() {
            let _ = (first_labels_v1(&buf[..cut]), count_samples_v1(&buf[..cut]));
        }
    }

    #[test]
    fn v1_matches_prost() {
        let req = v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: vec![label("__name__", "up"), label("job", "a")],
                samples: vec![
                    v1::Sample { value: 1.5, timestamp: 1000 },
                    v1::Sample { value: f64::from_bits(0x7ff0000000000002), timestamp: -5 },
                ],
                exemplars: vec![v1::Exemplar::default()],
                histograms: vec![],
            }],
            metadata: vec![v1::MetricMetadata {
                r#type: 1,
                metric_family_name: "up".into(),
                help: "is it up".into(),
                unit: "".into(),
            }],
        };
        let bytes = req.encode_to_vec();
        let d = decode_v1(&bytes).unwrap();
        assert_eq!(d.labels, vec![("__name__", "up"), ("job", "a")]);
        assert_eq!(d.samples[0], Sample::new(1000, 1.5));
        assert_eq!(d.samples[1].t, -5);
        assert_eq!(d.samples[1].v.to_bits(), 0x7ff0000000000002);
        assert_eq!(d.exemplars, 1);
        assert_eq!(d.metadata[0].kind, "counter");
        assert_eq!(d.metadata[0].help, "is it up");
    }

    #[test]
    fn v2_resolves_symbols_and_metadata() {
        let req = v2::Request {
            symbols: vec!["".into(), "__name__".into(), "req_total".into(), "help text".into(), "seconds".into()],
            timeseries: vec![v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![v2::Sample { value: 3.0, timestamp: 7 }],
                histograms: vec![],
                exemplars: vec![],
                metadata: Some(v2::Metadata { r#type: 1, help_ref: 3, unit_ref: 4 }),
                created_timestamp: 5,
            }],
        };
        let bytes = req.encode_to_vec();
        let d = decode_v2(&bytes).unwrap();
        assert_eq!(d.labels, vec![("__name__", "req_total")]);
        assert_eq!(d.series[0].created_timestamp, 5);
        assert_eq!(
            (d.metadata[0].family, d.metadata[0].kind, d.metadata[0].help, d.metadata[0].unit),
            ("req_total", "counter", "help text", "seconds")
        );
    }

    #[test]
    fn v2_rejects_bad_refs() {
        let mut req = v2::Request {
            symbols: vec!["".into(), "a".into()],
            timeseries: vec![v2::TimeSeries { labels_refs: vec![1, 9], ..Default::default() }],
        };
        assert_eq!(decode_v2(&req.encode_to_vec()).unwrap_err(), DecodeError::SymbolRef(9));
        req.timeseries[0].labels_refs = vec![1];
        assert_eq!(decode_v2(&req.encode_to_vec()).unwrap_err(), DecodeError::OddLabelRefs);
        req.symbols[0] = "x".into();
        assert_eq!(decode_v2(&req.encode_to_vec()).unwrap_err(), DecodeError::FirstSymbolNotEmpty);
    }

    #[test]
    fn every_truncation_is_an_error_or_a_shorter_message() {
        let req = v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: vec![label("__name__", "x")],
                samples: vec![v1::Sample { value: 1.0, timestamp: 1 }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        let bytes = req.encode_to_vec();
        for cut in 1..bytes.len() {
            assert!(decode_v1(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let req = v1::WriteRequest {
            timeseries: vec![v1::TimeSeries { labels: vec![label("a", "b")], ..Default::default() }],
            metadata: vec![],
        };
        let mut bytes = req.encode_to_vec();
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        assert_eq!(decode_v1(&bytes).unwrap_err(), DecodeError::NotUtf8);
    }
}
