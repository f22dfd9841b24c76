//! The sink loop, as explicit steps over a [`Feed`]:
//!
//! - **receive**: decode a message into the open batch (a row, or a dead letter);
//! - **start flush**: when the batch is due (full, old, or the feed at its end) and no flush is
//!   in flight, hand it to a flush that runs while the next batch fills;
//! - **flushed**: the flush in flight is durable; its offsets go to the feed (stored in batch
//!   order, each only after its flush);
//! - **back-pressure**: while a flush is in flight and the open batch is full, the feed pauses
//!   (the sink holds at most the batch in flight and one full batch, plus what the consumer
//!   prefetched, or a replay's read-ahead of 1,024 messages);
//! - **drain**: on shutdown or at the feed's end, finish the flush in flight and the open batch
//!   within `shutdown_timeout_ms`, then close the feed (final commit). What is not durable by
//!   then is not committed and is read again by the next run.
//!
//! A message of a schema this build does not know (an enricher upgraded before the sink) halts
//! its partition: it and everything after it on that partition are skipped, never committed, and
//! read again by a sink that knows the schema; the sink logs it and `pv_sink_halted_partitions`
//! counts it. It is not dead-lettered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use pv_events::{CodecError, EventCodec};
use pv_runtime::Shutdown;
use pv_store::events::{AnyRow, Provenance};

use crate::batch::{Batch, DeadLetter};
use crate::config::SinkConfig;
use crate::feed::{Feed, Incoming};
use crate::metrics::SinkMetrics;
use crate::writer::{Interrupted, Writer};

/// A flush running while the next batch fills: it gives its batch back when done.
type Flush = Pin<Box<dyn Future<Output = (Batch, Result<(), Interrupted>)> + Send>>;

/// What happened while the loop waited.
enum Step<'f> {
    Shutdown,
    Received(Incoming<'f>),
    Flushed(Batch, Result<(), Interrupted>),
    FeedEnded,
    Waited,
}

/// The loop's state.
pub(crate) struct Consumption {
    cfg: SinkConfig,
    metrics: SinkMetrics,
    writer: Arc<Writer>,
    batch: Batch,
    in_flight: Option<Flush>,
    paused: bool,
    /// Partitions halted at a message of an unknown schema: offset and fingerprint.
    halted: BTreeMap<(String, i32), (i64, String)>,
    feed_ended: bool,
    /// Messages read.
    messages: u64,
    /// Flushes made durable.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    flushes: u64,
}

impl Consumption {
    pub(crate) fn new(cfg: &SinkConfig, metrics: &SinkMetrics, writer: Writer) -> Self {
        Self {
            cfg: cfg.clone(),
            metrics: metrics.clone(),
            writer: Arc::new(writer),
            batch: Batch::default(),
            in_flight: None,
            paused: false,
            halted: BTreeMap::new(),
            feed_ended: false,
            messages: 0,
            flushes: 0,
        }
    }

    /// Runs the loop over `feed` until shutdown or the feed's end; returns the messages read.
    pub(crate) async fn run(mut self, feed: &mut Feed, shutdown: &Shutdown) -> u64 {
        let mut in_order = true;
        loop {
            self.apply_backpressure(feed);
            if self.feed_ended && self.in_flight.is_none() && self.batch.is_empty() {
                break;
            }
            match self.wait(feed, shutdown).await {
                Step::Shutdown => break,
                Step::Received(message) => self.receive(&message),
                Step::Flushed(batch, Ok(())) => self.flushed(feed, &batch),
                Step::Flushed(_, Err(Interrupted)) => {
                    in_order = false;
                    break;
                }
                Step::FeedEnded => self.feed_ended = true,
                Step::Waited => {}
            }
            self.start_flush_if_due(shutdown);
        }
        let messages = self.messages;
        self.drain(feed, in_order).await;
        messages
    }

    /// Waits for whichever comes first: shutdown, the flush in flight, a message, the batch's
    /// deadline.
    async fn wait<'f>(&mut self, feed: &'f mut Feed, shutdown: &Shutdown) -> Step<'f> {
        let max_wait = Duration::from_millis(self.cfg.batch_max_wait_ms);
        let wait = if self.in_flight.is_some() { max_wait } else { self.batch.time_left(max_wait) };
        let reading = !self.feed_ended;
        tokio::select! {
            biased;
            () = shutdown.wait() => Step::Shutdown,
            (batch, result) = async { self.in_flight.as_mut().expect("guarded").await }, if self.in_flight.is_some() => {
                self.in_flight = None;
                Step::Flushed(batch, result)
            }
            next = tokio::time::timeout(wait, feed.next()), if reading => match next {
                Err(_) => Step::Waited,
                Ok(None) => Step::FeedEnded,
                Ok(Some(message)) => Step::Received(message),
            },
            () = tokio::time::sleep(wait), if !reading => Step::Waited,
        }
    }

    /// Decodes `message` into the open batch: a row, or a dead letter with the reason.
    fn receive(&mut self, message: &Incoming<'_>) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        self.messages += 1;
        if self.halted.contains_key(&(topic.to_owned(), partition)) {
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
            Ok(row) => self.batch.push_row(row, topic, partition, offset),
            Err(reason) => {
                tracing::warn!(topic, partition, offset, %reason, "message to dead-letter topic");
                self.batch.push_dead(DeadLetter {
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

    /// Hands the open batch to a flush when it is due and none is in flight.
    fn start_flush_if_due(&mut self, shutdown: &Shutdown) {
        let max_wait = Duration::from_millis(self.cfg.batch_max_wait_ms);
        let due = self.batch.is_due(self.cfg.batch_max_messages, max_wait)
            || (self.feed_ended && !self.batch.is_empty());
        if self.in_flight.is_none() && due {
            let batch = std::mem::take(&mut self.batch);
            let (writer, shutdown) = (self.writer.clone(), shutdown.clone());
            self.in_flight = Some(Box::pin(async move {
                let result = writer.flush(&batch, &shutdown).await;
                (batch, result)
            }));
        }
    }

    /// The flush in flight is durable: its offsets may be committed.
    fn flushed(&mut self, feed: &Feed, batch: &Batch) {
        self.flushes += 1;
        #[cfg(feature = "fault-injection")]
        crate::fault::abort_after_inserts(self.flushes);
        feed.durable(batch);
    }

    /// Pauses the feed while a flush is in flight and the open batch is full; resumes after.
    fn apply_backpressure(&mut self, feed: &mut Feed) {
        let full = self.in_flight.is_some() && self.batch.len() >= self.cfg.batch_max_messages;
        if full != self.paused {
            feed.set_paused(full);
            self.paused = full;
            self.metrics.paused.set(i64::from(full));
        }
    }

    /// Finishes the flush in flight, then the open batch (both within `shutdown_timeout_ms`),
    /// then closes the feed. Offsets cover everything up to the batch stored, so a later batch is
    /// stored only when every earlier one was: otherwise all of them are read again.
    async fn drain(mut self, feed: &mut Feed, mut in_order: bool) {
        if self.paused {
            feed.set_paused(false);
            self.metrics.paused.set(0);
        }
        let deadline = Instant::now() + Duration::from_millis(self.cfg.shutdown_timeout_ms);
        if let Some(flush) = self.in_flight.take() {
            match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), flush).await {
                Ok((batch, Ok(()))) if in_order => feed.durable(&batch),
                _ => {
                    in_order = false;
                    tracing::warn!("the flush in flight did not finish; its batch will be re-read");
                }
            }
        }
        if !self.batch.is_empty() && in_order {
            // Not interrupted by the shutdown that got us here: finish unless time runs out.
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.writer.flush(&self.batch, &Shutdown::new())).await {
                Ok(Ok(())) => feed.durable(&self.batch),
                _ => tracing::warn!(
                    messages = self.batch.len(),
                    "last batch not durable in time; it will be re-read"
                ),
            }
        } else if !self.batch.is_empty() {
            tracing::warn!(messages = self.batch.len(), "last batch not flushed; it will be re-read");
        }
        feed.close();
    }
}
