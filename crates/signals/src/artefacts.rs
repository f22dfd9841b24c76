//! Reporting artefacts, pure: a clinic whose reporting rate (reports per administration) jumps
//! against its own history and against the other clinics at the same time is flagged as a
//! reporting surge (a campaign, a new nurse, a backlog dump), and its cases in that window are
//! left out of the harm decisions ([`crate::cohort`] marks the time, [`crate::sequential`]
//! leaves it out), so stimulated reporting cannot raise a harm signal.
//!
//! Time is cut into fixed blocks of `block_days` days (counted from 1970-01-01, so every run cuts
//! the same blocks). For clinic c in block b with O reports over A administrations:
//! - against its history: E_h = A × (reports / administrations of c in the blocks before b);
//! - against the others: E_o = A × (reports / administrations of the other clinics in b);
//! - a surge when O >= `surge_ratio` × E and P(X >= O | Poisson(E)) < `surge_p` for both
//!   comparators (only the others' when the clinic has no history yet), with at least
//!   `min_administrations` administrations in the block.

use std::collections::BTreeMap;

use pv_stats::poisson;

use crate::cohort::date_label;
use crate::model::{Analysis, SignalResult, Window};
use pv_stats::special::regularized_lower_gamma;
use serde::Deserialize;

/// How surges are recognised.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArtefactConfig {
    /// Length of a block, days.
    #[serde(default = "default_block_days")]
    pub block_days: u32,
    /// Observed over expected at least this, against both comparators.
    #[serde(default = "default_surge_ratio")]
    pub surge_ratio: f64,
    /// One-sided Poisson p-value below this, against both comparators.
    #[serde(default = "default_surge_p")]
    pub surge_p: f64,
    /// Blocks with fewer administrations are not judged.
    #[serde(default = "default_min_administrations")]
    pub min_administrations: u64,
}

fn default_block_days() -> u32 {
    28
}
fn default_surge_ratio() -> f64 {
    2.0
}
fn default_surge_p() -> f64 {
    0.001
}
fn default_min_administrations() -> u64 {
    30
}

impl Default for ArtefactConfig {
    fn default() -> Self {
        Self {
            block_days: default_block_days(),
            surge_ratio: default_surge_ratio(),
            surge_p: default_surge_p(),
            min_administrations: default_min_administrations(),
        }
    }
}

/// Reports and administrations of one clinic in one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicBlock {
    /// The clinic.
    pub clinic_id: String,
    /// Block index (day / block_days).
    pub block: i32,
    /// Adverse-event reports (initial versions) reported in the block.
    pub reports: u64,
    /// Administrations in the block.
    pub administrations: u64,
}

/// One clinic-block judged.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportingRate {
    /// The clinic.
    pub clinic_id: String,
    /// First day of the block (days since 1970-01-01).
    pub from_day: i32,
    /// Day after the block.
    pub to_day: i32,
    /// Reports.
    pub observed: u64,
    /// Administrations.
    pub administrations: u64,
    /// Expected from the clinic's own earlier blocks, if it has any.
    pub expected_history: Option<f64>,
    /// Expected from the other clinics in the same block.
    pub expected_others: f64,
    /// Judged a reporting surge.
    pub surge: bool,
}

/// P(X >= k) for X ~ Poisson(mean).
fn upper_tail(k: u64, mean: f64) -> f64 {
    if k == 0 {
        1.0
    } else if mean <= 0.0 {
        0.0
    } else {
        regularized_lower_gamma(k as f64, mean)
    }
}

/// Every clinic-block with enough administrations, judged; ordered by clinic and block.
pub fn judge(cfg: &ArtefactConfig, blocks: &[ClinicBlock]) -> Vec<ReportingRate> {
    let mut by_block: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
    for b in blocks {
        let t = by_block.entry(b.block).or_default();
        t.0 += b.reports;
        t.1 += b.administrations;
    }
    let mut sorted: Vec<&ClinicBlock> = blocks.iter().collect();
    sorted.sort_by(|a, b| (&a.clinic_id, a.block).cmp(&(&b.clinic_id, b.block)));
    let mut out = Vec::new();
    let mut history: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for b in sorted {
        let before = history.get(b.clinic_id.as_str()).copied().unwrap_or((0, 0));
        let (all_r, all_a) = by_block.get(&b.block).copied().unwrap_or((0, 0));
        let (other_r, other_a) = (all_r - b.reports, all_a - b.administrations);
        if b.administrations >= cfg.min_administrations && other_a > 0 {
            let a = b.administrations as f64;
            let expected_others = a * other_r as f64 / other_a as f64;
            let expected_history =
                (before.1 >= cfg.min_administrations).then(|| a * before.0 as f64 / before.1 as f64);
            let excess =
                |e: f64| b.reports as f64 >= cfg.surge_ratio * e && upper_tail(b.reports, e) < cfg.surge_p;
            let surge = excess(expected_others) && expected_history.is_none_or(excess);
            let from_day = b.block * cfg.block_days as i32;
            out.push(ReportingRate {
                clinic_id: b.clinic_id.clone(),
                from_day,
                to_day: from_day + cfg.block_days as i32,
                observed: b.reports,
                administrations: b.administrations,
                expected_history,
                expected_others,
                surge,
            });
        }
        // A surge block does not become the clinic's history.
        if !out.last().is_some_and(|r| {
            r.surge && r.clinic_id == b.clinic_id && r.from_day == b.block * cfg.block_days as i32
        }) {
            let h = history.entry(b.clinic_id.as_str()).or_default();
            h.0 += b.reports;
            h.1 += b.administrations;
        }
    }
    out
}

/// The results of the judged blocks: every surge (a signal of a reporting artefact, not of a
/// harm) and each clinic's latest block.
pub fn results(judged: &[ReportingRate]) -> Vec<SignalResult> {
    let mut latest: BTreeMap<&str, &ReportingRate> = BTreeMap::new();
    for r in judged {
        latest.insert(r.clinic_id.as_str(), r);
    }
    let shown = judged
        .iter()
        .filter(|r| r.surge || latest.get(r.clinic_id.as_str()).is_some_and(|l| std::ptr::eq(*l, *r)));
    shown
        .map(|r| {
            let (estimate, lower, upper) = ratio_interval(r);
            let mut flags = vec![format!("administrations={}", r.administrations)];
            if let Some(e) = r.expected_history {
                flags
                    .push(format!("vs_own_history={:.2}", if e > 0.0 { r.observed as f64 / e } else { 0.0 }));
            }
            if r.surge {
                flags.push("reporting_surge: its cases are left out of the harm decisions".into());
            }
            SignalResult {
                analysis: Analysis::ReportingRate.name().into(),
                time_window: Window::Cumulative.name().into(),
                product: "*".into(),
                route: "*".into(),
                formulation: "*".into(),
                dose_band: format!("{}/{}", date_label(r.from_day), date_label(r.to_day - 1)),
                event: "reports per administration".into(),
                event_level: "artefact".into(),
                subgroup: format!("clinic={}", r.clinic_id),
                n: r.observed,
                denominator: r.expected_others,
                estimate,
                lower,
                upper,
                p_value: Some(upper_tail(r.observed, r.expected_others)),
                signal: r.surge,
                flags: flags.join(","),
                ..SignalResult::default()
            }
        })
        .collect()
}

/// The exact 95% interval of observed over expected.
pub fn ratio_interval(r: &ReportingRate) -> (f64, f64, f64) {
    let e = r.expected_others;
    if e <= 0.0 {
        return (0.0, 0.0, f64::INFINITY);
    }
    let (lo, hi) = poisson::exact_interval(r.observed, 0.95);
    (r.observed as f64 / e, lo / e, hi / e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(clinic: &str, block: i32, reports: u64, administrations: u64) -> ClinicBlock {
        ClinicBlock { clinic_id: clinic.into(), block, reports, administrations }
    }

    /// Five clinics at 10 reports per 100 administrations; clinic-02 reports 4x in block 3.
    fn blocks() -> Vec<ClinicBlock> {
        let mut v = Vec::new();
        for c in 1..=5 {
            for b in 0..6 {
                let surge = c == 2 && b == 3;
                v.push(block(&format!("clinic-0{c}"), b, if surge { 40 } else { 10 }, 100));
            }
        }
        v
    }

    #[test]
    fn a_surge_against_history_and_peers_is_flagged_and_nothing_else() {
        let judged = judge(&ArtefactConfig::default(), &blocks());
        let surges: Vec<(&str, i32)> =
            judged.iter().filter(|r| r.surge).map(|r| (r.clinic_id.as_str(), r.from_day)).collect();
        assert_eq!(surges, [("clinic-02", 3 * 28)]);
        let s = judged.iter().find(|r| r.surge).expect("surge");
        // Others: 40 reports over 400 administrations -> E = 10; history: 30 over 300 -> E = 10.
        assert_eq!((s.expected_others, s.expected_history), (10.0, Some(10.0)));
        assert_eq!((s.from_day, s.to_day), (84, 112));
        let (ratio, lo, _) = ratio_interval(s);
        assert!(ratio == 4.0 && lo > 2.0);
        // The block after the surge is judged against a history without it.
        let after = judged.iter().find(|r| r.clinic_id == "clinic-02" && r.from_day == 4 * 28).expect("next");
        assert_eq!(after.expected_history, Some(10.0));
    }

    #[test]
    fn a_rise_everywhere_is_not_a_clinic_artefact_and_small_blocks_are_not_judged() {
        let mut v = blocks();
        v.retain(|b| !(b.clinic_id == "clinic-02" && b.block == 3));
        for b in v.iter_mut().filter(|b| b.block == 5) {
            b.reports = 40; // every clinic at once: not one clinic's reporting
        }
        v.push(block("clinic-09", 5, 25, 10)); // too few administrations to judge
        let judged = judge(&ArtefactConfig::default(), &v);
        assert!(judged.iter().all(|r| !r.surge), "{judged:?}");
        assert!(judged.iter().all(|r| r.clinic_id != "clinic-09"));
    }

    #[test]
    fn the_poisson_tail_is_exact() {
        // P(X >= 3 | 1) = 1 - e^-1 (1 + 1 + 1/2).
        assert!((upper_tail(3, 1.0) - (1.0 - (-1.0f64).exp() * 2.5)).abs() < 1e-12);
        assert_eq!(upper_tail(0, 5.0), 1.0);
    }
}
