//! The HTTP endpoint of `--metrics-addr`: `GET /metrics` (OpenMetrics text, queue depths
//! read at scrape) and `GET /healthz` (200 or 503 with a JSON body). HTTP/1.1 on hyper,
//! bounded: at most [`MAX_CONNECTIONS`] at once, request heads within [`HEADER_TIMEOUT`],
//! connections closed after [`CONNECTION_LIFETIME`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::probe::WorkerProbe;
use super::registry::Metrics;
use crate::error::BindError;

/// Connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a (keep-alive) connection is kept.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// `Content-Type` of `/metrics`.
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the listener (before the worker registers, so a taken port stops the start).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves until `stop` is cancelled; open connections are then dropped.
pub async fn serve(
    listener: TcpListener,
    metrics: &'static Metrics,
    probe: WorkerProbe,
    stop: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /healthz on http://{addr}");
    }
    let probe = Arc::new(probe);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
        };
        if connections.len() >= MAX_CONNECTIONS {
            continue; // dropping the stream closes it
        }
        let probe = probe.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| respond(req, metrics, probe.clone()));
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                tracing::debug!(error = %e, "metrics: connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
}

async fn respond(
    req: Request<Incoming>,
    metrics: &'static Metrics,
    probe: Arc<WorkerProbe>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ));
    }
    Ok(match req.uri().path() {
        "/metrics" => {
            probe.refresh_queue_depths(metrics).await;
            reply(StatusCode::OK, OPENMETRICS_TYPE, metrics.encode())
        }
        "/healthz" => {
            let report = probe.health().await;
            let status = StatusCode::from_u16(report.status_code())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            reply(status, "application/json", report.to_json() + "\n")
        }
        "/" => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "rqw: /metrics (Prometheus), /healthz\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /healthz\n".into(),
        ),
    })
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
