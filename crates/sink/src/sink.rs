//! The sink service: migrations, then the loop ([`crate::consume`]) over the consumer group, or
//! over a replay of the topics.

use anyhow::Context as _;
use pv_runtime::{ClickHouseConfig, KafkaConfig, Shutdown};
use pv_store::Db;

use crate::config::SinkConfig;
use crate::consume::Consumption;
use crate::feed::{Feed, GroupFeed, ReplayFeed};
use crate::metrics::SinkMetrics;
use crate::writer::Writer;

/// How often the consumer lag gauge is refreshed.
const LAG_PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
/// The Kafka -> ClickHouse sink.
#[derive(Debug)]
pub struct Sink {
    cfg: SinkConfig,
    kafka: KafkaConfig,
    clickhouse: ClickHouseConfig,
    metrics: SinkMetrics,
}

/// What a replay read and wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Messages read from the topics (rows written plus dead letters).
    pub messages: u64,
    /// Partitions read to their end.
    pub partitions: usize,
}

impl Sink {
    /// A sink with the given settings.
    pub fn new(cfg: SinkConfig, kafka: KafkaConfig, clickhouse: ClickHouseConfig) -> anyhow::Result<Self> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        Ok(Self { cfg, kafka, clickhouse, metrics: SinkMetrics::new()? })
    }

    /// The sink's metrics.
    pub fn metrics(&self) -> &SinkMetrics {
        &self.metrics
    }

    /// Applies migrations, then consumes until `shutdown`; flushes and commits before returning
    /// (within `shutdown_timeout_ms`; what is not durable by then is re-read by the next run).
    pub async fn run(&self, shutdown: Shutdown) -> anyhow::Result<()> {
        let consumption = self.start().await?;
        let _lag = pv_runtime::kafka::watch_lag(
            self.kafka.clone(),
            self.cfg.group_id.clone(),
            self.cfg.topics.clone(),
            self.metrics.consumer_lag.clone(),
            LAG_PROBE_EVERY,
        );
        if let Some(addr) = self.cfg.metrics_listen {
            let halted = self.metrics.halted_partitions.clone();
            let ready: pv_runtime::telemetry::Readiness = std::sync::Arc::new(move || match halted.get() {
                0 => Ok(()),
                n => Err(format!(
                    "{n} partition(s) halted at a message of a schema this build does not know (see the log)"
                )),
            });
            let registry = self.metrics.registry.clone();
            let bound = pv_runtime::telemetry::serve_admin(addr, registry, ready, shutdown.clone())
                .await
                .with_context(|| format!("serving metrics on {addr}"))?;
            tracing::info!(%bound, "sink metrics at /metrics, readiness at /readyz");
        }
        let group =
            GroupFeed::subscribe(&self.kafka, &self.cfg.group_id, &self.cfg.topics).context("subscribing")?;
        tracing::info!(topics = ?self.cfg.topics, group = %self.cfg.group_id, database = %self.clickhouse.database, "sink running");
        consumption.run(&mut Feed::Group(group), &shutdown).await;
        tracing::info!("sink stopped");
        Ok(())
    }

    /// Rebuilds the tables of the configured database from the topics: reads every partition of
    /// every topic from its earliest retained offset to its end (one topic after the other) and
    /// inserts as the sink does, joining no consumer group and committing nothing. The tables
    /// deduplicate, so replaying into a database that already holds some of the events is safe.
    pub async fn replay(&self, shutdown: Shutdown) -> anyhow::Result<ReplayReport> {
        let consumption = self.start().await?;
        tracing::info!(topics = ?self.cfg.topics, database = %self.clickhouse.database, "replaying");
        let replay = ReplayFeed::start(&self.kafka, &self.cfg.group_id, &self.cfg.topics)
            .context("starting the replay reader")?;
        let mut feed = Feed::Replay(replay);
        let messages = consumption.run(&mut feed, &shutdown).await;
        let Feed::Replay(replay) = feed else { unreachable!("a replay feed stays one") };
        if shutdown.is_triggered() {
            anyhow::bail!("replay interrupted after {messages} messages");
        }
        let partitions = replay.finish().map_err(anyhow::Error::msg)?;
        Ok(ReplayReport { messages, partitions })
    }

    /// Migrates the database and sets up the writer.
    async fn start(&self) -> anyhow::Result<Consumption> {
        pv_store::migrate(&self.clickhouse).await.context("applying ClickHouse migrations")?;
        let writer = Writer::new(&self.cfg, &self.kafka, Db::new(&self.clickhouse), self.metrics.clone())
            .context("creating dead-letter producer")?;
        Ok(Consumption::new(&self.cfg, &self.metrics, writer))
    }
}
