//! The frontend's HTTP surface: `/api/v1/query_range` and `/api/v1/query` through
//! the layers, every other `/api/v1/*` path proxied to the downstream unchanged
//! (when there is one), `/metrics`, `/-/healthy`, `/-/ready`. Errors are
//! Prometheus JSON with the status of their cause.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::BodyExt;
use strata_model::TenantId;

use crate::downstream::TENANT_HEADER;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::params::Params;
use crate::service::{ExtraParams, InstantQuery, QueryService, RangeQuery};

/// Largest form body of a query request.
const MAX_FORM_BYTES: usize = 4 << 20;

/// Where paths other than the two query endpoints go.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub client: reqwest::Client,
    /// The downstream's root URL, without a trailing slash.
    pub base: String,
}

/// State of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub service: Arc<dyn QueryService>,
    pub metrics: Arc<Metrics>,
    /// The tenant of requests without `X-Scope-OrgID`.
    pub default_tenant: TenantId,
    pub proxy: Option<Proxy>,
}

/// Builds the HTTP service.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/api/v1/query_range", get(range).post(range))
        .route("/api/v1/query", get(instant).post(instant))
        .route("/api/v1/{*rest}", any(proxy))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Strata query frontend is Healthy.\n" }))
        // Nothing to load at start-up: ready as soon as it listens.
        .route("/-/ready", get(|| async { "Strata query frontend is Ready.\n" }))
        .fallback(|uri: Uri| async move {
            error_response(&Error::Api {
                status: 404,
                error_type: "not_found".into(),
                message: format!("no such endpoint: {}", uri.path()),
            })
        })
        .with_state(state)
}

fn error_response(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), error = %e, "query failed");
    }
    (status, axum::Json(e.to_json())).into_response()
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The query string and, for a form POST, the body's pairs.
async fn read_params(method: &Method, uri: &Uri, headers: &HeaderMap, body: Body) -> Result<Params> {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if *method == Method::POST && is_form {
        let body = http_body_util::Limited::new(body, MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|e| Error::BadData(format!("reading the form body (at most {MAX_FORM_BYTES} bytes): {e}")))?
            .to_bytes();
        pairs.extend(form_urlencoded::parse(&body).into_owned());
    }
    Ok(Params(pairs))
}

fn tenant(st: &HttpState, headers: &HeaderMap) -> Result<TenantId> {
    match headers.get(TENANT_HEADER) {
        None => Ok(st.default_tenant.clone()),
        Some(v) => {
            let s = v.to_str().map_err(|_| Error::BadData("X-Scope-OrgID is not valid text".into()))?;
            TenantId::new(s).map_err(|e| Error::BadData(format!("X-Scope-OrgID: {e}")))
        }
    }
}

/// Counts and times one query, whatever its outcome.
fn observe(st: &HttpState, kind: &'static str, started: Instant, r: &Result<Vec<u8>>) {
    let status = match r {
        Ok(_) => 200,
        Err(e) => e.status(),
    };
    st.metrics.queries.get_or_create(&vec![("kind", kind.to_string()), ("status", status.to_string())]).inc();
    st.metrics.query_duration.get_or_create(&vec![("kind", kind.to_string())]).observe(started.elapsed().as_secs_f64());
}

async fn range(State(st): State<HttpState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let r = async {
        let p = read_params(&method, &uri, &headers, body).await?;
        let tenant = tenant(&st, &headers)?;
        let query = p.query()?.to_string();
        let (start, end, step) = p.range()?;
        let q = RangeQuery { query, start, end, step, params: ExtraParams::new(p.0) };
        Ok(st.service.range(&tenant, &q).await?.to_json())
    }
    .await;
    observe(&st, "range", started, &r);
    r.map_or_else(|e| error_response(&e), json_response)
}

async fn instant(State(st): State<HttpState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let r = async {
        let p = read_params(&method, &uri, &headers, body).await?;
        let tenant = tenant(&st, &headers)?;
        let query = p.query()?.to_string();
        let time = p.time("time")?.unwrap_or_else(strata_model::now_ms);
        let q = InstantQuery { query, time, params: ExtraParams::new(p.0) };
        Ok(st.service.instant(&tenant, &q).await?.to_json())
    }
    .await;
    observe(&st, "instant", started, &r);
    r.map_or_else(|e| error_response(&e), json_response)
}

async fn metrics(State(st): State<HttpState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.render()).into_response()
}

/// Headers that belong to one connection, not to the request (RFC 9110 7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "host"
    ) || name == header::CONTENT_LENGTH
}

/// Forwards a request to the downstream as it came (plus the tenant header when it
/// had none, so every endpoint sees the same tenant), streaming both bodies.
async fn proxy(State(st): State<HttpState>, req: Request) -> Response {
    let Some(p) = &st.proxy else {
        return error_response(&Error::Api {
            status: 404,
            error_type: "not_found".into(),
            message: format!("no such endpoint: {}", req.uri().path()),
        });
    };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |pq| pq.as_str());
    let url = format!("{}{path}", p.base);
    let mut rb = p.client.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            rb = rb.header(name, value);
        }
    }
    if !parts.headers.contains_key(TENANT_HEADER) {
        rb = rb.header(TENANT_HEADER, st.default_tenant.as_str());
    }
    if let Some(n) = parts.headers.get(header::CONTENT_LENGTH) {
        rb = rb.header(header::CONTENT_LENGTH, n);
    }
    let rb = rb.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let count = |code: u16| {
        st.metrics
            .downstream_requests
            .get_or_create(&vec![("endpoint", "proxy".to_string()), ("code", code.to_string())])
            .inc();
    };
    match rb.send().await {
        Ok(resp) => {
            count(resp.status().as_u16());
            let mut out = Response::builder().status(resp.status().as_u16());
            for (name, value) in resp.headers() {
                if (!hop_by_hop(name) || name == header::CONTENT_LENGTH)
                    && let Ok(v) = HeaderValue::from_bytes(value.as_bytes())
                {
                    out = out.header(name.as_str(), v);
                }
            }
            out.body(Body::from_stream(resp.bytes_stream()))
                .unwrap_or_else(|e| error_response(&Error::Internal(format!("proxying {path}: {e}"))))
        }
        Err(e) => {
            count(0);
            error_response(&Error::Unreachable { url, reason: e.to_string() })
        }
    }
}
