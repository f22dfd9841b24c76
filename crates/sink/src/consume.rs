//! The sink loop, as explicit steps over a [`Feed`]:
//!
//! - **receive**: decode a message into the buffer of its table and partition (a row), or the
//!   dead-letter buffer;
//! - **start inserts**: while fewer than `inserts_in_flight` run, seal the buffer that is due
//!   (full by messages or bytes, the fullest when all together are full, else the oldest past
//!   `batch_max_wait_ms`, longer under load above `busy_rate` messages/s, or
//!   `backlog_max_wait_ms` while messages wait for the sink the whole `batch_max_wait_ms`;
//!   everything at the feed's end) and insert it while reading goes on;
//! - **durable**: an insert is acknowledged; the positions no open buffer and no insert in
//!   flight holds back go to the feed ([`Buffers::positions`]), whatever order inserts
//!   complete in;
//! - **back-pressure**: while the buffers hold `buffer_max_messages`, the feed pauses (the sink
//!   holds at most that, what the inserts in flight hold, and what the consumer prefetched, or
//!   a replay's read-ahead of 1,024 messages);
//! - **drain**: on shutdown or at the feed's end, finish the inserts in flight and insert every
//!   buffer within `shutdown_timeout_ms`, then close the feed (final commit). What is not
//!   durable by then is not committed and is read again by the next run.
//!
//! A message of a schema this build does not know (an enricher upgraded before the sink) halts
//! its partition: it and everything after it on that partition are skipped, never committed, and
//! read again by a sink that knows the schema; the sink logs it and `pv_sink_halted_partitions`
//! counts it. It is not dead-lettered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use pv_events::{CodecError, EventCodec};
use pv_runtime::Shutdown;
use pv_store::events::{AnyRow, Provenance};
use tokio::task::{JoinError, JoinSet};

use crate::batch::{Buffers, DeadLetter, Limits};
use crate::config::SinkConfig;
use crate::feed::{Feed, Incoming};
use crate::metrics::SinkMetrics;
use crate::rate::InputRate;
use crate::writer::{Interrupted, Writer};

/// A message that took at least this long to come means the loop had caught up with the feed.
const NO_BACKLOG_WAIT: Duration = Duration::from_millis(1);

/// What an insert task gives back: the unit's id, and whether it is durable.
type Done = Result<(u64, Result<(), Interrupted>), JoinError>;

/// What happened while the loop waited.
enum Step<'f> {
    Shutdown,
    Received(Incoming<'f>),
    Done(Done),
    FeedEnded,
    Waited,
}

/// The loop's state.
pub(crate) struct Consumption {
    cfg: SinkConfig,
    limits: Limits,
    metrics: SinkMetrics,
    writer: Arc<Writer>,
    buffers: Buffers,
    inserts: JoinSet<(u64, Result<(), Interrupted>)>,
    paused: bool,
    /// Partitions halted at a message of an unknown schema: offset and fingerprint.
    halted: BTreeMap<(String, i32), (i64, String)>,
    feed_ended: bool,
    /// When the feed last made the loop wait for a message (unpaused): long ago means a backlog.
    last_wait: Instant,
    /// Messages read per second (under load, buffers wait longer: [`Limits::age_limit`]).
    rate: InputRate,
    /// Messages read.
    messages: u64,
    /// Units made durable.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    flushes: u64,
}

impl Consumption {
    pub(crate) fn new(cfg: &SinkConfig, metrics: &SinkMetrics, writer: Writer) -> Self {
        Self {
            cfg: cfg.clone(),
            limits: cfg.limits(),
            metrics: metrics.clone(),
            writer: Arc::new(writer),
            buffers: Buffers::default(),
            inserts: JoinSet::new(),
            paused: false,
            halted: BTreeMap::new(),
            feed_ended: false,
            last_wait: Instant::now(),
            rate: InputRate::new(Instant::now()),
            messages: 0,
            flushes: 0,
        }
    }

    /// Runs the loop over `feed` until shutdown or the feed's end; returns the messages read.
    pub(crate) async fn run(mut self, feed: &mut Feed, shutdown: &Shutdown) -> u64 {
        loop {
            self.apply_backpressure(feed);
            if self.feed_ended && self.buffers.is_idle() {
                break;
            }
            // The clock is read twice per message: around the wait.
            let asked = Instant::now();
            let step = self.wait(feed, shutdown, asked).await;
            let now = Instant::now();
            match step {
                Step::Shutdown => break,
                Step::Received(message) => {
                    self.note_wait(now - asked, now);
                    self.rate.note(now);
                    self.receive(&message);
                }
                Step::Done(done) => self.done(feed, done),
                Step::FeedEnded => self.feed_ended = true,
                Step::Waited => self.note_wait(now - asked, now),
            }
            self.start_inserts(shutdown, self.feed_ended, now);
        }
        let messages = self.messages;
        self.drain(feed).await;
        messages
    }

    /// Whether the loop had to wait for the feed (not paused): the sink is not in a backlog.
    fn note_wait(&mut self, waited: Duration, now: Instant) {
        if !self.paused && waited >= NO_BACKLOG_WAIT {
            self.last_wait = now;
        }
    }

    /// Whether messages have been waiting for the sink for a whole `batch_max_wait_ms`.
    fn in_backlog(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_wait) > self.limits.max_wait
    }

    /// How long a buffer may stay open now: longer in a backlog, and under load.
    fn age_limit(&self, now: Instant) -> Duration {
        self.limits.age_limit(self.in_backlog(now), self.rate.per_second(now))
    }

    /// Waits for whichever comes first: shutdown, an insert's end, a message, the oldest
    /// buffer's deadline (when an insert could start).
    async fn wait<'f>(&mut self, feed: &'f mut Feed, shutdown: &Shutdown, now: Instant) -> Step<'f> {
        let max_wait = self.limits.max_wait;
        let slot_free = self.inserts.len() < self.cfg.inserts_in_flight;
        let wait =
            if slot_free { self.buffers.time_left(self.age_limit(now), now).min(max_wait) } else { max_wait };
        let reading = !self.feed_ended;
        let inserting = !self.inserts.is_empty();
        tokio::select! {
            biased;
            () = shutdown.wait() => Step::Shutdown,
            Some(done) = self.inserts.join_next(), if inserting => Step::Done(done),
            next = tokio::time::timeout(wait, feed.next()), if reading => match next {
                Err(_) => Step::Waited,
                Ok(None) => Step::FeedEnded,
                Ok(Some(message)) => Step::Received(message),
            },
            () = tokio::time::sleep(wait), if !reading => Step::Waited,
        }
    }

    /// Decodes `message` into its buffer: a row, or a dead letter with the reason.
    fn receive(&mut self, message: &Incoming<'_>) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        self.messages += 1;
        if !self.halted.is_empty() && self.halted.contains_key(&(topic.to_owned(), partition)) {
            return;
        }
        let payload = message.payload();
        let decoded = EventCodec::global().decode_enriched(payload);
        if let Err(CodecError::UnknownSchema(fingerprint)) = &decoded {
            tracing::error!(
                topic,
                partition,
                offset,
                %fingerprint,
                "partition halted: the message's schema is unknown to this build (an enricher newer than the \
                 sink?); deploy a sink that knows it: it starts from this message"
            );
            self.halted.insert((topic.to_owned(), partition), (offset, fingerprint.clone()));
            self.metrics.halted_partitions.set(self.halted.len() as i64);
            return;
        }
        let row = decoded.map_err(|e| e.to_string()).and_then(|event| {
            AnyRow::new(&event, Provenance { partition, offset }).map_err(|e| e.to_string())
        });
        match row {
            Ok(row) => self.buffers.push_row(row, topic, partition, offset, payload.len()),
            Err(reason) => {
                tracing::warn!(topic, partition, offset, %reason, "message to dead-letter topic");
                self.buffers.push_dead(DeadLetter {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                    key: message.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    reason,
                });
            }
        }
    }

    /// Seals due buffers into inserts while fewer than `inserts_in_flight` run (`draining`:
    /// every buffer is due).
    fn start_inserts(&mut self, shutdown: &Shutdown, draining: bool, now: Instant) {
        let age_limit = self.age_limit(now);
        self.metrics.buffer_age_limit.set(age_limit.as_secs_f64());
        while self.inserts.len() < self.cfg.inserts_in_flight {
            let Some(sealed) = self
                .buffers
                .next_due(&self.limits, draining, age_limit, now)
                .and_then(|s| self.buffers.seal(s))
            else {
                return;
            };
            let (writer, shutdown) = (self.writer.clone(), shutdown.clone());
            self.inserts.spawn(async move {
                let result = writer.flush(&sealed, &shutdown).await;
                (sealed.id, result)
            });
        }
    }

    /// An insert ended: when durable, the positions it held back may be committed.
    fn done(&mut self, feed: &Feed, done: Done) {
        match done {
            Ok((id, Ok(()))) => {
                self.flushes += 1;
                #[cfg(feature = "fault-injection")]
                crate::fault::abort_after_inserts(self.flushes);
                self.buffers.durable(id);
                feed.store(&self.buffers.positions());
            }
            // Shutdown came first: the unit stays in flight, holding its positions back.
            Ok((_, Err(Interrupted))) => {
                tracing::warn!("an insert was interrupted; its messages will be re-read")
            }
            Err(e) => {
                tracing::error!(error = %e, "an insert task failed; its messages will be re-read after a restart")
            }
        }
    }

    /// Pauses the feed while the buffers hold `buffer_max_messages`; resumes after.
    fn apply_backpressure(&mut self, feed: &mut Feed) {
        let full = self.buffers.buffered() >= self.cfg.buffer_max_messages;
        if full != self.paused {
            feed.set_paused(full);
            self.paused = full;
            self.metrics.paused.set(i64::from(full));
        }
    }

    /// Finishes the inserts in flight, then inserts every buffer (all within
    /// `shutdown_timeout_ms`), then closes the feed. Positions never pass a message that is not
    /// durable, so whatever is left is read again by the next run.
    async fn drain(mut self, feed: &mut Feed) {
        if self.paused {
            feed.set_paused(false);
            self.metrics.paused.set(0);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.cfg.shutdown_timeout_ms);
        // Not interrupted by the shutdown that got us here: finish unless time runs out.
        let finishing = Shutdown::new();
        loop {
            self.start_inserts(&finishing, true, Instant::now());
            match tokio::time::timeout_at(deadline, self.inserts.join_next()).await {
                Ok(Some(done)) => self.done(feed, done),
                Ok(None) => break,
                Err(_) => {
                    self.inserts.abort_all();
                    break;
                }
            }
        }
        if !self.buffers.is_idle() {
            tracing::warn!(
                buffered = self.buffers.buffered(),
                inserts = self.buffers.in_flight(),
                "not everything was durable in time; it will be re-read"
            );
        }
        feed.close();
    }
}
