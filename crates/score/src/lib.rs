//! Scoring the signals service's detection against a simulation's ground truth.
//!
//! A harm signal is a sequential test that rejected its null: (event group, product, the day it
//! did). Against what the simulator planted, a run detects a planted harm when a harm signal of
//! its group is raised in one of its products (days from the harm's first planted onset to the
//! rejection), and raises a false harm signal when a harm signal matches nothing planted (another
//! group, another product, or any in a null world). Used by `pv score` on the main job's latest
//! run and by `pv-bench --scenario detection` over many worlds.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use pv_simulate::{EffectKind, GroundTruth};
use pv_store::signals::SignalResult;
use pv_store::{Db, StoreError};

/// The analysis whose signals are harm signals.
pub const HARM_ANALYSIS: &str = "sequential_test";

/// A harm signal: group, product, and the day its null was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct HarmSignal {
    /// Event group.
    pub group: String,
    /// Product.
    pub product: String,
    /// Day of rejection (days since 1970-01-01), from the result's `rejected_on=` flag.
    pub day: Option<i32>,
}

/// One run scored against its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Per planted harm (group): detected in one of its products, days from its first onset.
    pub detected: BTreeMap<String, Option<f64>>,
    /// A harm signal where nothing was planted.
    pub false_signal: bool,
    /// Every harm signal of the run.
    pub signals: Vec<HarmSignal>,
}

/// The harm signals among `results`.
pub fn harm_signals(results: &[SignalResult]) -> Vec<HarmSignal> {
    results
        .iter()
        .filter(|r| r.signal && r.analysis == HARM_ANALYSIS)
        .map(|r| HarmSignal {
            group: r.event.clone(),
            product: r.product.clone(),
            day: rejected_day(&r.flags),
        })
        .collect()
}

/// The harm signals of the latest run stored in `signal_results`.
pub async fn latest_harm_signals(db: &Db) -> Result<Vec<HarmSignal>, StoreError> {
    let results: Vec<SignalResult> = db
        .sql(
            "SELECT ?fields FROM {signal_results}
             WHERE run_at_ms = (SELECT max(run_at_ms) FROM {signal_results}) AND analysis = {analysis}",
        )
        .bind("analysis", HARM_ANALYSIS)
        .fetch_all()
        .await?;
    Ok(harm_signals(&results))
}

/// The day in a `rejected_on=YYYY-MM-DD at k cases` flag.
pub fn rejected_day(flags: &str) -> Option<i32> {
    let date = flags.split(',').find_map(|f| f.strip_prefix("rejected_on="))?.split(' ').next()?;
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some((d - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// Scores `signals` against what `truth` planted.
pub fn score(truth: &GroundTruth, signals: Vec<HarmSignal>) -> Detection {
    let planted: Vec<_> = truth
        .effects
        .iter()
        .filter(|e| e.kind == EffectKind::Signal && e.group.is_some() && e.reports_caused > 0)
        .collect();
    let mut detected = BTreeMap::new();
    for e in &planted {
        let group = e.group.clone().unwrap_or_default();
        let onset = e
            .onset_at
            .as_deref()
            .and_then(|t| pv_events::Timestamp::parse_rfc3339(t).ok())
            .map(|t| t.millis().div_euclid(86_400_000));
        let hit = signals
            .iter()
            .filter(|s| s.group == group && e.products.contains(&s.product))
            .filter_map(|s| s.day)
            .min();
        detected.insert(group, hit.map(|d| onset.map_or(f64::NAN, |o| (i64::from(d) - o) as f64)));
    }
    let false_signal = signals.iter().any(|s| {
        !planted
            .iter()
            .any(|e| e.group.as_deref() == Some(s.group.as_str()) && e.products.contains(&s.product))
    });
    Detection { detected, false_signal, signals }
}

impl Detection {
    /// The score in words, one line per planted harm and one for false signals.
    pub fn lines(&self, truth: &GroundTruth) -> Vec<String> {
        let mut out = Vec::new();
        for e in truth.effects.iter().filter(|e| e.kind == EffectKind::Signal) {
            let group = e.group.clone().unwrap_or_default();
            let line = match self.detected.get(&group) {
                Some(Some(days)) => format!(
                    "planted {} in {}: detected by its sequential test, {days:.0} days after its first planted onset",
                    e.name,
                    e.products.join(" and ")
                ),
                Some(None) => format!("planted {} in {}: NOT detected", e.name, e.products.join(" and ")),
                None => format!(
                    "planted {} in {}: caused no report, nothing to detect",
                    e.name,
                    e.products.join(" and ")
                ),
            };
            out.push(line);
        }
        for e in truth.effects.iter().filter(|e| e.kind == EffectKind::Noise) {
            out.push(format!(
                "{} ({}): noise, must not raise a harm signal",
                e.name,
                e.clinic_id.as_deref().unwrap_or("-")
            ));
        }
        let signals: Vec<String> =
            self.signals.iter().map(|s| format!("{} in {}", s.group, s.product)).collect();
        out.push(format!(
            "harm signals raised: {}; false harm signals: {}",
            if signals.is_empty() { "none".into() } else { signals.join(", ") },
            if self.false_signal { "YES" } else { "none" }
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pv_simulate::PlantedEffect;

    fn truth(products: &[&str]) -> GroundTruth {
        GroundTruth {
            seed: 1,
            clinics: 1,
            patients_per_clinic: 1,
            start: "2025-01-01".into(),
            days: 365,
            effects: vec![PlantedEffect {
                name: "urological-dose-response".into(),
                kind: EffectKind::Signal,
                description: String::new(),
                group: Some("urological".into()),
                products: products.iter().map(|s| s.to_string()).collect(),
                routes: vec![],
                clinic_id: None,
                onset_at: Some("2025-01-11T10:00:00Z".into()),
                window: None,
                reports_caused: 5,
                patients: vec![],
            }],
            submissions: Default::default(),
        }
    }

    #[test]
    fn signals_are_scored_against_the_planted_products() {
        let t = truth(&["esketamine"]);
        assert_eq!(rejected_day("method=maxsprt,rejected_on=1970-01-11 at 4 cases"), Some(10));
        let day = rejected_day("rejected_on=2025-03-12 at 9 cases");
        let right = HarmSignal { group: "urological".into(), product: "esketamine".into(), day };
        let d = score(&t, vec![right.clone()]);
        assert_eq!(d.detected["urological"], Some(60.0));
        assert!(!d.false_signal);
        assert!(d.lines(&t)[0].contains("60 days after"));
        let wrong = HarmSignal { product: "ketamine".into(), ..right };
        let d = score(&t, vec![wrong]);
        assert_eq!(d.detected["urological"], None);
        assert!(d.false_signal, "a signal in the product without the harm is a false alarm");
        assert!(d.lines(&t)[0].contains("NOT detected"));
    }

    #[test]
    fn only_sequential_tests_are_harm_signals() {
        let r = |analysis: &str, signal: bool| SignalResult {
            analysis: analysis.into(),
            event: "urological".into(),
            product: "ketamine".into(),
            signal,
            flags: "rejected_on=2025-02-01 at 5 cases".into(),
            ..SignalResult::default()
        };
        let s = harm_signals(&[
            r("sequential_test", true),
            r("sequential_test", false),
            r("disproportionality", true),
        ]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].day, rejected_day("rejected_on=2025-02-01"));
    }
}
