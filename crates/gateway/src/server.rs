//! HTTP routes: `POST /v1/events`, `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pv_events::{Limits, Timestamp};
use pv_runtime::kafka::{DurableProducer, ProduceError};
use pv_runtime::{KafkaConfig, Shutdown};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::auth::ClinicTokens;
use crate::config::GatewayConfig;
use crate::ingest::{EventError, Framing, Rejection, ingest};
use crate::metrics::GatewayMetrics;
use crate::produce::{SendError, send_events};

/// A running gateway's shared state.
#[derive(Debug)]
pub struct Gateway {
    cfg: GatewayConfig,
    limits: Limits,
    tokens: ClinicTokens,
    producer: DurableProducer,
    metrics: GatewayMetrics,
}

impl Gateway {
    /// Builds a gateway from its settings; loads the clinics file named there.
    pub fn new(cfg: GatewayConfig, kafka: &KafkaConfig) -> anyhow::Result<Self> {
        let tokens = ClinicTokens::load(&cfg.clinics_file).map_err(anyhow::Error::msg)?;
        Self::with_tokens(cfg, kafka, tokens)
    }

    /// Builds a gateway with an explicit token table.
    pub fn with_tokens(
        cfg: GatewayConfig,
        kafka: &KafkaConfig,
        tokens: ClinicTokens,
    ) -> anyhow::Result<Self> {
        if tokens.is_empty() {
            tracing::warn!("no clinic is configured: every request will be refused with 401");
        }
        let producer =
            DurableProducer::new(kafka, &cfg.topic, Duration::from_millis(cfg.delivery_timeout_ms))?;
        Ok(Self { limits: cfg.limits(), cfg, tokens, producer, metrics: GatewayMetrics::new()? })
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// The routes.
    pub fn router(self: Arc<Self>) -> Router {
        let metrics = pv_runtime::telemetry::metrics_router(self.metrics.registry.clone());
        Router::new()
            .route("/v1/events", post(post_events))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(self)
            .merge(metrics)
    }
}

/// Serves the gateway on `listener` until `shutdown`, then flushes the producer.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener, shutdown: Shutdown) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, topic = %gateway.cfg.topic, clinics = gateway.tokens.len(), "gateway listening");
    let app = gateway.clone().router();
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await?;
    gateway.producer.flush(Duration::from_secs(10));
    tracing::info!("gateway stopped");
    Ok(())
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let ready = tokio::task::spawn_blocking(move || gw.producer.is_ready(Duration::from_secs(2)))
        .await
        .unwrap_or(false);
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "broker unreachable").into_response()
    }
}

#[derive(Serialize)]
struct Accepted {
    accepted: usize,
    event_ids: Vec<String>,
}

async fn post_events(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let response = handle(&gw, &headers, body, started).await;
    gw.metrics.requests.with_label_values(&[response.status().as_str()]).inc();
    response
}

async fn handle(gw: &Gateway, headers: &HeaderMap, body: Body, started: Instant) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let clinic_id = match gw.tokens.authenticate(authorization) {
        Ok(clinic) => clinic.to_owned(),
        Err(e) => {
            let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string(), &[]);
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Some(framing) = Framing::from_content_type(content_type) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send one event as application/json or a batch as application/x-ndjson",
            &[],
        );
    };
    let max = gw.cfg.max_body_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("the body exceeds {max} bytes; split the batch"),
            &[],
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(e) => {
            // to_bytes fails on the length limit or on a broken connection.
            return if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large()
            } else {
                error(StatusCode::BAD_REQUEST, "bad_body", &format!("cannot read the request body: {e}"), &[])
            };
        }
    };
    let events = match ingest(
        &bytes,
        framing,
        &clinic_id,
        &gw.limits,
        gw.cfg.max_events_per_request,
        Timestamp::now(),
    ) {
        Ok(events) => events,
        Err(rejection) => return reject(gw, rejection),
    };
    match send_events(&gw.producer, &events).await {
        Ok(()) => {
            gw.metrics.events_accepted.inc_by(events.len() as u64);
            gw.metrics.durable_latency.observe(started.elapsed().as_secs_f64());
            let body = Accepted {
                accepted: events.len(),
                event_ids: events.iter().map(|e| e.event_id().to_string()).collect(),
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(SendError::Produce(ProduceError::Unavailable(e))) => {
            tracing::warn!(error = %e, events = events.len(), "broker unavailable; answering 503");
            gw.metrics.events_rejected.with_label_values(&["broker_unavailable"]).inc_by(events.len() as u64);
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                "the event log did not acknowledge the events; nothing is confirmed, retry the whole request (event ids make retries safe)",
                &[],
            );
            if let Ok(v) = HeaderValue::from_str(&gw.cfg.retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "produce failed permanently");
            gw.metrics.events_rejected.with_label_values(&["internal"]).inc_by(events.len() as u64);
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &format!("{e}; nothing is confirmed"), &[])
        }
    }
}

fn reject(gw: &Gateway, rejection: Rejection) -> Response {
    let count = |errors: &[EventError]| {
        let mut idx: Vec<usize> = errors.iter().map(|e| e.index).collect();
        idx.dedup();
        idx.len() as u64
    };
    let (status, code, message, errors, n) = match &rejection {
        Rejection::Malformed(errors) => (
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body is not valid JSON; nothing was accepted",
            errors.as_slice(),
            count(errors),
        ),
        Rejection::Empty => (StatusCode::BAD_REQUEST, "empty", "the body holds no event", &[][..], 0),
        Rejection::TooManyEvents { found, max } => {
            let message = format!("{found} events exceed the limit of {max} per request; split the batch");
            gw.metrics.events_rejected.with_label_values(&["too_many"]).inc_by(*found as u64);
            return error(StatusCode::PAYLOAD_TOO_LARGE, "too_many_events", &message, &[]);
        }
        Rejection::WrongClinic(errors) => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "events may only be submitted for the token's own clinic; nothing was accepted",
            errors.as_slice(),
            count(errors),
        ),
        Rejection::Invalid(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "some events are invalid; nothing was accepted",
            errors.as_slice(),
            count(errors),
        ),
    };
    gw.metrics.events_rejected.with_label_values(&[code]).inc_by(n);
    error(status, code, message, errors)
}

fn error(status: StatusCode, code: &str, message: &str, errors: &[EventError]) -> Response {
    (status, Json(json!({ "error": code, "message": message, "errors": errors }))).into_response()
}
