//! The enricher's consume -> enrich -> produce loop, exactly once.
//!
//! Each batch is one Kafka transaction holding the enriched events, the dead letters, the
//! changelog records of every patient whose state changed, and the input offsets. A crash,
//! abort or rebalance rolls all of it back together: the state is reloaded from the committed
//! changelog and the input re-read from the committed offsets, so no event is counted twice or
//! lost. Readers of the output use `isolation.level=read_committed`.
//!
//! State is kept per input partition and loaded lazily from the changelog partition with the
//! same number the first time a message of that partition arrives (after start-up or a
//! rebalance), so a restart reads the compacted state, not the history.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use pv_events::{EnrichedEvent, EventCodec};
use pv_runtime::{KafkaConfig, Shutdown};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::EnrichConfig;
use crate::enrich::Enricher;
use crate::metrics::EnrichMetrics;
use crate::pseudonym::{PatientKey, key_hex};
use crate::state::{PatientState, PatientStateRecord, PatientStore};

/// Environment variable for fault-injection tests: abort the process right after the N-th
/// committed transaction is *begun* and half its messages are produced. Never set it in
/// production.
pub const FAULT_ABORT_MID_TRANSACTION: &str = "PV_ENRICH_FAULT_ABORT_MID_TRANSACTION";

const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Fenced this many times within [`FENCED_WINDOW`]: another instance uses our transactional id.
const FENCED_LIMIT: usize = 3;
const FENCED_WINDOW: Duration = Duration::from_secs(600);

/// Records partitions revoked by a rebalance, for the main loop to act on.
#[derive(Debug, Default)]
struct RebalanceTracker {
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

/// The open transaction's bookkeeping.
#[derive(Debug, Default)]
struct Txn {
    open: bool,
    started: Option<Instant>,
    messages: usize,
    next_offsets: BTreeMap<i32, i64>,
    touched: BTreeMap<i32, HashSet<PatientKey>>,
}

/// The enrich service.
#[derive(Debug)]
pub struct EnrichService {
    cfg: EnrichConfig,
    kafka: KafkaConfig,
    enricher: Enricher,
    metrics: EnrichMetrics,
}

type Consumer_ = BaseConsumer<RebalanceTracker>;
type Producer_ = ThreadedProducer<DefaultProducerContext>;

impl EnrichService {
    /// A service with the given settings and enricher.
    pub fn new(cfg: EnrichConfig, kafka: KafkaConfig, enricher: Enricher) -> anyhow::Result<Self> {
        Ok(Self { cfg, kafka, enricher, metrics: EnrichMetrics::new()? })
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &EnrichMetrics {
        &self.metrics
    }

    /// Consumes until `shutdown`, then commits the open transaction and returns. Blocking: run
    /// it on its own thread.
    ///
    /// A failure while running (the broker unreachable longer than a transaction can wait, a
    /// fatal transaction error) ends the session, not the service: after a backoff a new session
    /// starts with new clients, exactly as a restarted process would (the new transactional
    /// producer fences the old one and aborts its open transaction; state and positions are
    /// reloaded from what was committed). Only a failure of the very first start-up (bad
    /// configuration, missing topics), or being fenced [`FENCED_LIMIT`] times within
    /// [`FENCED_WINDOW`] (another instance with the same transactional id), is returned.
    pub fn run(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut started = false;
        let mut backoff = Duration::from_secs(1);
        let mut fenced: Vec<Instant> = Vec::new();
        loop {
            let mut ready = false;
            match self.session(shutdown, &mut ready) {
                Ok(()) => return Ok(()),
                Err(e) if !started && !ready => return Err(e),
                Err(e) => {
                    // Fenced: a transaction the coordinator aborted after an outage (the epoch
                    // moved on; a new session recovers), or another live instance with our
                    // transactional id — then the two would fence each other forever, so
                    // repeated fencing stops the service.
                    if e.downcast_ref::<Fenced>().is_some() {
                        fenced.retain(|t| t.elapsed() < FENCED_WINDOW);
                        fenced.push(Instant::now());
                        if fenced.len() >= FENCED_LIMIT {
                            return Err(e);
                        }
                    }
                    self.metrics.restarts.inc();
                    tracing::error!(
                        error = format!("{e:#}"),
                        retry_in_s = backoff.as_secs(),
                        "enricher session failed; starting a new one"
                    );
                    let until = Instant::now() + backoff;
                    while Instant::now() < until {
                        if shutdown.is_triggered() {
                            return Ok(());
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    backoff = if ready {
                        Duration::from_secs(1)
                    } else {
                        (backoff * 2).min(Duration::from_secs(30))
                    };
                }
            }
            started |= ready;
        }
    }

    /// One session: clients, transactions, the consume -> transform -> commit loop. Sets
    /// `ready` once the clients are set up.
    fn session(&self, shutdown: &Shutdown, ready: &mut bool) -> anyhow::Result<()> {
        let mut cc = pv_runtime::kafka::consumer_config(&self.kafka, &self.cfg.group_id);
        cc.set("enable.auto.commit", "false");
        let consumer: Consumer_ =
            cc.create_with_context(RebalanceTracker::default()).context("creating consumer")?;
        consumer.subscribe(&[&self.cfg.input_topic]).context("subscribing")?;
        let mut pc = pv_runtime::kafka::producer_config(&self.kafka, Duration::from_secs(30));
        pc.set("transactional.id", self.cfg.transactional_id()).set("transaction.timeout.ms", "60000");
        let producer: Producer_ = pc.create().context("creating transactional producer")?;
        producer.init_transactions(KAFKA_TIMEOUT).context("initialising transactions")?;
        self.check_partitions(&consumer)?;
        *ready = true;
        let mut lc =
            pv_runtime::kafka::consumer_config(&self.kafka, &format!("{}-state-loader", self.cfg.group_id));
        lc.set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "10");
        let loader: BaseConsumer = lc.create().context("creating changelog reader")?;
        let fault: Option<u64> = std::env::var(FAULT_ABORT_MID_TRANSACTION).ok().and_then(|v| v.parse().ok());
        tracing::info!(
            input = %self.cfg.input_topic, output = %self.cfg.output_topic, changelog = %self.cfg.changelog_topic,
            dictionary = %self.enricher.coder().dictionary.source(), "enricher running"
        );

        let codec = EventCodec::global();
        let max_wait = Duration::from_millis(self.cfg.batch_max_wait_ms);
        let mut stores: HashMap<i32, PatientStore> = HashMap::new();
        let mut txn = Txn::default();
        let mut committed: u64 = 0;
        while !shutdown.is_triggered() {
            let wait = match txn.started {
                Some(t) => max_wait.saturating_sub(t.elapsed()),
                None => Duration::from_millis(200),
            };
            let polled = consumer.poll(wait);
            let revoked: Vec<i32> =
                consumer.context().revoked.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
            if revoked.iter().any(|p| txn.next_offsets.contains_key(p)) {
                // Work in flight for a partition we no longer own: roll everything back.
                drop(polled);
                tracing::warn!(?revoked, "partitions revoked mid-transaction; aborting and reloading");
                self.abort_and_rewind(&producer, &consumer, &mut stores, &mut txn)?;
                continue;
            }
            for p in &revoked {
                stores.remove(p);
            }
            match polled {
                None => {}
                Some(Err(e)) => tracing::warn!(error = %e, "kafka consumer error"),
                Some(Ok(m)) => {
                    if !txn.open {
                        producer.begin_transaction().context("beginning a transaction")?;
                        txn.open = true;
                        txn.started = Some(Instant::now());
                    }
                    let partition = m.partition();
                    let store = match stores.entry(partition) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(self.load_partition(&loader, partition)?)
                        }
                    };
                    let payload = m.payload().unwrap_or_default();
                    let outcome = codec
                        .decode(payload)
                        .map_err(|e| e.to_string())
                        .and_then(|ev| self.enricher.enrich(store, &ev));
                    match outcome {
                        Ok(out) => {
                            let bytes =
                                codec.encode_enriched(&out.event).context("encoding an enriched event")?;
                            let key = key_hex(&out.key);
                            send(
                                &producer,
                                BaseRecord::to(&self.cfg.output_topic).key(&key).payload(&bytes),
                            )?;
                            if out.state_changed {
                                txn.touched.entry(partition).or_default().insert(out.key);
                            }
                            self.metrics.enriched.with_label_values(&[kind(&out.event)]).inc();
                            self.metrics.uncoded_reactions.inc_by(out.uncoded as u64);
                        }
                        Err(reason) => {
                            tracing::warn!(partition, offset = m.offset(), %reason, "event to dead-letter topic");
                            let headers = pv_runtime::kafka::dead_letter_headers(
                                &reason,
                                m.topic(),
                                partition,
                                m.offset(),
                                "enrich",
                            );
                            let mut record =
                                BaseRecord::to(&self.cfg.dlq_topic).payload(payload).headers(headers);
                            if let Some(k) = m.key() {
                                record = record.key(k);
                            }
                            send(&producer, record)?;
                            self.metrics.dead_letters.inc();
                        }
                    }
                    txn.next_offsets.insert(partition, m.offset() + 1);
                    txn.messages += 1;
                    if fault.is_some_and(|n| committed + 1 >= n)
                        && txn.messages * 2 >= self.cfg.batch_max_messages
                    {
                        tracing::error!("fault injection: aborting mid-transaction");
                        std::process::abort();
                    }
                }
            }
            let due = txn.messages >= self.cfg.batch_max_messages
                || txn.started.is_some_and(|t| t.elapsed() >= max_wait);
            if txn.open && due {
                self.commit_or_rewind(&producer, &consumer, &mut stores, &mut txn)?;
                committed += 1;
            }
        }
        if txn.open {
            self.commit_or_rewind(&producer, &consumer, &mut stores, &mut txn)?;
        }
        tracing::info!("enricher stopped");
        Ok(())
    }

    /// Writes the changelog of touched patients, adds the offsets, commits. On an abortable
    /// error, rolls back and rewinds; fatal errors end the service (a restart recovers).
    fn commit_or_rewind(
        &self,
        producer: &Producer_,
        consumer: &Consumer_,
        stores: &mut HashMap<i32, PatientStore>,
        txn: &mut Txn,
    ) -> anyhow::Result<()> {
        match self.commit(producer, consumer, stores, txn) {
            Ok(()) => {
                self.metrics.transactions.inc();
                self.metrics.patients.set(stores.values().map(|s| s.len() as i64).sum());
                *txn = Txn::default();
                Ok(())
            }
            Err(KafkaError::Transaction(e)) if is_fencing(e.code()) => Err(Fenced(e.to_string()).into()),
            Err(KafkaError::Transaction(e)) if e.is_fatal() => {
                Err(fenced_or(producer, anyhow::anyhow!("fatal transaction error: {e}")))
            }
            Err(e) => {
                tracing::warn!(error = %e, "transaction failed; aborting and reloading");
                self.abort_and_rewind(producer, consumer, stores, txn)
            }
        }
    }

    fn commit(
        &self,
        producer: &Producer_,
        consumer: &Consumer_,
        stores: &HashMap<i32, PatientStore>,
        txn: &Txn,
    ) -> Result<(), KafkaError> {
        let codec = EventCodec::global();
        for (&partition, keys) in &txn.touched {
            let Some(store) = stores.get(&partition) else { continue };
            for key in keys {
                let Some(state) = store.get(key) else { continue };
                let record: PatientStateRecord = state.to_record(key);
                let bytes = codec
                    .encode_record(&record)
                    .map_err(|_| KafkaError::MessageProduction(RDKafkaErrorCode::InvalidMessage))?;
                let key = key_hex(key);
                let rec =
                    BaseRecord::to(&self.cfg.changelog_topic).partition(partition).key(&key).payload(&bytes);
                send(producer, rec)
                    .map_err(|_| KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))?;
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (&p, &next) in &txn.next_offsets {
            offsets.add_partition_offset(&self.cfg.input_topic, p, Offset::Offset(next))?;
        }
        let group =
            consumer.group_metadata().ok_or(KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownGroup))?;
        producer.send_offsets_to_transaction(&offsets, &group, KAFKA_TIMEOUT)?;
        let mut attempt = 0;
        loop {
            match producer.commit_transaction(KAFKA_TIMEOUT) {
                Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < 5 => attempt += 1,
                other => return other,
            }
        }
    }

    /// Aborts the open transaction, forgets all state and rewinds every assigned partition to
    /// its committed offset: what follows starts again from the last committed point.
    fn abort_and_rewind(
        &self,
        producer: &Producer_,
        consumer: &Consumer_,
        stores: &mut HashMap<i32, PatientStore>,
        txn: &mut Txn,
    ) -> anyhow::Result<()> {
        self.metrics.aborts.inc();
        if txn.open {
            producer.abort_transaction(KAFKA_TIMEOUT).context("aborting the transaction")?;
        }
        *txn = Txn::default();
        stores.clear();
        let assignment = consumer.assignment().context("reading the assignment")?;
        let committed =
            consumer.committed_offsets(assignment, KAFKA_TIMEOUT).context("reading committed offsets")?;
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            consumer.seek(e.topic(), e.partition(), offset, KAFKA_TIMEOUT).context("rewinding")?;
        }
        Ok(())
    }

    /// Reads one changelog partition to its end (committed records only).
    fn load_partition(&self, loader: &BaseConsumer, partition: i32) -> anyhow::Result<PatientStore> {
        let started = Instant::now();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.cfg.changelog_topic, partition, Offset::Beginning)?;
        loader.assign(&tpl).context("assigning the changelog partition")?;
        let codec = EventCodec::global();
        let mut store = PatientStore::new();
        loop {
            match loader.poll(Duration::from_secs(1)) {
                Some(Ok(m)) => {
                    let record: PatientStateRecord = codec
                        .decode_record(m.payload().unwrap_or_default())
                        .with_context(|| format!("changelog partition {partition} offset {}", m.offset()))?;
                    let (key, state): (PatientKey, PatientState) = PatientState::from_record(&record)
                        .with_context(|| format!("malformed state at changelog offset {}", m.offset()))?;
                    store.insert(key, state);
                }
                Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
                Some(Err(e)) => tracing::warn!(error = %e, "changelog read error"),
                None if started.elapsed() > Duration::from_secs(300) => {
                    bail!("changelog partition {partition} not read to its end within 5 minutes")
                }
                None => {}
            }
        }
        self.metrics.state_load_seconds.observe(started.elapsed().as_secs_f64());
        tracing::info!(
            partition,
            patients = store.len(),
            ms = started.elapsed().as_millis() as u64,
            "state loaded"
        );
        Ok(store)
    }

    /// The changelog must have a partition for every input partition.
    fn check_partitions(&self, consumer: &Consumer_) -> anyhow::Result<()> {
        let count = |topic: &str| -> anyhow::Result<usize> {
            let md = consumer.fetch_metadata(Some(topic), KAFKA_TIMEOUT)?;
            let t = md.topics().first().with_context(|| format!("no metadata for {topic}"))?;
            if let Some(e) = t.error() {
                bail!("topic {topic}: {e:?} (create it: deploy/local/start.sh)");
            }
            Ok(t.partitions().len())
        };
        let (input, changelog) = (count(&self.cfg.input_topic)?, count(&self.cfg.changelog_topic)?);
        if changelog < input {
            bail!(
                "{} has {changelog} partitions but {} has {input}",
                self.cfg.changelog_topic,
                self.cfg.input_topic
            );
        }
        Ok(())
    }
}

fn kind(e: &EnrichedEvent) -> &'static str {
    match e {
        EnrichedEvent::Dose(_) => "dose",
        EnrichedEvent::Monitoring(_) => "monitoring",
        EnrichedEvent::AdverseEvent(_) => "adverse_event",
    }
}

/// This instance's transactions were fenced by a newer producer with the same transactional id.
#[derive(Debug, thiserror::Error)]
#[error("fenced: another enricher runs with this transactional id; each instance needs its own ({0})")]
struct Fenced(String);

/// Enqueues a record, waiting while librdkafka's queue is full.
fn send<K, P>(producer: &Producer_, mut record: BaseRecord<'_, K, P>) -> anyhow::Result<()>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let deadline = Instant::now() + KAFKA_TIMEOUT;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                record = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => return Err(fenced_or(producer, anyhow::Error::new(e).context("producing"))),
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

/// [`Fenced`] if the producer's fatal error is a fencing, else `error`.
fn fenced_or(producer: &Producer_, error: anyhow::Error) -> anyhow::Error {
    use rdkafka::producer::Producer as _;
    match producer.client().fatal_error() {
        Some((code, reason)) if is_fencing(code) => Fenced(reason).into(),
        _ => error,
    }
}
