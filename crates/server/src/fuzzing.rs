//! Entry points for the fuzz targets in `fuzz/`; not a stable API. Each function
//! runs the real request-decoding code on untrusted bytes the way a handler does,
//! and panics only when that code does (or when an invariant the handler relies on
//! is broken).

use strata_model::Matcher;
use strata_proto::Message;
use strata_proto::prometheus as pb;

use crate::ServerConfig;
use crate::write::{DecodedWrite, Rejections, validate_all};

#[cfg(test)]
mod seeds;

/// Remote write 1.0: a decompressed `WriteRequest` through the decoder and the
/// per-series validation of the write handler.
pub fn remote_write_v1(body: &[u8]) {
    if let Ok(req) = crate::write::decode_v1(body) {
        validate(&req);
    }
}

/// Remote write 2.0: a decompressed `io.prometheus.write.v2.Request` through the
/// decoder (symbol references included) and the per-series validation.
pub fn remote_write_v2(body: &[u8]) {
    if let Ok(req) = crate::write::decode_v2(body) {
        validate(&req);
    }
}

fn validate(req: &DecodedWrite<'_>) {
    let cfg = ServerConfig::default();
    let mut rejections = Rejections::default();
    let (clean, spans) = validate_all(req, &cfg, crate::Limits::default().max_label_names_per_series, &mut rejections);
    // What the handler then slices: every span must lie inside the decoded vectors.
    for (labels, samples, _) in &spans {
        let labels = &clean[labels.clone()];
        let _ = &req.samples[samples.clone()];
        assert!(labels.is_sorted_by(|a, b| a.0 < b.0), "validated labels are sorted and unique");
        assert!(labels.iter().all(|(_, v)| !v.is_empty()), "validated labels have no empty value");
    }
}

/// Snappy block format with the server's decompressed-size cap.
pub fn snappy(compressed: &[u8]) {
    let limit = ServerConfig::default().max_decompressed_bytes;
    if let Ok(out) = crate::body::snappy_decompress(compressed, limit) {
        assert!(out.len() <= limit, "decompressed {} bytes over the {limit}-byte cap", out.len());
    }
}

/// Remote read: a decompressed `ReadRequest` decoded and its matchers converted
/// and checked as the handler does before it queries anything.
pub fn remote_read(body: &[u8]) {
    let Ok(req) = pb::ReadRequest::decode(body) else { return };
    let _streamed = req.accepted_response_types.iter().find_map(|t| pb::read_request::ResponseType::try_from(*t).ok());
    for query in &req.queries {
        let Ok(matchers) = query.matchers.iter().map(crate::remote_read::convert).collect::<Result<Vec<_>, _>>() else {
            continue;
        };
        let _ = matchers.iter().all(Matcher::matches_empty);
        for m in &matchers {
            let _ = m.matches("");
        }
    }
}

/// Every time, duration and selector parser of the HTTP API on one string.
pub fn params(s: &str) {
    let _ = crate::params::parse_time(s);
    let _ = crate::params::parse_duration(s);
    let _ = crate::params::parse_selector(s);
}
