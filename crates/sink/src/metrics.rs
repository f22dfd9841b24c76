//! Sink metrics.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The sink's metrics, in their own registry.
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    /// The registry the metrics live in.
    pub registry: Registry,
    /// Rows acknowledged by ClickHouse, by table.
    pub rows_inserted: IntCounterVec,
    /// Failed attempts that are retried (ClickHouse or broker unavailable), by target.
    pub insert_failures: IntCounterVec,
    /// Rows ClickHouse refused for their content (dead-lettered), by table.
    pub rows_refused: IntCounterVec,
    /// 1 while consumption is paused because ClickHouse has not yet acknowledged the batch in flight.
    pub paused: IntGauge,
    /// Messages sent to the dead-letter topic.
    pub dead_letters: IntCounter,
    /// Batches made durable and committed.
    pub batches: IntCounter,
    /// Seconds to make one batch durable (inserts + dead letters).
    pub flush_seconds: Histogram,
}

impl SinkMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("pv_sink".into()), None)?;
        let rows_inserted = IntCounterVec::new(
            Opts::new("rows_inserted_total", "Rows acknowledged by ClickHouse"),
            &["table"],
        )?;
        let insert_failures = IntCounterVec::new(
            Opts::new("insert_failures_total", "Failed insert attempts (retried)"),
            &["table"],
        )?;
        let rows_refused = IntCounterVec::new(
            Opts::new("rows_refused_total", "Rows ClickHouse refused for their content (dead-lettered)"),
            &["table"],
        )?;
        let paused = IntGauge::new("paused", "1 while consumption waits for ClickHouse")?;
        let dead_letters = IntCounter::new("dead_letters_total", "Messages sent to the dead-letter topic")?;
        let batches = IntCounter::new("batches_total", "Batches made durable and committed")?;
        let flush_seconds = Histogram::with_opts(
            HistogramOpts::new("flush_seconds", "Time to make one batch durable")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        registry.register(Box::new(rows_inserted.clone()))?;
        registry.register(Box::new(insert_failures.clone()))?;
        registry.register(Box::new(rows_refused.clone()))?;
        registry.register(Box::new(paused.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(batches.clone()))?;
        registry.register(Box::new(flush_seconds.clone()))?;
        Ok(Self {
            registry,
            rows_inserted,
            insert_failures,
            rows_refused,
            paused,
            dead_letters,
            batches,
            flush_seconds,
        })
    }
}
