//! The analyses: pure functions from one window's aggregates to results. No I/O.
//!
//! - Disproportionality: cases of a stratum (product x route x formulation, with and without the
//!   cumulative-dose band) against the cases of every other stratum, per event group and per
//!   preferred term: PRR, chi-square, ROR, IC, and EBGM/EB05 from an MGPS prior fitted over all
//!   stratum x PT pairs of the window. A signal needs the Evans criteria, IC025 > 0 and, when the
//!   prior could be fitted, EB05 >= `eb05_min`: a conservative conjunction, as the strata of one
//!   programme are few and all tested every run.
//! - Incidence per 1,000 administrations (per stratum and band and per stratum) and per
//!   100 patient-years (per stratum), with exact Poisson intervals; a signal when the lower bound
//!   exceeds the configured background rate of the group.
//! - Dose-response: the Poisson score test for trend across the cumulative-dose bands.
//! - Time to onset from the first dose: median and quartiles.
//! - Dependence markers: share of a stratum's patients showing each, with the Wilson interval; a
//!   signal when the lower bound exceeds `marker_background_share`.
//! - MaxSPRT per product and group against the background rate (cumulative window only).

use std::collections::{BTreeMap, BTreeSet};

use pv_stats::special::regularized_lower_gamma;
use pv_stats::{TwoByTwo, mgps, poisson};

use crate::config::SignalsConfig;
use crate::model::{Analysis, Inputs, SignalResult, Stratum, Window};

/// Runs every analysis of one window.
#[derive(Debug, Clone)]
pub struct Analyser {
    cfg: SignalsConfig,
}

/// A stratum, optionally narrowed to one cumulative-dose band.
type Cell = (Stratum, Option<usize>);

/// Cases of a cell with one item, keys borrowing from the inputs:
/// (stratum, band or `None` for the whole stratum, level `group`/`pt`, group or PT).
type ItemKey<'a> = (&'a Stratum, Option<usize>, &'a str, &'a str);

/// What several analyses of one window count, counted once: every case is counted in its
/// stratum with and without its band; keys borrow from the inputs (hundreds of thousands of
/// cases, no copies).
struct Tally<'a> {
    /// Event groups analysed: those with a configured background and those seen in cases.
    groups: BTreeSet<&'a str>,
    /// Preferred terms seen in cases.
    pts: BTreeSet<&'a str>,
    /// Administrations per cell.
    admins: BTreeMap<Cell, u64>,
    /// Cases per cell.
    cell_cases: BTreeMap<(&'a Stratum, Option<usize>), u64>,
    /// Cases with each item, over all cells: (level, item).
    item_cases: BTreeMap<(&'a str, &'a str), u64>,
    /// Cases per cell and item.
    cases: BTreeMap<ItemKey<'a>, u64>,
    /// Preferred terms coded to a monitored harm's group.
    harm_pts: &'a BTreeSet<String>,
}

impl<'a> Tally<'a> {
    fn new(cfg: &'a SignalsConfig, inputs: &'a Inputs) -> Self {
        let mut t = Tally {
            groups: cfg.harms.keys().map(String::as_str).collect(),
            pts: BTreeSet::new(),
            admins: BTreeMap::new(),
            cell_cases: BTreeMap::new(),
            item_cases: BTreeMap::new(),
            cases: BTreeMap::new(),
            harm_pts: &inputs.harm_pts,
        };
        for d in &inputs.doses {
            *t.admins.entry((d.stratum.clone(), None)).or_default() += d.administrations;
        }
        for c in &inputs.cases {
            let items = c
                .groups
                .iter()
                .map(|g| ("group", g.as_str()))
                .chain(c.pts.iter().map(|p| ("pt", p.as_str())));
            *t.cell_cases.entry((&c.stratum, None)).or_default() += 1;
            for (level, item) in items {
                if level == "group" {
                    t.groups.insert(item);
                } else {
                    t.pts.insert(item);
                }
                *t.item_cases.entry((level, item)).or_default() += 1;
                *t.cases.entry((&c.stratum, None, level, item)).or_default() += 1;
            }
        }
        t
    }

    /// Cases of `stratum` (in `band`, or all bands for `None`) with `item`.
    fn count(&self, stratum: &Stratum, band: Option<usize>, level: &str, item: &str) -> u64 {
        self.cases.get(&(stratum, band, level, item)).copied().unwrap_or(0)
    }
}

impl Analyser {
    /// An analyser for `cfg` (validated).
    pub fn new(cfg: SignalsConfig) -> Result<Self, String> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SignalsConfig {
        &self.cfg
    }

    /// Every result of one window, in a stable order.
    pub fn run(&self, inputs: &Inputs) -> Vec<SignalResult> {
        let mut out = Vec::new();
        let tally = Tally::new(&self.cfg, inputs);
        self.disproportionality(inputs.window, &tally, &mut out);
        self.incidence(inputs, &tally, &mut out);
        out
    }

    fn band_label(&self, band: Option<usize>) -> String {
        band.map_or_else(|| "*".into(), |b| self.cfg.band_label(b))
    }

    fn base(
        &self,
        analysis: Analysis,
        window: Window,
        cell: &Cell,
        event: &str,
        level: &str,
    ) -> SignalResult {
        SignalResult {
            analysis: analysis.name().into(),
            time_window: window.name().into(),
            product: cell.0.product.clone(),
            route: cell.0.route.clone(),
            formulation: cell.0.formulation.clone(),
            dose_band: self.band_label(cell.1),
            event: event.into(),
            event_level: level.into(),
            subgroup: "*".into(),
            ..SignalResult::default()
        }
    }

    fn disproportionality(&self, window: Window, tally: &Tally<'_>, out: &mut Vec<SignalResult>) {
        let total = tally.cell_cases.iter().filter(|(k, _)| k.1.is_none()).map(|(_, n)| n).sum();
        // Per stratum only: dose bands are analysed on person-time, per product in its own unit
        // (crate::person_time), from the raw dose history rather than the enricher's snapshots.
        for by_band in [false] {
            let pair_cases: Vec<(&ItemKey<'_>, u64)> =
                tally.cases.iter().filter(|(k, _)| k.1.is_some() == by_band).map(|(k, &n)| (k, n)).collect();
            let table = |&(stratum, band, level, item): &ItemKey<'_>, a: u64| {
                TwoByTwo::from_margins(
                    a,
                    tally.cell_cases[&(stratum, band)],
                    tally.item_cases[&(level, item)],
                    total,
                )
            };
            // The MGPS prior of each level: fitted over that level's stratum x item pairs of this
            // window, and applied to them alone.
            let prior_of = |level: &str| {
                let pairs: Vec<(u64, f64)> = pair_cases
                    .iter()
                    .filter(|(k, _)| k.2 == level)
                    .map(|&(k, a)| (a, table(k, a).expected()))
                    .collect();
                mgps::fit(&pairs).ok().map(|f| f.hyper)
            };
            let priors = [("group", prior_of("group")), ("pt", prior_of("pt"))];
            let first = out.len();
            for &(key, a) in &pair_cases {
                let t = table(key, a);
                let d = pv_stats::disproportionality(&t);
                let prior = priors.iter().find(|p| p.0 == key.2).and_then(|p| p.1);
                let post = prior.map(|h| mgps::posterior(&h, a, d.expected));
                let cell: Cell = (key.0.clone(), key.1);
                let mut r = self.base(Analysis::Disproportionality, window, &cell, key.3, key.2);
                r.n = a;
                r.denominator = d.expected;
                r.estimate = d.prr;
                (r.lower, r.upper) = d.prr_ci;
                r.prr = Some(d.prr);
                r.chi2 = Some(d.chi2_yates);
                r.ror = Some(d.ror);
                r.ror_lower = Some(d.ror_ci.0);
                r.ic025 = Some(d.ic025);
                r.ebgm = post.map(|p| p.ebgm);
                r.eb05 = post.map(|p| p.eb05);
                // One-sided: more reports of the item in the stratum than expected from the others.
                r.p_value = Some(if a == 0 { 1.0 } else { regularized_lower_gamma(a as f64, d.expected) });
                let mut flags = Vec::new();
                if a < self.cfg.min_cases {
                    flags.push("small_count");
                }
                if d.flags.zero_cell_corrected {
                    flags.push("zero_cell_corrected");
                }
                if prior.is_some_and(|h| h.at_bound()) {
                    flags.push("mgps_prior_at_bound");
                }
                if post.is_none() {
                    flags.push("mgps_unavailable");
                }
                let monitored = if key.2 == "group" {
                    self.cfg.harms.contains_key(key.3)
                } else {
                    tally.harm_pts.contains(key.3)
                };
                if monitored {
                    flags.push("monitored_harm_screen_only");
                }
                r.flags = flags.join(",");
                out.push(r);
            }
            self.screen_decisions(&mut out[first..], tally);
        }
    }

    /// The screen's decisions over one set of pairs: Benjamini-Hochberg q-values over its
    /// preferred-term pairs; a signal needs q <= `screen_fdr`, the Evans criteria, IC025 > 0 and
    /// (when the prior could be fitted) EB05 >= `eb05_min`. The monitored harms (their groups and
    /// the preferred terms coded to them) are decided by the person-time analyses, never here.
    fn screen_decisions(&self, results: &mut [SignalResult], tally: &Tally<'_>) {
        let pts: Vec<usize> = (0..results.len()).filter(|&i| results[i].event_level == "pt").collect();
        let p: Vec<f64> = pts.iter().map(|&i| results[i].p_value.unwrap_or(1.0)).collect();
        for (&i, q) in pts.iter().zip(pv_stats::multiplicity::benjamini_hochberg(&p)) {
            results[i].q_value = Some(q);
        }
        for r in results.iter_mut() {
            let monitored = if r.event_level == "group" {
                self.cfg.harms.contains_key(&r.event)
            } else {
                tally.harm_pts.contains(r.event.as_str())
            };
            r.signal = !monitored
                && r.event_level == "pt"
                && r.n >= self.cfg.min_cases
                && r.q_value.is_some_and(|q| q <= self.cfg.screen_fdr)
                && r.prr.is_some_and(|v| v >= self.cfg.prr_min)
                && r.chi2.is_some_and(|v| v >= self.cfg.chi2_min)
                && r.ic025.is_some_and(|v| v > 0.0)
                && r.eb05.is_none_or(|v| v >= self.cfg.eb05_min);
        }
    }

    /// Incidence of every event group (all of them, zero counts included) and of every
    /// preferred term reported in the window. A group signals when the lower bound of its rate
    /// per 1,000 administrations exceeds its configured background; PT rates are reported for
    /// review and never signal (backgrounds are configured per group).
    fn incidence(&self, inputs: &Inputs, tally: &Tally<'_>, out: &mut Vec<SignalResult>) {
        let items: Vec<(&str, &str)> =
            tally.groups.iter().map(|g| ("group", *g)).chain(tally.pts.iter().map(|p| ("pt", *p))).collect();
        for (cell, &n_admin) in &tally.admins {
            for &(level, item) in &items {
                let n = tally.count(&cell.0, cell.1, level, item);
                let rate = poisson::rate(n, n_admin as f64, 1000.0, 0.95);
                let mut r = self.base(Analysis::IncidenceAdministrations, inputs.window, cell, item, level);
                r.n = n;
                r.denominator = n_admin as f64;
                (r.estimate, r.lower, r.upper) = (rate.estimate, rate.lower, rate.upper);
                r.flags = self.count_flags(n);
                out.push(r);
            }
        }
    }

    fn count_flags(&self, n: u64) -> String {
        if n < self.cfg.min_cases { "descriptive,small_count".into() } else { "descriptive".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Case, DoseCell};

    fn ket() -> Stratum {
        Stratum::new("ketamine", "iv", "solution")
    }
    fn esk() -> Stratum {
        Stratum::new("esketamine", "intranasal", "spray")
    }

    fn case(stratum: Stratum, band: usize, groups: &[&str], pts: &[&str], days: f64) -> Case {
        Case {
            who: crate::model::CaseRef::default(),
            stratum,
            band,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            pts: pts.iter().map(|s| s.to_string()).collect(),
            days_from_first_dose: Some(days),
        }
    }

    fn find<'a>(
        rs: &'a [SignalResult],
        analysis: Analysis,
        stratum: &Stratum,
        band: &str,
        event: &str,
    ) -> &'a SignalResult {
        rs.iter()
            .find(|r| {
                r.analysis == analysis.name()
                    && r.product == stratum.product
                    && r.route == stratum.route
                    && r.formulation == stratum.formulation
                    && r.dose_band == band
                    && r.event == event
            })
            .unwrap_or_else(|| panic!("no {analysis:?} {stratum:?} {band} {event}"))
    }

    /// Ketamine: 4 bands with 1,000 administrations each and 1, 2, 4, 8 urological cases;
    /// esketamine: 2,000 administrations in band 0 and 2 cases.
    fn inputs(window: Window) -> Inputs {
        let mut doses: Vec<DoseCell> =
            (0..4).map(|b| DoseCell { stratum: ket(), band: b, administrations: 1000 }).collect();
        doses.push(DoseCell { stratum: esk(), band: 0, administrations: 2000 });
        let mut cases = Vec::new();
        for (band, n) in [(0usize, 1), (1, 2), (2, 4), (3, 8)] {
            for i in 0..n {
                cases.push(case(
                    ket(),
                    band,
                    &["urological"],
                    &["Dysuria"],
                    10.0 * (band as f64 + 1.0) + i as f64,
                ));
            }
        }
        for _ in 0..2 {
            cases.push(case(esk(), 0, &["urological"], &["Dysuria"], 5.0));
        }
        for _ in 0..40 {
            cases.push(case(esk(), 0, &[], &["Nausea"], 1.0));
            cases.push(case(ket(), 0, &[], &["Nausea"], 1.0));
        }
        Inputs { window, doses, cases, harm_pts: BTreeSet::from(["Dysuria".to_string()]), exposure: vec![] }
    }

    #[test]
    fn incidence_per_administration_is_descriptive_with_exact_intervals() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let rs = a.run(&inputs(Window::Cumulative));
        // Ketamine: 15 urological cases / 4,000 administrations = 3.75 per 1,000; exact 95%
        // interval from Garwood.
        let r = find(&rs, Analysis::IncidenceAdministrations, &ket(), "*", "urological");
        assert_eq!((r.n, r.denominator, r.estimate), (15, 4000.0, 3.75));
        let exact = pv_stats::poisson::rate(15, 4000.0, 1000.0, 0.95);
        assert_eq!((r.lower, r.upper), (exact.lower, exact.upper));
        assert!(!r.signal && r.flags == "descriptive", "administrations: descriptive only");
        // Esketamine: 2 cases: flagged small.
        let r = find(&rs, Analysis::IncidenceAdministrations, &esk(), "*", "urological");
        assert!(!r.signal && r.flags.contains("small_count"));
        // A monitored group without cases is reported as zero.
        let r = find(&rs, Analysis::IncidenceAdministrations, &ket(), "*", "dependence");
        assert_eq!((r.n, r.estimate, r.lower, r.signal), (0, 0.0, 0.0, false));
        // Per stratum only: dose bands live in the person-time analyses.
        assert!(rs.iter().all(|r| r.dose_band == "*"));
    }

    #[test]
    fn disproportionality_uses_distinct_cases_per_stratum() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let rs = a.run(&inputs(Window::Cumulative));
        // Whole strata: ketamine 15 of 55 cases urological, esketamine 2 of 42.
        // PRR = (15/55) / (2/42) = 5.7273.
        let r = find(&rs, Analysis::Disproportionality, &ket(), "*", "urological");
        assert_eq!(r.n, 15);
        assert!((r.prr.expect("prr") - (15.0 / 55.0) / (2.0 / 42.0)).abs() < 1e-12);
        assert!((r.denominator - 55.0 * 17.0 / 97.0).abs() < 1e-12, "E = n_stratum n_event / N");
        assert_eq!(r.event_level, "group");
        // One-sided Poisson p of 15 against E = 8.505: P(X >= 15).
        let p = r.p_value.expect("p");
        assert!((p - pv_stats::special::regularized_lower_gamma(15.0, 55.0 * 17.0 / 97.0)).abs() < 1e-15);
        let pt = find(&rs, Analysis::Disproportionality, &ket(), "*", "Dysuria");
        assert_eq!((pt.event_level.as_str(), pt.n), ("pt", 15));
        assert!(rs.iter().all(|r| r.estimate.is_finite() && !r.lower.is_nan() && !r.upper.is_nan()));
    }

    #[test]
    fn the_screen_controls_the_fdr_and_leaves_the_monitored_harms_alone() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let mut inputs = inputs(Window::Cumulative);
        // Sixty ketamine IV cases of an unexpected term, none elsewhere; a third stratum with
        // many cases of common terms makes the comparator informative.
        let im = Stratum::new("ketamine", "im", "solution");
        for i in 0..300 {
            inputs.cases.push(case(im.clone(), 0, &[], &[["Nausea", "Headache", "Dizziness"][i % 3]], 1.0));
            inputs.cases.push(case(esk(), 0, &[], &[["Nausea", "Headache", "Dizziness"][i % 3]], 1.0));
        }
        for _ in 0..60 {
            inputs.cases.push(case(ket(), 0, &[], &["Hepatotoxicity"], 1.0));
        }
        let rs = a.run(&inputs);
        let pts: Vec<&SignalResult> =
            rs.iter().filter(|r| r.event_level == "pt" && r.analysis == "disproportionality").collect();
        for r in &pts {
            assert!(r.q_value.expect("q") >= r.p_value.expect("p"), "{r:?}");
        }
        let hep = find(&rs, Analysis::Disproportionality, &ket(), "*", "Hepatotoxicity");
        assert!(hep.signal && hep.q_value.expect("q") <= 0.05, "{hep:?}");
        // Dysuria (15 vs 2) is as disproportionate, but coded to a monitored harm: screen only.
        let dys = find(&rs, Analysis::Disproportionality, &ket(), "*", "Dysuria");
        assert!(!dys.signal && dys.flags.contains("monitored_harm_screen_only"), "{dys:?}");
        let group = find(&rs, Analysis::Disproportionality, &ket(), "*", "urological");
        assert!(!group.signal);
    }

    #[test]
    fn an_empty_window_gives_no_results_and_no_panic() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let empty = Inputs {
            window: Window::Cumulative,
            doses: vec![],
            cases: vec![],
            harm_pts: BTreeSet::new(),
            exposure: vec![],
        };
        assert!(a.run(&empty).is_empty());
        // Cases without any exposure recorded (doses not yet arrived): disproportionality only.
        let only_cases = Inputs { cases: vec![case(ket(), 0, &["urological"], &["Dysuria"], 3.0)], ..empty };
        let rs = a.run(&only_cases);
        assert!(rs.iter().all(|r| r.estimate.is_finite()));
        assert!(rs.iter().any(|r| r.analysis == "disproportionality"));
    }
}
