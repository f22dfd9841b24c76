//! Making a unit durable: its table's rows inserted (the rows ClickHouse refuses for their
//! content isolated and dead-lettered with the server's error), every dead letter delivered,
//! transient failures retried with backoff ([`crate::failure`]) until they pass or shutdown.

use std::ops::Range;
use std::time::{Duration, Instant};

use pv_runtime::kafka::PartitionReader;
use pv_runtime::{KafkaConfig, Shutdown};
use pv_store::events::{AE_REPORT_VERSIONS, DOSES, ENROLMENTS, MONITORING_FORMS};
use pv_store::{Db, Table, TableRow};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::batch::{DeadLetter, Rows, Sealed, Source, Unit};
use crate::config::SinkConfig;
use crate::failure::{Failure, classify};
use crate::metrics::SinkMetrics;

/// The flush was abandoned because shutdown was requested; nothing was committed.
#[derive(Debug)]
pub(crate) struct Interrupted;

/// Writes units to ClickHouse and dead letters to Kafka.
pub(crate) struct Writer {
    cfg: SinkConfig,
    kafka: KafkaConfig,
    db: Db,
    dlq: FutureProducer,
    metrics: SinkMetrics,
}

impl Writer {
    /// A writer to `db`, dead-lettering to the configured topic.
    pub(crate) fn new(
        cfg: &SinkConfig,
        kafka: &KafkaConfig,
        db: Db,
        metrics: SinkMetrics,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let dlq: FutureProducer =
            pv_runtime::kafka::producer_config(kafka, Duration::from_secs(30)).create()?;
        Ok(Self { cfg: cfg.clone(), kafka: kafka.clone(), db, dlq, metrics })
    }

    /// Makes a sealed unit durable (its rows inserted, the ones ClickHouse refuses dead-lettered;
    /// or its dead letters delivered), or gives up when `shutdown` is triggered.
    pub(crate) async fn flush(&self, sealed: &Sealed, shutdown: &Shutdown) -> Result<(), Interrupted> {
        let (unit, started) = (&sealed.unit, Instant::now());
        #[cfg(feature = "fault-injection")]
        if let Some(hold) = sealed.slot.month().and_then(crate::fault::hold_for) {
            tokio::time::sleep(hold).await;
        }
        match unit {
            Unit::Doses(rows) => self.insert(&DOSES, rows, shutdown).await?,
            Unit::Monitoring(rows) => self.insert(&MONITORING_FORMS, rows, shutdown).await?,
            Unit::AdverseEvents(rows) => self.insert(&AE_REPORT_VERSIONS, rows, shutdown).await?,
            Unit::Enrolments(rows) => self.insert(&ENROLMENTS, rows, shutdown).await?,
            Unit::DeadLetters(letters) => {
                for dead in letters {
                    self.send_dead(dead, shutdown).await?;
                }
            }
        }
        self.metrics.batches.inc();
        self.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        tracing::debug!(messages = unit.len(), ms = started.elapsed().as_millis() as u64, "unit durable");
        Ok(())
    }

    /// Inserts `rows` into `table`, dead-lettering the rows ClickHouse refuses for their content.
    async fn insert<T: TableRow + Clone>(
        &self,
        table: &Table<T>,
        rows: &Rows<T>,
        shutdown: &Shutdown,
    ) -> Result<(), Interrupted> {
        self.metrics.insert_rows.observe(rows.len() as f64);
        for (index, reason) in self.insert_isolating(table, rows, shutdown).await? {
            let source = &rows.sources[index];
            let dead =
                self.retrying("dead-letter source", shutdown, || self.read_source(source, &reason)).await?;
            self.send_dead(&dead, shutdown).await?;
        }
        Ok(())
    }

    async fn send_dead(&self, dead: &DeadLetter, shutdown: &Shutdown) -> Result<(), Interrupted> {
        self.retrying("dead-letter", shutdown, || send_dead_letter(&self.dlq, &self.cfg.dlq_topic, dead))
            .await?;
        self.metrics.dead_letters.inc();
        Ok(())
    }

    /// Inserts `rows` into `table`; returns the rows ClickHouse refused for their content (index
    /// into `rows`, server error). Transient failures are retried ([`Writer::retrying`]); see
    /// [`insert_in_parts`] for the rest. When most of the rows are refused ([`is_systemic`]: the
    /// table and the rows disagree, say after a migration went wrong), nothing is dead-lettered:
    /// the insert is retried, holding the batch, until the table accepts them.
    async fn insert_isolating<T: TableRow + Clone>(
        &self,
        table: &Table<T>,
        rows: &Rows<T>,
        shutdown: &Shutdown,
    ) -> Result<Vec<(usize, String)>, Interrupted> {
        let name = table.table_name();
        loop {
            let mut refused = self.insert_parts(table, rows, shutdown).await?;
            if !refused.is_empty() && !is_systemic(refused.len(), rows.len()) {
                // Confirmed one by one before anything is dead-lettered: a table altered while the
                // batch was being split may take them now.
                refused = self.confirm_refused(table, rows, refused, shutdown).await?;
            }
            if !is_systemic(refused.len(), rows.len()) {
                for (index, reason) in &refused {
                    let s = &rows.sources[*index];
                    tracing::warn!(table = name, topic = %s.topic, partition = s.partition, offset = s.offset, %reason, "ClickHouse refused the row; to the dead-letter topic");
                }
                self.metrics.rows_refused.with_label_values(&[name]).inc_by(refused.len() as u64);
                return Ok(refused);
            }
            self.metrics.systemic_refusals.with_label_values(&[name]).inc();
            let reason = refused.first().map(|r| r.1.as_str()).unwrap_or_default();
            tracing::error!(
                table = name, refused = refused.len(), rows = rows.len(), %reason,
                "ClickHouse refuses most of the batch: the table and the rows disagree (a schema drift?); nothing is dead-lettered, retrying until the table accepts them"
            );
            tokio::select! {
                _ = shutdown.wait() => return Err(Interrupted),
                _ = tokio::time::sleep(Duration::from_millis(self.cfg.retry_max_ms)) => {}
            }
        }
    }

    /// The rows of `refused` that ClickHouse refuses again when each is inserted alone.
    async fn confirm_refused<T: TableRow + Clone>(
        &self,
        table: &Table<T>,
        rows: &Rows<T>,
        refused: Vec<(usize, String)>,
        shutdown: &Shutdown,
    ) -> Result<Vec<(usize, String)>, Interrupted> {
        let mut still = Vec::with_capacity(refused.len());
        for (index, reason) in refused {
            let one =
                Rows { rows: vec![rows.rows[index].clone()], sources: vec![rows.sources[index].clone()] };
            match self.insert_parts(table, &one, shutdown).await?.pop() {
                Some((_, again)) => still.push((index, again)),
                None => {
                    tracing::info!(table = table.table_name(), %reason, "a row refused while the batch was split was accepted alone")
                }
            }
        }
        Ok(still)
    }

    /// One pass of [`insert_in_parts`] over `rows`.
    async fn insert_parts<T: TableRow>(
        &self,
        table: &Table<T>,
        rows: &Rows<T>,
        shutdown: &Shutdown,
    ) -> Result<Vec<(usize, String)>, Interrupted> {
        let name = table.table_name();
        insert_in_parts(rows.len(), |range: Range<usize>| async move {
            let part = &rows.rows[range.clone()];
            let outcome = self
                .retrying(name, shutdown, || async {
                    let limit = Duration::from_millis(self.cfg.insert_timeout_ms);
                    let Ok(answered) = tokio::time::timeout(limit, self.db.insert(table, part)).await else {
                        // Possibly stored after all: the retry is deduplicated like a re-delivery.
                        return Err(format!("ClickHouse did not answer the insert within {} ms", limit.as_millis()));
                    };
                    match answered {
                        Ok(()) => Ok(Part::Inserted),
                        Err(e) => match classify(&e) {
                            Failure::Rejected(reason) => Ok(Part::Refused(reason)),
                            Failure::TooManyPartitions(reason) => Ok(Part::TooManyPartitions(reason)),
                            Failure::Transient(reason) => Err(reason),
                        },
                    }
                })
                .await?;
            match &outcome {
                Part::Inserted => self.metrics.rows_inserted.with_label_values(&[name]).inc_by(range.len() as u64),
                Part::Refused(reason) if range.len() > 1 => {
                    tracing::debug!(table = name, rows = range.len(), %reason, "ClickHouse refused the insert; splitting it to find the refused rows");
                }
                Part::Refused(_) => {}
                Part::TooManyPartitions(reason) => {
                    tracing::info!(table = name, rows = range.len(), %reason, "the insert spans too many partitions; inserting it in halves");
                }
            }
            Ok(outcome)
        })
        .await
    }

    /// The original message of a row ClickHouse refused, as a dead letter with the server's error.
    async fn read_source(&self, source: &Source, reason: &str) -> Result<DeadLetter, String> {
        let (kafka, s) = (self.kafka.clone(), source.clone());
        let read = tokio::task::spawn_blocking(move || {
            let reader = PartitionReader::new(&kafka, "pv-sink-dead-letter-reader")?;
            reader.read_one(&s.topic, s.partition, s.offset, Duration::from_secs(30))
        });
        let message =
            read.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?.ok_or_else(|| {
                format!("{}/{} offset {} is gone", source.topic, source.partition, source.offset)
            })?;
        Ok(DeadLetter {
            topic: source.topic.to_string(),
            partition: source.partition,
            offset: source.offset,
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
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

/// Whether `refused` rows out of `total` mean the table refuses the stream itself rather than a
/// few bad rows: at least 10 refused, and more than half of the insert.
pub(crate) fn is_systemic(refused: usize, total: usize) -> bool {
    refused >= 10 && refused * 2 > total
}

/// What became of one insert of a part of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Acknowledged.
    Inserted,
    /// The server refused the content (with its error).
    Refused(String),
    /// The part spans too many partitions for one insert (with the server's error).
    TooManyPartitions(String),
}

/// Inserts rows `0..len` through `insert` (one call per part). A refused part is split in halves
/// until each refused row stands alone; those are returned (index, server error). A part that
/// spans too many partitions is split in halves until each half fits, and nothing of it is
/// refused (a single row never spans two partitions; if the server says so, the row is refused
/// rather than retried forever). Accepted parts inserted twice are deduplicated like any
/// re-delivery.
pub(crate) async fn insert_in_parts<F, Fut>(
    len: usize,
    mut insert: F,
) -> Result<Vec<(usize, String)>, Interrupted>
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = Result<Part, Interrupted>>,
{
    let mut refused = Vec::new();
    // Ranges still to insert, the next on top; a split range is replaced by its two halves.
    let mut pending: Vec<Range<usize>> = Vec::new();
    pending.push(0..len);
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        match insert(range.clone()).await? {
            Part::Inserted => {}
            Part::Refused(reason) | Part::TooManyPartitions(reason) if range.len() == 1 => {
                refused.push((range.start, reason));
            }
            Part::Refused(_) | Part::TooManyPartitions(_) => {
                let mid = range.start + range.len() / 2;
                pending.push(mid..range.end);
                pending.push(range.start..mid);
            }
        }
    }
    refused.sort_unstable_by_key(|(i, _)| *i);
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    /// A server that refuses inserts touching more than `max` distinct months and rows whose
    /// month is 13 (a bad value), recording what it stored.
    fn server(months: &[u32], max: usize) -> impl Fn(Range<usize>) -> Part + '_ {
        move |range: Range<usize>| {
            let touched: BTreeSet<u32> = months[range.clone()].iter().copied().collect();
            if touched.len() > max {
                return Part::TooManyPartitions("Too many partitions for single INSERT block".into());
            }
            if touched.contains(&13) {
                return Part::Refused("bad month".into());
            }
            Part::Inserted
        }
    }

    #[test]
    fn most_of_a_batch_refused_is_systemic_and_a_few_rows_are_not() {
        assert!(is_systemic(300, 300));
        assert!(is_systemic(10, 19));
        assert!(!is_systemic(9, 9), "a few bad rows in a small batch are dead-lettered");
        assert!(!is_systemic(100, 200), "half is not most");
        assert!(!is_systemic(0, 0));
    }

    #[tokio::test]
    async fn a_batch_over_too_many_partitions_goes_in_parts_and_only_bad_rows_are_refused() {
        // 1,000 rows over 150 months, mixed (a backfill of many patients), two bad rows.
        let mut months: Vec<u32> = (0..1000u32).map(|i| 100 + (i * 37) % 150).collect();
        months[10] = 13;
        months[777] = 13;
        let check = server(&months, 100);
        let stored = RefCell::new(Vec::new());
        let calls = RefCell::new(0);
        let refused = insert_in_parts(months.len(), |range| {
            *calls.borrow_mut() += 1;
            let outcome = check(range.clone());
            if outcome == Part::Inserted {
                stored.borrow_mut().extend(range);
            }
            async move { Ok(outcome) }
        })
        .await
        .expect("not interrupted");
        let refused: Vec<usize> = refused.into_iter().map(|(i, _)| i).collect();
        assert_eq!(refused, [10, 777]);
        let mut stored = stored.into_inner();
        stored.sort_unstable();
        let want: Vec<usize> = (0..1000).filter(|i| ![10, 777].contains(i)).collect();
        assert_eq!(stored, want, "every other row stored exactly once");
        assert!(*calls.borrow() < 200, "{} inserts", calls.borrow());
    }
}
