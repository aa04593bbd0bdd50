//! Hand-rolled protobuf encoding of remote write 1.0 bodies, and an in-place
//! timestamp shifter. Encoding by hand avoids cloning every label string per sample;
//! the unit tests decode the result with the prost types of `strata-proto`.
//!
//! Wire layout (field numbers from `proto/prometheus/*.proto`):
//!
//! ```text
//! WriteRequest { 1: repeated TimeSeries }
//! TimeSeries   { 1: repeated Label, 2: repeated Sample, 3: exemplars, 4: histograms }
//! Label        { 1: name, 2: value }
//! Sample       { 1: double value, 2: int64 timestamp }
//! ```

use anyhow::{Context, Result, bail, ensure};

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_field(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    out.push(tag);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Encodes a label set as the repeated `TimeSeries.labels` fields, ready to be copied
/// into every sample of that series. `labels` must already be sorted by name.
pub(crate) fn encode_labels(labels: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut label = Vec::new();
    for (name, value) in labels {
        label.clear();
        put_len_field(&mut label, 0x0a, name.as_bytes());
        put_len_field(&mut label, 0x12, value.as_bytes());
        put_len_field(&mut out, 0x0a, &label);
    }
    out
}

fn encode_sample(out: &mut Vec<u8>, ts: i64, value: f64) {
    let mut sample = [0u8; 1 + 8 + 1 + 10];
    let mut n = 0;
    if value.to_bits() != 0 {
        sample[0] = 0x09;
        sample[1..9].copy_from_slice(&value.to_le_bytes());
        n = 9;
    }
    if ts != 0 {
        sample[n] = 0x10;
        n += 1;
        let mut v = ts as u64;
        while v >= 0x80 {
            sample[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        sample[n] = v as u8;
        n += 1;
    }
    put_len_field(out, 0x12, &sample[..n]);
}

/// Appends one `TimeSeries` holding a single sample, as Prometheus's queue manager
/// does (remote write 1.0 repeats the full label set for every sample).
pub(crate) fn push_series_sample(out: &mut Vec<u8>, labels_pb: &[u8], ts: i64, value: f64) {
    let mut sample = Vec::with_capacity(24);
    encode_sample(&mut sample, ts, value);
    out.push(0x0a);
    put_varint(out, (labels_pb.len() + sample.len()) as u64);
    out.extend_from_slice(labels_pb);
    out.extend_from_slice(&sample);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).context("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        bail!("varint too long")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(self.pos + n <= self.buf.len(), "truncated field");
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads one field: `(field number, wire type, raw bytes of the whole field, payload)`.
    fn field(&mut self) -> Result<(u64, u8, &'a [u8], &'a [u8])> {
        let start = self.pos;
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let payload_start;
        let payload = match wire {
            WIRE_VARINT => {
                payload_start = self.pos;
                self.varint()?;
                &self.buf[payload_start..self.pos]
            }
            WIRE_I64 => self.take(8)?,
            WIRE_LEN => {
                let n = usize::try_from(self.varint()?)?;
                self.take(n)?
            }
            WIRE_I32 => self.take(4)?,
            other => bail!("unsupported wire type {other}"),
        };
        Ok((key >> 3, wire, &self.buf[start..self.pos], payload))
    }
}

/// What a body holds, as counted by [`shift_timestamps`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BodyStats {
    pub(crate) samples: u64,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
}

/// The name of an encoded `Label` message (field 1).
fn label_name(label: &[u8]) -> Result<&[u8]> {
    let mut r = Reader::new(label);
    while !r.done() {
        let (num, wire, _, payload) = r.field()?;
        if num == 1 && wire == WIRE_LEN {
            return Ok(payload);
        }
    }
    Ok(b"")
}

/// Re-encodes an uncompressed `WriteRequest` with every sample timestamp moved by
/// `delta_ms` and the labels `extra` added to every series (in name order, replacing
/// a label of the same name, as Prometheus adds its external labels); all other
/// fields are copied verbatim. `extra` must be sorted by name. (Histogram and
/// exemplar timestamps are not moved: the generator emits neither.)
pub(crate) fn shift_timestamps(body: &[u8], delta_ms: i64, extra: &[(String, String)]) -> Result<(Vec<u8>, BodyStats)> {
    ensure!(extra.windows(2).all(|w| w[0].0 < w[1].0), "extra labels must be sorted by name and unique");
    let extra_pb: Vec<(&[u8], Vec<u8>)> =
        extra.iter().map(|(n, v)| (n.as_bytes(), encode_labels(&[(n.clone(), v.clone())]))).collect();
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut stats = BodyStats { samples: 0, min_ts: i64::MAX, max_ts: i64::MIN };
    let mut series = Vec::new();
    let mut r = Reader::new(body);
    while !r.done() {
        let (num, wire, raw, payload) = r.field()?;
        if num != 1 || wire != WIRE_LEN {
            out.extend_from_slice(raw);
            continue;
        }
        series.clear();
        // Extra labels not yet written into this series.
        let mut pending = extra_pb.iter().peekable();
        let mut ts_reader = Reader::new(payload);
        while !ts_reader.done() {
            let (num, wire, raw, payload) = ts_reader.field()?;
            if num == 1 && wire == WIRE_LEN && !extra_pb.is_empty() {
                let name = label_name(payload)?;
                while let Some((n, pb)) = pending.next_if(|(n, _)| *n <= name) {
                    series.extend_from_slice(pb);
                    if *n == name {
                        // Replaced by the extra label of the same name.
                        break;
                    }
                }
                if !extra_pb.iter().any(|(n, _)| *n == name) {
                    series.extend_from_slice(raw);
                }
                continue;
            }
            for (_, pb) in pending.by_ref() {
                series.extend_from_slice(pb);
            }
            if num != 2 || wire != WIRE_LEN {
                series.extend_from_slice(raw);
                continue;
            }
            let (mut value, mut ts) = (0f64, 0i64);
            let mut s = Reader::new(payload);
            while !s.done() {
                let (num, wire, _, payload) = s.field()?;
                match (num, wire) {
                    (1, WIRE_I64) => value = f64::from_le_bytes(payload.try_into()?),
                    (2, WIRE_VARINT) => ts = Reader::new(payload).varint()? as i64,
                    _ => {}
                }
            }
            let ts = ts + delta_ms;
            stats.samples += 1;
            stats.min_ts = stats.min_ts.min(ts);
            stats.max_ts = stats.max_ts.max(ts);
            encode_sample(&mut series, ts, value);
        }
        for (_, pb) in pending {
            series.extend_from_slice(pb);
        }
        out.push(0x0a);
        put_varint(&mut out, series.len() as u64);
        out.extend_from_slice(&series);
    }
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::Message;
    use strata_proto::prometheus::WriteRequest;

    fn labels() -> Vec<(String, String)> {
        vec![
            ("__name__".into(), "node_load1".into()),
            ("instance".into(), "host-0001:9100".into()),
            ("job".into(), "node".into()),
        ]
    }

    #[test]
    fn hand_encoding_decodes_with_prost() {
        let lp = encode_labels(&labels());
        let mut body = Vec::new();
        push_series_sample(&mut body, &lp, 1_767_225_600_123, 0.25);
        push_series_sample(&mut body, &lp, 1_767_225_615_123, 0.0);
        push_series_sample(&mut body, &lp, 5, f64::from_bits(0x7ff0_0000_0000_0002));
        let req = WriteRequest::decode(body.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 3);
        let ts = &req.timeseries[0];
        assert_eq!(ts.labels.len(), 3);
        assert_eq!(ts.labels[0].name, "__name__");
        assert_eq!(ts.labels[1].value, "host-0001:9100");
        assert_eq!(ts.samples[0].timestamp, 1_767_225_600_123);
        assert_eq!(ts.samples[0].value, 0.25);
        assert_eq!(req.timeseries[1].samples[0].value, 0.0);
        assert_eq!(req.timeseries[2].samples[0].value.to_bits(), 0x7ff0_0000_0000_0002);
    }

    #[test]
    fn shift_moves_every_timestamp_and_keeps_the_rest() {
        let lp = encode_labels(&labels());
        let mut body = Vec::new();
        for i in 0..10 {
            push_series_sample(&mut body, &lp, 1_767_225_600_000 + i * 15_000, i as f64);
        }
        let (shifted, stats) = shift_timestamps(&body, 86_400_000, &[]).unwrap();
        assert_eq!(stats.samples, 10);
        assert_eq!(stats.min_ts, 1_767_225_600_000 + 86_400_000);
        assert_eq!(stats.max_ts, 1_767_225_600_000 + 9 * 15_000 + 86_400_000);
        let a = WriteRequest::decode(body.as_slice()).unwrap();
        let b = WriteRequest::decode(shifted.as_slice()).unwrap();
        for (x, y) in a.timeseries.iter().zip(&b.timeseries) {
            assert_eq!(x.labels, y.labels);
            assert_eq!(x.samples[0].value, y.samples[0].value);
            assert_eq!(x.samples[0].timestamp + 86_400_000, y.samples[0].timestamp);
        }
        let (back, _) = shift_timestamps(&shifted, -86_400_000, &[]).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn extra_labels_land_in_name_order() {
        let lp = encode_labels(&labels());
        let mut body = Vec::new();
        push_series_sample(&mut body, &lp, 1_000, 1.5);
        push_series_sample(&mut body, &lp, 2_000, 2.5);
        let extra = vec![
            ("__replica__".to_string(), "r2".to_string()),
            ("cluster".to_string(), "c1".to_string()),
            ("job".to_string(), "node-ha".to_string()),
            ("zone".to_string(), "z".to_string()),
        ];
        let (out, stats) = shift_timestamps(&body, 15_000, &extra).unwrap();
        assert_eq!(stats.samples, 2);
        let req = WriteRequest::decode(out.as_slice()).unwrap();
        for (i, ts) in req.timeseries.iter().enumerate() {
            let got: Vec<(&str, &str)> = ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
            assert_eq!(
                got,
                [
                    ("__name__", "node_load1"),
                    ("__replica__", "r2"),
                    ("cluster", "c1"),
                    ("instance", "host-0001:9100"),
                    ("job", "node-ha"),
                    ("zone", "z"),
                ]
            );
            assert_eq!(ts.samples[0].timestamp, (i as i64 + 1) * 1_000 + 15_000);
            assert_eq!(ts.samples[0].value, i as f64 + 1.5);
        }
        let unsorted = [extra[1].clone(), extra[0].clone()];
        assert!(shift_timestamps(&body, 0, &unsorted).is_err());
    }
}
