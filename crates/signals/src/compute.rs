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

use pv_stats::{TwoByTwo, maxsprt, mgps, poisson, proportion, quantile, trend};

use crate::config::SignalsConfig;
use crate::model::{Analysis, Inputs, SignalResult, Stratum, Window};

/// The 95% normal quantile used by every interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Runs every analysis of one window.
#[derive(Debug, Clone)]
pub struct Analyser {
    cfg: SignalsConfig,
    /// MaxSPRT critical value for the configured alpha, length and minimum events.
    cv: f64,
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
}

impl<'a> Tally<'a> {
    fn new(cfg: &'a SignalsConfig, inputs: &'a Inputs) -> Self {
        let mut t = Tally {
            groups: cfg.background_per_1000.keys().map(String::as_str).collect(),
            pts: BTreeSet::new(),
            admins: BTreeMap::new(),
            cell_cases: BTreeMap::new(),
            item_cases: BTreeMap::new(),
            cases: BTreeMap::new(),
        };
        for d in &inputs.doses {
            *t.admins.entry((d.stratum.clone(), Some(d.band))).or_default() += d.administrations;
            *t.admins.entry((d.stratum.clone(), None)).or_default() += d.administrations;
        }
        for c in &inputs.cases {
            let items = c
                .groups
                .iter()
                .map(|g| ("group", g.as_str()))
                .chain(c.pts.iter().map(|p| ("pt", p.as_str())));
            for band in [Some(c.band), None] {
                *t.cell_cases.entry((&c.stratum, band)).or_default() += 1;
            }
            for (level, item) in items {
                if level == "group" {
                    t.groups.insert(item);
                } else {
                    t.pts.insert(item);
                }
                *t.item_cases.entry((level, item)).or_default() += 1;
                for band in [Some(c.band), None] {
                    *t.cases.entry((&c.stratum, band, level, item)).or_default() += 1;
                }
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
    /// An analyser for `cfg` (validated); computes the MaxSPRT critical value once.
    pub fn new(cfg: SignalsConfig) -> Result<Self, String> {
        cfg.validate()?;
        let cv = maxsprt::critical_value(cfg.maxsprt_length, cfg.maxsprt_alpha, cfg.maxsprt_min_events);
        Ok(Self { cfg, cv })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SignalsConfig {
        &self.cfg
    }

    /// The MaxSPRT critical value in force.
    pub fn critical_value(&self) -> f64 {
        self.cv
    }

    /// Every result of one window, in a stable order.
    pub fn run(&self, inputs: &Inputs) -> Vec<SignalResult> {
        let mut out = Vec::new();
        let tally = Tally::new(&self.cfg, inputs);
        self.disproportionality(inputs.window, &tally, &mut out);
        self.incidence(inputs, &tally, &mut out);
        self.dose_response(inputs.window, &tally, &mut out);
        self.time_to_onset(inputs, &mut out);
        if inputs.window == Window::Cumulative {
            self.markers(inputs, &mut out);
            self.maxsprt(inputs.window, &tally, &mut out);
        }
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
        for by_band in [true, false] {
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
            // The MGPS prior: fitted over every stratum x PT pair of this window and level.
            let pt_pairs: Vec<(u64, f64)> = pair_cases
                .iter()
                .filter(|(k, _)| k.2 == "pt")
                .map(|&(k, a)| (a, table(k, a).expected()))
                .collect();
            let prior = mgps::fit(&pt_pairs).ok().map(|f| f.hyper);
            for &(key, a) in &pair_cases {
                let t = table(key, a);
                let d = pv_stats::disproportionality(&t);
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
                r.flags = flags.join(",");
                r.signal = a >= self.cfg.min_cases
                    && d.prr >= self.cfg.prr_min
                    && d.chi2_yates >= self.cfg.chi2_min
                    && d.ic025 > 0.0
                    && post.is_none_or(|p| p.eb05 >= self.cfg.eb05_min);
                out.push(r);
            }
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
                let background = if level == "group" { self.cfg.background_per_1000.get(item) } else { None };
                r.signal = n >= self.cfg.min_cases && background.is_some_and(|&b| rate.lower > b);
                r.flags = self.count_flags(n, background.is_none());
                out.push(r);
            }
        }
    }

    fn count_flags(&self, n: u64, no_background: bool) -> String {
        let mut f = Vec::new();
        if n < self.cfg.min_cases {
            f.push("small_count");
        }
        if no_background {
            f.push("no_background_rate");
        }
        f.join(",")
    }

    fn dose_response(&self, window: Window, tally: &Tally<'_>, out: &mut Vec<SignalResult>) {
        let bands = self.cfg.dose_bands_mg.len() + 1;
        // The strata with doses: the whole-stratum cells of the administrations.
        for stratum in tally.admins.keys().filter(|c| c.1.is_none()).map(|c| &c.0) {
            for &g in &tally.groups {
                let levels: Vec<trend::Level> = (0..bands)
                    .map(|b| {
                        let cell = (stratum.clone(), Some(b));
                        trend::Level {
                            score: b as f64,
                            events: tally.count(stratum, Some(b), "group", g),
                            exposure: tally.admins.get(&cell).copied().unwrap_or(0) as f64,
                        }
                    })
                    .collect();
                let z = trend::poisson_trend_z(&levels);
                let with_exposure: Vec<&trend::Level> = levels.iter().filter(|l| l.exposure > 0.0).collect();
                let n: u64 = levels.iter().map(|l| l.events).sum();
                let mut r = self.base(Analysis::DoseResponse, window, &(stratum.clone(), None), g, "group");
                r.n = n;
                r.denominator = levels.iter().map(|l| l.exposure).sum();
                r.trend_z = Some(z);
                // The estimate: rate ratio of the highest band with exposure to the lowest, with
                // its log-normal interval (0.5 added to both counts when one is zero).
                if let (Some(lo), Some(hi)) = (with_exposure.first(), with_exposure.last()) {
                    let k = if lo.events == 0 || hi.events == 0 { 0.5 } else { 0.0 };
                    let (c_lo, c_hi) = (lo.events as f64 + k, hi.events as f64 + k);
                    let rr = (c_hi / hi.exposure) / (c_lo / lo.exposure);
                    let s = (1.0 / c_lo + 1.0 / c_hi).sqrt();
                    r.estimate = rr;
                    r.lower = (rr.ln() - Z95 * s).exp();
                    r.upper = (rr.ln() + Z95 * s).exp();
                }
                let mut flags = Vec::new();
                if n < self.cfg.min_cases {
                    flags.push("small_count");
                }
                if with_exposure.len() < 2 {
                    flags.push("single_band");
                }
                r.flags = flags.join(",");
                r.signal = n >= self.cfg.min_cases && with_exposure.len() >= 2 && z >= self.cfg.trend_z;
                out.push(r);
            }
        }
    }

    fn time_to_onset(&self, inputs: &Inputs, out: &mut Vec<SignalResult>) {
        let mut days: BTreeMap<(&Stratum, &str), Vec<f64>> = BTreeMap::new();
        for c in &inputs.cases {
            if let Some(d) = c.days_from_first_dose.filter(|d| d.is_finite()) {
                for g in &c.groups {
                    days.entry((&c.stratum, g.as_str())).or_default().push(d);
                }
            }
        }
        for ((stratum, g), v) in days {
            let mut r = self.base(Analysis::TimeToOnset, inputs.window, &(stratum.clone(), None), g, "group");
            r.n = v.len() as u64;
            r.denominator = v.len() as f64;
            r.estimate = quantile::quantile(&v, 0.5).unwrap_or(0.0);
            r.lower = quantile::quantile(&v, 0.25).unwrap_or(0.0);
            r.upper = quantile::quantile(&v, 0.75).unwrap_or(0.0);
            r.flags = "descriptive".into();
            out.push(r);
        }
    }

    fn markers(&self, inputs: &Inputs, out: &mut Vec<SignalResult>) {
        for m in &inputs.markers {
            for (marker, k) in [
                ("dose_escalation", m.escalated),
                ("shrinking_intervals", m.shrinking_intervals),
                ("extra_sessions", m.extra_sessions),
            ] {
                let p = proportion::wilson(k, m.patients, Z95);
                let mut r = self.base(
                    Analysis::DependenceMarker,
                    inputs.window,
                    &(m.stratum.clone(), None),
                    marker,
                    "marker",
                );
                r.n = k;
                r.denominator = m.patients as f64;
                (r.estimate, r.lower, r.upper) = (p.estimate, p.lower, p.upper);
                r.flags = self.count_flags(k, false);
                r.signal = k >= self.cfg.min_cases && p.lower > self.cfg.marker_background_share;
                out.push(r);
            }
        }
    }

    fn maxsprt(&self, window: Window, tally: &Tally<'_>, out: &mut Vec<SignalResult>) {
        // Per product: the whole-stratum cells summed over routes and formulations.
        let mut admins: BTreeMap<&str, u64> = BTreeMap::new();
        for ((stratum, _), n) in tally.admins.iter().filter(|(c, _)| c.1.is_none()) {
            *admins.entry(stratum.product.as_str()).or_default() += n;
        }
        let mut observed: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for (&(stratum, _, _, g), n) in tally.cases.iter().filter(|(k, _)| k.1.is_none() && k.2 == "group") {
            *observed.entry((stratum.product.as_str(), g)).or_default() += n;
        }
        for (&product, &n_admin) in &admins {
            let product = Stratum::new(product, "*", "*");
            for (g, &background) in &self.cfg.background_per_1000 {
                let n = observed.get(&(product.product.as_str(), g.as_str())).copied().unwrap_or(0);
                let expected = background / 1000.0 * n_admin as f64;
                let s = maxsprt::status(n, expected, self.cv, self.cfg.maxsprt_min_events);
                let mut r = self.base(Analysis::MaxSprt, window, &(product.clone(), None), g, "group");
                r.n = n;
                r.denominator = expected;
                let (lo, hi) = poisson::exact_interval(n, 0.95);
                if expected > 0.0 {
                    (r.estimate, r.lower, r.upper) = (n as f64 / expected, lo / expected, hi / expected);
                }
                r.llr = Some(s.llr);
                r.cv = Some(s.cv);
                let mut flags = Vec::new();
                if n < self.cfg.maxsprt_min_events {
                    flags.push("below_min_events");
                }
                if expected > self.cfg.maxsprt_length {
                    flags.push("surveillance_length_reached");
                }
                r.flags = flags.join(",");
                r.signal = s.signal;
                out.push(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Case, DoseCell, MarkerCounts};

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
        Inputs {
            window,
            doses,
            cases,
            markers: vec![MarkerCounts {
                stratum: ket(),
                patients: 200,
                escalated: 20,
                shrinking_intervals: 3,
                extra_sessions: 0,
                positive: vec![],
            }],
            exposure: vec![],
        }
    }

    #[test]
    fn incidence_has_exact_intervals_and_flags_against_the_background() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let rs = a.run(&inputs(Window::Cumulative));
        // Band 3: 8 cases / 1,000 administrations = 8 per 1,000; exact 95% 3.4538..15.7628.
        let r = find(&rs, Analysis::IncidenceAdministrations, &ket(), ">= 2 g", "urological");
        assert_eq!((r.n, r.denominator, r.estimate), (8, 1000.0, 8.0));
        assert!((r.lower - 3.4538).abs() < 1e-3 && (r.upper - 15.7628).abs() < 1e-3, "{r:?}");
        assert!(r.signal, "lower bound 3.45 > background 1");
        // Band 0: 1 case: 1 per 1,000, lower bound 0.025: no signal.
        let r = find(&rs, Analysis::IncidenceAdministrations, &ket(), "< 500 mg", "urological");
        assert!(!r.signal && r.flags.contains("small_count"));
        // Whole stratum: 15 / 4,000.
        let r = find(&rs, Analysis::IncidenceAdministrations, &ket(), "*", "urological");
        assert_eq!((r.n, r.estimate), (15, 3.75));
        // The dependence group has a background but no cases: reported as zero, no signal.
        let r = find(&rs, Analysis::IncidenceAdministrations, &ket(), "*", "dependence");
        assert_eq!((r.n, r.estimate, r.lower, r.signal), (0, 0.0, 0.0, false));
        // Preferred terms too; without a configured background they never signal.
        let pt = rs
            .iter()
            .find(|r| {
                r.analysis == "incidence_per_1000_administrations"
                    && r.event_level == "pt"
                    && r.dose_band == ">= 2 g"
                    && r.product == "ketamine"
            })
            .expect("PT-level incidence");
        assert!(pt.n > 0 && !pt.signal && pt.flags.contains("no_background_rate"), "{pt:?}");
        let expected = pv_stats::poisson::rate(pt.n, 1000.0, 1000.0, 0.95);
        assert_eq!((pt.estimate, pt.lower), (expected.estimate, expected.lower));
    }

    #[test]
    fn dose_response_trend_is_the_score_test_over_the_bands() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let rs = a.run(&inputs(Window::Period));
        let r = find(&rs, Analysis::DoseResponse, &ket(), "*", "urological");
        // c = 1, 2, 4, 8 over 1,000 each, x = 0..3: C = 15, E = 3.75, U = 0*(-2.75) + 1*(-1.75)
        // + 2*(0.25) + 3*(4.25) = 11.5, V = 14 * 3.75 - (6 * 3.75)^2 / 15 = 18.75, z = 2.6558.
        let want = 11.5 / 18.75f64.sqrt();
        assert!((r.trend_z.expect("z") - want).abs() < 1e-12, "{r:?}");
        assert!((r.estimate - 8.0).abs() < 1e-12, "rate ratio top vs bottom band");
        assert!(!r.signal, "2.66 < the default 3.09");
        let lenient =
            Analyser::new(SignalsConfig { trend_z: 1.645, ..SignalsConfig::default() }).expect("valid");
        let lenient = lenient.run(&inputs(Window::Period));
        assert!(find(&lenient, Analysis::DoseResponse, &ket(), "*", "urological").signal);
        // Esketamine has one band: no trend, flagged.
        let r = find(&rs, Analysis::DoseResponse, &esk(), "*", "urological");
        assert_eq!((r.trend_z, r.signal), (Some(0.0), false));
        assert!(r.flags.contains("single_band"));
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
        let pt = find(&rs, Analysis::Disproportionality, &ket(), "*", "Dysuria");
        assert_eq!((pt.event_level.as_str(), pt.n), ("pt", 15));
        // Per band: band 3 of ketamine has 8 cases, all urological.
        let r = find(&rs, Analysis::Disproportionality, &ket(), ">= 2 g", "urological");
        assert_eq!(r.n, 8);
        assert!(r.prr.expect("prr").is_finite() && r.ror.expect("ror").is_finite());
        assert!(r.flags.contains("zero_cell_corrected"), "b = 0: ROR corrected");
        assert!(rs.iter().all(|r| r.estimate.is_finite() && !r.lower.is_nan() && !r.upper.is_nan()));
    }

    #[test]
    fn markers_and_maxsprt() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let rs = a.run(&inputs(Window::Cumulative));
        // 20 of 200 escalated: Wilson 95% 0.06567..0.14941 > 0.02.
        let r = find(&rs, Analysis::DependenceMarker, &ket(), "*", "dose_escalation");
        assert_eq!((r.n, r.estimate), (20, 0.1));
        assert!((r.lower - 0.065670).abs() < 1e-5 && r.signal, "{r:?}");
        // 3 of 200: lower bound 0.0051 < 0.02.
        assert!(!find(&rs, Analysis::DependenceMarker, &ket(), "*", "shrinking_intervals").signal);
        // MaxSPRT per product: ketamine 15 urological cases, 4,000 administrations at 1/1,000:
        // expected 4, LLR = 4 - 15 + 15 ln(15/4) = 8.826 > CV.
        let r = find(&rs, Analysis::MaxSprt, &ket().product_only(), "*", "urological");
        assert!((r.denominator - 4.0).abs() < 1e-12);
        let llr = 4.0 - 15.0 + 15.0 * (15.0f64 / 4.0).ln();
        assert!((r.llr.expect("llr") - llr).abs() < 1e-9);
        assert!(r.cv.expect("cv") > 3.0 && r.cv.expect("cv") < llr && r.signal);
        // Esketamine: 2 cases of 2 expected: no signal.
        assert!(!find(&rs, Analysis::MaxSprt, &esk().product_only(), "*", "urological").signal);
        // The period window carries neither.
        let period = a.run(&inputs(Window::Period));
        assert!(period.iter().all(|r| r.analysis != "maxsprt" && r.analysis != "dependence_marker"));
    }

    #[test]
    fn time_to_onset_quartiles() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let rs = a.run(&inputs(Window::Cumulative));
        let r = find(&rs, Analysis::TimeToOnset, &esk(), "*", "urological");
        assert_eq!((r.n, r.estimate, r.lower, r.upper), (2, 5.0, 5.0, 5.0));
        let r = find(&rs, Analysis::TimeToOnset, &ket(), "*", "urological");
        assert_eq!(r.n, 15);
        assert!(!r.signal);
    }

    #[test]
    fn an_empty_window_gives_no_results_and_no_panic() {
        let a = Analyser::new(SignalsConfig::default()).expect("valid");
        let empty = Inputs {
            window: Window::Cumulative,
            doses: vec![],
            cases: vec![],
            markers: vec![],
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
