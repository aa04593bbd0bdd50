//! A fault-injecting HTTP proxy for an object store: forwards every request as it
//! came (method, path and query, headers including `Host`, so SigV4 signatures still
//! verify, body) and injects the fault the test switched on.
//!
//! ```text
//!  strata ──► 127.0.0.1:<proxy> ──[pass | delay | status | reset]──► weed mini (S3)
//! ```
//!
//! Every answer carries `Connection: close`, so each request opens a connection and
//! `Reset` applies per request: the connection is closed with an RST before reading.
//!
//! [`FaultProxy::set`] faults every request; [`FaultProxy::set_scoped`] only the
//! requests of one method (`PUT`, `GET`, ...) and only after the first `after` of
//! them passed, to fail an operation part-way (data files uploaded, `meta.json` not;
//! a block uploaded, its inputs' deletion marks not).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the proxy does to the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Wait this long, then forward.
    Delay(Duration),
    /// Answer this status (an S3-style error body) without forwarding.
    Status(u16),
    /// Close the connection with an RST instead of answering.
    Reset,
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    /// Only requests of this method (`None`: all). `Reset` acts on connections before
    /// a request is read, so it ignores the method.
    pub method: Option<&'static str>,
    /// Let this many matching requests (connections, for `Reset`) pass first.
    pub after: u64,
}

#[derive(Debug)]
struct Shared {
    fault: std::sync::Mutex<(Fault, Scope)>,
    /// Matching requests seen since the fault was set.
    seen: AtomicU64,
    upstream: String,
    client: reqwest::Client,
    forwarded: AtomicU64,
    faulted: AtomicU64,
}

/// The proxy, serving until dropped.
#[derive(Debug)]
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// Accepts connections, resetting them at once in `Reset` mode.
struct ResetListener {
    inner: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for ResetListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((s, a)) = self.inner.accept().await else { continue };
            let (fault, scope) = *self.shared.fault.lock().unwrap();
            if fault == Fault::Reset && self.shared.seen.fetch_add(1, Ordering::Relaxed) >= scope.after {
                self.shared.faulted.fetch_add(1, Ordering::Relaxed);
                // SO_LINGER 0: close sends an RST.
                #[allow(deprecated)]
                let _ = s.set_linger(Some(Duration::ZERO));
                drop(s);
                continue;
            }
            return (s, a);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl FaultProxy {
    /// Listens on a loopback port and forwards to `127.0.0.1:upstream_port`.
    pub async fn start(upstream_port: u16) -> Result<FaultProxy> {
        let inner = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = inner.local_addr()?.port();
        let shared = Arc::new(Shared {
            fault: std::sync::Mutex::new((Fault::Pass, Scope::default())),
            seen: AtomicU64::new(0),
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            client: reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()?,
            forwarded: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
        });
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        let listener = ResetListener { inner, shared: shared.clone() };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FaultProxy { port, shared, task })
    }

    /// Switches the fault for the requests from now on.
    pub fn set(&self, fault: Fault) {
        self.set_scoped(fault, Scope::default());
    }

    /// Switches the fault for the requests from now on that `scope` selects; the
    /// others pass.
    pub fn set_scoped(&self, fault: Fault, scope: Scope) {
        let mut g = self.shared.fault.lock().unwrap();
        self.shared.seen.store(0, Ordering::Relaxed);
        *g = (fault, scope);
    }

    /// Requests forwarded and requests faulted so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.forwarded.load(Ordering::Relaxed), self.shared.faulted.load(Ordering::Relaxed))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let (mut fault, scope) = *sh.fault.lock().unwrap();
    if !matches!(fault, Fault::Pass | Fault::Reset) {
        let matches = scope.method.is_none_or(|m| req.method().as_str() == m);
        if !matches || sh.seen.fetch_add(1, Ordering::Relaxed) < scope.after {
            fault = Fault::Pass;
        }
    }
    let mut resp = match fault {
        Fault::Status(code) => {
            sh.faulted.fetch_add(1, Ordering::Relaxed);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code>\
                        <Message>injected by the fault proxy</Message></Error>";
            (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
        }
        Fault::Delay(d) => {
            sh.faulted.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(d).await;
            pass(&sh, req).await
        }
        Fault::Pass | Fault::Reset => pass(&sh, req).await,
    };
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

async fn pass(sh: &Shared, req: Request) -> Response {
    match try_pass(sh, req).await {
        Ok(r) => {
            sh.forwarded.fetch_add(1, Ordering::Relaxed);
            r
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("fault proxy: {e:#}")).into_response(),
    }
}

async fn try_pass(sh: &Shared, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // A test proxy in front of a test store: bodies are the blocks the test wrote.
    #[allow(clippy::disallowed_methods)]
    let body = axum::body::to_bytes(body, 1 << 30).await?;
    let mut headers = parts.headers.clone();
    for h in [header::CONNECTION, header::TRANSFER_ENCODING, header::CONTENT_LENGTH] {
        headers.remove(h);
    }
    let up = sh
        .client
        .request(parts.method.clone(), format!("{}{path}", sh.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await?;
    let status = up.status();
    let mut out_headers = up.headers().clone();
    for h in [header::CONNECTION, header::TRANSFER_ENCODING] {
        out_headers.remove(h);
    }
    let bytes = up.bytes().await?;
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    *resp.headers_mut() = out_headers;
    Ok(resp)
}
