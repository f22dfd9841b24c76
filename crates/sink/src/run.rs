//! The sink's consume -> insert -> commit loop.
//!
//! Offsets are stored only after ClickHouse acknowledged every row of the batch and the broker
//! acknowledged every dead letter; librdkafka then commits the stored offsets (in the background
//! and on close). A crash anywhere before that re-delivers the batch, and the tables' dedup on
//! `event_id` absorbs the copies.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clickhouse::{Client, RowOwned, RowWrite};
use pv_events::EventCodec;
use pv_runtime::{ClickHouseConfig, KafkaConfig, Shutdown};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::batch::{Batch, DeadLetter};
use crate::config::SinkConfig;
use crate::metrics::SinkMetrics;
use crate::rows::{AnyRow, Provenance};

/// Environment variable for fault-injection tests: abort the process right after the N-th
/// successful flush's inserts, before its offsets are stored (simulates a crash between insert
/// and commit). Never set it in production.
pub const FAULT_ABORT_AFTER_INSERTS: &str = "PV_SINK_FAULT_ABORT_AFTER_INSERTS";

/// The Kafka -> ClickHouse sink.
#[derive(Debug)]
pub struct Sink {
    cfg: SinkConfig,
    kafka: KafkaConfig,
    clickhouse: ClickHouseConfig,
    metrics: SinkMetrics,
}

/// The flush was abandoned because shutdown was requested; nothing was committed.
#[derive(Debug)]
struct Interrupted;

impl Sink {
    /// A sink with the given settings.
    pub fn new(cfg: SinkConfig, kafka: KafkaConfig, clickhouse: ClickHouseConfig) -> anyhow::Result<Self> {
        Ok(Self { cfg, kafka, clickhouse, metrics: SinkMetrics::new()? })
    }

    /// The sink's metrics.
    pub fn metrics(&self) -> &SinkMetrics {
        &self.metrics
    }

    /// Applies migrations, then consumes until `shutdown`; flushes and commits before returning.
    pub async fn run(&self, shutdown: Shutdown) -> anyhow::Result<()> {
        crate::migrations::migrate(&self.clickhouse).await.context("applying ClickHouse migrations")?;
        if let Some(addr) = self.cfg.metrics_listen {
            let bound =
                pv_runtime::telemetry::serve_metrics(addr, self.metrics.registry.clone(), shutdown.clone())
                    .await
                    .with_context(|| format!("serving metrics on {addr}"))?;
            tracing::info!(%bound, "sink metrics at /metrics");
        }
        let consumer: StreamConsumer = pv_runtime::kafka::consumer_config(&self.kafka, &self.cfg.group_id)
            .create()
            .context("creating consumer")?;
        let topics: Vec<&str> = self.cfg.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).context("subscribing")?;
        let dlq: FutureProducer = pv_runtime::kafka::producer_config(&self.kafka, Duration::from_secs(30))
            .create()
            .context("creating dead-letter producer")?;
        let client = pv_runtime::clickhouse::client(&self.clickhouse);
        let abort_after: Option<u64> =
            std::env::var(FAULT_ABORT_AFTER_INSERTS).ok().and_then(|v| v.parse().ok());
        tracing::info!(topics = ?self.cfg.topics, group = %self.cfg.group_id, database = %self.clickhouse.database, "sink running");

        let codec = EventCodec::global();
        let max_wait = Duration::from_millis(self.cfg.batch_max_wait_ms);
        let mut batch = Batch::default();
        let mut flushes: u64 = 0;
        // One flush may be in flight while the next batch fills: consuming and inserting
        // overlap. Offsets are stored strictly in batch order, each only after its flush.
        type Flush<'f> =
            std::pin::Pin<Box<dyn Future<Output = (Batch, Result<(), Interrupted>)> + Send + 'f>>;
        let mut in_flight: Option<Flush<'_>> = None;
        let mut interrupted = false;
        loop {
            // Back-pressure: a full batch waits for the flush in flight instead of growing.
            let full = in_flight.is_some() && batch.len() >= self.cfg.batch_max_messages;
            let wait = if in_flight.is_some() { max_wait } else { batch.time_left(max_wait) };
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                (flushed, result) = async { in_flight.as_mut().expect("guarded by the if").await }, if in_flight.is_some() => {
                    in_flight = None;
                    if result.is_err() {
                        interrupted = true;
                        break;
                    }
                    flushes += 1;
                    if abort_after.is_some_and(|n| flushes >= n) {
                        // Unreachable in production: see FAULT_ABORT_AFTER_INSERTS.
                        tracing::error!("fault injection: aborting after insert, before commit");
                        std::process::abort();
                    }
                    store(&consumer, &flushed)?;
                }
                received = tokio::time::timeout(wait, consumer.recv()), if !full => match received {
                    Err(_) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
                    Ok(Ok(m)) => {
                        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
                        let payload = m.payload().unwrap_or_default();
                        let row = codec
                            .decode_enriched(payload)
                            .map_err(|e| e.to_string())
                            .and_then(|event| AnyRow::new(&event, Provenance { partition, offset }).map_err(|e| e.to_string()));
                        match row {
                            Ok(row) => batch.push_row(row, topic, partition, offset),
                            Err(reason) => {
                                tracing::warn!(topic, partition, offset, %reason, "message to dead-letter topic");
                                batch.push_dead(DeadLetter {
                                    topic: topic.to_owned(),
                                    partition,
                                    offset,
                                    key: m.key().map(<[u8]>::to_vec),
                                    payload: payload.to_vec(),
                                    reason,
                                });
                            }
                        }
                    }
                },
            }
            if in_flight.is_none() && batch.is_due(self.cfg.batch_max_messages, max_wait) {
                let due = std::mem::take(&mut batch);
                let (client, dlq, shutdown) = (&client, &dlq, &shutdown);
                in_flight = Some(Box::pin(async move {
                    let result = self.flush(client, dlq, &due, shutdown).await;
                    (due, result)
                }));
            }
        }
        // Shutdown: finish the flush in flight, then the open batch, then commit synchronously.
        // Offsets cover everything up to the batch stored, so a later batch is stored only when
        // every earlier one was: otherwise all of them are re-read (and deduplicated).
        let drain = Shutdown::new(); // not triggered: finish the last flushes unless they fail
        let mut in_order = !interrupted;
        if let Some(f) = in_flight.take() {
            match tokio::time::timeout(Duration::from_secs(20), f).await {
                Ok((flushed, Ok(()))) if in_order => store(&consumer, &flushed)?,
                _ => {
                    in_order = false;
                    tracing::warn!("the flush in flight did not finish; its batch will be re-read");
                }
            }
        }
        if !batch.is_empty() {
            let flushed =
                tokio::time::timeout(Duration::from_secs(20), self.flush(&client, &dlq, &batch, &drain))
                    .await;
            match flushed {
                Ok(Ok(())) if in_order => store(&consumer, &batch)?,
                _ => tracing::warn!(messages = batch.len(), "last batch not stored; it will be re-read"),
            }
        }
        // With enable.auto.offset.store=false this commits the *stored* offsets of the current
        // assignment (librdkafka rd_kafka_commit with NULL offsets), i.e. only durable batches.
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(())
            | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {
            }
            Err(e) => {
                tracing::warn!(error = %e, "final commit failed; uncommitted messages will be re-read")
            }
        }
        tracing::info!("sink stopped");
        Ok(())
    }

    /// Makes the batch durable: inserts every table's rows and delivers every dead letter,
    /// retrying with backoff until it succeeds or `shutdown` is triggered.
    async fn flush(
        &self,
        client: &Client,
        dlq: &FutureProducer,
        batch: &Batch,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        let started = Instant::now();
        // The tables are independent: insert them concurrently (ClickHouse parses each on its own
        // thread); the batch is durable once all three are acknowledged.
        let (doses, forms, reports) = tokio::join!(
            self.insert_retrying(client, "doses", &batch.doses, shutdown),
            self.insert_retrying(client, "monitoring_forms", &batch.monitoring, shutdown),
            self.insert_retrying(client, "ae_report_versions", &batch.adverse_events, shutdown),
        );
        doses.and(forms).and(reports)?;
        for dead in &batch.dead_letters {
            self.retrying("dead-letter", shutdown, || send_dead_letter(dlq, &self.cfg.dlq_topic, dead))
                .await?;
            self.metrics.dead_letters.inc();
        }
        self.metrics.batches.inc();
        self.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        tracing::debug!(messages = batch.len(), ms = started.elapsed().as_millis() as u64, "batch durable");
        Ok(())
    }

    async fn insert_retrying<T: RowOwned + RowWrite>(
        &self,
        client: &Client,
        table: &str,
        rows: &[T],
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        if rows.is_empty() {
            return Ok(());
        }
        self.retrying(table, shutdown, || insert(client, table, rows)).await?;
        self.metrics.rows_inserted.with_label_values(&[table]).inc_by(rows.len() as u64);
        Ok(())
    }

    /// Runs `attempt` until it succeeds, doubling the delay between tries, or until shutdown.
    async fn retrying<F, Fut, E>(
        &self,
        what: &str,
        shutdown: &Shutdown,
        mut attempt: F,
    ) -> Result<(), Interrupted>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut delay = Duration::from_millis(self.cfg.retry_initial_ms);
        loop {
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.metrics.insert_failures.with_label_values(&[what]).inc();
                    tracing::warn!(target_table = what, error = %e, retry_in_ms = delay.as_millis() as u64, "write failed; retrying");
                }
            }
            tokio::select! {
                _ = shutdown.wait() => return Err(Interrupted),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_millis(self.cfg.retry_max_ms));
        }
    }
}

/// One INSERT of `rows`; a new `Insert` per attempt, since a failed one cannot be reused.
async fn insert<T: RowOwned + RowWrite>(
    client: &Client,
    table: &str,
    rows: &[T],
) -> Result<(), clickhouse::error::Error> {
    let mut insert = client.insert::<T>(table).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

async fn send_dead_letter(dlq: &FutureProducer, topic: &str, dead: &DeadLetter) -> Result<(), String> {
    let headers = pv_runtime::kafka::dead_letter_headers(
        &dead.reason,
        &dead.topic,
        dead.partition,
        dead.offset,
        "sink",
    );
    let mut record: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(topic).payload(dead.payload.as_slice()).headers(headers);
    if let Some(key) = &dead.key {
        record = record.key(key.as_slice());
    }
    dlq.send(record, Duration::from_secs(5)).await.map(|_| ()).map_err(|(e, _)| e.to_string())
}

/// Stores the batch's offsets for the background committer.
fn store(consumer: &StreamConsumer, batch: &Batch) -> anyhow::Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, next) in batch.commit_positions() {
        tpl.add_partition_offset(topic, partition, Offset::Offset(next)).context("building offset list")?;
    }
    if tpl.count() > 0
        && let Err(e) = consumer.store_offsets(&tpl)
    {
        // After a rebalance the partition may belong to another member: it re-reads and dedup
        // absorbs the copies. Anything else is logged; the data is already durable.
        tracing::warn!(error = %e, "cannot store offsets (partition revoked?); batch will be re-read");
    }
    Ok(())
}
