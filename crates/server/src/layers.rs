//! Layers every route shares so that no input crashes a request: a handler panic is
//! caught and answered 500, and an error response that is not Prometheus JSON (an
//! axum rejection, a 405) is rewritten into the `{"status":"error",..}` shape.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

use crate::error::ApiError;

/// Longest error body of a rejection carried over into the JSON error.
const MAX_REJECTION_BYTES: usize = 16 << 10;

/// Catches a panic anywhere under `router`: the request gets 500 with errorType
/// `internal`, the panic is logged and counted in `panics`, and the server (and
/// the client's connection) keeps serving.
pub(crate) fn catch_panics<S: Clone + Send + Sync + 'static>(router: Router<S>, panics: Counter) -> Router<S> {
    router.layer(CatchPanicLayer::custom(PanicResponse { panics }))
}

#[derive(Clone)]
struct PanicResponse {
    panics: Counter,
}

impl ResponseForPanic for PanicResponse {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, err: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let msg = err
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".into());
        self.panics.inc();
        tracing::error!(panic = %msg, "request handler panicked");
        ApiError::internal(format!("internal error: the request handler panicked: {msg}")).into_response()
    }
}

/// Rewrites an error response of the API (`/api/…`) whose body is not JSON, such
/// as axum's empty 405 or a plain-text path rejection, into a Prometheus JSON
/// error with the same status (and headers such as `Allow`).
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let status = resp.status();
    if !api || !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = crate::body::read_capped(&HeaderMap::new(), body, MAX_REJECTION_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if !text.is_empty() {
        text
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("");
        format!("method not allowed (allowed: {allow})")
    } else {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    };
    let error_type = if status.is_server_error() { "internal" } else { "bad_data" };
    let body = serde_json::json!({"status": "error", "errorType": error_type, "error": message}).to_string();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::{AppState, ServerConfig};

    /// Sends `GET path` on an open connection and reads one response: status and body.
    async fn get_on(conn: &mut tokio::net::TcpStream, path: &str) -> (u16, String) {
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed; got {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let head = text[..end].to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    let status = head[9..12].parse().unwrap();
                    return (status, text[end + 4..end + 4 + len].to_string());
                }
            }
        }
    }

    async fn panics() -> &'static str {
        panic!("boom at the handler")
    }

    #[tokio::test]
    async fn a_panic_is_a_json_500_and_the_server_keeps_serving() {
        let state = AppState::new(ServerConfig::default()).unwrap();
        let app = Router::new().route("/panic", get(panics)).route("/ok", get(|| async { "fine" }));
        let app = catch_panics(app, state.metrics().http_panics.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (status, body) = get_on(&mut conn, "/panic").await;
        assert_eq!(status, 500);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "internal");
        assert!(v["error"].as_str().unwrap().contains("boom at the handler"), "{body}");
        // Same connection, next request.
        assert_eq!(get_on(&mut conn, "/ok").await, (200, "fine".to_string()));
        assert_eq!(state.metrics().http_panics.get(), 1);
        assert!(state.metrics().render().contains("strata_http_panics_total 1"));
    }

    #[tokio::test]
    async fn non_json_api_errors_become_prometheus_json() {
        use tower::ServiceExt;
        let app = crate::router(AppState::new(ServerConfig::default()).unwrap());
        let send = |req: axum::http::Request<Body>| {
            let app = app.clone();
            async move {
                let resp = app.oneshot(req).await.unwrap();
                let status = resp.status();
                let allow = resp.headers().get(header::ALLOW).cloned();
                let b = crate::body::read_capped(&HeaderMap::new(), resp.into_body(), 1 << 20).await.unwrap();
                (status, allow, serde_json::from_slice::<serde_json::Value>(&b).unwrap())
            }
        };
        let (s, allow, v) = send(axum::http::Request::delete("/api/v1/query").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert!(allow.is_some());
        assert_eq!(v["errorType"], "bad_data");
        assert!(v["error"].as_str().unwrap().contains("method not allowed"), "{v}");
        let (s, _, v) = send(axum::http::Request::get("/api/v1/write").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(v["status"], "error");
        // A label name that is not UTF-8 once percent-decoded: a path rejection.
        let (s, _, v) = send(axum::http::Request::get("/api/v1/label/%FF/values").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["errorType"], "bad_data");
        let (s, _, v) = send(axum::http::Request::get("/api/v1/nope").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v["errorType"], "not_found");
    }
}
