//! Gateway metrics, one Prometheus family per thing measured.

use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use pv_runtime::telemetry::registered;

/// The gateway's metrics, registered in their own registry (served at `/metrics`).
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    /// The registry the metrics live in.
    pub registry: Registry,
    /// Requests by HTTP status.
    pub requests: IntCounterVec,
    /// Events acknowledged by the broker.
    pub events_accepted: IntCounter,
    /// Events in refused requests, by reason (`malformed`, `invalid`, `forbidden`, ...).
    pub events_rejected: IntCounterVec,
    /// Seconds from request start to the last broker ack, for accepted requests.
    pub durable_latency: Histogram,
    /// When each clinic's last events were accepted (Unix seconds): a clinic gone quiet is a
    /// missed harm in the making.
    pub last_accepted: GaugeVec,
}

impl GatewayMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new_custom(Some("pv_gateway".into()), None)?;
        let durable_latency = HistogramOpts::new(
            "durable_latency_seconds",
            "Request start to last broker ack, accepted requests",
        )
        .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        Ok(Self {
            requests: registered(
                &r,
                IntCounterVec::new(
                    Opts::new("requests_total", "HTTP requests to /v1/events by status"),
                    &["status"],
                )?,
            )?,
            events_accepted: registered(
                &r,
                IntCounter::new("events_accepted_total", "Events acknowledged by the broker")?,
            )?,
            events_rejected: registered(
                &r,
                IntCounterVec::new(
                    Opts::new("events_rejected_total", "Events in refused requests by reason"),
                    &["reason"],
                )?,
            )?,
            durable_latency: registered(&r, Histogram::with_opts(durable_latency)?)?,
            last_accepted: registered(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "last_accepted_timestamp_seconds",
                        "When the clinic's last events were accepted",
                    ),
                    &["clinic"],
                )?,
            )?,
            registry: r,
        })
    }
}
