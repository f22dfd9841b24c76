//! Enricher metrics.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use pv_runtime::telemetry::registered;

/// The kinds of enriched event, as counted (indexes into [`EnrichMetrics::KINDS`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventKind {
    Dose = 0,
    Monitoring = 1,
    AdverseEvent = 2,
    Enrolment = 3,
}

/// The enricher's metrics, in their own registry.
#[derive(Debug, Clone)]
pub struct EnrichMetrics {
    /// The registry the metrics live in.
    pub registry: Registry,
    /// Enriched events produced, by kind.
    pub enriched: IntCounterVec,
    /// `enriched` of each kind, in [`EnrichMetrics::KINDS`] order, looked up once (a label
    /// lookup per event hashes the label).
    by_kind: [IntCounter; 4],
    /// Events sent to the dead-letter topic.
    pub dead_letters: IntCounter,
    /// Reactions no dictionary entry matched (kept verbatim, flagged).
    pub uncoded_reactions: IntCounter,
    /// Committed transactions.
    pub transactions: IntCounter,
    /// Aborted transactions (each followed by a state reload).
    pub aborts: IntCounter,
    /// Sessions restarted after a failure (new clients, state reloaded).
    pub restarts: IntCounter,
    /// Patients in memory.
    pub patients: IntGauge,
    /// Input partitions stopped at a message whose schema this build does not know.
    pub halted_partitions: IntGauge,
    /// Seconds to load one partition's state from the changelog.
    pub state_load_seconds: Histogram,
    /// Input messages the group has not committed yet (probed every 15 s).
    pub consumer_lag: IntGauge,
}

impl EnrichMetrics {
    /// The `kind` labels of `events_enriched_total`.
    pub const KINDS: [&'static str; 4] = ["dose", "monitoring", "adverse_event", "enrolment"];

    /// Counts one enriched event of `kind`.
    pub(crate) fn count_enriched(&self, kind: EventKind) {
        self.by_kind[kind as usize].inc();
    }

    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new_custom(Some("pv_enrich".into()), None)?;
        let counter = |name: &str, help: &str| registered(&r, IntCounter::new(name, help)?);
        let state_load_seconds =
            HistogramOpts::new("state_load_seconds", "Time to load one partition's state from the changelog")
                .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 120.0]);
        let enriched = registered(
            &r,
            IntCounterVec::new(Opts::new("events_enriched_total", "Enriched events produced"), &["kind"])?,
        )?;
        let by_kind = Self::KINDS.map(|kind| enriched.with_label_values(&[kind]));
        Ok(Self {
            enriched,
            by_kind,
            dead_letters: counter("dead_letters_total", "Events sent to the dead-letter topic")?,
            uncoded_reactions: counter(
                "uncoded_reactions_total",
                "Reactions no dictionary entry matched (kept verbatim)",
            )?,
            transactions: counter("transactions_committed_total", "Committed transactions")?,
            aborts: counter("transactions_aborted_total", "Aborted transactions (state reloaded)")?,
            restarts: counter(
                "session_restarts_total",
                "Sessions restarted after a failure (state reloaded)",
            )?,
            patients: registered(
                &r,
                IntGauge::new("patients_in_memory", "Patients whose state is in memory")?,
            )?,
            halted_partitions: registered(
                &r,
                IntGauge::new(
                    "halted_partitions",
                    "Input partitions stopped at a message whose schema this build does not know",
                )?,
            )?,
            state_load_seconds: registered(&r, Histogram::with_opts(state_load_seconds)?)?,
            consumer_lag: registered(
                &r,
                IntGauge::new("consumer_lag", "Input messages the group has not committed yet")?,
            )?,
            registry: r,
        })
    }
}
