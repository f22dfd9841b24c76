//! HTTP routes: `POST /v1/events`, `GET /healthz`, `GET /readyz`, `GET /openapi.json` (described
//! by [`crate::openapi`]). `GET /metrics` is served apart, on the admin listener ([`serve`]).

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
use serde_json::{Value, json};
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
    tokens: std::sync::RwLock<ClinicTokens>,
    /// Whether the tokens come from `clinics_file` (and are reloaded when it changes).
    from_file: bool,
    rate: crate::rate::RateLimiter,
    /// One permit per request being handled (`max_concurrent_requests`).
    in_flight: tokio::sync::Semaphore,
    producer: DurableProducer,
    metrics: GatewayMetrics,
}

impl Gateway {
    /// Builds a gateway from its settings; loads the clinics file named there.
    pub fn new(cfg: GatewayConfig, kafka: &KafkaConfig) -> anyhow::Result<Self> {
        let tokens = ClinicTokens::load(&cfg.clinics_file).map_err(anyhow::Error::msg)?;
        Ok(Self { from_file: true, ..Self::with_tokens(cfg, kafka, tokens)? })
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
        let tokens = std::sync::RwLock::new(tokens);
        let rate = crate::rate::RateLimiter::new(cfg.rate_per_clinic, cfg.burst_per_clinic);
        let metrics = GatewayMetrics::new()?;
        anyhow::ensure!(
            (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(&cfg.max_concurrent_requests),
            "[gateway] max_concurrent_requests must be at least 1, got {}",
            cfg.max_concurrent_requests
        );
        let in_flight = tokio::sync::Semaphore::new(cfg.max_concurrent_requests);
        Ok(Self { limits: cfg.limits(), cfg, tokens, from_file: false, rate, in_flight, producer, metrics })
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// The clinic-facing routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/events", post(post_events))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/openapi.json", get(openapi))
            .with_state(self)
    }
}

impl Gateway {
    /// Reloads the clinics file; a file that does not load keeps the tokens in force.
    fn reload_tokens(&self) {
        match ClinicTokens::load(&self.cfg.clinics_file) {
            Ok(tokens) => {
                tracing::info!(clinics = tokens.len(), "clinics file changed: tokens reloaded");
                if let Ok(mut t) = self.tokens.write() {
                    *t = tokens;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "clinics file changed but does not load; the tokens in force stay")
            }
        }
    }

    /// Checks the clinics file every `clinics_reload_secs` and reloads it when it changed.
    async fn watch_clinics(self: Arc<Self>, shutdown: Shutdown) {
        let modified = |gw: &Gateway| std::fs::metadata(&gw.cfg.clinics_file).and_then(|m| m.modified()).ok();
        let mut seen = modified(&self);
        let period = Duration::from_secs(self.cfg.clinics_reload_secs.max(1));
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(period) => {}
            }
            let now = modified(&self);
            if now != seen {
                seen = now;
                self.reload_tokens();
            }
        }
    }
}

/// Serves the gateway on `listener` until `shutdown`, then flushes the producer.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener, shutdown: Shutdown) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let clinics = gateway.tokens.read().map(|t| t.len()).unwrap_or(0);
    tracing::info!(%addr, topic = %gateway.cfg.topic, clinics, "gateway listening");
    if gateway.from_file {
        tokio::spawn(gateway.clone().watch_clinics(shutdown.clone()));
    }
    if let Some(admin) = gateway.cfg.admin_listen {
        let registry = gateway.metrics.registry.clone();
        let bound = pv_runtime::telemetry::serve_metrics(admin, registry, shutdown.clone()).await?;
        tracing::info!(%bound, "gateway metrics at /metrics (admin listener)");
    }
    let app = gateway.clone().router();
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await?;
    gateway.producer.flush(Duration::from_secs(10));
    tracing::info!("gateway stopped");
    Ok(())
}

async fn openapi() -> Response {
    static DOCUMENT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(crate::openapi::document);
    Json(DOCUMENT.clone()).into_response()
}

/// Every error the gateway answers with: its `error` code and its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 401: no or unknown bearer token (with `WWW-Authenticate`).
    Unauthorized,
    /// 429: the clinic sends faster than `rate_per_clinic` (with `Retry-After`).
    RateLimited,
    /// 503: `max_concurrent_requests` requests are being handled (with `Retry-After`).
    Overloaded,
    /// 408: the body did not arrive within `request_timeout_ms`.
    RequestTimeout,
    /// 415: neither `application/json` nor `application/x-ndjson`.
    UnsupportedMediaType,
    /// 413: the body is larger than `max_body_bytes`.
    PayloadTooLarge,
    /// 413: more events than `max_events_per_request`.
    TooManyEvents,
    /// 400: the body could not be read.
    BadBody,
    /// 400: not JSON/NDJSON.
    MalformedJson,
    /// 400: no event in the body.
    Empty,
    /// 403: an event for another clinic than the token's.
    Forbidden,
    /// 422: type or range errors.
    ValidationFailed,
    /// 503: the event log did not acknowledge in time (with `Retry-After`).
    BrokerUnavailable,
    /// 500: the events could not be produced for another reason.
    Internal,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::RequestTimeout,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::TooManyEvents,
        ErrorCode::BadBody,
        ErrorCode::MalformedJson,
        ErrorCode::Empty,
        ErrorCode::Forbidden,
        ErrorCode::ValidationFailed,
        ErrorCode::BrokerUnavailable,
        ErrorCode::Internal,
    ];

    /// The `error` value of the body.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::TooManyEvents => "too_many_events",
            ErrorCode::BadBody => "bad_body",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::Empty => "empty",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::BrokerUnavailable => "broker_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::PayloadTooLarge | ErrorCode::TooManyEvents => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadBody | ErrorCode::MalformedJson | ErrorCode::Empty => StatusCode::BAD_REQUEST,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::BrokerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The header the answer carries, if any.
    pub const fn header(self) -> Option<&'static str> {
        match self {
            ErrorCode::Unauthorized => Some("WWW-Authenticate"),
            ErrorCode::BrokerUnavailable | ErrorCode::RateLimited | ErrorCode::Overloaded => {
                Some("Retry-After")
            }
            _ => None,
        }
    }
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
    let response = match gw.in_flight.try_acquire() {
        Ok(_permit) => handle(&gw, &headers, body, started).await,
        Err(_) => {
            let message = format!(
                "the gateway is handling {} requests, its limit; nothing was accepted, retry in 1 s",
                gw.cfg.max_concurrent_requests
            );
            let mut r = error(ErrorCode::Overloaded, &message, &[]);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    };
    gw.metrics.requests.with_label_values(&[response.status().as_str()]).inc();
    response
}

async fn handle(gw: &Gateway, headers: &HeaderMap, body: Body, started: Instant) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let authenticated = match gw.tokens.read() {
        Ok(tokens) => tokens.authenticate(authorization).map(str::to_owned),
        Err(_) => Err(crate::auth::AuthError::Unknown),
    };
    let clinic_id = match authenticated {
        Ok(clinic) => clinic,
        Err(e) => {
            let mut r = error(ErrorCode::Unauthorized, &e.to_string(), &[]);
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    if let Err(wait) = gw.rate.take(&clinic_id, Instant::now()) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let message = format!(
            "more than {} requests a second from {clinic_id}; retry in {secs} s",
            gw.cfg.rate_per_clinic
        );
        let mut r = error(ErrorCode::RateLimited, &message, &[]);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let Some(framing) = Framing::from_content_type(content_type) else {
        return error(
            ErrorCode::UnsupportedMediaType,
            "send one event as application/json or a batch as application/x-ndjson",
            &[],
        );
    };
    let max = gw.cfg.max_body_bytes;
    let too_large =
        || error(ErrorCode::PayloadTooLarge, &format!("the body exceeds {max} bytes; split the batch"), &[]);
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    let timeout = Duration::from_millis(gw.cfg.request_timeout_ms);
    let Ok(read) = tokio::time::timeout(timeout, axum::body::to_bytes(body, max)).await else {
        let message =
            format!("the body did not arrive within {} ms; nothing was accepted", gw.cfg.request_timeout_ms);
        return error(ErrorCode::RequestTimeout, &message, &[]);
    };
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            // to_bytes fails on the length limit or on a broken connection.
            return if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large()
            } else {
                error(ErrorCode::BadBody, &format!("cannot read the request body: {e}"), &[])
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
    match send_events(&gw.producer, &events, Some(&gw.limits)).await {
        Ok(()) => {
            gw.metrics.events_accepted.inc_by(events.len() as u64);
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            gw.metrics.last_accepted.with_label_values(&[clinic_id.as_str()]).set(now.as_secs_f64());
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
                ErrorCode::BrokerUnavailable,
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
            error(ErrorCode::Internal, &format!("{e}; nothing is confirmed"), &[])
        }
    }
}

fn reject(gw: &Gateway, rejection: Rejection) -> Response {
    let count = |errors: &[EventError]| {
        let mut idx: Vec<usize> = errors.iter().map(|e| e.index).collect();
        idx.dedup();
        idx.len() as u64
    };
    let (code, message, errors, n) = match &rejection {
        Rejection::Malformed(errors) => (
            ErrorCode::MalformedJson,
            "the body is not valid JSON; nothing was accepted",
            errors.as_slice(),
            count(errors),
        ),
        Rejection::Empty => (ErrorCode::Empty, "the body holds no event", &[][..], 0),
        Rejection::TooManyEvents { found, max } => {
            let message = format!("{found} events exceed the limit of {max} per request; split the batch");
            gw.metrics.events_rejected.with_label_values(&["too_many"]).inc_by(*found as u64);
            return error(ErrorCode::TooManyEvents, &message, &[]);
        }
        Rejection::WrongClinic(errors) => (
            ErrorCode::Forbidden,
            "events may only be submitted for the token's own clinic; nothing was accepted",
            errors.as_slice(),
            count(errors),
        ),
        Rejection::Invalid(errors) => (
            ErrorCode::ValidationFailed,
            "some events are invalid; nothing was accepted",
            errors.as_slice(),
            count(errors),
        ),
    };
    gw.metrics.events_rejected.with_label_values(&[code.as_str()]).inc_by(n);
    error(code, message, errors)
}

fn error(code: ErrorCode, message: &str, errors: &[EventError]) -> Response {
    let body = json!({ "error": code.as_str(), "message": message, "errors": errors });
    (code.status(), Json(body)).into_response()
}
