//! Signals service metrics: what an alert on failing runs reads.

use prometheus::{Gauge, IntCounterVec, Opts, Registry};
use pv_runtime::telemetry::registered;

/// The signals service's metrics, in their own registry.
#[derive(Debug, Clone)]
pub struct SignalsMetrics {
    /// The registry the metrics live in.
    pub registry: Registry,
    /// Runs, by outcome (`ok`, `failed`).
    pub runs: IntCounterVec,
    /// Unix time of the last successful run (the service's start before the first, so a
    /// restart does not look like years without a run).
    pub last_success: Gauge,
    /// Seconds the last run took, whatever its outcome.
    pub last_run_seconds: Gauge,
}

impl SignalsMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new_custom(Some("pv_signals".into()), None)?;
        Ok(Self {
            runs: registered(
                &r,
                IntCounterVec::new(Opts::new("runs_total", "Signals runs, by outcome"), &["outcome"])?,
            )?,
            last_success: registered(
                &r,
                Gauge::new("last_success_timestamp_seconds", "Unix time of the last successful signals run")?,
            )?,
            last_run_seconds: registered(
                &r,
                Gauge::new("last_run_seconds", "Seconds the last signals run took")?,
            )?,
            registry: r,
        })
        .inspect(|m: &Self| m.last_success.set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0))
    }
}
