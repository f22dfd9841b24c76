//! The enricher's Kafka transaction: the enriched events and dead letters of one batch, the
//! changelog records of the patients it changed, and the input offsets it consumed, committed
//! or aborted together.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pv_events::EventCodec;
use pv_runtime::KafkaConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashSet;

use crate::pseudonym::{PatientKey, key_hex};
use crate::state::PatientStateRecord;
use crate::stores::StateStores;

/// How long one transactional call may wait for the broker.
pub(crate) const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a transactional operation failed, by what it takes to go on.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// A newer producer with our transactional id took over (another instance, or the
    /// coordinator moved the epoch on after aborting our transaction in an outage).
    #[error("fenced: {0}")]
    Fenced(String),
    /// The producer cannot go on (a fatal librdkafka error): only new clients can.
    #[error("fatal producer error: {0}")]
    Fatal(KafkaError),
    /// The transaction failed; aborting it and re-reading from the committed point goes on.
    #[error("transaction failed: {0}")]
    Abortable(KafkaError),
    /// A changelog record could not be encoded (a bug: the state and its schema disagree).
    #[error("encoding a changelog record: {0}")]
    Encode(#[from] pv_events::CodecError),
}

/// When a transaction is due (the `[enrich]` batch settings), without I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// Due at this many input messages ...
    pub max_messages: usize,
    /// ... or open this long once it had to wait for input ...
    pub max_wait: Duration,
    /// ... or open this long when it never had to (a backlog).
    pub backlog_max_wait: Duration,
}

impl Due {
    /// The settings of `cfg`; a backlog wait below `batch_max_wait_ms` counts as that.
    pub(crate) fn of(cfg: &crate::EnrichConfig) -> Self {
        let max_wait = Duration::from_millis(cfg.batch_max_wait_ms);
        Self {
            max_messages: cfg.batch_max_messages,
            max_wait,
            backlog_max_wait: Duration::from_millis(cfg.backlog_max_wait_ms).max(max_wait),
        }
    }

    /// How long a transaction may stay open: short once it waited for input, so that events
    /// at live rates are committed (visible) soon.
    fn age_limit(&self, waited: bool) -> Duration {
        if waited { self.max_wait } else { self.backlog_max_wait }
    }

    /// Whether a transaction of `messages`, open `age` (`waited` for input or not), is due.
    fn is_due(&self, messages: usize, age: Duration, waited: bool) -> bool {
        messages >= self.max_messages || age >= self.age_limit(waited)
    }

    /// How long to wait for input: until the open transaction (open `age`) is due, a while when none is.
    fn poll_time(&self, age: Option<Duration>, waited: bool) -> Duration {
        age.map_or(IDLE_POLL, |age| self.age_limit(waited).saturating_sub(age))
    }
}

/// How long to wait for input with no transaction open.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// The transactional producer and what the open transaction holds.
pub(crate) struct Transaction {
    producer: ThreadedProducer<DefaultProducerContext>,
    open: Option<Instant>,
    /// Whether the open transaction had to wait for input (the enricher is not behind).
    waited: bool,
    messages: usize,
    next_offsets: BTreeMap<i32, i64>,
    touched: BTreeMap<i32, FxHashSet<PatientKey>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("open", &self.open).field("messages", &self.messages).finish()
    }
}

impl Transaction {
    /// A transactional producer for `transactional_id`, initialised (which fences any older
    /// producer with that id and aborts its open transaction).
    pub(crate) fn init(kafka: &KafkaConfig, transactional_id: &str) -> Result<Self, KafkaError> {
        let mut pc = pv_runtime::kafka::producer_config(kafka, KAFKA_TIMEOUT);
        pc.set("transactional.id", transactional_id).set("transaction.timeout.ms", "60000");
        let producer: ThreadedProducer<DefaultProducerContext> = pc.create()?;
        producer.init_transactions(KAFKA_TIMEOUT)?;
        Ok(Self {
            producer,
            open: None,
            waited: false,
            messages: 0,
            next_offsets: BTreeMap::new(),
            touched: BTreeMap::new(),
        })
    }

    /// Input messages consumed in the open transaction.
    pub(crate) fn messages(&self) -> usize {
        self.messages
    }

    /// Whether the open transaction holds input from any of `partitions`.
    pub(crate) fn holds_any(&self, partitions: &[i32]) -> bool {
        partitions.iter().any(|p| self.next_offsets.contains_key(p))
    }

    /// The loop found no input ready: the open transaction is not reading a backlog.
    pub(crate) fn note_wait(&mut self) {
        self.waited |= self.open.is_some();
    }

    /// How long to poll for input: until the open transaction is due, or a while when none is.
    pub(crate) fn poll_time(&self, due: &Due) -> Duration {
        due.poll_time(self.open.map(|t| t.elapsed()), self.waited)
    }

    /// Whether the open transaction should commit.
    pub(crate) fn is_due(&self, due: &Due) -> bool {
        self.open.is_some_and(|t| due.is_due(self.messages, t.elapsed(), self.waited))
    }

    /// Begins a transaction unless one is open.
    pub(crate) fn begin(&mut self) -> Result<(), TxnError> {
        if self.open.is_none() {
            self.producer.begin_transaction().map_err(|e| self.classify(e))?;
            self.open = Some(Instant::now());
        }
        Ok(())
    }

    /// Produces `record` in the open transaction (waiting while librdkafka's queue is full).
    #[allow(clippy::result_large_err)] // the closure returns librdkafka's own (error, record)
    pub(crate) fn send<K, P>(&self, record: BaseRecord<'_, K, P>) -> Result<(), TxnError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        // Tried once before the deadline is read: the queue is rarely full, the clock per
        // message shows in the enricher's profile.
        let record = match self.producer.send(record) {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => back,
            sent => return sent.map_err(|(e, _)| self.classify(e)),
        };
        let deadline = Instant::now() + KAFKA_TIMEOUT;
        let wait = || std::thread::sleep(Duration::from_millis(2));
        pv_runtime::kafka::produce::enqueue(record, deadline, |r| self.producer.send(r), wait)
            .map_err(|e| self.classify(e))
    }

    /// Records that the input message at `offset` of `partition` is consumed by the transaction.
    pub(crate) fn consumed(&mut self, partition: i32, offset: i64) {
        self.next_offsets.insert(partition, offset + 1);
        self.messages += 1;
    }

    /// Records that the state of `key` (input partition `partition`) changed.
    pub(crate) fn touched(&mut self, partition: i32, key: PatientKey) {
        self.touched.entry(partition).or_default().insert(key);
    }

    /// Writes the changelog record of every touched patient, adds the input offsets and commits.
    pub(crate) fn commit(
        &mut self,
        changelog: &str,
        input: &str,
        layout: &str,
        stores: &StateStores,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TxnError> {
        let codec = EventCodec::global();
        for (&partition, keys) in &self.touched {
            for key in keys {
                let Some(state) = stores.state(partition, key) else { continue };
                let record: PatientStateRecord = state.to_record(key);
                let bytes = codec.encode_record(&record)?;
                let key = key_hex(key);
                self.send(BaseRecord::to(changelog).partition(partition).key(&key).payload(&bytes))?;
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (&p, &next) in &self.next_offsets {
            let mut position = offsets.add_partition(input, p);
            position.set_offset(Offset::Offset(next)).map_err(TxnError::Abortable)?;
            // Which partitioning the positions (and the state) belong to: checked at start-up.
            position.set_metadata(layout);
        }
        self.producer
            .send_offsets_to_transaction(&offsets, group, KAFKA_TIMEOUT)
            .map_err(|e| self.classify(e))?;
        let mut attempt = 0;
        loop {
            match pv_runtime::kafka::produce::commit_transaction(&self.producer, KAFKA_TIMEOUT) {
                Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < 5 => attempt += 1,
                Err(e) => return Err(self.classify(e)),
                Ok(()) => break,
            }
        }
        self.reset();
        Ok(())
    }

    /// Aborts the open transaction, if any.
    pub(crate) fn abort(&mut self) -> Result<(), TxnError> {
        if self.open.is_some() {
            self.producer.abort_transaction(KAFKA_TIMEOUT).map_err(|e| self.classify(e))?;
        }
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.open = None;
        self.waited = false;
        self.messages = 0;
        self.next_offsets.clear();
        self.touched.clear();
    }

    /// What a failed call takes to go on: fencing and fatal errors need new clients.
    fn classify(&self, error: KafkaError) -> TxnError {
        if let KafkaError::Transaction(e) = &error
            && is_fencing(e.code())
        {
            return TxnError::Fenced(e.to_string());
        }
        match self.producer.client().fatal_error() {
            Some((code, reason)) if is_fencing(code) => TxnError::Fenced(reason),
            Some(_) => TxnError::Fatal(error),
            None if matches!(&error, KafkaError::Transaction(e) if e.is_fatal()) => TxnError::Fatal(error),
            None => TxnError::Abortable(error),
        }
    }
}

/// Whether `code` says a newer producer with our transactional id took over.
fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUE: Due = Due {
        max_messages: 1000,
        max_wait: Duration::from_millis(200),
        backlog_max_wait: Duration::from_millis(1000),
    };
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_transaction_that_waited_for_input_is_due_at_max_wait() {
        assert!(!DUE.is_due(10, MS(199), true));
        assert!(DUE.is_due(10, MS(200), true));
        assert_eq!(DUE.poll_time(Some(MS(150)), true), MS(50));
    }

    #[test]
    fn a_transaction_reading_a_backlog_runs_to_the_backlog_wait_or_max_messages() {
        assert!(!DUE.is_due(10, MS(999), false), "never waited: not due at max_wait");
        assert!(DUE.is_due(10, MS(1000), false));
        assert!(DUE.is_due(1000, MS(1), false), "full");
        assert_eq!(DUE.poll_time(Some(MS(150)), false), MS(850));
        assert_eq!(DUE.poll_time(None, false), IDLE_POLL);
    }

    #[test]
    fn a_backlog_wait_below_max_wait_counts_as_max_wait() {
        let cfg =
            crate::EnrichConfig { batch_max_wait_ms: 300, backlog_max_wait_ms: 100, ..Default::default() };
        assert_eq!(Due::of(&cfg).backlog_max_wait, MS(300));
    }
}
