//! One enricher session: its clients, and the consume -> enrich -> commit loop.
//!
//! The loop's steps: **poll** for the next input message; **rebalance** — a partition revoked
//! while the open transaction holds its input aborts the transaction and rewinds (another
//! instance owns the partition now); **process** the message into the transaction (the enriched
//! event or a dead letter, the patient's state change, the input offset); **commit** when the
//! transaction is due. A failed commit the producer can recover from is aborted and every
//! assigned partition re-read from its committed offset with its state reloaded.
//!
//! A message written with a schema this build does not know (an unknown single-object
//! fingerprint: a producer upgraded before the enricher) is not dead-lettered: its partition
//! halts there (paused, nothing after it processed, its offset never committed), the enricher
//! says why (an error log naming partition, offset and fingerprint; `pv_enrich_halted_partitions`)
//! and the other partitions go on. A build that knows the schema starts from that message.

use std::sync::Mutex;
use std::time::Duration;

use std::collections::BTreeMap;

use pv_events::{CodecError, EnrichedEvent, EventCodec, Limits};
use pv_runtime::Shutdown;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics::EventKind;
use crate::service::EnrichService;
use crate::stores::{LoadError, StateStores};
use crate::transaction::{Due, KAFKA_TIMEOUT, Transaction, TxnError};

/// Why a session ended. Every one but [`SessionError::Fenced`] repeated is survived by a new
/// session (see [`EnrichService::run`]).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Setting up the clients or reading the topics' metadata failed.
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: KafkaError,
    },
    /// The topics cannot work together (missing, or too few changelog partitions).
    #[error("{0}")]
    Topics(String),
    /// The input topic's partition count differs from the one the committed positions and the
    /// state were built with (a repartition): refused until the state is rebuilt.
    #[error("{0}")]
    Layout(String),
    /// Another producer with our transactional id took over.
    #[error("fenced: another enricher runs with this transactional id; each instance needs its own ({0})")]
    Fenced(String),
    /// The producer cannot go on.
    #[error("{0}")]
    Transaction(TxnError),
    /// A partition's state could not be loaded.
    #[error("{0}")]
    State(#[from] LoadError),
    /// An enriched event could not be encoded (a bug).
    #[error("encoding an enriched event: {0}")]
    Encode(#[from] pv_events::CodecError),
}

impl SessionError {
    /// Whether a new session may cure this: a broker down or slow, a coordinator moving, an
    /// aborted transaction. Missing topics, a repartition, a client that cannot be created or a
    /// corrupt changelog record are not; no retry fixes those.
    pub fn is_transient(&self) -> bool {
        match self {
            SessionError::Kafka { source, .. } | SessionError::State(LoadError::Kafka { source, .. }) => {
                pv_runtime::kafka::is_transient(source)
            }
            SessionError::Fenced(_) | SessionError::Transaction(_) => true,
            SessionError::Topics(_)
            | SessionError::Layout(_)
            | SessionError::State(_)
            | SessionError::Encode(_) => false,
        }
    }
}

impl From<TxnError> for SessionError {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::Fenced(reason) => SessionError::Fenced(reason),
            other => SessionError::Transaction(other),
        }
    }
}

fn kafka(what: &'static str) -> impl FnOnce(KafkaError) -> SessionError {
    move |source| SessionError::Kafka { what, source }
}

/// Records partitions revoked by a rebalance, for the loop to act on.
#[derive(Debug, Default)]
pub(crate) struct RebalanceTracker {
    revoked: Mutex<Vec<i32>>,
}

impl ClientContext for RebalanceTracker {}

impl ConsumerContext for RebalanceTracker {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance
            && let Ok(mut revoked) = self.revoked.lock()
        {
            revoked.extend(tpl.elements().iter().map(|e| e.partition()));
        }
    }
}

impl RebalanceTracker {
    fn take(&self) -> Vec<i32> {
        self.revoked.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }
}

/// A session's clients and state.
pub(crate) struct Session<'s> {
    service: &'s EnrichService,
    consumer: BaseConsumer<RebalanceTracker>,
    work: Work<'s>,
}

/// What processing changes: the open transaction and the patients' state.
struct Work<'s> {
    service: &'s EnrichService,
    txn: Transaction,
    stores: StateStores,
    /// Partitions halted at a message of an unknown schema: offset and fingerprint.
    halted: BTreeMap<i32, (i64, String)>,
    /// Transactions committed by this session (the fault hook's clock).
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    committed: u64,
    /// The metadata committed with the input positions ([`layout`]).
    layout: String,
    /// The input topic's partition count the state is laid out by.
    input_partitions: usize,
}

impl<'s> Session<'s> {
    /// Creates the clients (the transactional producer fences any older one with our id) and
    /// checks the topics.
    pub(crate) fn start(service: &'s EnrichService) -> Result<Self, SessionError> {
        let (cfg, kafka_cfg) = (service.config(), service.kafka());
        let mut cc = pv_runtime::kafka::consumer_config(kafka_cfg, &cfg.group_id);
        cc.set("enable.auto.commit", "false");
        let consumer: BaseConsumer<RebalanceTracker> =
            cc.create_with_context(RebalanceTracker::default()).map_err(kafka("creating consumer"))?;
        consumer.subscribe(&[&cfg.input_topic]).map_err(kafka("subscribing"))?;
        let txn = Transaction::init(kafka_cfg, &cfg.transactional_id())
            .map_err(kafka("initialising transactions"))?;
        let input_partitions = check_partitions(&consumer, &cfg.input_topic, &cfg.changelog_topic)?;
        check_layout(&consumer, cfg, input_partitions)?;
        let stores =
            StateStores::new(kafka_cfg, &cfg.group_id, &cfg.changelog_topic, service.metrics().clone())
                .map_err(kafka("creating changelog reader"))?;
        let layout = layout(input_partitions);
        let work =
            Work { service, txn, stores, halted: BTreeMap::new(), committed: 0, layout, input_partitions };
        Ok(Self { service, consumer, work })
    }

    /// Runs until `shutdown`, then commits the open transaction.
    pub(crate) fn run(mut self, shutdown: &Shutdown) -> Result<(), SessionError> {
        let due = Due::of(self.service.config());
        while !shutdown.is_triggered() {
            // Input ready at once means a backlog; a wait means the transaction may commit soon.
            let polled = match self.consumer.poll(Duration::ZERO) {
                Some(ready) => Some(ready),
                None => {
                    self.work.txn.note_wait();
                    self.consumer.poll(self.work.txn.poll_time(&due))
                }
            };
            let revoked = self.consumer.context().take();
            if self.work.txn.holds_any(&revoked) {
                // Work in flight for a partition we no longer own: roll everything back.
                drop(polled);
                tracing::warn!(?revoked, "partitions revoked mid-transaction; aborting and reloading");
                self.abort_and_rewind()?;
                continue;
            }
            self.work.stores.forget(&revoked);
            self.work.unhalt(&revoked);
            match polled {
                None => {}
                Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
                Some(Ok(m)) => {
                    if let Processed::Halted = self.work.process(&m)? {
                        self.pause(m.topic(), m.partition());
                    }
                }
            }
            if self.work.txn.is_due(&due) {
                self.commit_or_rewind()?;
            }
        }
        if self.work.txn.messages() > 0 {
            self.commit_or_rewind()?;
        }
        tracing::info!("enricher stopped");
        Ok(())
    }

    /// Stops fetching a halted partition (what was already fetched is skipped by `process`).
    fn pause(&self, topic: &str, partition: i32) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(partition, error = %e, "cannot pause the halted partition; its messages are skipped");
        }
    }

    /// Commits the open transaction; on an abortable failure, aborts and rewinds. Refuses (and
    /// aborts) when the input topic was repartitioned while running: what the transaction holds
    /// may come from patients whose state is on another partition.
    fn commit_or_rewind(&mut self) -> Result<(), SessionError> {
        self.refuse_a_repartition()?;
        let cfg = self.service.config();
        let committed = match self.consumer.group_metadata() {
            Some(group) => self.work.txn.commit(
                &cfg.changelog_topic,
                &cfg.input_topic,
                &self.work.layout,
                &self.work.stores,
                &group,
            ),
            None => Err(TxnError::Abortable(KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownGroup))),
        };
        match committed {
            Ok(()) => {
                let metrics = self.service.metrics();
                metrics.transactions.inc();
                metrics.patients.set(self.work.stores.patients() as i64);
                self.work.committed += 1;
                Ok(())
            }
            Err(TxnError::Abortable(e)) => {
                tracing::warn!(error = %e, "transaction failed; aborting and reloading");
                self.abort_and_rewind()
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The input topic's partition count, asked of the broker before every commit (a metadata
    /// request per transaction): an event a producer wrote by a new count was consumed after the
    /// broker had that count, so nothing read under it is committed.
    fn refuse_a_repartition(&mut self) -> Result<(), SessionError> {
        let cfg = self.service.config();
        let now =
            pv_runtime::kafka::topics::partitions(self.consumer.client(), &cfg.input_topic, KAFKA_TIMEOUT)
                .map_err(kafka("reading the input topic's partitions"))?
                .len();
        if now == self.work.input_partitions {
            return Ok(());
        }
        self.work.txn.abort()?;
        Err(SessionError::Layout(format!(
            "{} went from {} to {now} partitions while running: a repartition moves patients to partitions whose \
             state does not hold them. Stopped without committing; rebuild the state for {now} partitions first \
             (README: \"Changing the raw topic's partition count\")",
            cfg.input_topic, self.work.input_partitions
        )))
    }

    /// Aborts the open transaction, forgets all state and rewinds every assigned partition to
    /// its committed offset: what follows starts again from the last committed point.
    fn abort_and_rewind(&mut self) -> Result<(), SessionError> {
        self.service.metrics().aborts.inc();
        self.work.txn.abort()?;
        self.work.stores.clear();
        let assignment = self.consumer.assignment().map_err(kafka("reading the assignment"))?;
        let committed = self
            .consumer
            .committed_offsets(assignment, KAFKA_TIMEOUT)
            .map_err(kafka("reading committed offsets"))?;
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            self.consumer
                .seek(e.topic(), e.partition(), offset, KAFKA_TIMEOUT)
                .map_err(kafka("rewinding"))?;
        }
        Ok(())
    }
}

/// What became of an input message.
enum Processed {
    /// Added to the open transaction (enriched, or a dead letter).
    Done,
    /// Its partition halts here: its schema is unknown to this build.
    Halted,
}

impl Work<'_> {
    /// Forgets the halts of partitions this instance no longer owns.
    fn unhalt(&mut self, revoked: &[i32]) {
        self.halted.retain(|p, _| !revoked.contains(p));
        self.service.metrics().halted_partitions.set(self.halted.len() as i64);
    }

    /// Adds one input message to the open transaction: its enriched event, or a dead letter;
    /// or halts its partition when its schema is unknown to this build.
    fn process(&mut self, m: &BorrowedMessage<'_>) -> Result<Processed, SessionError> {
        let (cfg, metrics) = (self.service.config(), self.service.metrics());
        let partition = m.partition();
        if self.halted.contains_key(&partition) {
            return Ok(Processed::Halted);
        }
        let codec = EventCodec::global();
        let payload = m.payload().unwrap_or_default();
        let decoded = codec.decode(payload);
        if let Err(CodecError::UnknownSchema(fingerprint)) = &decoded {
            tracing::error!(
                partition,
                offset = m.offset(),
                %fingerprint,
                "input partition halted: the message's schema is unknown to this build (a producer newer than \
                 the enricher?); deploy an enricher that knows it: it starts from this message"
            );
            self.halted.insert(partition, (m.offset(), fingerprint.clone()));
            metrics.halted_partitions.set(self.halted.len() as i64);
            return Ok(Processed::Halted);
        }
        self.txn.begin()?;
        let store = self.stores.partition(partition)?;
        let enricher = self.service.enricher();
        let limits = accepted_under(m, enricher.limits());
        let outcome =
            decoded.map_err(|e| e.to_string()).and_then(|ev| enricher.enrich_under(store, &ev, &limits));
        match outcome {
            Ok(out) => {
                let bytes = codec.encode_enriched(&out.event)?;
                // The event carries its key in hex already.
                let key = out.event.patient_key();
                self.txn.send(BaseRecord::to(&cfg.output_topic).key(key).payload(&bytes))?;
                if out.state_changed {
                    self.txn.touched(partition, out.key);
                }
                metrics.count_enriched(kind(&out.event));
                metrics.uncoded_reactions.inc_by(out.uncoded as u64);
            }
            Err(reason) => {
                tracing::warn!(partition, offset = m.offset(), %reason, "event to dead-letter topic");
                let mut headers = pv_runtime::kafka::dead_letter_headers(
                    &reason,
                    m.topic(),
                    partition,
                    m.offset(),
                    "enrich",
                );
                // Kept, so a redriven letter is judged by the limits it was accepted under.
                if let Some(value) = header(m, Limits::HEADER) {
                    headers =
                        headers.insert(rdkafka::message::Header { key: Limits::HEADER, value: Some(value) });
                }
                let mut record = BaseRecord::to(&cfg.dlq_topic).payload(payload).headers(headers);
                if let Some(k) = m.key() {
                    record = record.key(k);
                }
                self.txn.send(record)?;
                metrics.dead_letters.inc();
            }
        }
        self.txn.consumed(partition, m.offset());
        #[cfg(feature = "fault-injection")]
        crate::fault::abort_mid_transaction(self.committed, self.txn.messages(), cfg.batch_max_messages);
        Ok(Processed::Done)
    }
}

fn kind(e: &EnrichedEvent) -> EventKind {
    match e {
        EnrichedEvent::Dose(_) => EventKind::Dose,
        EnrichedEvent::Monitoring(_) => EventKind::Monitoring,
        EnrichedEvent::AdverseEvent(_) => EventKind::AdverseEvent,
        EnrichedEvent::Enrolment(_) => EventKind::Enrolment,
    }
}

/// The changelog must have a partition for every input partition; returns the input's count.
fn check_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    input: &str,
    changelog: &str,
) -> Result<usize, SessionError> {
    let count = |topic: &str| {
        pv_runtime::kafka::topics::partitions(consumer.client(), topic, KAFKA_TIMEOUT)
            .map(|p| p.len())
            .map_err(|e| SessionError::Topics(format!("topic {topic}: {e} (create it: pv topics apply)")))
    };
    let (input_partitions, changelog_partitions) = (count(input)?, count(changelog)?);
    if changelog_partitions < input_partitions {
        return Err(SessionError::Topics(format!(
            "{changelog} has {changelog_partitions} partitions but {input} has {input_partitions}"
        )));
    }
    Ok(input_partitions)
}

/// The metadata committed with every input position: the partition count the positions and the
/// state belong to.
pub(crate) fn layout(input_partitions: usize) -> String {
    format!("{LAYOUT_PREFIX}{input_partitions}")
}

const LAYOUT_PREFIX: &str = "pv-enrich raw_partitions=";

/// Refuses to start when the committed positions were made for another partition count of the
/// input topic: after a repartition, a patient's new events land on a partition whose state does
/// not hold the patient, and their exposure would silently start again from zero.
fn check_layout<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    cfg: &crate::EnrichConfig,
    input_partitions: usize,
) -> Result<(), SessionError> {
    let mut all = TopicPartitionList::new();
    for p in 0..i32::try_from(input_partitions).unwrap_or(i32::MAX) {
        all.add_partition(&cfg.input_topic, p);
    }
    let committed =
        consumer.committed_offsets(all, KAFKA_TIMEOUT).map_err(kafka("reading committed positions"))?;
    let recorded = committed
        .elements()
        .iter()
        .find_map(|e| e.metadata().strip_prefix(LAYOUT_PREFIX).and_then(|n| n.parse::<usize>().ok()));
    match recorded {
        Some(n) if n != input_partitions => Err(SessionError::Layout(format!(
            "{} has {input_partitions} partitions, but the enricher's positions and state (group {}, changelog {}) were built for {n}: \
             a repartition moves patients to partitions whose state does not hold them. Refusing to start; rebuild the \
             state for {input_partitions} partitions first (README: \"Changing the raw topic's partition count\")",
            cfg.input_topic, cfg.group_id, cfg.changelog_topic
        ))),
        _ => Ok(()),
    }
}

/// The value of the message's header `name`, if any.
fn header<'a>(m: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    m.headers().and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value))
}

/// The limits a raw message says its event was accepted under ([`Limits::HEADER`], written by
/// the gateway and `pv import`), or `own` for a message without them (another producer) or with
/// an unreadable value (logged).
fn accepted_under(m: &BorrowedMessage<'_>, own: &Limits) -> Limits {
    let Some(value) = header(m, Limits::HEADER) else { return *own };
    match Limits::from_header(&String::from_utf8_lossy(value), *own) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(partition = m.partition(), offset = m.offset(), error = %e, "unreadable {} header; checking with this enricher's limits", Limits::HEADER);
            *own
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_outage_at_start_is_waited_for_and_a_bad_setup_is_not() {
        let outage = [
            RDKafkaErrorCode::OperationTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::CoordinatorNotAvailable,
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::CoordinatorLoadInProgress,
        ];
        for code in outage {
            let e = SessionError::Kafka {
                what: "reading committed positions",
                source: KafkaError::MetadataFetch(code),
            };
            assert!(e.is_transient(), "{code:?}");
            let e = SessionError::State(LoadError::Kafka {
                partition: 0,
                source: KafkaError::MessageConsumption(code),
            });
            assert!(e.is_transient(), "state load {code:?}");
        }
        let setup = [
            SessionError::Kafka {
                what: "creating consumer",
                source: KafkaError::ClientCreation("bad setting".into()),
            },
            SessionError::Kafka {
                what: "initialising transactions",
                source: KafkaError::MetadataFetch(RDKafkaErrorCode::TopicAuthorizationFailed),
            },
            SessionError::Topics("missing".into()),
            SessionError::Layout("repartitioned".into()),
            SessionError::State(LoadError::Record { partition: 0, offset: 1, reason: "corrupt".into() }),
        ];
        for e in setup {
            assert!(!e.is_transient(), "{e}");
        }
    }
}
