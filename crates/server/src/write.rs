//! `POST /api/v1/write`: Prometheus remote write 1.0 and 2.0.
//!
//! ```text
//!  body ─cap─► snappy (declared size checked first) ─► zero-copy decode (v1 | v2)
//!       ─► rate limit (429) ─► per-series validation ─► tsdb.append ─► WAL commit ─► 204
//!  rejected series/samples never fail the rest of the request: they are counted and
//!  named in a 400 answer, after everything valid was stored.
//! ```

pub mod decode;
mod discards;
mod validate;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use strata_model::Sample;
use strata_tsdb::{MetadataEntry, SeriesInput};

use crate::body::{read_capped, snappy_decompress};
use crate::error::{ApiError, ApiErrorKind, ApiResult};
use crate::limits::Limit;
use crate::{AppState, ha_tracker};
pub(crate) use decode::{DecodedWrite, decode_v1, decode_v2};
pub(crate) use discards::DiscardLog;
use validate::{SeriesProblem, clean_labels};

const HDR_SAMPLES_WRITTEN: &str = "x-prometheus-remote-write-samples-written";
const HDR_HISTOGRAMS_WRITTEN: &str = "x-prometheus-remote-write-histograms-written";
const HDR_EXEMPLARS_WRITTEN: &str = "x-prometheus-remote-write-exemplars-written";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    V1,
    V2,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "1.0",
            Protocol::V2 => "2.0",
        }
    }
}

/// Picks the protocol from `Content-Type` as Prometheus's receiver does: no type or
/// plain `application/x-protobuf` is 1.0; `proto=` names the message.
fn protocol(headers: &HeaderMap) -> ApiResult<Protocol> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let unsupported = || {
        ApiError::new(
            ApiErrorKind::UnsupportedMediaType,
            format!(
                "unsupported content type {ct:?}: expected application/x-protobuf with proto=prometheus.WriteRequest or proto={}",
                "io.prometheus.write.v2.Request"
            ),
        )
    };
    if ct.is_empty() {
        return Ok(Protocol::V1);
    }
    let mut parts = ct.split(';').map(str::trim);
    if !parts.next().is_some_and(|m| m.eq_ignore_ascii_case("application/x-protobuf")) {
        return Err(unsupported());
    }
    let mut proto = Protocol::V1;
    for p in parts {
        if let Some(v) = p.strip_prefix("proto=") {
            proto = match v.trim_matches('"') {
                "prometheus.WriteRequest" => Protocol::V1,
                "io.prometheus.write.v2.Request" => Protocol::V2,
                _ => return Err(unsupported()),
            };
        }
    }
    Ok(proto)
}

fn check_encoding(headers: &HeaderMap) -> ApiResult<()> {
    match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(e) if e.eq_ignore_ascii_case("snappy") => Ok(()),
        Some(e) => Err(ApiError::new(
            ApiErrorKind::UnsupportedMediaType,
            format!("unsupported content encoding {e:?}: only snappy is accepted"),
        )),
    }
}

/// Per-reason rejection counts and the first example of each.
#[derive(Debug, Default)]
pub(crate) struct Rejections(BTreeMap<&'static str, (u64, String)>);

impl Rejections {
    fn add(&mut self, reason: &'static str, n: u64, example: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        self.0.entry(reason).or_insert_with(|| (0, example())).0 += n;
    }

    fn total(&self) -> u64 {
        self.0.values().map(|(n, _)| n).sum()
    }
}

/// What a request stored, for the answer and the 2.0 headers.
#[derive(Debug)]
struct Written {
    tenant: strata_model::TenantId,
    samples: u64,
    received: u64,
    rejections: Rejections,
    /// Set when the HA tracker dropped the request (another replica is elected).
    deduplicated: Option<String>,
}

pub(crate) async fn handler(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let proto = protocol(&headers);
    let is_v2 = matches!(proto, Ok(Protocol::V2));
    let result = match proto {
        Ok(p) => handle(&st, p, &headers, body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(Written { deduplicated: Some(msg), .. }) => {
            // Mimir's answer: 202, so the sender neither retries nor counts an error.
            let mut resp = (StatusCode::ACCEPTED, msg).into_response();
            if is_v2 {
                written_headers(resp.headers_mut(), 0);
            }
            resp
        }
        Ok(w) if w.rejections.total() == 0 => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            if is_v2 {
                written_headers(resp.headers_mut(), w.samples);
            }
            resp
        }
        Ok(w) => {
            let mut msg = format!("{} of {} samples rejected", w.rejections.total(), w.received);
            for (reason, (n, example)) in &w.rejections.0 {
                let _ = write!(msg, "; {reason}: {n} (first: {example})");
            }
            for (reason, (n, example)) in &w.rejections.0 {
                st.discard(&w.tenant, reason, *n, example);
            }
            let mut resp = ApiError::bad_data(msg).into_response();
            if is_v2 {
                written_headers(resp.headers_mut(), w.samples);
            }
            resp
        }
        Err(e) => {
            let status = e.status_and_type().0;
            let tenant = st.tenant(&headers).map(|t| t.as_str().to_string()).unwrap_or_default();
            st.metrics()
                .requests_rejected
                .get_or_create(&vec![("tenant", tenant), ("code", status.as_u16().to_string())])
                .inc();
            let mut resp = e.into_response();
            if is_v2 && status.is_client_error() {
                written_headers(resp.headers_mut(), 0);
            }
            resp
        }
    }
}

fn written_headers(h: &mut HeaderMap, samples: u64) {
    h.insert(HDR_SAMPLES_WRITTEN, HeaderValue::from(samples));
    h.insert(HDR_HISTOGRAMS_WRITTEN, HeaderValue::from(0u64));
    h.insert(HDR_EXEMPLARS_WRITTEN, HeaderValue::from(0u64));
}

async fn handle(st: &AppState, proto: Protocol, headers: &HeaderMap, body: Body) -> ApiResult<Written> {
    let tsdb = st.tsdb()?.clone();
    let tenant = st.tenant(headers)?;
    check_encoding(headers)?;
    let cfg = st.config();
    let compressed = read_capped(headers, body, cfg.max_request_body_bytes).await?;
    let raw = snappy_decompress(&compressed, cfg.max_decompressed_bytes)?;
    let malformed =
        |e: decode::DecodeError| ApiError::bad_data(format!("malformed remote write {} request: {e}", proto.as_str()));
    // A 1.0 request from a non-elected HA replica is answered before the full
    // decode: half of an HA pair's traffic costs a look at its first series and a
    // count of its samples, not a parse. `ha_checked` holds the replica label to
    // strip when the tracker accepted the request.
    let mut ha_checked = None;
    if proto == Protocol::V1
        && let Some(ha) = st.ha().for_tenant(&tenant)
    {
        let first = decode::first_labels_v1(&raw).map_err(malformed)?;
        let find = |name: &str| first.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let now = strata_model::now_ms();
        match st.ha().check(&tenant, &ha, find(ha.cluster_label), find(ha.replica_label), 0, now) {
            ha_tracker::Verdict::Deduplicated { cluster, replica, elected } => {
                let samples = decode::count_samples_v1(&raw).map_err(malformed)?;
                st.ha().add_deduplicated(&tenant, &cluster, samples);
                st.metrics()
                    .samples_received
                    .get_or_create(&vec![("protocol", proto.as_str().to_string())])
                    .inc_by(samples);
                let msg = deduplicated(st, &tenant, &cluster, &replica, &elected, samples);
                return Ok(Written {
                    tenant,
                    samples: 0,
                    received: samples,
                    rejections: Rejections::default(),
                    deduplicated: Some(msg),
                });
            }
            ha_tracker::Verdict::Accept => ha_checked = Some(Some(ha.replica_label)),
            ha_tracker::Verdict::PassThrough => ha_checked = Some(None),
        }
    }
    let mut req = match proto {
        Protocol::V1 => decode_v1(&raw),
        Protocol::V2 => decode_v2(&raw),
    }
    .map_err(malformed)?;

    let received = req.samples.len() as u64;
    st.metrics().samples_received.get_or_create(&vec![("protocol", proto.as_str().to_string())]).inc_by(received);
    if let Some(Some(replica_label)) = ha_checked {
        strip_replica(&mut req, replica_label);
    }
    if ha_checked.is_none()
        && let Some(msg) = ha_dedup(st, &tenant, &mut req)
    {
        return Ok(Written {
            tenant,
            samples: 0,
            received,
            rejections: Rejections::default(),
            deduplicated: Some(msg),
        });
    }
    let limits = st.limits().for_tenant(&tenant);
    if !st.limiter().allow(&tenant, received + req.histograms, limits.ingestion_rate, limits.ingestion_burst_size) {
        st.discard(&tenant, "rate_limited", received, "the whole request (429, retried by the sender)");
        return Err(st.limits().refuse(
            &tenant,
            ApiErrorKind::RateLimited,
            Limit::IngestionRate,
            format!("{}, ingestion_burst_size={}", limits.ingestion_rate, limits.ingestion_burst_size),
            format!(
                "ingestion rate limit ({} samples/s, burst {}) exceeded for tenant {tenant}",
                limits.ingestion_rate, limits.ingestion_burst_size
            ),
        ));
    }
    st.metrics().exemplars_dropped.inc_by(req.exemplars);
    if req.histograms > 0 {
        st.metrics()
            .histograms_rejected
            .get_or_create(&vec![("tenant", tenant.as_str().to_string())])
            .inc_by(req.histograms);
    }

    let mut w =
        Written { tenant: tenant.clone(), samples: 0, received, rejections: Rejections::default(), deduplicated: None };
    let (inputs_clean, spans) = validate_all(&req, cfg, limits.max_label_names_per_series, &mut w.rejections);
    if w.rejections.0.contains_key(SeriesProblem::TooManyLabels.as_str()) {
        st.limits().exceeded(&tenant, Limit::MaxLabelNamesPerSeries);
    }
    let inputs: Vec<SeriesInput<'_>> = spans
        .iter()
        .map(|(l, s, _)| SeriesInput { labels: &inputs_clean[l.clone()], samples: &req.samples[s.clone()] })
        .collect();
    let metadata: Vec<MetadataEntry> = req
        .metadata
        .iter()
        .filter(|m| strata_model::is_valid_metric_name(m.family))
        .map(|m| MetadataEntry {
            family: m.family.into(),
            kind: m.kind.into(),
            help: m.help.into(),
            unit: m.unit.into(),
        })
        .collect();

    if cfg.ingest_created_timestamps && proto == Protocol::V2 {
        ingest_created_timestamps(&tsdb, &tenant, &req, &spans, &inputs_clean).await?;
    }

    let (outcome, commit) = tsdb.append_limited(&tenant, &inputs, &metadata, limits.max_global_series_per_user)?;
    // A failed commit sets the WAL's failed state itself: later appends get 503
    // until it writes again.
    commit.wait().await?;
    for (reason, (n, example)) in &outcome.rejected {
        if *reason == strata_tsdb::RejectReason::SeriesLimit {
            st.limits().exceeded(&tenant, Limit::MaxGlobalSeriesPerUser);
            let limit = limits.max_global_series_per_user;
            w.rejections.add(reason.as_str(), *n, || {
                format!("{example}; the tenant has too many series (limit: max_global_series_per_user={limit})")
            });
        } else {
            w.rejections.add(reason.as_str(), *n, || example.clone());
        }
    }
    w.samples = outcome.accepted + outcome.duplicates_ignored;
    Ok(w)
}

/// The HA tracker's part (Mimir's semantics, [`crate::ha_tracker`]): the cluster
/// and replica labels of the request's first series decide. Returns the 202 body
/// when the request comes from a replica that is not elected; otherwise removes the
/// replica label from every series (an empty value is dropped by validation).
fn ha_dedup(st: &AppState, tenant: &strata_model::TenantId, req: &mut DecodedWrite<'_>) -> Option<String> {
    let ha = st.ha().for_tenant(tenant)?;
    let first = req.series.first()?.labels.clone();
    let find = |name: &str| req.labels[first.clone()].iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let (cluster, replica) = (find(ha.cluster_label), find(ha.replica_label));
    let samples = req.samples.len() as u64;
    match st.ha().check(tenant, &ha, cluster, replica, samples, strata_model::now_ms()) {
        ha_tracker::Verdict::PassThrough => None,
        ha_tracker::Verdict::Accept => {
            strip_replica(req, ha.replica_label);
            None
        }
        ha_tracker::Verdict::Deduplicated { cluster, replica, elected } => {
            Some(deduplicated(st, tenant, &cluster, &replica, &elected, samples))
        }
    }
}

/// Removes the replica label from every series (an empty value is dropped by validation).
fn strip_replica(req: &mut DecodedWrite<'_>, replica_label: &str) {
    for (n, v) in &mut req.labels {
        if *n == replica_label {
            *v = "";
        }
    }
}

/// Counts a non-elected replica's samples and words the 202 body.
fn deduplicated(
    st: &AppState,
    tenant: &strata_model::TenantId,
    cluster: &str,
    replica: &str,
    elected: &str,
    samples: u64,
) -> String {
    st.metrics()
        .ha_deduplicated
        .get_or_create(&vec![("tenant", tenant.as_str().to_string()), ("cluster", cluster.to_string())])
        .inc_by(samples);
    format!(
        "deduplicated: replica {replica:?} of cluster {cluster:?} is not the elected one ({elected:?}); {samples} samples not stored\n"
    )
}

/// `GET /api/v1/status/ha`: every HA cluster's elected replica and its age.
pub(crate) async fn ha_status(State(st): State<AppState>) -> axum::Json<serde_json::Value> {
    let now = strata_model::now_ms();
    let data: Vec<serde_json::Value> = st
        .ha()
        .elections()
        .into_iter()
        .map(|(tenant, cluster, e)| {
            serde_json::json!({
                "tenant": tenant,
                "cluster": cluster,
                "replica": e.replica,
                "electedAt": e.elected_at as f64 / 1000.0,
                "lastSeen": e.last_seen as f64 / 1000.0,
                "ageSeconds": (now - e.elected_at) as f64 / 1000.0,
                "lastSeenAgoSeconds": (now - e.last_seen) as f64 / 1000.0,
                "failovers": e.failovers,
                "deduplicatedSamples": e.deduplicated,
            })
        })
        .collect();
    axum::Json(serde_json::json!({"status": "success", "data": data}))
}

/// A valid series: its range in the cleaned labels, its samples, its created timestamp.
type Span = (std::ops::Range<usize>, std::ops::Range<usize>, i64);

/// Cleans every series' labels into one flat vector; series that fail validation
/// (and native histograms) are counted as rejections.
pub(crate) fn validate_all<'a>(
    req: &DecodedWrite<'a>,
    cfg: &crate::ServerConfig,
    max_label_names: usize,
    rej: &mut Rejections,
) -> (Vec<(&'a str, &'a str)>, Vec<Span>) {
    let mut clean = Vec::with_capacity(req.labels.len());
    let mut spans = Vec::with_capacity(req.series.len());
    for s in &req.series {
        if s.histograms > 0 {
            rej.add(SeriesProblem::NativeHistogram.as_str(), s.histograms, || {
                "native histograms are not supported yet; float samples of the request were stored".to_string()
            });
        }
        let start = clean.len();
        match clean_labels(&req.labels[s.labels.clone()], cfg, max_label_names, &mut clean) {
            Ok(()) => spans.push((start..clean.len(), s.samples.clone(), s.created_timestamp)),
            Err((problem, example)) => rej.add(problem.as_str(), s.samples.len() as u64, || example),
        }
    }
    (clean, spans)
}

/// Stores a zero sample at each series' created timestamp when that is older than
/// its first sample. Refusals (the series already has newer data) are expected and
/// not reported, as in Prometheus.
async fn ingest_created_timestamps(
    tsdb: &strata_tsdb::Tsdb,
    tenant: &strata_model::TenantId,
    req: &DecodedWrite<'_>,
    spans: &[Span],
    clean: &[(&str, &str)],
) -> ApiResult<()> {
    let wanted: Vec<(&Span, [Sample; 1])> = spans
        .iter()
        .filter(|sp| sp.2 > 0 && req.samples[sp.1.clone()].first().is_some_and(|x| sp.2 < x.t))
        .map(|sp| (sp, [Sample::new(sp.2, 0.0)]))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let inputs: Vec<SeriesInput<'_>> =
        wanted.iter().map(|(sp, z)| SeriesInput { labels: &clean[sp.0.clone()], samples: z }).collect();
    let (_, commit) = tsdb.append(tenant, &inputs, &[])?;
    // A failed commit sets the WAL's failed state itself: later appends get 503
    // until it writes again.
    commit.wait().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use strata_proto::CONTENT_TYPE_V2;

    use super::*;

    fn h(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn content_type_selects_protocol() {
        assert_eq!(protocol(&HeaderMap::new()).unwrap(), Protocol::V1);
        assert_eq!(protocol(&h("application/x-protobuf")).unwrap(), Protocol::V1);
        assert_eq!(protocol(&h("application/x-protobuf;proto=prometheus.WriteRequest")).unwrap(), Protocol::V1);
        assert_eq!(protocol(&h(CONTENT_TYPE_V2)).unwrap(), Protocol::V2);
        assert_eq!(protocol(&h("application/json")).unwrap_err().kind, ApiErrorKind::UnsupportedMediaType);
        assert_eq!(
            protocol(&h("application/x-protobuf;proto=foo.Bar")).unwrap_err().kind,
            ApiErrorKind::UnsupportedMediaType
        );
    }
}
