//! Reading partitions to their end: the changelog a service restores its state from, a topic
//! replayed into ClickHouse, the records a lag probe counts, the message a dead letter copies.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

/// A consumer that reads assigned partitions and reports each one's end: in no group, committing
/// nothing, and (like every consumer here) seeing committed transactional records only.
pub struct PartitionReader {
    consumer: BaseConsumer<EndsExpected>,
}

/// A reader's client context: librdkafka's errors are logged, but for the partition ends the
/// reader asked to be told about, which librdkafka also reports as errors.
#[derive(Debug)]
pub struct EndsExpected;

impl ClientContext for EndsExpected {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::trace!(reason, "partition end");
        } else {
            tracing::error!(%error, reason, "kafka reader");
        }
    }
}

impl ConsumerContext for EndsExpected {}

impl std::fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionReader").finish_non_exhaustive()
    }
}

impl PartitionReader {
    /// A reader on `kafka`'s cluster (`name` shows in the broker's client list).
    pub fn new(kafka: &KafkaConfig, name: &str) -> Result<Self, KafkaError> {
        let mut cfg = super::consumer_config(kafka, name);
        cfg.set("enable.partition.eof", "true")
            .set("enable.auto.commit", "false")
            // An end reached is reported at once, not after the broker's fetch wait.
            .set("fetch.wait.max.ms", "10");
        Ok(Self { consumer: cfg.create_with_context(EndsExpected)? })
    }

    /// The consumer underneath (metadata, watermarks).
    pub fn consumer(&self) -> &BaseConsumer<EndsExpected> {
        &self.consumer
    }

    /// Reads the partitions of `topic` in `starts` (partition, first offset) to their ends (as
    /// of when each end is reached), calling `each` for every message; `each` may stop the read
    /// early with `Break`. Returns the messages read, or `OperationTimedOut` when neither a
    /// message nor an end arrives for `patience` (a slow read that makes progress goes on).
    /// Transient consumer errors are logged and the read goes on.
    pub fn read(
        &self,
        topic: &str,
        starts: &[(i32, Offset)],
        patience: Duration,
        mut each: impl FnMut(&BorrowedMessage<'_>) -> ControlFlow<()>,
    ) -> Result<u64, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for &(partition, offset) in starts {
            tpl.add_partition_offset(topic, partition, offset)?;
        }
        self.consumer.assign(&tpl)?;
        let outcome = self.read_assigned(topic, starts, patience, &mut each);
        self.consumer.unassign()?;
        outcome
    }

    fn read_assigned(
        &self,
        topic: &str,
        starts: &[(i32, Offset)],
        patience: Duration,
        each: &mut impl FnMut(&BorrowedMessage<'_>) -> ControlFlow<()>,
    ) -> Result<u64, KafkaError> {
        let wanted: HashSet<i32> = starts.iter().map(|(p, _)| *p).collect();
        // Partitions at their end (and nothing read from them since).
        let mut ended: HashSet<i32> = HashSet::new();
        let mut read = 0;
        let mut progress = Instant::now();
        while ended.len() < wanted.len() {
            if progress.elapsed() >= patience {
                return Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut));
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    read += 1;
                    ended.remove(&m.partition());
                    let flow = each(&m);
                    // Time spent in `each` (a consumer that waits) is not the broker's silence.
                    progress = Instant::now();
                    if flow.is_break() {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) if wanted.contains(&p) => {
                    progress = Instant::now();
                    ended.insert(p);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => tracing::warn!(error = %e, topic, "kafka read error; reading on"),
                None => {}
            }
        }
        Ok(read)
    }

    /// Reads every partition of `topic` from its earliest retained offset to its end, as
    /// [`PartitionReader::read`] does. The partitions are looked up first, waiting at most
    /// `patience` (30 s at most): a topic the broker does not know is a `MetadataFetch` error.
    /// Returns (partitions, messages read).
    pub fn read_all(
        &self,
        topic: &str,
        patience: Duration,
        each: impl FnMut(&BorrowedMessage<'_>) -> ControlFlow<()>,
    ) -> Result<(usize, u64), KafkaError> {
        let metadata_wait = patience.min(Duration::from_secs(30));
        let ids = super::topics::partitions(self.consumer.client(), topic, metadata_wait)?;
        let starts: Vec<(i32, Offset)> = ids.iter().map(|&p| (p, Offset::Beginning)).collect();
        let read = self.read(topic, &starts, patience, each)?;
        Ok((ids.len(), read))
    }

    /// The message at `offset` of `topic`/`partition` (`None` when that offset is gone: deleted
    /// by retention, or an aborted transaction's record).
    pub fn read_one(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        patience: Duration,
    ) -> Result<Option<OwnedMessage>, KafkaError> {
        let mut found = None;
        self.read(topic, &[(partition, Offset::Offset(offset))], patience, |m| {
            if m.offset() == offset {
                found = Some(m.detach());
            }
            ControlFlow::Break(())
        })?;
        Ok(found)
    }
}
