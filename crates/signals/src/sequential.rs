//! Sequential monitoring of the monitored harms, per product: continuous MaxSPRT against a
//! sourced background rate, or CMaxSPRT when the background is a historical count, on the
//! cohort ([`crate::cohort`]), pure.
//!
//! - Expected counts follow exposure: E(t) = background rate per administration × the
//!   administrations given by day t to patients still free of the harm (outside reporting
//!   surges). Induction (twice weekly) exposes a patient more than maintenance (every two
//!   weeks), and a cohort maturing into more sessions expects more events; a rate per
//!   person-year would charge a patient's quiet months like their induction weeks.
//! - The test is evaluated along the data's own path: at each incident case (in onset order),
//!   with the administrations accrued through its onset day. The first time the statistic reaches
//!   the critical value (with at least `maxsprt_min_events` cases) the null is rejected, on that
//!   day, and stays rejected: later exposure without cases cannot undo it.
//! - The planned surveillance length (`surveillance_administrations` per product) is part of the
//!   design: the critical value is computed for it, and cases after it is reached are not tested.
//! - Alpha (`maxsprt_alpha`) is shared by the family of products × harms with a background
//!   (Bonferroni: each test gets alpha / family size).
//! - Cases in a clinic's reporting surge, and that clinic's person-time during it, are left out.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

use pv_stats::{cmaxsprt, maxsprt, poisson};
use serde::Deserialize;

use crate::cohort::{Cohort, HarmSplit, accrued};
use crate::config::SignalsConfig;
use crate::model::{Analysis, SignalResult, Window};

/// Where the expected count under H0 comes from: a rate with its interval, or a historical
/// count (then CMaxSPRT). Exactly one of the two.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Background {
    /// Citation or dataset the numbers come from; shown with every result.
    pub source: String,
    /// Invented for the demonstration: results say so.
    #[serde(default)]
    pub demo: bool,
    /// Incident cases per 1,000 administrations to patients free of the harm.
    #[serde(default)]
    pub rate_per_1000_administrations: Option<f64>,
    /// Lower 95% bound of the rate.
    #[serde(default)]
    pub rate_lower: Option<f64>,
    /// Upper 95% bound of the rate.
    #[serde(default)]
    pub rate_upper: Option<f64>,
    /// Incident cases in a comparable historical cohort.
    #[serde(default)]
    pub historical_events: Option<u64>,
    /// That cohort's administrations to patients free of the harm.
    #[serde(default)]
    pub historical_administrations: Option<f64>,
}

impl Background {
    /// Checks that exactly one kind is given, with sane numbers; the error names the field.
    pub fn validate(&self, group: &str) -> Result<(), String> {
        let f = |field: &str, why: &str| Err(format!("signals.backgrounds.{group}.{field}: {why}"));
        if self.source.trim().is_empty() {
            return f("source", "say where the numbers come from");
        }
        match (self.rate_per_1000_administrations, self.historical_events, self.historical_administrations) {
            (Some(r), None, None) => {
                if !(r.is_finite() && r > 0.0) {
                    return f("rate_per_1000_administrations", "must be a positive rate");
                }
                let (lo, hi) = (self.rate_lower.unwrap_or(r), self.rate_upper.unwrap_or(r));
                if !(lo > 0.0 && lo <= r && r <= hi && hi.is_finite()) {
                    return f(
                        "rate_lower",
                        "need 0 < rate_lower <= rate_per_1000_administrations <= rate_upper",
                    );
                }
                Ok(())
            }
            (None, Some(c), Some(v)) => {
                if c == 0 {
                    return f("historical_events", "must be at least 1");
                }
                if !(v.is_finite() && v > 0.0) {
                    return f("historical_administrations", "must be positive");
                }
                Ok(())
            }
            _ => f(
                "rate_per_1000_administrations",
                "give either rate_per_1000_administrations (with rate_lower and rate_upper) or historical_events with historical_administrations",
            ),
        }
    }

    /// The expected cases in `administrations` under H0 (the point rate).
    pub fn expected(&self, administrations: f64) -> f64 {
        match (self.rate_per_1000_administrations, self.historical_events, self.historical_administrations) {
            (Some(r), _, _) => r / 1000.0 * administrations,
            (None, Some(c), Some(v)) => c as f64 * administrations / v,
            _ => 0.0,
        }
    }
}

/// One test's design: what its statistic is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Design {
    /// MaxSPRT with a known rate (per administration) and its critical value.
    Known { rate: f64, upper: f64, cv: f64 },
    /// CMaxSPRT with c events in v administrations and its critical value.
    Historical { c: u64, v: f64, cv: f64 },
}

/// Critical values computed once per process (CMaxSPRT's take a moment).
static CRITICAL_VALUES: LazyLock<Mutex<BTreeMap<String, f64>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

fn memo(key: String, compute: impl FnOnce() -> f64) -> f64 {
    if let Some(&v) = crate::locked(&CRITICAL_VALUES).get(&key) {
        return v;
    }
    let v = compute();
    crate::locked(&CRITICAL_VALUES).insert(key, v);
    v
}

impl Design {
    fn of(cfg: &SignalsConfig, b: &Background) -> Option<Self> {
        let alpha = cfg.maxsprt_alpha / family_size(cfg).max(1) as f64;
        let planned = cfg.surveillance_administrations;
        let m = cfg.maxsprt_min_events;
        match (b.rate_per_1000_administrations, b.historical_events, b.historical_administrations) {
            (Some(r), _, _) => {
                let length = r / 1000.0 * planned;
                let cv =
                    memo(format!("known {length} {alpha} {m}"), || maxsprt::critical_value(length, alpha, m));
                Some(Design::Known { rate: r / 1000.0, upper: b.rate_upper.unwrap_or(r) / 1000.0, cv })
            }
            (None, Some(c), Some(v)) => {
                let ratio = planned / v;
                let cv = memo(format!("historical {c} {ratio} {alpha} {m}"), || {
                    cmaxsprt::critical_value(c, cmaxsprt::Length::Ratio(ratio), alpha, m)
                });
                Some(Design::Historical { c, v, cv })
            }
            _ => None,
        }
    }

    fn cv(self) -> f64 {
        match self {
            Design::Known { cv, .. } | Design::Historical { cv, .. } => cv,
        }
    }

    /// The statistic for `k` cases in `administrations`.
    fn llr(self, k: u64, administrations: f64) -> f64 {
        match self {
            Design::Known { rate, .. } => maxsprt::llr(k, rate * administrations),
            Design::Historical { c, v, .. } => cmaxsprt::llr(k, c, administrations / v),
        }
    }

    fn method(self) -> &'static str {
        match self {
            Design::Known { .. } => "maxsprt",
            Design::Historical { .. } => "cmaxsprt",
        }
    }
}

/// Products × harms with a background: the family sharing alpha.
pub fn family_size(cfg: &SignalsConfig) -> usize {
    cfg.product_bands.len() * cfg.harms.keys().filter(|g| cfg.backgrounds.contains_key(*g)).count()
}

/// Computes the critical values of the configuration (cached for the process): call at start-up
/// so that the first run does not pay for them.
pub fn prepare(cfg: &SignalsConfig) {
    for b in cfg.backgrounds.values() {
        let _ = Design::of(cfg, b);
    }
}

/// The path of one product's test.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    /// Cases tested (within the planned length).
    cases: u64,
    /// Administrations accrued (capped at the planned length).
    administrations: f64,
    /// Day the null was rejected, with the case count then.
    rejected: Option<(i32, u64)>,
    /// The planned length was reached.
    complete: bool,
    /// Cases left out for falling in a reporting surge.
    in_surges: u64,
}

/// Walks one product's cases in onset order against the accrued person-time.
fn walk(design: Design, accrual: &BTreeMap<i32, i64>, onsets: &[i32], planned: f64, min_events: u64) -> Path {
    let mut path = Path { cases: 0, administrations: 0.0, rejected: None, complete: false, in_surges: 0 };
    let total = accrued(accrual, i32::MAX);
    for &day in onsets {
        let given = accrued(accrual, day + 1);
        if given > planned {
            break;
        }
        path.cases += 1;
        if path.rejected.is_none()
            && path.cases >= min_events.max(1)
            && design.llr(path.cases, given) >= design.cv()
        {
            path.rejected = Some((day, path.cases));
        }
    }
    path.complete = total >= planned;
    path.administrations = total.min(planned);
    path
}

/// One result per product × harm with a background.
pub fn analyse(cfg: &SignalsConfig, cohort: &Cohort) -> Vec<SignalResult> {
    let mut out = Vec::new();
    for harm in &cohort.harms {
        let Some(background) = cfg.backgrounds.get(&harm.group) else { continue };
        let Some(design) = Design::of(cfg, background) else { continue };
        for product in cfg.product_bands.keys() {
            out.push(product_result(cfg, cohort, harm, product, background, design));
        }
    }
    out
}

fn product_result(
    cfg: &SignalsConfig,
    cohort: &Cohort,
    harm: &HarmSplit,
    product: &str,
    background: &Background,
    design: Design,
) -> SignalResult {
    let strata: Vec<u16> = (0..cohort.levels.strata.len() as u16)
        .filter(|&s| cohort.levels.strata[usize::from(s)].0 == product)
        .collect();
    let mut accrual: BTreeMap<i32, i64> = BTreeMap::new();
    for s in &strata {
        for (&d, &c) in harm.accrual.get(s).into_iter().flatten() {
            *accrual.entry(d).or_default() += c;
        }
    }
    let mut in_surges = 0;
    let mut onsets: Vec<i32> = Vec::new();
    for i in harm.incident.iter().filter(|i| !i.imputed) {
        let row = &harm.rows[i.row];
        if !strata.contains(&row.stratum) {
            continue;
        }
        if row.artefact {
            in_surges += 1;
        } else {
            onsets.push(i.day);
        }
    }
    onsets.sort_unstable();
    let mut path = walk(design, &accrual, &onsets, cfg.surveillance_administrations, cfg.maxsprt_min_events);
    path.in_surges = in_surges;
    result(cfg, harm, product, background, design, &path)
}

fn result(
    cfg: &SignalsConfig,
    harm: &HarmSplit,
    product: &str,
    background: &Background,
    design: Design,
    path: &Path,
) -> SignalResult {
    let expected = background.expected(path.administrations);
    let mut r = SignalResult {
        analysis: Analysis::SequentialTest.name().into(),
        time_window: Window::Cumulative.name().into(),
        product: product.into(),
        route: "*".into(),
        formulation: "*".into(),
        dose_band: "*".into(),
        event: harm.group.clone(),
        event_level: "group".into(),
        subgroup: "*".into(),
        n: path.cases,
        denominator: expected,
        llr: Some(design.llr(path.cases, path.administrations)),
        cv: Some(design.cv()),
        signal: path.rejected.is_some(),
        ..SignalResult::default()
    };
    if expected > 0.0 {
        let (lo, hi) = poisson::exact_interval(path.cases, 0.95);
        (r.estimate, r.lower, r.upper) = (path.cases as f64 / expected, lo / expected, hi / expected);
    }
    let mut flags = vec![format!("method={}", design.method())];
    if let Some((day, k)) = path.rejected {
        flags.push(format!("rejected_on={} at {k} cases", crate::cohort::date_label(day)));
        if let Design::Known { upper, cv, .. } = design {
            let at_upper = Design::Known { rate: upper, upper, cv };
            if at_upper.llr(k, path.administrations) < cv && upper > 0.0 {
                flags.push("not_robust_to_the_background_upper_bound".into());
            }
        }
    }
    if path.complete {
        flags.push("surveillance_complete".into());
    }
    if path.in_surges > 0 {
        flags.push(format!("cases_in_reporting_surges_left_out={}", path.in_surges));
    }
    if path.cases < cfg.maxsprt_min_events {
        flags.push("below_min_events".into());
    }
    if background.demo {
        flags.push("demo_background".into());
    }
    r.flags = flags.join(",");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_rejects_on_the_first_crossing_and_stays_rejected() {
        // 1,000 administrations a day from day 0; a known rate of 1 per 1,000.
        let cv = 3.0;
        let design = Design::Known { rate: 0.001, upper: 0.001, cv };
        let acc: BTreeMap<i32, i64> = (0..1000).map(|d| (d, 1000)).collect();
        // Eight cases on day 0, with 1,000 administrations through it (1 expected):
        // LLR(4) = 1 - 4 + 4 ln 4 = 2.55 < 3, LLR(5) = 1 - 5 + 5 ln 5 = 4.05 -> rejected at the 5th.
        let path = walk(design, &acc, &[0; 8], 100_000.0, 4);
        assert!(design.llr(4, 1000.0) < cv && design.llr(5, 1000.0) >= cv);
        assert_eq!(path.rejected, Some((0, 5)));
        // Then a long time without cases: the current statistic falls to 0 but the null stays
        // rejected, and the planned length (100,000 administrations) is reached.
        assert!(design.llr(path.cases, path.administrations) == 0.0 && path.complete);
        // Cases after the planned length are not tested.
        let late = walk(design, &acc, &[500; 8], 100_000.0, 4);
        assert_eq!((late.cases, late.rejected), (0, None));
    }

    #[test]
    fn llr_follows_the_accrued_administrations() {
        // 2,000 administrations and 10 cases against 1 per 1,000: expected 2, LLR = 2 - 10 + 10 ln 5.
        let design = Design::Known { rate: 0.001, upper: 0.001, cv: 100.0 };
        let acc = BTreeMap::from([(0, 1500), (9, 500), (12, 700)]);
        assert_eq!((accrued(&acc, 10), accrued(&acc, 13)), (2000.0, 2700.0));
        assert!((design.llr(10, 2000.0) - (2.0 - 10.0 + 10.0 * 5f64.ln())).abs() < 1e-12);
        let c = Design::Historical { c: 20, v: 10_000.0, cv: 1.0 };
        assert!((c.llr(10, 2500.0) - cmaxsprt::llr(10, 20, 0.25)).abs() < 1e-15);
    }

    #[test]
    fn backgrounds_are_one_kind_with_a_source() {
        let b = |rate: Option<f64>, c: Option<u64>, v: Option<f64>| Background {
            source: "x".into(),
            demo: true,
            rate_per_1000_administrations: rate,
            rate_lower: rate.map(|r| r / 2.0),
            rate_upper: rate.map(|r| r * 2.0),
            historical_events: c,
            historical_administrations: v,
        };
        assert!(b(Some(2.0), None, None).validate("u").is_ok());
        assert!(b(None, Some(30), Some(1000.0)).validate("u").is_ok());
        let both = b(Some(2.0), Some(30), Some(1000.0)).validate("u").expect_err("both");
        assert!(both.starts_with("signals.backgrounds.u.rate_per_1000_administrations"), "{both}");
        let none = Background { source: " ".into(), ..b(Some(1.0), None, None) };
        assert!(none.validate("u").expect_err("no source").contains(".source"));
        assert_eq!(b(None, Some(30), Some(1000.0)).expected(100.0), 3.0);
        assert_eq!(b(Some(2.0), None, None).expected(1000.0), 2.0);
    }
}
