//! The sink's buffers, without I/O: rows grouped by the table and partition they land in (so
//! that one insert writes one part), dead letters, and the Kafka positions that are safe to
//! commit. The loop ([`crate::consume`]) decides when to seal a buffer into an insert and the
//! writer does the writing.
//!
//! Delivery: a buffer, once sealed, is a [`Sealed`] unit in flight until the loop reports it
//! durable. The position committed for a Kafka partition is the lowest offset any open buffer or
//! unit in flight still holds from it; with none, one past the highest offset read. Units of
//! different partitions may complete in any order: a position never passes a row that is not
//! durable.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
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

/// What one buffer holds, and what one flush writes: the rows of one table (in one partition),
/// or dead letters.
#[derive(Debug)]
pub enum Unit {
    /// Rows for `doses`.
    Doses(Rows<DoseRow>),
    /// Rows for `monitoring_forms`.
    Monitoring(Rows<MonitoringRow>),
    /// Rows for `ae_report_versions`.
    AdverseEvents(Rows<AdverseEventRow>),
    /// Rows for `enrolments`.
    Enrolments(Rows<EnrolmentRow>),
    /// Messages for the dead-letter topic.
    DeadLetters(Vec<DeadLetter>),
}

impl Unit {
    /// Rows or dead letters held.
    pub fn len(&self) -> usize {
        match self {
            Unit::Doses(r) => r.len(),
            Unit::Monitoring(r) => r.len(),
            Unit::AdverseEvents(r) => r.len(),
            Unit::Enrolments(r) => r.len(),
            Unit::DeadLetters(d) => d.len(),
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a message goes: a table and its partition (`YYYYMM`), or the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// `doses`, partition month.
    Doses(u32),
    /// `monitoring_forms`, partition month.
    Monitoring(u32),
    /// `ae_report_versions`, partition month.
    AdverseEvents(u32),
    /// `enrolments`, partition month.
    Enrolments(u32),
    /// The dead-letter topic.
    DeadLetters,
}

impl Slot {
    fn of(row: &AnyRow) -> Slot {
        let month = row.partition_month();
        match row {
            AnyRow::Dose(_) => Slot::Doses(month),
            AnyRow::Monitoring(_) => Slot::Monitoring(month),
            AnyRow::AdverseEvent(_) => Slot::AdverseEvents(month),
            AnyRow::Enrolment(_) => Slot::Enrolments(month),
        }
    }

    /// The partition month, for a table.
    pub fn month(self) -> Option<u32> {
        match self {
            Slot::Doses(m) | Slot::Monitoring(m) | Slot::AdverseEvents(m) | Slot::Enrolments(m) => Some(m),
            Slot::DeadLetters => None,
        }
    }

    fn empty_unit(self) -> Unit {
        match self {
            Slot::Doses(_) => Unit::Doses(Rows::default()),
            Slot::Monitoring(_) => Unit::Monitoring(Rows::default()),
            Slot::AdverseEvents(_) => Unit::AdverseEvents(Rows::default()),
            Slot::Enrolments(_) => Unit::Enrolments(Rows::default()),
            Slot::DeadLetters => Unit::DeadLetters(Vec::new()),
        }
    }
}

/// A Kafka partition of an input topic.
type Partition = (Arc<str>, i32);

/// One open buffer.
#[derive(Debug)]
struct Buffer {
    unit: Unit,
    /// Bytes of the messages it holds (their payloads).
    bytes: usize,
    /// When its first message came.
    opened: Instant,
    /// The lowest offset it holds, per Kafka partition.
    lowest: BTreeMap<Partition, i64>,
}

/// A sealed buffer handed to the writer; durable once the loop says so.
#[derive(Debug)]
pub struct Sealed {
    /// Its id (for [`Buffers::durable`]).
    pub id: u64,
    /// Where it goes.
    pub slot: Slot,
    /// What it holds.
    pub unit: Unit,
}

/// When buffers are sealed (the sink's `batch_*` and `buffer_max_messages` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A buffer holding this many messages is due.
    pub max_messages: usize,
    /// A buffer holding this many payload bytes is due.
    pub max_bytes: usize,
    /// A buffer open this long is due.
    pub max_wait: Duration,
    /// ... or this long while the sink reads a backlog (latency is moot then, parts are not).
    pub backlog_max_wait: Duration,
    /// Above this input rate (messages per second; 0: never), `max_wait` grows in proportion ...
    pub busy_rate: u64,
    /// ... up to this.
    pub busy_max_wait: Duration,
    /// While the open buffers hold this many messages together, the fullest is due.
    pub max_buffered: usize,
}

impl Limits {
    /// How long a buffer may stay open: `max_wait`, longer in proportion to an input `rate`
    /// above `busy_rate` (twice the rate, twice the wait) up to `busy_max_wait`; in a `backlog`
    /// at least `backlog_max_wait`. A part costs ClickHouse about the same whatever its size, so
    /// under load the parts written per second stay flat and the latency grows instead.
    pub fn age_limit(&self, backlog: bool, rate: f64) -> Duration {
        let live = self.busy_wait(rate);
        if backlog { live.max(self.backlog_max_wait) } else { live }
    }

    /// `max_wait`, longer under a load above `busy_rate`.
    fn busy_wait(&self, rate: f64) -> Duration {
        let busy_rate = self.busy_rate as f64;
        if !(self.busy_rate > 0 && rate > busy_rate) {
            return self.max_wait;
        }
        // Finite and above 1 (`rate` is above a positive `busy_rate`).
        let factor = (rate / busy_rate).min(1_000.0);
        self.max_wait.mul_f64(factor).min(self.busy_max_wait).max(self.max_wait)
    }
}

/// Every open buffer, the units in flight, and the positions read.
#[derive(Debug, Default)]
pub struct Buffers {
    open: BTreeMap<Slot, Buffer>,
    /// Units in flight: their lowest offset per Kafka partition.
    in_flight: BTreeMap<u64, BTreeMap<Partition, i64>>,
    next_id: u64,
    /// Highest offset read, per Kafka partition.
    read: BTreeMap<Partition, i64>,
    /// Positions already returned by [`Buffers::positions`] (at first, the first offset read).
    returned: BTreeMap<Partition, i64>,
    /// Messages in the open buffers.
    buffered: usize,
    /// Topic names seen, shared by the sources (a sink reads one or a few topics).
    topics: Vec<Arc<str>>,
}

impl Buffers {
    /// Adds a row read from `topic`/`partition` at `offset` (`bytes`: its payload's size).
    pub fn push_row(&mut self, row: AnyRow, topic: &str, partition: i32, offset: i64, bytes: usize) {
        let topic = self.intern(topic);
        let source = Source { topic: topic.clone(), partition, offset };
        let buffer = self.buffer(Slot::of(&row), (topic, partition), offset, bytes);
        match (&mut buffer.unit, row) {
            (Unit::Doses(rows), AnyRow::Dose(r)) => rows.push(r, source),
            (Unit::Monitoring(rows), AnyRow::Monitoring(r)) => rows.push(r, source),
            (Unit::AdverseEvents(rows), AnyRow::AdverseEvent(r)) => rows.push(r, source),
            (Unit::Enrolments(rows), AnyRow::Enrolment(r)) => rows.push(r, source),
            _ => unreachable!("a slot's unit holds the rows of its table"),
        }
    }

    /// Adds a dead letter (its source position counts as read).
    pub fn push_dead(&mut self, dead: DeadLetter) {
        let topic = self.intern(&dead.topic);
        let (partition, offset, bytes) = (dead.partition, dead.offset, dead.payload.len());
        if let Unit::DeadLetters(letters) =
            &mut self.buffer(Slot::DeadLetters, (topic, partition), offset, bytes).unit
        {
            letters.push(dead);
        }
    }

    /// The open buffer for `slot` (opened if need be), with one more message counted in it.
    fn buffer(&mut self, slot: Slot, at: Partition, offset: i64, bytes: usize) -> &mut Buffer {
        match self.read.entry(at.clone()) {
            Entry::Occupied(mut read) => *read.get_mut() = (*read.get()).max(offset),
            Entry::Vacant(read) => {
                read.insert(offset);
                // Where reading started needs no commit: positions are returned once they pass it.
                self.returned.insert(at.clone(), offset);
            }
        }
        self.buffered += 1;
        let buffer = self.open.entry(slot).or_insert_with(|| Buffer {
            unit: slot.empty_unit(),
            bytes: 0,
            opened: Instant::now(),
            lowest: BTreeMap::new(),
        });
        buffer.bytes += bytes;
        let lowest = buffer.lowest.entry(at).or_insert(offset);
        *lowest = (*lowest).min(offset);
        buffer
    }

    fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.iter().find(|t| &***t == topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        self.topics.push(t.clone());
        t
    }

    /// Messages in the open buffers.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Units sealed and not yet durable.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is open or in flight.
    pub fn is_idle(&self) -> bool {
        self.open.is_empty() && self.in_flight.is_empty()
    }

    /// The buffer to seal next, if one is due: the fullest of those at `max_messages` or
    /// `max_bytes`, or the fullest when all together hold `max_buffered`; else the oldest of
    /// those open `age_limit` ([`Limits::age_limit`]); with `draining`, the fullest of any.
    /// `now` is read once by the caller: the clock per buffer per message showed in the sink's
    /// profile.
    pub fn next_due(
        &self,
        limits: &Limits,
        draining: bool,
        age_limit: Duration,
        now: Instant,
    ) -> Option<Slot> {
        let fullest = || self.open.iter().max_by_key(|(_, b)| b.unit.len()).map(|(s, _)| *s);
        let full = self
            .open
            .iter()
            .filter(|(_, b)| b.unit.len() >= limits.max_messages || b.bytes >= limits.max_bytes)
            .max_by_key(|(_, b)| b.unit.len())
            .map(|(s, _)| *s);
        if full.is_some() {
            return full;
        }
        if draining || self.buffered >= limits.max_buffered {
            return fullest();
        }
        self.open
            .iter()
            .filter(|(_, b)| now.saturating_duration_since(b.opened) >= age_limit)
            .min_by_key(|(_, b)| b.opened)
            .map(|(s, _)| *s)
    }

    /// Time from `now` until the oldest open buffer is due by age (`max_wait` when none is open).
    pub fn time_left(&self, max_wait: Duration, now: Instant) -> Duration {
        self.open
            .values()
            .map(|b| max_wait.saturating_sub(now.saturating_duration_since(b.opened)))
            .min()
            .unwrap_or(max_wait)
    }

    /// Seals the buffer of `slot` into a unit in flight.
    pub fn seal(&mut self, slot: Slot) -> Option<Sealed> {
        let buffer = self.open.remove(&slot)?;
        let id = self.next_id;
        self.next_id += 1;
        self.buffered -= buffer.unit.len();
        self.in_flight.insert(id, buffer.lowest);
        Some(Sealed { id, slot, unit: buffer.unit })
    }

    /// Unit `id` is durable: it no longer holds positions back.
    pub fn durable(&mut self, id: u64) {
        self.in_flight.remove(&id);
    }

    /// The positions to commit that moved since the last call: per Kafka partition, the next
    /// offset to read after everything durable (topic, partition, offset).
    pub fn positions(&mut self) -> Vec<(Arc<str>, i32, i64)> {
        let mut safe: BTreeMap<&Partition, i64> = self.read.iter().map(|(p, o)| (p, o + 1)).collect();
        let held = self.open.values().map(|b| &b.lowest).chain(self.in_flight.values());
        for lowest in held {
            for (p, o) in lowest {
                if let Some(s) = safe.get_mut(p) {
                    *s = (*s).min(*o);
                }
            }
        }
        let mut moved = Vec::new();
        for (p, o) in safe {
            if self.returned.get(p).is_none_or(|r| *r < o) {
                moved.push((p.0.clone(), p.1, o));
            }
        }
        for (t, p, o) in &moved {
            self.returned.insert((t.clone(), *p), *o);
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use pv_events::{Timestamp, sample};

    use super::*;
    use pv_store::events::Provenance;

    /// 2026-01-15 and 2026-02-15, as ms.
    const JAN: i64 = 1_768_435_200_000;
    const FEB: i64 = 1_771_113_600_000;

    fn dose(at_ms: i64) -> AnyRow {
        let mut d = sample::enriched_dose();
        d.administered_at = Timestamp::from_millis(at_ms);
        AnyRow::Dose(DoseRow::new(&d, Provenance { partition: 0, offset: 0 }))
    }

    fn dead(partition: i32, offset: i64) -> DeadLetter {
        DeadLetter { topic: "t".into(), partition, offset, key: None, payload: vec![1], reason: "bad".into() }
    }

    const LIMITS: Limits = Limits {
        max_messages: 3,
        max_bytes: 1 << 20,
        max_wait: Duration::from_secs(60),
        backlog_max_wait: Duration::from_secs(600),
        busy_rate: 10_000,
        busy_max_wait: Duration::from_secs(240),
        max_buffered: 100,
    };
    const LIVE: Duration = LIMITS.max_wait;
    const BACKLOG: Duration = LIMITS.backlog_max_wait;

    #[test]
    fn rows_are_grouped_by_table_and_month_with_their_sources() {
        let mut b = Buffers::default();
        b.push_row(dose(JAN), "t", 0, 0, 1);
        b.push_row(dose(FEB), "t", 0, 1, 1);
        b.push_row(dose(JAN), "t", 1, 7, 1);
        b.push_dead(dead(1, 8));
        assert_eq!(b.buffered(), 4);
        let jan = b.seal(Slot::Doses(202_601)).expect("january");
        let Unit::Doses(rows) = &jan.unit else { panic!("doses") };
        let at: Vec<(i32, i64)> = rows.sources.iter().map(|s| (s.partition, s.offset)).collect();
        assert_eq!(at, [(0, 0), (1, 7)], "each row keeps the position it came from");
        assert!(Arc::ptr_eq(&rows.sources[0].topic, &rows.sources[1].topic), "topic names shared");
        assert_eq!(b.seal(Slot::Doses(202_602)).map(|s| s.unit.len()), Some(1));
        assert_eq!(b.seal(Slot::DeadLetters).map(|s| s.unit.len()), Some(1));
        assert_eq!((b.buffered(), b.in_flight()), (0, 3));
    }

    #[test]
    fn positions_wait_for_every_unit_holding_their_rows_whatever_order_units_complete_in() {
        let mut b = Buffers::default();
        // Partition 0: offsets 0..6 alternate between January and February.
        for o in 0..6 {
            b.push_row(dose(if o % 2 == 0 { JAN } else { FEB }), "t", 0, o, 1);
        }
        assert_eq!(b.positions(), [], "nothing durable, nothing to commit");
        let jan = b.seal(Slot::Doses(202_601)).expect("jan");
        let feb = b.seal(Slot::Doses(202_602)).expect("feb");
        // February (offsets 1, 3, 5) completes first: January still holds offset 0.
        b.durable(feb.id);
        assert_eq!(b.positions(), [], "offset 0 is not durable");
        // More January rows arrive while January's unit is in flight.
        b.push_row(dose(JAN), "t", 0, 6, 1);
        b.durable(jan.id);
        assert_eq!(b.positions(), [(Arc::from("t"), 0, 6)], "up to the open buffer's row at 6");
        assert_eq!(b.positions(), [], "only positions that moved");
        let last = b.seal(Slot::Doses(202_601)).expect("jan again");
        b.durable(last.id);
        assert_eq!(b.positions(), [(Arc::from("t"), 0, 7)]);
        assert!(b.is_idle());
    }

    #[test]
    fn a_unit_never_made_durable_holds_its_partitions_forever_and_only_them() {
        let mut b = Buffers::default();
        b.push_row(dose(JAN), "t", 0, 10, 1);
        b.push_row(dose(FEB), "t", 1, 20, 1);
        b.push_row(dose(FEB), "t", 0, 11, 1);
        let jan = b.seal(Slot::Doses(202_601)).expect("jan");
        let feb = b.seal(Slot::Doses(202_602)).expect("feb");
        b.durable(feb.id);
        // January (partition 0, offset 10) was interrupted: partition 0 stays before it.
        assert_eq!(b.positions(), [(Arc::from("t"), 1, 21)]);
        assert_eq!(jan.unit.len(), 1);
        assert_eq!(b.in_flight(), 1);
    }

    #[test]
    fn dead_letters_hold_positions_like_rows() {
        let mut b = Buffers::default();
        b.push_dead(dead(3, 4));
        b.push_row(dose(JAN), "t", 3, 5, 1);
        let rows = b.seal(Slot::Doses(202_601)).expect("rows");
        b.durable(rows.id);
        assert_eq!(b.positions(), [], "the dead letter at 4 is not sent yet");
        let letters = b.seal(Slot::DeadLetters).expect("letters");
        b.durable(letters.id);
        assert_eq!(b.positions(), [(Arc::from("t"), 3, 6)]);
    }

    #[test]
    fn the_fullest_buffer_is_due_first_then_the_oldest() {
        let mut b = Buffers::default();
        let now = Instant::now();
        assert_eq!(b.next_due(&LIMITS, true, LIVE, now), None, "nothing open");
        b.push_row(dose(FEB), "t", 0, 0, 1);
        for o in 1..4 {
            b.push_row(dose(JAN), "t", 0, o, 1);
        }
        let now = Instant::now();
        assert_eq!(b.next_due(&LIMITS, false, LIVE, now), Some(Slot::Doses(202_601)), "full at 3");
        b.seal(Slot::Doses(202_601));
        assert_eq!(b.next_due(&LIMITS, false, LIVE, now), None, "one row, young");
        let later = |secs| now + Duration::from_secs(secs);
        assert_eq!(b.next_due(&LIMITS, false, LIVE, later(60)), Some(Slot::Doses(202_602)), "old");
        assert_eq!(b.next_due(&LIMITS, false, BACKLOG, later(60)), None, "not old enough in a backlog");
        assert_eq!(
            b.next_due(&LIMITS, false, BACKLOG, later(600)),
            Some(Slot::Doses(202_602)),
            "old in a backlog too"
        );
        assert_eq!(b.next_due(&LIMITS, true, LIVE, now), Some(Slot::Doses(202_602)), "draining");
        let small = Limits { max_messages: 100, max_bytes: 2, ..LIMITS };
        b.push_row(dose(JAN), "t", 0, 5, 1);
        b.push_row(dose(JAN), "t", 0, 6, 1);
        assert_eq!(b.next_due(&small, false, LIVE, now), Some(Slot::Doses(202_601)), "full by bytes");
        let crowded = Limits { max_messages: 100, max_buffered: 3, ..LIMITS };
        assert_eq!(
            b.next_due(&crowded, false, LIVE, now),
            Some(Slot::Doses(202_601)),
            "the fullest when crowded"
        );
    }

    #[test]
    fn buffers_wait_longer_in_proportion_to_a_rate_above_busy_rate_up_to_the_cap() {
        let secs = Duration::from_secs;
        assert_eq!(LIMITS.age_limit(false, 0.0), secs(60), "idle");
        assert_eq!(LIMITS.age_limit(false, 10_000.0), secs(60), "at busy_rate");
        assert_eq!(LIMITS.age_limit(false, 20_000.0), secs(120), "twice the rate, twice the wait");
        assert_eq!(LIMITS.age_limit(false, 30_000.0), secs(180));
        assert_eq!(LIMITS.age_limit(false, 1e9), secs(240), "capped");
        assert_eq!(LIMITS.age_limit(false, f64::NAN), secs(60), "no rate: no longer wait");
        assert_eq!(LIMITS.age_limit(true, 20_000.0), secs(600), "a backlog waits its own wait");
        let short_backlog = Limits { backlog_max_wait: secs(60), ..LIMITS };
        assert_eq!(short_backlog.age_limit(true, 20_000.0), secs(120), "... or the load's, if longer");
        let off = Limits { busy_rate: 0, ..LIMITS };
        assert_eq!(off.age_limit(false, 1e6), secs(60), "busy_rate 0: off");
        let low_cap = Limits { busy_max_wait: secs(1), ..LIMITS };
        assert_eq!(low_cap.age_limit(false, 1e6), secs(60), "a cap below max_wait counts as max_wait");
    }

    #[test]
    fn time_left_is_that_of_the_oldest_buffer() {
        let mut b = Buffers::default();
        let wait = Duration::from_secs(60);
        assert_eq!(b.time_left(wait, Instant::now()), wait);
        b.push_row(dose(JAN), "t", 0, 0, 1);
        let opened = Instant::now();
        b.push_row(dose(FEB), "t", 0, 1, 1);
        let left = b.time_left(wait, opened + Duration::from_secs(20));
        assert!(left <= Duration::from_secs(40) && left > Duration::from_secs(39), "{left:?}");
        assert_eq!(b.time_left(wait, opened + Duration::from_secs(61)), Duration::ZERO);
    }
}
