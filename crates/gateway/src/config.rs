//! Gateway configuration (the `[gateway]` table of the pv config file).

use std::net::SocketAddr;
use std::path::PathBuf;

use pv_events::Limits;
use serde::Deserialize;

/// Settings of the HTTP ingest service; every field has a named default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Raw topic the events are produced to.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// TOML file of clinics and the SHA-256 hashes of their bearer tokens (see `pv token`).
    #[serde(default = "default_clinics_file")]
    pub clinics_file: PathBuf,
    /// Largest accepted request body, in bytes (413 above it).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most events in one request (413 above it).
    #[serde(default = "default_max_events_per_request")]
    pub max_events_per_request: usize,
    /// Dose ceiling in mg: larger doses are rejected as likely unit errors.
    #[serde(default = "default_max_dose_mg")]
    pub max_dose_mg: f64,
    /// How far in the future an event time may be (clock skew), in seconds.
    #[serde(default = "default_max_future_skew_secs")]
    pub max_future_skew_secs: u64,
    /// How long the broker may take to acknowledge an event before the request fails with 503.
    #[serde(default = "default_delivery_timeout_ms")]
    pub delivery_timeout_ms: u64,
    /// The `Retry-After` (seconds) sent with a 503.
    #[serde(default = "default_retry_after_secs")]
    pub retry_after_secs: u64,
    /// How often (seconds) the clinics file is checked for changes; a changed file is loaded
    /// without a restart (tokens added or revoked by `pv clinics add/revoke`).
    #[serde(default = "default_clinics_reload_secs")]
    pub clinics_reload_secs: u64,
    /// Where `GET /metrics` is served: an admin listener apart from the clinic-facing one (none:
    /// not served).
    #[serde(default = "default_admin_listen")]
    pub admin_listen: Option<SocketAddr>,
    /// Requests a second each clinic may send on average (0: no limit); above it, 429 with
    /// `Retry-After`.
    #[serde(default = "default_rate_per_clinic")]
    pub rate_per_clinic: f64,
    /// Most reactions one adverse-event report may hold (422 above; the enricher checks the same).
    #[serde(default = "default_max_per_report")]
    pub max_reactions_per_report: usize,
    /// Most drugs one adverse-event report may hold (422 above; the enricher checks the same).
    #[serde(default = "default_max_per_report")]
    pub max_drugs_per_report: usize,
    /// Requests a clinic may send at once above the rate.
    #[serde(default = "default_burst_per_clinic")]
    pub burst_per_clinic: u32,
    /// How long a request's body may take to arrive, in milliseconds (408 after; nothing is
    /// accepted). With `delivery_timeout_ms` for the broker, this bounds every request.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Requests handled at once; above it, 503 `overloaded` with `Retry-After` (shed, not queued).
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_topic() -> String {
    "pv.raw.events".into()
}
fn default_clinics_file() -> PathBuf {
    ".state/clinics.toml".into()
}
fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_max_events_per_request() -> usize {
    10_000
}
fn default_max_dose_mg() -> f64 {
    Limits::default().max_dose_mg
}
fn default_max_future_skew_secs() -> u64 {
    300
}
fn default_delivery_timeout_ms() -> u64 {
    10_000
}
fn default_retry_after_secs() -> u64 {
    5
}
fn default_clinics_reload_secs() -> u64 {
    2
}
fn default_max_per_report() -> usize {
    50
}
fn default_rate_per_clinic() -> f64 {
    50.0
}
fn default_burst_per_clinic() -> u32 {
    100
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_max_concurrent_requests() -> usize {
    256
}
fn default_admin_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9466)))
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            topic: default_topic(),
            clinics_file: default_clinics_file(),
            max_body_bytes: default_max_body_bytes(),
            max_events_per_request: default_max_events_per_request(),
            max_dose_mg: default_max_dose_mg(),
            max_future_skew_secs: default_max_future_skew_secs(),
            delivery_timeout_ms: default_delivery_timeout_ms(),
            retry_after_secs: default_retry_after_secs(),
            clinics_reload_secs: default_clinics_reload_secs(),
            admin_listen: default_admin_listen(),
            rate_per_clinic: default_rate_per_clinic(),
            max_reactions_per_report: default_max_per_report(),
            max_drugs_per_report: default_max_per_report(),
            burst_per_clinic: default_burst_per_clinic(),
            request_timeout_ms: default_request_timeout_ms(),
            max_concurrent_requests: default_max_concurrent_requests(),
        }
    }
}

impl GatewayConfig {
    /// The validation bounds these settings imply.
    pub fn limits(&self) -> Limits {
        Limits {
            max_dose_mg: self.max_dose_mg,
            max_future_skew_ms: i64::try_from(self.max_future_skew_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            max_reactions: self.max_reactions_per_report,
            max_drugs: self.max_drugs_per_report,
            ..Limits::default()
        }
    }
}
