//! Enricher metrics.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The enricher's metrics, in their own registry.
#[derive(Debug, Clone)]
pub struct EnrichMetrics {
    /// The registry the metrics live in.
    pub registry: Registry,
    /// Enriched events produced, by kind.
    pub enriched: IntCounterVec,
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
    /// Seconds to load one partition's state from the changelog.
    pub state_load_seconds: Histogram,
}

impl EnrichMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("pv_enrich".into()), None)?;
        let enriched =
            IntCounterVec::new(Opts::new("events_enriched_total", "Enriched events produced"), &["kind"])?;
        let dead_letters = IntCounter::new("dead_letters_total", "Events sent to the dead-letter topic")?;
        let uncoded_reactions = IntCounter::new(
            "uncoded_reactions_total",
            "Reactions no dictionary entry matched (kept verbatim)",
        )?;
        let transactions = IntCounter::new("transactions_committed_total", "Committed transactions")?;
        let aborts = IntCounter::new("transactions_aborted_total", "Aborted transactions (state reloaded)")?;
        let patients = IntGauge::new("patients_in_memory", "Patients whose state is in memory")?;
        let state_load_seconds = Histogram::with_opts(
            HistogramOpts::new("state_load_seconds", "Time to load one partition's state from the changelog")
                .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 120.0]),
        )?;
        registry.register(Box::new(enriched.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(uncoded_reactions.clone()))?;
        registry.register(Box::new(transactions.clone()))?;
        let restarts =
            IntCounter::new("session_restarts_total", "Sessions restarted after a failure (state reloaded)")?;
        registry.register(Box::new(aborts.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(patients.clone()))?;
        registry.register(Box::new(state_load_seconds.clone()))?;
        Ok(Self {
            registry,
            enriched,
            dead_letters,
            uncoded_reactions,
            transactions,
            aborts,
            restarts,
            patients,
            state_load_seconds,
        })
    }
}
