//! The HTTP downstream: any Prometheus-compatible query API (a Strata, a Prometheus,
//! a Thanos querier), asked with form-encoded POSTs to `/api/v1/query_range` and
//! `/api/v1/query`, the tenant in `X-Scope-OrgID`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use strata_model::TenantId;

use crate::error::{Error, Result, error_type_for_status};
use crate::metrics::Metrics;
use crate::response::PromResponse;
use crate::service::{ExtraParams, InstantQuery, QueryService, RangeQuery};

/// The header carrying the tenant, as in Mimir, Cortex, Thanos and Strata.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// Largest query answer read from the downstream.
pub const MAX_ANSWER_BYTES: usize = 512 << 20;

/// Milliseconds as API seconds: `1700000000` or `1700000000.123`.
pub(crate) fn secs(ms: i64) -> String {
    let (sign, a) = if ms < 0 { ("-", ms.unsigned_abs()) } else { ("", ms as u64) };
    if a % 1000 == 0 { format!("{sign}{}", a / 1000) } else { format!("{sign}{}.{:03}", a / 1000, a % 1000) }
}

/// A Prometheus-compatible query API over HTTP.
#[derive(Debug, Clone)]
pub struct HttpDownstream {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl HttpDownstream {
    /// `base` is the API's root URL (`http://host:9090`, or with a path prefix);
    /// each request may take `timeout`.
    pub fn new(base: &str, timeout: Duration, metrics: Arc<Metrics>) -> Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| Error::BadData(format!("downstream URL {base:?}: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        Ok(HttpDownstream { client, base, timeout, metrics })
    }

    /// The root URL requests go to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client, shared with the proxy of the other API paths.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Timeout { url: url.to_string(), timeout_ms: self.timeout.as_millis() as u64 }
        } else {
            Error::Unreachable { url: url.to_string(), reason: error_chain(e) }
        }
    }

    async fn post(
        &self,
        endpoint: &'static str,
        tenant: &TenantId,
        form: Vec<(&str, String)>,
        extra: &ExtraParams,
    ) -> Result<PromResponse> {
        let url = format!("{}{endpoint}", self.base);
        let body = {
            let mut body = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &form {
                body.append_pair(k, v);
            }
            for (k, v) in extra.pairs() {
                body.append_pair(k, v);
            }
            body.finish()
        };
        let sent = self
            .client
            .post(&url)
            .header(TENANT_HEADER, tenant.as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await;
        let count = |code: u16| {
            self.metrics
                .downstream_requests
                .get_or_create(&vec![("endpoint", endpoint.to_string()), ("code", code.to_string())])
                .inc();
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                count(0);
                return Err(self.transport_error(&url, &e));
            }
        };
        let status = resp.status().as_u16();
        count(status);
        let body = read_capped(resp, MAX_ANSWER_BYTES).await.map_err(|e| match e {
            ReadError::Transport(e) => self.transport_error(&url, &e),
            ReadError::TooLarge => {
                Error::BadResponse { url: url.clone(), reason: format!("answer over {MAX_ANSWER_BYTES} bytes") }
            }
        })?;
        match PromResponse::parse(&body) {
            Ok(Ok(answer)) if (200..300).contains(&status) => Ok(answer),
            Ok(Err(e)) if !(200..300).contains(&status) => {
                Err(Error::Api { status, error_type: e.error_type, message: e.error })
            }
            Ok(_) => Err(Error::BadResponse { url, reason: format!("status field disagrees with HTTP {status}") }),
            Err(reason) if (200..300).contains(&status) => Err(Error::BadResponse { url, reason }),
            Err(_) => Err(Error::Api {
                status,
                error_type: error_type_for_status(status).to_string(),
                message: format!("downstream answered {status}: {}", excerpt(&body)),
            }),
        }
    }
}

/// The start of a body that is not JSON, for an error message.
fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(256)]);
    s.trim().to_string()
}

/// A reqwest error with its causes (the top level alone says only "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

/// The body, refusing more than `cap` bytes before holding them.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> std::result::Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if out.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[async_trait]
impl QueryService for HttpDownstream {
    async fn range(&self, tenant: &TenantId, q: &RangeQuery) -> Result<PromResponse> {
        let form =
            vec![("query", q.query.clone()), ("start", secs(q.start)), ("end", secs(q.end)), ("step", secs(q.step))];
        self.post("/api/v1/query_range", tenant, form, &q.params).await
    }

    async fn instant(&self, tenant: &TenantId, q: &InstantQuery) -> Result<PromResponse> {
        let form = vec![("query", q.query.clone()), ("time", secs(q.time))];
        self.post("/api/v1/query", tenant, form, &q.params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_as_prometheus_reads_them() {
        assert_eq!(secs(1_700_000_000_000), "1700000000");
        assert_eq!(secs(1_700_000_000_005), "1700000000.005");
        assert_eq!(secs(-1_500), "-1.500");
        assert_eq!(secs(0), "0");
        assert_eq!(secs(i64::MIN), "-9223372036854775.808");
    }

    #[tokio::test]
    async fn unreachable_downstream_is_502() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d =
            HttpDownstream::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2), Arc::default()).unwrap();
        let q = InstantQuery { query: "up".into(), time: 0, params: ExtraParams::default() };
        let e = d.instant(&TenantId::new("t").unwrap(), &q).await.unwrap_err();
        assert_eq!(e.status(), 502, "{e}");
        assert_eq!(e.error_type(), "unavailable");
        assert!(HttpDownstream::new("not a url", Duration::from_secs(1), Arc::default()).is_err());
    }
}
