//! Which results changed state since the last run. Pure.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::event::{Change, PreviousState, SignalEvent, change_event};
use crate::model::SignalResult;

/// What the runs before this one said, for the status hysteresis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recent {
    /// Consecutive runs without a signal needed to close one (this run included).
    pub close_after_runs: u32,
    /// The latest runs before this one that were read (at most `close_after_runs - 1`).
    pub runs: usize,
    /// Keys that were a signal in any of those runs.
    pub signalled: HashSet<String>,
}

impl Recent {
    /// No history: every closure is immediate (the behaviour before hysteresis).
    pub fn none() -> Self {
        Self { close_after_runs: 1, runs: 0, signalled: HashSet::new() }
    }

    /// Whether an open signal that is not one in this run has been quiet long enough to close.
    fn quiet_long_enough(&self, key: &str) -> bool {
        let needed = self.close_after_runs.saturating_sub(1) as usize;
        self.runs >= needed && (needed == 0 || !self.signalled.contains(key))
    }
}

/// Analyses whose signals never close: a sequential test's rejected null stays rejected.
const STICKY: [&str; 1] = ["sequential_test"];

/// The changes between the recorded state (`previous`, the latest change of every signal ever
/// raised) and this run's `results`:
/// - a result that is a signal and was not open: `new`;
/// - a result that is a signal, was open, and has a different case count: `updated`;
/// - an open signal whose result is no longer a signal, or no longer computed, and was not a
///   signal in the `close_after_runs - 1` runs before either: `closed` (hysteresis: a statistic
///   dipping under its threshold once is not a closure). Sequential tests never close.
///
/// Ordered by signal key.
pub fn changes(
    previous: &[PreviousState],
    results: &[SignalResult],
    recent: &Recent,
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
        let closable = !STICKY.contains(&r.analysis.as_str()) && recent.quiet_long_enough(key);
        let change = match (r.signal, before) {
            (true, None) => Some(Change::New),
            (true, Some(p)) if u64::try_from(p.n).ok() != Some(r.n) => Some(Change::Updated),
            (false, Some(_)) if closable => Some(Change::Closed),
            _ => None,
        };
        if let Some(change) = change {
            out.insert(key.clone(), change_event(r, change, before, run_at_ms));
        }
    }
    for (key, p) in &open {
        let sticky = STICKY.iter().any(|a| key.starts_with(&format!("{a}|")));
        if !seen.contains_key(*key) && !sticky && recent.quiet_long_enough(key) {
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
        let ch = changes(&previous, &results, &Recent::none(), 100, 90);
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
        let ch = changes(&previous, std::slice::from_ref(&back), &Recent::none(), 100, 90);
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
        assert!(changes(&recorded, &[back], &Recent::none(), 200, 190).is_empty());
    }

    #[test]
    fn a_signal_closes_only_after_enough_quiet_runs_and_a_sequential_test_never() {
        let dipped = result("urological", 8, false);
        let previous = [state(&dipped, "new", 9)];
        let recent = |runs: usize, signalled: &[&str]| Recent {
            close_after_runs: 3,
            runs,
            signalled: signalled.iter().map(|s| s.to_string()).collect(),
        };
        let results = std::slice::from_ref(&dipped);
        // Signal in one of the two runs before: still open.
        assert!(changes(&previous, results, &recent(2, &[&dipped.key()]), 100, 90).is_empty());
        // Only one earlier run on record: not enough history to close.
        assert!(changes(&previous, results, &recent(1, &[]), 100, 90).is_empty());
        // Quiet in the two runs before and now: closed.
        let ch = changes(&previous, results, &recent(2, &[]), 100, 90);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].change, "closed");
        // A sequential test's rejection stays, however quiet the runs.
        let test = SignalResult { analysis: "sequential_test".into(), ..result("urological", 8, false) };
        let previous = [state(&test, "new", 9)];
        assert!(changes(&previous, std::slice::from_ref(&test), &recent(5, &[]), 100, 90).is_empty());
        assert!(changes(&previous, &[], &recent(5, &[]), 100, 90).is_empty(), "not computed: still open");
    }
}
