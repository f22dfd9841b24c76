//! The sink's in-memory batch: rows per table, dead letters, and the offsets the batch covers.
//! No I/O: the run loop decides when to flush and does the writing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::rows::{AdverseEventRow, AnyRow, DoseRow, MonitoringRow};

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

/// Rows and dead letters read since the last flush.
#[derive(Debug, Default)]
pub struct Batch {
    /// Rows for `dose_administered`.
    pub doses: Vec<DoseRow>,
    /// Rows for `session_monitoring`.
    pub monitoring: Vec<MonitoringRow>,
    /// Rows for `adverse_event_report`.
    pub adverse_events: Vec<AdverseEventRow>,
    /// Messages for the dead-letter topic.
    pub dead_letters: Vec<DeadLetter>,
    /// (topic, partition) -> highest offset read.
    offsets: BTreeMap<(String, i32), i64>,
    messages: usize,
    opened: Option<Instant>,
}

impl Batch {
    /// Adds a row read from `topic`/`partition` at `offset`.
    pub fn push_row(&mut self, row: AnyRow, topic: &str, partition: i32, offset: i64) {
        match row {
            AnyRow::Dose(r) => self.doses.push(r),
            AnyRow::Monitoring(r) => self.monitoring.push(r),
            AnyRow::AdverseEvent(r) => self.adverse_events.push(r),
        }
        self.track(topic, partition, offset);
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
    use crate::rows::Provenance;

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
