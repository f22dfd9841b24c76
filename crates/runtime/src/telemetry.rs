//! Logging (tracing) and the Prometheus `/metrics` endpoint.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::shutdown::Shutdown;

/// Installs the global tracing subscriber: human-readable lines to stderr, filtered by
/// `RUST_LOG` (default `info`). Safe to call more than once.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Registers `metric` in `registry` and returns it: a metric is declared and registered in one
/// expression.
pub fn registered<M>(registry: &Registry, metric: M) -> Result<M, prometheus::Error>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// A router serving `registry` at `GET /metrics`.
pub fn metrics_router(registry: Registry) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let body = render(&registry);
            async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response() }
        }),
    )
}

/// Whether a service is ready: `Err` says why not.
pub type Readiness = std::sync::Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serves `GET /metrics` on `addr` until `shutdown`; returns the bound address.
pub async fn serve_metrics(
    addr: SocketAddr,
    registry: Registry,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    serve_admin(addr, registry, std::sync::Arc::new(|| Ok(())), shutdown).await
}

/// Serves the admin endpoints on `addr` until `shutdown`: `GET /metrics`, and `GET /readyz`
/// (200 `ready`, or 503 with the reason `ready` gives); returns the bound address.
pub async fn serve_admin(
    addr: SocketAddr,
    registry: Registry,
    ready: Readiness,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let readyz = get(move || {
            let answer = match ready() {
                Ok(()) => (axum::http::StatusCode::OK, "ready".to_owned()),
                Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why),
            };
            async move { answer.into_response() }
        });
        let app = metrics_router(registry).route("/readyz", readyz);
        let served =
            axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}
