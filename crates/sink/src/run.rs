//! The sink's consume -> insert -> commit loop.
//!
//! Offsets are stored only after ClickHouse acknowledged every row of the batch and the broker
//! acknowledged every dead letter; librdkafka then commits the stored offsets (in the background
//! and on close). A crash anywhere before that re-delivers the batch, and the tables' dedup on
//! `event_id` absorbs the copies.
//!
//! Failed inserts are classified ([`crate::failure`]): transient failures are retried with the
//! same rows and backoff while consumption is paused (the batch in flight plus one full batch
//! is all the sink ever holds); rows the server refuses for their content are isolated by
//! splitting the batch and dead-lettered with the server's error.

use std::collections::HashSet;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clickhouse::{Client, RowOwned, RowWrite};
use pv_events::EventCodec;
use pv_runtime::{ClickHouseConfig, KafkaConfig, Shutdown};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::batch::{Batch, DeadLetter, Rows, Source};
use crate::config::SinkConfig;
use crate::failure::{Failure, classify};
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

/// What a replay read and wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Messages read from the topics (rows written plus dead letters).
    pub messages: u64,
    /// Partitions read to their end.
    pub partitions: usize,
}

/// The flush was abandoned because shutdown was requested; nothing was committed.
#[derive(Debug)]
struct Interrupted;

/// How the loop reads: as a member of the consumer group (committing), or a replay of assigned
/// partitions from their beginning that stops at their end (committing nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Group,
    Replay { partitions: usize },
}

impl Mode {
    /// Replay: whether every partition has been read to its end (`at_end` holds those that
    /// reported their end and gave nothing since).
    fn all_read(self, at_end: &HashSet<i32>) -> bool {
        matches!(self, Mode::Replay { partitions } if at_end.len() >= partitions)
    }
}

impl Sink {
    /// A sink with the given settings.
    pub fn new(cfg: SinkConfig, kafka: KafkaConfig, clickhouse: ClickHouseConfig) -> anyhow::Result<Self> {
        Ok(Self { cfg, kafka, clickhouse, metrics: SinkMetrics::new()? })
    }

    /// The sink's metrics.
    pub fn metrics(&self) -> &SinkMetrics {
        &self.metrics
    }

    /// Applies migrations, then consumes until `shutdown`; flushes and commits before returning
    /// (within `shutdown_timeout_ms`; what is not durable by then is re-read by the next run).
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
        tracing::info!(topics = ?self.cfg.topics, group = %self.cfg.group_id, database = %self.clickhouse.database, "sink running");
        self.consume(&consumer, Mode::Group, &shutdown).await?;
        tracing::info!("sink stopped");
        Ok(())
    }

    /// Rebuilds the tables of the configured database from the topics: reads every partition of
    /// every topic from its earliest retained offset to its end (one topic after the other) and
    /// inserts as the sink does, joining no consumer group and committing nothing. The tables
    /// deduplicate, so replaying into a database that already holds some of the events is safe.
    pub async fn replay(&self, shutdown: Shutdown) -> anyhow::Result<ReplayReport> {
        crate::migrations::migrate(&self.clickhouse).await.context("applying ClickHouse migrations")?;
        let mut report = ReplayReport::default();
        for topic in &self.cfg.topics {
            let group = format!("{}-replay-{}", self.cfg.group_id, uuid::Uuid::new_v4());
            let mut cfg = pv_runtime::kafka::consumer_config(&self.kafka, &group);
            cfg.set("enable.partition.eof", "true").set("enable.auto.commit", "false");
            let consumer: StreamConsumer = cfg.create().context("creating replay consumer")?;
            let metadata = consumer
                .fetch_metadata(Some(topic), Timeout::After(Duration::from_secs(30)))
                .with_context(|| format!("reading the partitions of {topic}"))?;
            let mut tpl = TopicPartitionList::new();
            for t in metadata.topics() {
                if let Some(e) = t.error() {
                    anyhow::bail!("topic {topic}: {e:?}");
                }
                for p in t.partitions() {
                    tpl.add_partition_offset(topic, p.id(), Offset::Beginning).context("partition list")?;
                }
            }
            let partitions = tpl.count();
            consumer.assign(&tpl).context("assigning partitions")?;
            tracing::info!(%topic, partitions, database = %self.clickhouse.database, "replaying from the earliest offsets");
            report.messages += self.consume(&consumer, Mode::Replay { partitions }, &shutdown).await?;
            report.partitions += partitions;
            if shutdown.is_triggered() {
                anyhow::bail!("replay interrupted after {} messages", report.messages);
            }
        }
        Ok(report)
    }

    /// The consume -> flush -> store loop; returns the number of messages read.
    async fn consume(
        &self,
        consumer: &StreamConsumer,
        mode: Mode,
        shutdown: &Shutdown,
    ) -> anyhow::Result<u64> {
        let dlq: FutureProducer = pv_runtime::kafka::producer_config(&self.kafka, Duration::from_secs(30))
            .create()
            .context("creating dead-letter producer")?;
        let client = pv_runtime::clickhouse::client(&self.clickhouse);
        let abort_after: Option<u64> =
            std::env::var(FAULT_ABORT_AFTER_INSERTS).ok().and_then(|v| v.parse().ok());
        let commits = mode == Mode::Group;
        let codec = EventCodec::global();
        let max_wait = Duration::from_millis(self.cfg.batch_max_wait_ms);
        let mut batch = Batch::default();
        let mut flushes: u64 = 0;
        let mut messages: u64 = 0;
        // Replay: partitions read to their end (and nothing read from them since).
        let mut at_end: HashSet<i32> = HashSet::new();
        // One flush may be in flight while the next batch fills: consuming and inserting
        // overlap. Offsets are stored strictly in batch order, each only after its flush.
        type Flush<'f> =
            std::pin::Pin<Box<dyn Future<Output = (Batch, Result<(), Interrupted>)> + Send + 'f>>;
        let mut in_flight: Option<Flush<'_>> = None;
        let mut interrupted = false;
        let mut paused = false;
        loop {
            // Back-pressure: a full batch waits for the flush in flight instead of growing, and
            // the partitions are paused meanwhile (still polling, so the group keeps us).
            let full = in_flight.is_some() && batch.len() >= self.cfg.batch_max_messages;
            // Applied only to a non-empty assignment (mid-rebalance it is empty): otherwise the
            // change is retried next time round, so a partition paused before a rebalance and
            // assigned again after it is never left paused.
            if full != paused && set_paused(consumer, full) {
                paused = full;
                self.metrics.paused.set(i64::from(full));
            }
            let ended = mode.all_read(&at_end);
            if ended && in_flight.is_none() && batch.is_empty() {
                break;
            }
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
                    if commits {
                        store(consumer, &flushed);
                    }
                }
                received = tokio::time::timeout(wait, consumer.recv()) => match received {
                    Err(_) => {}
                    Ok(Err(KafkaError::PartitionEOF(p))) => {
                        at_end.insert(p);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
                    Ok(Ok(m)) => {
                        if paused {
                            // Fetched before the pause, or a partition assigned since: keep it
                            // (bounded by the prefetch) and pause the current assignment again.
                            set_paused(consumer, true);
                        }
                        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
                        at_end.remove(&partition);
                        messages += 1;
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
            let ended = mode.all_read(&at_end);
            if in_flight.is_none()
                && (batch.is_due(self.cfg.batch_max_messages, max_wait) || (ended && !batch.is_empty()))
            {
                let due = std::mem::take(&mut batch);
                let (client, dlq, shutdown) = (&client, &dlq, shutdown);
                in_flight = Some(Box::pin(async move {
                    let result = self.flush(client, dlq, &due, shutdown).await;
                    (due, result)
                }));
            }
        }
        if paused {
            set_paused(consumer, false);
            self.metrics.paused.set(0);
        }
        // Shutdown: finish the flush in flight, then the open batch, then commit synchronously,
        // all within `shutdown_timeout_ms`. Offsets cover everything up to the batch stored, so
        // a later batch is stored only when every earlier one was: otherwise all of them are
        // re-read (and deduplicated).
        let deadline = Instant::now() + Duration::from_millis(self.cfg.shutdown_timeout_ms);
        let drain = Shutdown::new(); // not triggered: finish the last batch unless time runs out
        let mut in_order = !interrupted;
        if let Some(f) = in_flight.take() {
            match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), f).await {
                Ok((flushed, Ok(()))) if in_order => {
                    if commits {
                        store(consumer, &flushed);
                    }
                }
                _ => {
                    in_order = false;
                    tracing::warn!("the flush in flight did not finish; its batch will be re-read");
                }
            }
        }
        if !batch.is_empty() && in_order {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.flush(&client, &dlq, &batch, &drain)).await {
                Ok(Ok(())) => {
                    if commits {
                        store(consumer, &batch);
                    }
                }
                _ => tracing::warn!(
                    messages = batch.len(),
                    "last batch not durable in time; it will be re-read"
                ),
            }
        } else if !batch.is_empty() {
            tracing::warn!(messages = batch.len(), "last batch not flushed; it will be re-read");
        }
        if commits {
            // With enable.auto.offset.store=false this commits the *stored* offsets of the
            // current assignment (rd_kafka_commit with NULL offsets), i.e. only durable batches.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "final commit failed; uncommitted messages will be re-read")
                }
            }
        }
        Ok(messages)
    }

    /// Makes the batch durable: inserts every table's rows (dead-lettering the rows ClickHouse
    /// refuses) and delivers every dead letter, retrying transient failures with backoff until
    /// they pass or `shutdown` is triggered.
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
            self.insert_isolating(client, "doses", &batch.doses, shutdown),
            self.insert_isolating(client, "monitoring_forms", &batch.monitoring, shutdown),
            self.insert_isolating(client, "ae_report_versions", &batch.adverse_events, shutdown),
        );
        let refused = [
            (&batch.doses.sources, doses?),
            (&batch.monitoring.sources, forms?),
            (&batch.adverse_events.sources, reports?),
        ];
        for (sources, rows) in refused {
            for (index, reason) in rows {
                let source = &sources[index];
                let dead = self
                    .retrying("dead-letter source", shutdown, || self.read_source(source, &reason))
                    .await?;
                self.send_dead(dlq, &dead, shutdown).await?;
            }
        }
        for dead in &batch.dead_letters {
            self.send_dead(dlq, dead, shutdown).await?;
        }
        self.metrics.batches.inc();
        self.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        tracing::debug!(messages = batch.len(), ms = started.elapsed().as_millis() as u64, "batch durable");
        Ok(())
    }

    async fn send_dead(
        &self,
        dlq: &FutureProducer,
        dead: &DeadLetter,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        self.retrying("dead-letter", shutdown, || send_dead_letter(dlq, &self.cfg.dlq_topic, dead)).await?;
        self.metrics.dead_letters.inc();
        Ok(())
    }

    /// Inserts `rows` into `table`; returns the rows ClickHouse refused for their content (index
    /// into `rows`, server error). A refused insert is split in halves until each refused row
    /// stands alone; the accepted parts are inserted (an accepted part inserted twice is
    /// deduplicated like any re-delivery).
    async fn insert_isolating<T: RowOwned + RowWrite>(
        &self,
        client: &Client,
        table: &str,
        rows: &Rows<T>,
        shutdown: &Shutdown,
    ) -> Result<Vec<(usize, String)>, Interrupted> {
        let mut refused = Vec::new();
        // Ranges of `rows` still to insert; a refused range is replaced by its two halves.
        let mut pending: Vec<Range<usize>> = Vec::new();
        pending.push(0..rows.len());
        while let Some(range) = pending.pop() {
            if range.is_empty() {
                continue;
            }
            let part = &rows.rows[range.clone()];
            let outcome = self
                .retrying(table, shutdown, || async {
                    match insert(client, table, part).await {
                        Ok(()) => Ok(Ok(())),
                        Err(e) => match classify(&e) {
                            Failure::Rejected(reason) => Ok(Err(reason)),
                            Failure::Transient(reason) => Err(reason),
                        },
                    }
                })
                .await?;
            match outcome {
                Ok(()) => {
                    self.metrics.rows_inserted.with_label_values(&[table]).inc_by(range.len() as u64);
                }
                Err(reason) if range.len() == 1 => {
                    let s = &rows.sources[range.start];
                    tracing::warn!(table, topic = %s.topic, partition = s.partition, offset = s.offset, %reason, "ClickHouse refused the row; to the dead-letter topic");
                    self.metrics.rows_refused.with_label_values(&[table]).inc();
                    refused.push((range.start, reason));
                }
                Err(reason) => {
                    tracing::warn!(table, rows = range.len(), %reason, "ClickHouse refused the insert; splitting it to find the refused rows");
                    let mid = range.start + range.len() / 2;
                    pending.push(mid..range.end);
                    pending.push(range.start..mid);
                }
            }
        }
        Ok(refused)
    }

    /// The original message of a row ClickHouse refused, as a dead letter with the server's error.
    async fn read_source(&self, source: &Source, reason: &str) -> Result<DeadLetter, String> {
        let (kafka, s) = (self.kafka.clone(), source.clone());
        let (key, payload) = tokio::task::spawn_blocking(move || read_message(&kafka, &s))
            .await
            .map_err(|e| e.to_string())??;
        Ok(DeadLetter {
            topic: source.topic.to_string(),
            partition: source.partition,
            offset: source.offset,
            key,
            payload,
            reason: format!("ClickHouse refused the row: {reason}"),
        })
    }

    /// Runs `attempt` until it succeeds, doubling the delay between tries, or until shutdown.
    async fn retrying<T, F, Fut, E>(
        &self,
        what: &str,
        shutdown: &Shutdown,
        mut attempt: F,
    ) -> Result<T, Interrupted>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut delay = Duration::from_millis(self.cfg.retry_initial_ms);
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
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

/// Pauses (or resumes) fetching for the consumer's current assignment; whether it was applied
/// (not when the assignment is empty, as in the middle of a rebalance).
fn set_paused(consumer: &StreamConsumer, paused: bool) -> bool {
    let Ok(assignment) = consumer.assignment() else { return false };
    if assignment.count() == 0 {
        return false;
    }
    let result = if paused { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
    match result {
        Ok(()) if paused => tracing::debug!("consumption paused until the batch in flight is durable"),
        Ok(()) => tracing::debug!("consumption resumed"),
        Err(e) => {
            tracing::warn!(error = %e, paused, "cannot pause/resume partitions");
            return false;
        }
    }
    true
}

/// Reads the message at `source` (key and payload) with a short-lived consumer.
fn read_message(kafka: &KafkaConfig, source: &Source) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    let mut cfg = pv_runtime::kafka::consumer_config(kafka, "pv-sink-dead-letter-reader");
    cfg.set("enable.auto.commit", "false");
    let reader: BaseConsumer = cfg.create().map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&source.topic, source.partition, Offset::Offset(source.offset))
        .map_err(|e| e.to_string())?;
    reader.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() == source.offset => {
                return Ok((m.key().map(<[u8]>::to_vec), m.payload().unwrap_or_default().to_vec()));
            }
            Some(Ok(m)) => {
                return Err(format!(
                    "{}/{} offset {} is gone (next is {})",
                    source.topic,
                    source.partition,
                    source.offset,
                    m.offset()
                ));
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {}
        }
    }
    Err(format!("{}/{} offset {}: not read within 30 s", source.topic, source.partition, source.offset))
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
fn store(consumer: &StreamConsumer, batch: &Batch) {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, next) in batch.commit_positions() {
        if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(next)) {
            tracing::warn!(error = %e, topic, partition, "cannot list offset; batch will be re-read");
        }
    }
    if tpl.count() > 0
        && let Err(e) = consumer.store_offsets(&tpl)
    {
        // After a rebalance the partition may belong to another member: it re-reads and dedup
        // absorbs the copies. Anything else is logged; the data is already durable.
        tracing::warn!(error = %e, "cannot store offsets (partition revoked?); batch will be re-read");
    }
}
