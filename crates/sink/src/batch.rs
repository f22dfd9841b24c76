//! The sink's in-memory batch: rows per table (each with the Kafka position it came from), dead
//! letters, and the offsets the batch covers. No I/O: the loop ([`crate::consume`]) decides when
//! to flush and the writer does the writing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pv_store::events::{AdverseEventRow, AnyRow, DoseRow, EnrolmentRow, MonitoringRow};

/// A message that cannot become a row, bound for the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Original key.
    pub key: Option<Vec<u8>>,
    /// Original payload, unchanged.
    pub payload: Vec<u8>,
    /// Why it was refused.
    pub reason: String,
}

/// The Kafka message a row was made from (to dead-letter it if ClickHouse refuses the row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Source topic.
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
}

/// The rows of one table, each with its source message.
#[derive(Debug)]
pub struct Rows<T> {
    /// The rows, in the order they were read.
    pub rows: Vec<T>,
    /// `sources[i]` is where `rows[i]` came from.
    pub sources: Vec<Source>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self { rows: Vec::new(), sources: Vec::new() }
    }
}

impl<T> Rows<T> {
    fn push(&mut self, row: T, source: Source) {
        self.rows.push(row);
        self.sources.push(source);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Rows and dead letters read since the last flush.
#[derive(Debug, Default)]
pub struct Batch {
    /// Rows for `doses`.
    pub doses: Rows<DoseRow>,
    /// Rows for `monitoring_forms`.
    pub monitoring: Rows<MonitoringRow>,
    /// Rows for `ae_report_versions`.
    pub adverse_events: Rows<AdverseEventRow>,
    /// Rows for `enrolments`.
    pub enrolments: Rows<EnrolmentRow>,
    /// Messages for the dead-letter topic.
    pub dead_letters: Vec<DeadLetter>,
    /// (topic, partition) -> highest offset read.
    offsets: BTreeMap<(String, i32), i64>,
    messages: usize,
    opened: Option<Instant>,
    /// Topic names seen, shared by the sources (a sink reads one or a few topics).
    topics: Vec<Arc<str>>,
}

impl Batch {
    /// Adds a row read from `topic`/`partition` at `offset`.
    pub fn push_row(&mut self, row: AnyRow, topic: &str, partition: i32, offset: i64) {
        let source = Source { topic: self.intern(topic), partition, offset };
        match row {
            AnyRow::Dose(r) => self.doses.push(r, source),
            AnyRow::Monitoring(r) => self.monitoring.push(r, source),
            AnyRow::AdverseEvent(r) => self.adverse_events.push(r, source),
            AnyRow::Enrolment(r) => self.enrolments.push(r, source),
        }
        self.track(topic, partition, offset);
    }

    fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.iter().find(|t| &***t == topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        self.topics.push(t.clone());
        t
    }

    /// Adds a dead letter (its source position counts as read).
    pub fn push_dead(&mut self, dead: DeadLetter) {
        let (topic, partition, offset) = (dead.topic.clone(), dead.partition, dead.offset);
        self.dead_letters.push(dead);
        self.track(&topic, partition, offset);
    }

    fn track(&mut self, topic: &str, partition: i32, offset: i64) {
        self.opened.get_or_insert_with(Instant::now);
        self.messages += 1;
        let slot = self.offsets.entry((topic.to_owned(), partition)).or_insert(offset);
        *slot = (*slot).max(offset);
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.messages
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Time until the batch must be flushed (`max_wait` when empty).
    pub fn time_left(&self, max_wait: Duration) -> Duration {
        self.opened.map_or(max_wait, |t| max_wait.saturating_sub(t.elapsed()))
    }

    /// Whether the batch is due: full, or open for `max_wait`.
    pub fn is_due(&self, max_messages: usize, max_wait: Duration) -> bool {
        !self.is_empty() && (self.messages >= max_messages || self.time_left(max_wait).is_zero())
    }

    /// The offsets to commit once the batch is durable: next offset to read, per partition.
    pub fn commit_positions(&self) -> impl Iterator<Item = (&str, i32, i64)> + '_ {
        self.offsets.iter().map(|((t, p), o)| (t.as_str(), *p, o + 1))
    }
}

#[cfg(test)]
mod tests {
    use pv_events::sample;

    use super::*;
    use pv_store::events::Provenance;

    fn row() -> AnyRow {
        AnyRow::Dose(DoseRow::new(&sample::enriched_dose(), Provenance { partition: 0, offset: 0 }))
    }

    #[test]
    fn commit_positions_are_one_past_the_highest_offset_per_partition() {
        let mut b = Batch::default();
        b.push_row(row(), "t", 0, 7);
        b.push_row(row(), "t", 0, 5);
        b.push_row(row(), "t", 1, 3);
        b.push_dead(DeadLetter {
            topic: "t".into(),
            partition: 1,
            offset: 4,
            key: None,
            payload: vec![1],
            reason: "bad".into(),
        });
        let got: Vec<_> = b.commit_positions().collect();
        assert_eq!(got, [("t", 0, 8), ("t", 1, 5)]);
        assert_eq!((b.len(), b.doses.len(), b.dead_letters.len()), (4, 3, 1));
        let offsets: Vec<(i32, i64)> = b.doses.sources.iter().map(|s| (s.partition, s.offset)).collect();
        assert_eq!(offsets, [(0, 7), (0, 5), (1, 3)], "each row keeps the position it came from");
        assert!(Arc::ptr_eq(&b.doses.sources[0].topic, &b.doses.sources[2].topic), "topic names shared");
    }

    #[test]
    fn enrolment_rows_are_batched_with_their_positions_and_counted_in_the_offsets() {
        let mut b = Batch::default();
        let enrolment = AnyRow::Enrolment(EnrolmentRow::new(
            &sample::enriched_enrolment(),
            Provenance { partition: 2, offset: 9 },
        ));
        b.push_row(row(), "t", 2, 8);
        b.push_row(enrolment, "t", 2, 9);
        assert_eq!((b.len(), b.doses.len(), b.enrolments.len()), (2, 1, 1));
        let at: Vec<(i32, i64)> = b.enrolments.sources.iter().map(|s| (s.partition, s.offset)).collect();
        assert_eq!(at, [(2, 9)]);
        assert_eq!(b.commit_positions().collect::<Vec<_>>(), [("t", 2, 10)]);
    }

    #[test]
    fn a_batch_is_due_when_full_or_old() {
        let mut b = Batch::default();
        assert!(!b.is_due(1, Duration::ZERO), "an empty batch is never due");
        b.push_row(row(), "t", 0, 0);
        assert!(b.is_due(1, Duration::from_secs(60)), "full");
        assert!(!b.is_due(2, Duration::from_secs(60)));
        assert!(b.is_due(2, Duration::ZERO), "old");
    }
}
