//! `POST /api/v1/read`: Prometheus remote read, answering `SAMPLES` (snappy
//! `ReadResponse`) or, when the client accepts it, `STREAMED_XOR_CHUNKS` (framed
//! `ChunkedReadResponse` messages carrying XOR chunks).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use strata_model::{MatchOp, Matcher, SelectHints, Series};
use strata_proto::Message;
use strata_proto::prometheus as pb;
use strata_tsdb::chunk::XorAppender;

use crate::AppState;
use crate::body::{read_capped, snappy_compress, snappy_decompress};
use crate::error::{ApiError, ApiResult};

const STREAMED_CONTENT_TYPE: &str = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
/// Samples per chunk in streamed answers, as Prometheus cuts them.
const CHUNK_SAMPLES: usize = 120;
/// Flush a streamed frame once it holds this many bytes of chunks.
const FRAME_BYTES: usize = 1 << 20;

pub(crate) async fn handler(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = st.tenant(&headers)?;
    // `dedup` and `replicaLabels[]` come from the URL (the body is protobuf).
    let mut opts = st.read_options(&crate::params::Params::from_query(&uri))?;
    let cfg = st.config();
    let compressed = read_capped(&headers, body, cfg.max_request_body_bytes).await?;
    let raw = snappy_decompress(&compressed, cfg.max_decompressed_bytes)?;
    let req = pb::ReadRequest::decode(&raw[..])
        .map_err(|e| ApiError::bad_data(format!("malformed remote read request: {e}")))?;
    let streamed = req
        .accepted_response_types
        .iter()
        .find_map(|t| match pb::read_request::ResponseType::try_from(*t) {
            Ok(pb::read_request::ResponseType::StreamedXorChunks) => Some(true),
            Ok(pb::read_request::ResponseType::Samples) => Some(false),
            Err(_) => None,
        })
        .unwrap_or(false);
    // Remote read has no warnings: a store that is down fails the request (503),
    // which a Prometheus reading through it shows as a warning of its own.
    opts.partial_response = false;
    let q = st.querier(&tenant, opts)?;
    let mut results = Vec::with_capacity(req.queries.len());
    for query in &req.queries {
        let matchers = query.matchers.iter().map(convert).collect::<ApiResult<Vec<_>>>()?;
        if matchers.is_empty() || matchers.iter().all(|m| m.matches_empty()) {
            return Err(ApiError::bad_data(
                "remote read query needs at least one matcher that does not match the empty string",
            ));
        }
        let mut hints = SelectHints::range(query.start_timestamp_ms, query.end_timestamp_ms);
        // Prometheus's hint for "labels only" (a federating node's label APIs ask so).
        hints.labels_only = query.hints.as_ref().is_some_and(|h| h.func == "series");
        let series = q.select(&hints, &matchers).await?;
        results.push(series);
    }
    Ok(if streamed { streamed_response(results) } else { samples_response(results) })
}

pub(crate) fn convert(m: &pb::LabelMatcher) -> ApiResult<Matcher> {
    use pb::label_matcher::Type;
    let op = match Type::try_from(m.r#type) {
        Ok(Type::Eq) => MatchOp::Equal,
        Ok(Type::Neq) => MatchOp::NotEqual,
        Ok(Type::Re) => MatchOp::RegexMatch,
        Ok(Type::Nre) => MatchOp::RegexNoMatch,
        Err(_) => return Err(ApiError::bad_data(format!("unknown label matcher type {}", m.r#type))),
    };
    Ok(Matcher::new(op, m.name.clone(), m.value.clone())?)
}

fn pb_labels(s: &Series) -> Vec<pb::Label> {
    s.labels.iter().map(|l| pb::Label { name: l.name.to_string(), value: l.value.to_string() }).collect()
}

fn samples_response(results: Vec<Vec<Series>>) -> Response {
    let resp = pb::ReadResponse {
        results: results
            .into_iter()
            .map(|series| pb::QueryResult {
                timeseries: series
                    .iter()
                    .map(|s| pb::TimeSeries {
                        labels: pb_labels(s),
                        samples: s.samples.iter().map(|x| pb::Sample { value: x.v, timestamp: x.t }).collect(),
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect(),
    };
    let body = snappy_compress(&resp.encode_to_vec());
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    r
}

/// Frames: uvarint length, CRC-32C (big-endian) of the message, the message.
fn streamed_response(results: Vec<Vec<Series>>) -> Response {
    let mut out = Vec::new();
    for (qi, series) in results.into_iter().enumerate() {
        let mut frame = pb::ChunkedReadResponse { chunked_series: Vec::new(), query_index: qi as i64 };
        let mut bytes = 0;
        for s in &series {
            let chunks: Vec<pb::Chunk> = s
                .samples
                .chunks(CHUNK_SAMPLES)
                .map(|c| {
                    let mut a = XorAppender::new();
                    for x in c {
                        a.append(x.t, x.v);
                    }
                    pb::Chunk {
                        min_time_ms: c[0].t,
                        max_time_ms: c[c.len() - 1].t,
                        r#type: pb::chunk::Encoding::Xor as i32,
                        data: a.finish().into_vec().into(),
                    }
                })
                .collect();
            bytes += chunks.iter().map(|c| c.data.len()).sum::<usize>();
            frame.chunked_series.push(pb::ChunkedSeries { labels: pb_labels(s), chunks });
            if bytes >= FRAME_BYTES {
                put_frame(&mut out, &frame);
                frame.chunked_series.clear();
                bytes = 0;
            }
        }
        if !frame.chunked_series.is_empty() {
            put_frame(&mut out, &frame);
        }
    }
    let mut r = out.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(STREAMED_CONTENT_TYPE));
    r
}

fn put_frame(out: &mut Vec<u8>, msg: &pb::ChunkedReadResponse) {
    let data = msg.encode_to_vec();
    let mut n = data.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&crc32c::crc32c(&data).to_be_bytes());
    out.extend_from_slice(&data);
}
