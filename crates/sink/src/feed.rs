//! Where the sink's messages come from, and what becomes of their offsets.
//!
//! - [`GroupFeed`]: a member of the sink's consumer group. A position is stored once every
//!   message before it is durable and committed by librdkafka (in the background and on close).
//!   Back-pressure pauses
//!   fetching per partition; [`SinkContext`] keeps that pause on every partition across
//!   rebalances (librdkafka remembers an application pause on a partition through revoke and
//!   re-assign, so each assignment gets the wanted state applied explicitly).
//! - [`ReplayFeed`]: every partition of the topics from its earliest retained offset to its
//!   end, read by a [`PartitionReader`] on its own thread, in no group, committing nothing;
//!   its bounded channel is the back-pressure.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pv_runtime::KafkaConfig;
use pv_runtime::kafka::PartitionReader;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

/// A message read, from the group's consumer or from a replay.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// From the consumer group.
    Borrowed(BorrowedMessage<'a>),
    /// From a replay.
    Owned(OwnedMessage),
}

impl Incoming<'_> {
    /// Its topic.
    pub fn topic(&self) -> &str {
        match self {
            Incoming::Borrowed(m) => m.topic(),
            Incoming::Owned(m) => m.topic(),
        }
    }

    /// Its partition.
    pub fn partition(&self) -> i32 {
        match self {
            Incoming::Borrowed(m) => m.partition(),
            Incoming::Owned(m) => m.partition(),
        }
    }

    /// Its offset.
    pub fn offset(&self) -> i64 {
        match self {
            Incoming::Borrowed(m) => m.offset(),
            Incoming::Owned(m) => m.offset(),
        }
    }

    /// Its key.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Incoming::Borrowed(m) => m.key(),
            Incoming::Owned(m) => m.key(),
        }
    }

    /// Its payload (empty for none).
    pub fn payload(&self) -> &[u8] {
        match self {
            Incoming::Borrowed(m) => m.payload(),
            Incoming::Owned(m) => m.payload(),
        }
        .unwrap_or_default()
    }
}

/// Where the sink loop reads.
#[derive(Debug)]
pub enum Feed {
    /// A member of the consumer group.
    Group(GroupFeed),
    /// A replay of the topics.
    Replay(ReplayFeed),
}

impl Feed {
    /// The next message; `None` once there is nothing more to read (a replay at its end).
    pub async fn next(&mut self) -> Option<Incoming<'_>> {
        match self {
            Feed::Group(g) => Some(g.next().await),
            Feed::Replay(r) => r.next().await,
        }
    }

    /// Stops (or restarts) fetching while the sink holds as much as it may.
    pub fn set_paused(&mut self, paused: bool) {
        match self {
            Feed::Group(g) => g.set_paused(paused),
            Feed::Replay(r) => r.paused = paused,
        }
    }

    /// Everything before these positions (topic, partition, next offset) is durable: they may
    /// be committed.
    pub fn store(&self, positions: &[(Arc<str>, i32, i64)]) {
        if let Feed::Group(g) = self {
            g.store(positions);
        }
    }

    /// Before exiting: commits what was stored.
    pub fn close(&self) {
        if let Feed::Group(g) = self {
            g.commit();
        }
    }
}

/// The consumer context of the group feed: applies the pause the sink wants to every partition
/// it is assigned, and knows which partitions are paused.
#[derive(Debug, Default)]
pub struct SinkContext {
    /// Whether the sink wants fetching paused.
    wanted: AtomicBool,
    /// The assigned partitions fetching is paused for.
    paused: Mutex<BTreeSet<(String, i32)>>,
}

impl ClientContext for SinkContext {}

impl ConsumerContext for SinkContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.apply(consumer, tpl, self.wanted.load(Ordering::SeqCst)),
            Rebalance::Revoke(tpl) => {
                if let Ok(mut paused) = self.paused.lock() {
                    for e in tpl.elements() {
                        paused.remove(&(e.topic().to_owned(), e.partition()));
                    }
                }
            }
            Rebalance::Error(_) => {}
        }
    }
}

impl SinkContext {
    /// Pauses (or resumes) fetching for `partitions` and records it.
    fn apply<C: Consumer<Self>>(&self, consumer: &C, partitions: &TopicPartitionList, pause: bool) {
        if partitions.count() == 0 {
            return;
        }
        let result = if pause { consumer.pause(partitions) } else { consumer.resume(partitions) };
        if let Err(e) = result {
            tracing::warn!(error = %e, pause, "cannot pause/resume partitions");
            return;
        }
        if let Ok(mut paused) = self.paused.lock() {
            for e in partitions.elements() {
                let key = (e.topic().to_owned(), e.partition());
                if pause {
                    paused.insert(key);
                } else {
                    paused.remove(&key);
                }
            }
        }
    }

    /// The partitions fetching is paused for.
    pub fn paused(&self) -> BTreeSet<(String, i32)> {
        self.paused.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// A member of the sink's consumer group.
pub struct GroupFeed {
    consumer: StreamConsumer<SinkContext>,
}

impl std::fmt::Debug for GroupFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupFeed").finish_non_exhaustive()
    }
}

impl GroupFeed {
    /// Joins `group` on `topics` (at-least-once: offsets are stored only by [`GroupFeed::store`]).
    pub fn subscribe(kafka: &KafkaConfig, group: &str, topics: &[String]) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer<SinkContext> =
            pv_runtime::kafka::consumer_config(kafka, group).create_with_context(SinkContext::default())?;
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(Self { consumer })
    }

    /// The next message (consumer errors are logged and reading goes on). Rebalances are
    /// served while waiting.
    pub async fn next(&self) -> Incoming<'_> {
        loop {
            match self.consumer.recv().await {
                Ok(m) => return Incoming::Borrowed(m),
                Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
            }
        }
    }

    /// Pauses (or resumes) fetching for every assigned partition, and for every partition
    /// assigned later until it changes again.
    pub fn set_paused(&self, paused: bool) {
        let context = self.consumer.context();
        context.wanted.store(paused, Ordering::SeqCst);
        match self.consumer.assignment() {
            Ok(assignment) => context.apply(&self.consumer, &assignment, paused),
            Err(e) => tracing::warn!(error = %e, "cannot read the assignment"),
        }
        if paused {
            tracing::debug!("consumption paused until inserts make room in the buffers");
        } else {
            tracing::debug!("consumption resumed");
        }
    }

    /// The consumer's context (which partitions are paused).
    pub fn context(&self) -> &SinkContext {
        self.consumer.context()
    }

    /// The partitions assigned to this member.
    pub fn assigned(&self) -> BTreeSet<(String, i32)> {
        let assignment = self.consumer.assignment().unwrap_or_default();
        assignment.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect()
    }

    /// Stores positions for the background committer.
    fn store(&self, positions: &[(Arc<str>, i32, i64)]) {
        if positions.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in positions {
            let (topic, partition, next) = (&**topic, *partition, *next);
            if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(next)) {
                tracing::warn!(error = %e, topic, partition, "cannot list offset; its messages will be re-read");
            }
        }
        if tpl.count() > 0
            && let Err(e) = self.consumer.store_offsets(&tpl)
        {
            // After a rebalance the partition may belong to another member: it re-reads and
            // dedup absorbs the copies. Anything else is logged; the data is already durable.
            tracing::warn!(error = %e, "cannot store offsets (partition revoked?); those messages will be re-read");
        }
    }

    /// Commits the stored offsets synchronously (on the way out).
    fn commit(&self) {
        // With enable.auto.offset.store=false this commits the *stored* offsets of the current
        // assignment (rd_kafka_commit with NULL offsets), i.e. only positions below every message not yet durable.
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(error = %e, "final commit failed; uncommitted messages will be re-read"),
        }
    }
}

/// A replay: every partition of the topics, read to its end on a thread of its own.
#[derive(Debug)]
pub struct ReplayFeed {
    messages: mpsc::Receiver<OwnedMessage>,
    /// The read thread: the partitions it read, or why it stopped short.
    reader: std::thread::JoinHandle<Result<usize, String>>,
    paused: bool,
}

/// How long a replay waits for the broker to give a message or a partition's end.
const REPLAY_PATIENCE: Duration = Duration::from_secs(600);

/// Messages read ahead of the sink loop (the read thread waits while they are not taken).
const REPLAY_READ_AHEAD: usize = 1024;

impl ReplayFeed {
    /// Starts reading `topics`, one after the other, on a thread of its own.
    pub fn start(kafka: &KafkaConfig, group: &str, topics: &[String]) -> Result<Self, KafkaError> {
        let reader = PartitionReader::new(kafka, &format!("{group}-replay"))?;
        let (tx, messages) = mpsc::channel(REPLAY_READ_AHEAD);
        let topics = topics.to_vec();
        let reader = std::thread::spawn(move || {
            let mut partitions = 0;
            for topic in &topics {
                partitions +=
                    replay_topic(&reader, topic, &tx).map_err(|e| format!("replaying {topic}: {e}"))?;
            }
            Ok(partitions)
        });
        Ok(Self { messages, reader, paused: false })
    }

    /// The next message; `None` once the read thread is done (at the end of the last topic, or
    /// stopped short: [`ReplayFeed::finish`] says which).
    async fn next(&mut self) -> Option<Incoming<'_>> {
        if self.paused {
            std::future::pending::<()>().await;
        }
        self.messages.recv().await.map(Incoming::Owned)
    }

    /// After the end: the partitions read, or why the replay stopped short.
    pub fn finish(mut self) -> Result<usize, String> {
        self.messages.close();
        self.reader.join().map_err(|_| "the replay's read thread panicked".to_string())?
    }
}

/// Reads every partition of `topic` from the beginning into `tx`; returns the partitions read.
fn replay_topic(
    reader: &PartitionReader,
    topic: &str,
    tx: &mpsc::Sender<OwnedMessage>,
) -> Result<usize, KafkaError> {
    tracing::info!(%topic, "replaying from the earliest offsets");
    let (partitions, _) =
        reader.read_all(topic, REPLAY_PATIENCE, |m| match tx.blocking_send(m.detach()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()), // the sink stopped reading
        })?;
    Ok(partitions)
}
