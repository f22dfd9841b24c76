//! The signal event: one change in a signal's state, emitted on the signals topic (Avro,
//! `schemas/signal_event.v1.avsc`) and appended to the `signal_changes` table (migration 3), the
//! audit trail the current state is read back from.

use clickhouse::Row;
pub use pv_store::signals::SignalEvent;
use serde::Deserialize;

use crate::model::SignalResult;

/// What happened to a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A result became a signal.
    New,
    /// Still a signal, with a different number of cases.
    Updated,
    /// No longer a signal.
    Closed,
}

impl Change {
    /// The name carried in the event.
    pub fn name(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Updated => "updated",
            Change::Closed => "closed",
        }
    }
}

/// The id of a change: hex FNV-1a (64-bit) of the key, the change, the case count and the id of
/// the signal's previous change. The same change computed again (a run repeated after a crash
/// between emitting and recording) gets the same id, so consumers can drop the repeat.
pub fn event_id(key: &str, change: Change, n: u64, previous_event_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [key.as_bytes(), change.name().as_bytes(), &n.to_le_bytes(), previous_event_id.as_bytes()] {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The event for `change` of the signal whose latest result is `r` (`previous`: its latest
/// recorded change, if any).
pub fn change_event(
    r: &SignalResult,
    change: Change,
    previous: Option<&PreviousState>,
    run_at_ms: i64,
) -> SignalEvent {
    let first_signalled_at_ms = match (change, previous) {
        (Change::New, _) | (_, None) => run_at_ms,
        (_, Some(p)) => p.first_signalled_at_ms,
    };
    let previous_id = previous.map_or("", |p| p.event_id.as_str());
    let id = event_id(&r.key(), change, r.n, previous_id);
    SignalEvent::of_result(r, change.name(), id, run_at_ms, first_signalled_at_ms, previous.map(|p| p.n))
}

/// The latest recorded change of a signal.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct PreviousState {
    /// The signal.
    pub signal_key: String,
    /// Its latest change (`new`, `updated`, `closed`).
    pub change: String,
    /// Cases at that change.
    pub n: i64,
    /// When it was first raised.
    pub first_signalled_at_ms: i64,
    /// The id of that change.
    pub event_id: String,
}

impl PreviousState {
    /// Whether the signal is open (its latest change is not `closed`).
    pub fn is_open(&self) -> bool {
        self.change != Change::Closed.name()
    }
}

#[cfg(test)]
mod tests {
    use pv_events::EventCodec;

    use super::*;

    #[test]
    fn the_event_round_trips_through_its_avro_schema() {
        let r = SignalResult {
            analysis: "maxsprt".into(),
            time_window: "cumulative".into(),
            product: "ketamine".into(),
            n: 12,
            estimate: 3.0,
            upper: f64::INFINITY,
            llr: Some(8.1),
            ..SignalResult::default()
        };
        let e = change_event(&r, Change::New, None, 1_700_000_000_000);
        let codec = EventCodec::global();
        let bytes = codec.encode_record(&e).expect("encodes");
        assert_eq!(codec.writer_schema(&bytes).expect("known").avro_name, "pv.signals.SignalEvent");
        let back: SignalEvent = codec.decode_record(&bytes).expect("decodes");
        assert_eq!(back, e);
    }

    #[test]
    fn ids_are_deterministic_and_distinguish_changes() {
        let a = event_id("k", Change::New, 3, "");
        assert_eq!(a, event_id("k", Change::New, 3, ""));
        assert_ne!(a, event_id("k", Change::Updated, 3, ""));
        assert_ne!(a, event_id("k", Change::New, 4, ""));
        assert_ne!(a, event_id("k2", Change::New, 3, ""));
        assert_ne!(event_id("k", Change::Updated, 5, &a), event_id("k", Change::Updated, 5, "x"));
        assert_eq!(a.len(), 16);
    }
}
