//! Sink metrics.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use pv_runtime::telemetry::registered;

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
    /// Inserts ClickHouse refused mostly (a schema drift): retried, not dead-lettered, by table.
    pub systemic_refusals: IntCounterVec,
    /// 1 while consumption is paused because the buffers hold `buffer_max_messages`.
    pub paused: IntGauge,
    /// Messages sent to the dead-letter topic.
    pub dead_letters: IntCounter,
    /// Partitions stopped at a message whose schema this build does not know.
    pub halted_partitions: IntGauge,
    /// Units (one table partition's rows, or dead letters) made durable.
    pub batches: IntCounter,
    /// Seconds to make one unit durable (its insert and the dead letters of refused rows).
    pub flush_seconds: Histogram,
    /// Rows per insert (one insert writes one part per partition it touches: bigger is cheaper).
    pub insert_rows: Histogram,
    /// Messages of the input topics the group has not committed yet (probed every 15 s).
    pub consumer_lag: IntGauge,
    /// How long an open buffer may wait before it is inserted, now: `batch_max_wait_ms`,
    /// longer under load (`busy_rate`) and in a backlog.
    pub buffer_age_limit: Gauge,
}

impl SinkMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new_custom(Some("pv_sink".into()), None)?;
        let per_table =
            |name: &str, help: &str| registered(&r, IntCounterVec::new(Opts::new(name, help), &["table"])?);
        let flush_seconds = HistogramOpts::new("flush_seconds", "Time to make one unit durable")
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let insert_rows = HistogramOpts::new("insert_rows", "Rows per insert")
            .buckets(vec![1.0, 10.0, 100.0, 1_000.0, 10_000.0, 50_000.0, 100_000.0, 200_000.0, 500_000.0]);
        Ok(Self {
            rows_inserted: per_table("rows_inserted_total", "Rows acknowledged by ClickHouse")?,
            insert_failures: per_table("insert_failures_total", "Failed insert attempts (retried)")?,
            rows_refused: per_table(
                "rows_refused_total",
                "Rows ClickHouse refused for their content (dead-lettered)",
            )?,
            systemic_refusals: per_table(
                "systemic_refusals_total",
                "Batches ClickHouse refused mostly, a schema drift (retried, nothing dead-lettered)",
            )?,
            paused: registered(&r, IntGauge::new("paused", "1 while consumption waits for ClickHouse")?)?,
            dead_letters: registered(
                &r,
                IntCounter::new("dead_letters_total", "Messages sent to the dead-letter topic")?,
            )?,
            halted_partitions: registered(
                &r,
                IntGauge::new(
                    "halted_partitions",
                    "Partitions stopped at a message whose schema this build does not know",
                )?,
            )?,
            batches: registered(
                &r,
                IntCounter::new(
                    "batches_total",
                    "Units (a table partition's rows, or dead letters) made durable",
                )?,
            )?,
            flush_seconds: registered(&r, Histogram::with_opts(flush_seconds)?)?,
            insert_rows: registered(&r, Histogram::with_opts(insert_rows)?)?,
            consumer_lag: registered(
                &r,
                IntGauge::new("consumer_lag", "Input messages the group has not committed yet")?,
            )?,
            buffer_age_limit: registered(
                &r,
                Gauge::new(
                    "buffer_age_limit_seconds",
                    "How long an open buffer may wait before it is inserted (longer under load and in a backlog)",
                )?,
            )?,
            registry: r,
        })
    }
}
