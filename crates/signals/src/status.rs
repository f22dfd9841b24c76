//! Which results changed state since the last run. Pure.

use std::collections::{BTreeMap, HashMap};

use crate::event::{Change, PreviousState, SignalEvent, change_event};
use crate::model::SignalResult;

/// The changes between the recorded state (`previous`, the latest change of every signal ever
/// raised) and this run's `results`:
/// - a result that is a signal and was not open: `new`;
/// - a result that is a signal, was open, and has a different case count: `updated`;
/// - an open signal whose result is no longer a signal, or no longer computed: `closed`.
///
/// Ordered by signal key.
pub fn changes(
    previous: &[PreviousState],
    results: &[SignalResult],
    run_at_ms: i64,
    as_of_ms: i64,
) -> Vec<SignalEvent> {
    let open: HashMap<&str, &PreviousState> =
        previous.iter().filter(|p| p.is_open()).map(|p| (p.signal_key.as_str(), p)).collect();
    let mut out: BTreeMap<String, SignalEvent> = BTreeMap::new();
    let mut seen: HashMap<String, &SignalResult> = HashMap::new();
    for r in results {
        seen.insert(r.key(), r);
    }
    for (key, r) in &seen {
        let before = open.get(key.as_str()).copied();
        let change = match (r.signal, before) {
            (true, None) => Some(Change::New),
            (true, Some(p)) if u64::try_from(p.n).ok() != Some(r.n) => Some(Change::Updated),
            (false, Some(_)) => Some(Change::Closed),
            _ => None,
        };
        if let Some(change) = change {
            out.insert(key.clone(), change_event(r, change, before, run_at_ms));
        }
    }
    for (key, p) in &open {
        if !seen.contains_key(*key) {
            // The result is no longer computed (its stratum left the window): close it as it was.
            let mut r = from_key(key);
            r.as_of_ms = as_of_ms;
            r.n = u64::try_from(p.n).unwrap_or(0);
            r.flags = "no_longer_computed".into();
            out.insert((*key).to_string(), change_event(&r, Change::Closed, Some(p), run_at_ms));
        }
    }
    out.into_values()
        .map(|mut e| {
            e.as_of_ms = as_of_ms;
            e
        })
        .collect()
}

/// A result with only the identity of `key` filled in.
fn from_key(key: &str) -> SignalResult {
    let mut parts = key.splitn(8, '|').map(str::to_string);
    let mut next = || parts.next().unwrap_or_default();
    SignalResult {
        analysis: next(),
        time_window: next(),
        product: next(),
        route: next(),
        formulation: next(),
        dose_band: next(),
        event: next(),
        subgroup: Some(next()).filter(|s| !s.is_empty()).unwrap_or_else(|| "*".into()),
        ..SignalResult::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(event: &str, n: u64, signal: bool) -> SignalResult {
        SignalResult {
            analysis: "incidence_per_1000_administrations".into(),
            time_window: "cumulative".into(),
            product: "ketamine".into(),
            route: "iv".into(),
            formulation: "solution".into(),
            dose_band: "*".into(),
            event: event.into(),
            event_level: "group".into(),
            n,
            signal,
            ..SignalResult::default()
        }
    }

    fn state(r: &SignalResult, change: &str, n: i64) -> PreviousState {
        PreviousState {
            signal_key: r.key(),
            change: change.into(),
            n,
            first_signalled_at_ms: 5,
            event_id: "abc".into(),
        }
    }

    #[test]
    fn new_updated_closed_and_unchanged() {
        let raised = result("urological", 9, true);
        let grown = result("dependence", 12, true);
        let same = result("Dysuria", 4, true);
        let fallen = result("Nausea", 2, false);
        let quiet = result("Headache", 1, false);
        let previous = [state(&grown, "new", 10), state(&same, "updated", 4), state(&fallen, "new", 3)];
        let results = [raised.clone(), grown.clone(), same, fallen.clone(), quiet];
        let ch = changes(&previous, &results, 100, 90);
        let got: Vec<(&str, &str, i64, Option<i64>, i64)> = ch
            .iter()
            .map(|e| (e.event.as_str(), e.change.as_str(), e.n, e.previous_n, e.first_signalled_at_ms))
            .collect();
        assert_eq!(
            got,
            [
                ("Nausea", "closed", 2, Some(3), 5),
                ("dependence", "updated", 12, Some(10), 5),
                ("urological", "new", 9, None, 100),
            ],
            "ordered by key"
        );
        assert!(ch.iter().all(|e| e.run_at_ms == 100 && e.as_of_ms == 90));
    }

    #[test]
    fn a_closed_signal_raised_again_is_new_and_a_vanished_one_closes() {
        let back = result("urological", 9, true);
        let gone = result("dependence", 0, false);
        let previous = [state(&back, "closed", 3), state(&gone, "new", 6)];
        let ch = changes(&previous, std::slice::from_ref(&back), 100, 90);
        assert_eq!(ch.len(), 2);
        assert_eq!((ch[0].event.as_str(), ch[0].change.as_str(), ch[0].n), ("dependence", "closed", 6));
        assert_eq!(ch[0].flags, "no_longer_computed");
        assert_eq!(ch[0].signal_key, gone.key(), "the key survives the round trip");
        assert_eq!((ch[1].change.as_str(), ch[1].first_signalled_at_ms), ("new", 100));
        // Running again on the recorded state changes nothing.
        let recorded: Vec<PreviousState> = ch
            .iter()
            .map(|e| PreviousState {
                signal_key: e.signal_key.clone(),
                change: e.change.clone(),
                n: e.n,
                first_signalled_at_ms: e.first_signalled_at_ms,
                event_id: e.event_id.clone(),
            })
            .collect();
        assert!(changes(&recorded, &[back], 200, 190).is_empty());
    }
}
