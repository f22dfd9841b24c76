//! The cohort analyses on person-time ([`crate::cohort`]), pure.
//!
//! Per monitored harm:
//! - **Incidence** (`incidence_per_100_patient_years`): incident cases per 100 patient-years at
//!   risk with exact (Garwood) 95% intervals, for the whole cohort, per product, per product and
//!   route, per product and lagged cumulative-dose band, and per product and clinic, age band
//!   and sex; plus, per product, the sensitivity analysis in which cases without an onset date
//!   count on their report day.
//! - **Rate ratios** (`rate_ratio`) from Poisson regression on the person-time rows (log link,
//!   offset log person-time, robust errors clustered by patient; above 30 clinics clustered by
//!   clinic, clinic then not a fixed effect), adjusted for time on treatment, calendar quarter,
//!   clinic, age band, sex, baseline IPSS band and prior substance-use disorder:
//!   - per product, each dose band against the lowest band with cases, and the trend across
//!     bands (band index as a score: the rate ratio per band step and its z);
//!   - each product and route against the reference stratum (the one with most person-time).
//!
//! A level (band, clinic, quarter, ...) without any case has no finite rate ratio: its rows leave
//! the model (as they do at the maximum-likelihood limit) and a band without cases is reported as
//! such. An adjuster that cannot be separated from the others (collinear) is dropped and named
//! in the result's flags.

use std::collections::{BTreeMap, BTreeSet};

use pv_stats::regression::{self, FitError, SparseRow};
use pv_stats::{poisson, quantile};

use crate::cohort::{Cohort, DAYS_PER_YEAR, HarmSplit, IPSS_BANDS, Levels, PtRow, SUD};
use crate::config::SignalsConfig;
use crate::model::{Analysis, SignalResult, Window};

/// Everything the person-time analyses of a run produce.
pub fn analyse(cfg: &SignalsConfig, cohort: &Cohort) -> Vec<SignalResult> {
    let mut out = Vec::new();
    for harm in &cohort.harms {
        incidence(cfg, &cohort.levels, harm, &mut out);
        rate_ratios(cfg, &cohort.levels, harm, &mut out);
        time_to_onset(&cohort.levels, harm, &mut out);
    }
    out
}

/// Days from the first dose to each incident case's onset, per product: median and quartiles
/// (descriptive; cases without an onset date have no time to onset).
fn time_to_onset(levels: &Levels, harm: &HarmSplit, out: &mut Vec<SignalResult>) {
    let mut days: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for i in harm.incident.iter().filter(|i| !i.imputed) {
        let row = &harm.rows[i.row];
        days.entry(levels.strata[usize::from(row.stratum)].0.as_str())
            .or_default()
            .push(f64::from(i.days_from_entry));
    }
    for (product, v) in days {
        let mut r = base(Analysis::TimeToOnset, product, "*", "*", &harm.group, "*");
        r.n = v.len() as u64;
        r.denominator = v.len() as f64;
        r.estimate = quantile::quantile(&v, 0.5).unwrap_or(0.0);
        r.lower = quantile::quantile(&v, 0.25).unwrap_or(0.0);
        r.upper = quantile::quantile(&v, 0.75).unwrap_or(0.0);
        r.flags = "descriptive,days from the first dose: median (quartiles)".into();
        out.push(r);
    }
}

fn base(
    analysis: Analysis,
    product: &str,
    route: &str,
    band: &str,
    group: &str,
    subgroup: &str,
) -> SignalResult {
    SignalResult {
        analysis: analysis.name().into(),
        time_window: Window::Cumulative.name().into(),
        product: product.into(),
        route: route.into(),
        formulation: "*".into(),
        dose_band: band.into(),
        event: group.into(),
        event_level: "group".into(),
        subgroup: subgroup.into(),
        ..SignalResult::default()
    }
}

/// The band label of a row whose product's unit is mg/kg and whose weight is unknown.
pub const UNKNOWN_WEIGHT: &str = "unknown weight";

/// The label of a row's band for its product.
pub fn band_label(cfg: &SignalsConfig, product: &str, band: Option<u8>) -> String {
    match (cfg.product_bands.get(product), band) {
        (Some(b), Some(i)) => b.label(usize::from(i)),
        _ => UNKNOWN_WEIGHT.into(),
    }
}

/// The levels a person-time row is counted under: stratum, band, clinic, age, sex, IPSS band,
/// prior substance-use disorder.
type Combo = (u16, Option<u8>, u16, u16, u16, u8, u8);

/// (product, route, band, subgroup) of an incidence cell; its value: (events, events with
/// imputed onsets, days).
type CellKey = (String, String, String, String);

fn incidence(cfg: &SignalsConfig, levels: &Levels, harm: &HarmSplit, out: &mut Vec<SignalResult>) {
    // First per distinct combination of levels (numbers, no strings: millions of rows at scale),
    // then per labelled cell.
    let mut combos: std::collections::HashMap<Combo, PtRow> = std::collections::HashMap::new();
    for r in &harm.rows {
        let key = (r.stratum, r.band, r.clinic, r.age, r.sex, r.ipss, r.sud);
        let c = combos.entry(key).or_insert(PtRow { days: 0.0, events: 0, events_imputed: 0, ..*r });
        c.days += r.days;
        c.events += r.events;
        c.events_imputed += r.events_imputed;
    }
    let mut combos: Vec<PtRow> = combos.into_values().collect();
    combos.sort_by_key(|r| (r.stratum, r.band, r.clinic, r.age, r.sex, r.ipss, r.sud));
    let mut cells: BTreeMap<CellKey, (u64, u64, f64)> = BTreeMap::new();
    let mut routes: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &combos {
        let (product, route) = &levels.strata[usize::from(r.stratum)];
        routes.entry(product).or_default().insert(route);
        let band = band_label(cfg, product, r.band);
        let subgroups = subgroups(levels, r);
        let star = || "*".to_string();
        let mut keys = vec![
            (star(), star(), star(), star()),
            (product.clone(), star(), star(), star()),
            (product.clone(), route.clone(), star(), star()),
            (product.clone(), star(), band, star()),
        ];
        keys.extend(subgroups.into_iter().map(|s| (product.clone(), star(), star(), s)));
        for k in keys {
            let c = cells.entry(k).or_default();
            c.0 += u64::from(r.events);
            c.1 += u64::from(r.events_imputed);
            c.2 += r.days;
        }
    }
    for ((product, route, band, subgroup), (events, imputed, days)) in cells {
        // A product with one route: its stratum row would repeat the product's.
        if route != "*" && routes.get(product.as_str()).is_some_and(|r| r.len() < 2) {
            continue;
        }
        let years = days / DAYS_PER_YEAR;
        let mut r = base(Analysis::IncidencePatientYears, &product, &route, &band, &harm.group, &subgroup);
        fill_rate(&mut r, events, years, cfg.min_cases);
        out.push(r.clone());
        if product != "*" && route == "*" && band == "*" && subgroup == "*" {
            let mut s = r;
            s.subgroup = IMPUTED.into();
            fill_rate(&mut s, imputed, years, cfg.min_cases);
            s.flags = join_flags(&[
                &s.flags,
                "sensitivity: cases without an onset date counted on their report day",
            ]);
            out.push(s);
        }
    }
}

/// The subgroups a row's patient belongs to, as results name them.
pub fn subgroups(levels: &Levels, r: &PtRow) -> [String; 5] {
    [
        format!("clinic={}", levels.clinics[usize::from(r.clinic)]),
        format!("age_band={}", levels.ages[usize::from(r.age)]),
        format!("sex={}", levels.sexes[usize::from(r.sex)]),
        format!("baseline_ipss={}", IPSS_BANDS.get(usize::from(r.ipss)).unwrap_or(&"unknown")),
        format!("prior_substance_use_disorder={}", SUD.get(usize::from(r.sud)).unwrap_or(&"unknown")),
    ]
}

/// The subgroup of the sensitivity analysis counting cases without an onset date.
pub const IMPUTED: &str = "missing_onset_imputed";

/// The subgroup of the trend rate ratio.
pub const TREND: &str = "trend per band";

fn fill_rate(r: &mut SignalResult, events: u64, years: f64, min_cases: u64) {
    let rate = poisson::rate(events, years, 100.0, 0.95);
    r.n = events;
    r.denominator = years;
    (r.estimate, r.lower, r.upper) = (rate.estimate, rate.lower, rate.upper);
    r.flags = if events < min_cases { "descriptive,small_count".into() } else { "descriptive".into() };
}

fn join_flags(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(",")
}

/// A term of a model: a factor with a reference level, or a numeric score.
#[derive(Clone, Copy)]
enum Term {
    /// Indicator columns for every level but the reference (`None`: the level with most time).
    Factor { name: &'static str, level: fn(&PtRow) -> i64, reference: Option<i64> },
    /// One numeric column.
    Score { name: &'static str, value: fn(&PtRow) -> f64 },
}

/// The adjusters every model carries.
fn adjusters() -> Vec<Term> {
    vec![
        Term::Factor { name: "on_treatment", level: |r| i64::from(r.on_treatment), reference: Some(0) },
        Term::Factor { name: "quarter", level: |r| i64::from(r.quarter), reference: None },
        Term::Factor { name: "clinic", level: |r| i64::from(r.clinic), reference: None },
        Term::Factor { name: "age_band", level: |r| i64::from(r.age), reference: None },
        Term::Factor { name: "sex", level: |r| i64::from(r.sex), reference: None },
        Term::Factor { name: "baseline_ipss", level: |r| i64::from(r.ipss), reference: None },
        Term::Factor { name: "prior_sud", level: |r| i64::from(r.sud), reference: None },
    ]
}

/// A fitted model with the column of each (term, level).
struct Model {
    fit: regression::Fit,
    columns: Vec<(&'static str, i64)>,
    /// Levels of each factor whose rows left the model for having no events.
    dropped_levels: Vec<(&'static str, i64)>,
    /// Columns dropped as collinear.
    collinear: Vec<(&'static str, i64)>,
    /// References chosen.
    references: BTreeMap<&'static str, i64>,
    /// Errors clustered by clinic (many clinics; clinic not a fixed effect) instead of patient.
    by_clinic: bool,
}

impl Model {
    fn column(&self, term: &str, level: i64) -> Option<usize> {
        self.columns.iter().position(|&(t, l)| t == term && l == level)
    }

    fn flags(&self) -> String {
        let mut f = Vec::new();
        let dropped: BTreeSet<&str> =
            self.dropped_levels.iter().map(|(t, _)| *t).filter(|t| *t != "band" && *t != "stratum").collect();
        if !dropped.is_empty() {
            f.push(format!(
                "levels_without_cases_dropped:{}",
                dropped.into_iter().collect::<Vec<_>>().join("+")
            ));
        }
        if self.by_clinic {
            f.push(format!("robust_errors_by_clinic:{}_clinics", self.fit.clusters));
        }
        let collinear: BTreeSet<&str> = self.collinear.iter().map(|(t, _)| *t).collect();
        if !collinear.is_empty() {
            f.push(format!("collinear_dropped:{}", collinear.into_iter().collect::<Vec<_>>().join("+")));
        }
        f.join(",")
    }
}

/// Clinics above which clinic is no longer a fixed effect: the robust errors are then clustered
/// by clinic (enough clusters to be trusted), and the design stays small.
const MAX_CLINIC_EFFECTS: usize = 30;

/// `rows` pooled where every term has the same value and the cluster is the same (events and
/// days summed): the same likelihood and robust covariance from far fewer rows when errors are
/// clustered by clinic (hundreds of thousands of patients' rows into a few thousand).
fn pool(terms: &[Term], rows: &[&PtRow], by_clinic: bool) -> Vec<PtRow> {
    let mut index: std::collections::HashMap<Vec<i64>, usize> = std::collections::HashMap::new();
    let mut pooled: Vec<PtRow> = Vec::new();
    for r in rows {
        let mut key: Vec<i64> = terms
            .iter()
            .map(|t| match t {
                Term::Factor { level, .. } => level(r),
                Term::Score { value, .. } => value(r).to_bits() as i64,
            })
            .collect();
        key.push(if by_clinic { i64::from(r.clinic) } else { i64::from(r.patient) });
        match index.get(&key) {
            Some(&i) => {
                pooled[i].days += r.days;
                pooled[i].events += r.events;
            }
            None => {
                index.insert(key, pooled.len());
                pooled.push(**r);
            }
        }
    }
    pooled
}

/// The design of `rows` for `columns`, one indicator or score per term, clustered by patient
/// (or by clinic when `by_clinic`).
fn sparse_design(
    terms: &[Term],
    columns: &[(&'static str, i64)],
    rows: &[&PtRow],
    by_clinic: bool,
) -> Vec<SparseRow> {
    let index: std::collections::HashMap<(&str, i64), u32> =
        columns.iter().enumerate().map(|(j, &(t, l))| ((t, l), j as u32)).collect();
    rows.iter()
        .map(|r| {
            let mut cols: Vec<(u32, f64)> = vec![(0, 1.0)];
            for t in terms {
                match t {
                    Term::Factor { name, level, .. } => {
                        if let Some(&j) = index.get(&(*name, level(r))) {
                            cols.push((j, 1.0));
                        }
                    }
                    Term::Score { name, value } => {
                        let v = value(r);
                        if let (Some(&j), true) = (index.get(&(*name, 0)), v != 0.0) {
                            cols.push((j, v));
                        }
                    }
                }
            }
            SparseRow {
                cols,
                events: f64::from(r.events),
                exposure: r.days / DAYS_PER_YEAR,
                cluster: if by_clinic { u64::from(r.clinic) } else { u64::from(r.patient) },
            }
        })
        .collect()
}

/// Fits `terms` (after an intercept) to `rows`, dropping levels without events and collinear
/// columns until the model fits. `None` when nothing estimable is left. With more than
/// [`MAX_CLINIC_EFFECTS`] clinics, clinic leaves the terms and clusters the errors instead.
fn fit_terms(rows: &[&PtRow], terms: &[Term]) -> Option<Model> {
    let clinics: BTreeSet<u16> = rows.iter().map(|r| r.clinic).collect();
    let by_clinic = clinics.len() > MAX_CLINIC_EFFECTS;
    let terms: Vec<Term> = terms
        .iter()
        .copied()
        .filter(|t| !(by_clinic && matches!(t, Term::Factor { name: "clinic", .. })))
        .collect();
    let terms = &terms[..];
    let mut keep: Vec<bool> = vec![true; rows.len()];
    let mut dropped_levels = Vec::new();
    // Every factor level without events leaves at once (its rows cannot change any other
    // level's events), so the loop below refits only for what this cannot see.
    for t in terms {
        if let Term::Factor { name, level, .. } = t {
            let mut events: BTreeMap<i64, u32> = BTreeMap::new();
            for r in rows {
                *events.entry(level(r)).or_default() += r.events;
            }
            for (&l, _) in events.iter().filter(|(_, n)| **n == 0) {
                dropped_levels.push((*name, l));
                for (k, r) in keep.iter_mut().zip(rows) {
                    if level(r) == l {
                        *k = false;
                    }
                }
            }
        }
    }
    let mut collinear: Vec<(&'static str, i64)> = Vec::new();
    for _ in 0..200 {
        let live: Vec<&PtRow> = rows.iter().zip(&keep).filter(|(_, k)| **k).map(|(r, _)| *r).collect();
        if live.iter().map(|r| r.events).sum::<u32>() == 0 {
            return None;
        }
        let mut references = BTreeMap::new();
        let mut columns: Vec<(&'static str, i64)> = vec![("intercept", 0)];
        for t in terms {
            match t {
                Term::Factor { name, level, reference } => {
                    let mut time: BTreeMap<i64, f64> = BTreeMap::new();
                    for r in &live {
                        *time.entry(level(r)).or_default() += r.days;
                    }
                    let most = time.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(l, _)| *l);
                    let reference = reference.filter(|l| time.contains_key(l)).or(most).unwrap_or(0);
                    references.insert(*name, reference);
                    columns.extend(
                        time.keys()
                            .filter(|&&l| l != reference && !collinear.contains(&(*name, l)))
                            .map(|&l| (*name, l)),
                    );
                }
                Term::Score { name, .. } => columns.push((name, 0)),
            }
        }
        let pooled = pool(terms, &live, by_clinic);
        let pooled: Vec<&PtRow> = pooled.iter().collect();
        let design = sparse_design(terms, &columns, &pooled, by_clinic);
        let names: Vec<String> = columns.iter().map(|(t, l)| format!("{t}={l}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        match regression::fit_sparse(&name_refs, &design) {
            Ok(fit) => return Some(Model { fit, columns, dropped_levels, collinear, references, by_clinic }),
            Err(FitError::NoEvents(col)) => {
                let (term, level) = columns[names.iter().position(|n| *n == col)?];
                dropped_levels.push((term, level));
                for (k, r) in keep.iter_mut().zip(rows) {
                    if value(terms, term, level, r) != 0.0 {
                        *k = false;
                    }
                }
            }
            Err(FitError::Collinear(col)) => {
                let (term, level) = columns[names.iter().position(|n| *n == col)?];
                if term == "intercept" || matches!(find(terms, term), Some(Term::Score { .. })) {
                    return None;
                }
                collinear.push((term, level));
            }
            Err(_) => return None,
        }
    }
    None
}

fn find<'t>(terms: &'t [Term], name: &str) -> Option<&'t Term> {
    terms.iter().find(|t| match t {
        Term::Factor { name: n, .. } | Term::Score { name: n, .. } => *n == name,
    })
}

/// The value of column (term, level) in row `r`.
fn value(terms: &[Term], term: &str, level: i64, r: &PtRow) -> f64 {
    match find(terms, term) {
        None => 1.0, // the intercept
        Some(Term::Factor { level: of, .. }) => f64::from(u8::from(of(r) == level)),
        Some(Term::Score { value, .. }) => value(r),
    }
}

fn rate_ratios(cfg: &SignalsConfig, levels: &Levels, harm: &HarmSplit, out: &mut Vec<SignalResult>) {
    let products: BTreeSet<&str> = levels.strata.iter().map(|(p, _)| p.as_str()).collect();
    for product in products {
        dose_models(cfg, levels, harm, product, out);
    }
    strata_model(cfg, levels, harm, out);
}

/// Events and person-years of the rows matching `keep`.
fn totals<'r>(rows: impl Iterator<Item = &'r PtRow>) -> (u64, f64) {
    rows.fold((0, 0.0), |(n, d), r| (n + u64::from(r.events), d + r.days / DAYS_PER_YEAR))
}

fn dose_models(
    cfg: &SignalsConfig,
    levels: &Levels,
    harm: &HarmSplit,
    product: &str,
    out: &mut Vec<SignalResult>,
) {
    let rows: Vec<&PtRow> = harm
        .rows
        .iter()
        .filter(|r| levels.strata[usize::from(r.stratum)].0 == product && r.band.is_some())
        .collect();
    let bands: BTreeSet<u8> = rows.iter().filter_map(|r| r.band).collect();
    if bands.len() < 2 {
        return;
    }
    let routes: BTreeSet<u16> = rows.iter().map(|r| r.stratum).collect();
    let lowest_with_cases = rows.iter().filter(|r| r.events > 0).filter_map(|r| r.band).min();
    let Some(reference) = lowest_with_cases else { return };
    let mut terms = vec![Term::Factor {
        name: "band",
        level: |r| i64::from(r.band.unwrap_or(0)),
        reference: Some(i64::from(reference)),
    }];
    if routes.len() > 1 {
        terms.push(Term::Factor { name: "stratum", level: |r| i64::from(r.stratum), reference: None });
    }
    terms.extend(adjusters());
    let model = fit_terms(&rows, &terms);
    let ref_label = band_label(cfg, product, Some(reference));
    for &band in bands.iter().filter(|&&b| b != reference) {
        let (n, years) = totals(rows.iter().copied().filter(|r| r.band == Some(band)));
        let mut r = base(
            Analysis::RateRatio,
            product,
            "*",
            &band_label(cfg, product, Some(band)),
            &harm.group,
            &format!("vs {ref_label}"),
        );
        level_ratio(
            &mut r,
            model.as_ref(),
            ("band", i64::from(band)),
            (n, years),
            "no_cases_in_band",
            cfg.min_cases,
        );
        out.push(r);
    }
    // The trend: the band index as a score, same adjusters.
    let mut trend_terms = vec![Term::Score { name: "band_score", value: |r| f64::from(r.band.unwrap_or(0)) }];
    trend_terms.extend(terms.into_iter().skip(1));
    let (n, years) = totals(rows.iter().copied());
    let mut r = base(Analysis::RateRatio, product, "*", "*", &harm.group, TREND);
    r.n = n;
    r.denominator = years;
    match fit_terms(&rows, &trend_terms) {
        Some(m) => {
            let c = m.column("band_score", 0).unwrap_or(1);
            fill_ratio(&mut r, &m, c, cfg.min_cases);
            // Descriptive: a fixed-sample test re-run every few minutes on growing data would fire
            // by chance in the end; the sequential tests decide the monitored harms.
            r.trend_z = Some(m.fit.rate_ratio(c).z);
        }
        None => r.flags = "not_estimable".into(),
    }
    out.push(r);
}

/// The rate ratio of one level of a factor against its reference: from the model when the level
/// has a column, else reported as having no cases (`no_cases_flag`) or as not estimable.
fn level_ratio(
    r: &mut SignalResult,
    model: Option<&Model>,
    (term, level): (&str, i64),
    (n, years): (u64, f64),
    no_cases_flag: &str,
    min_cases: u64,
) {
    r.n = n;
    r.denominator = years;
    match model.and_then(|m| m.column(term, level).map(|c| (m, c))) {
        Some((m, c)) => fill_ratio(r, m, c, min_cases),
        None => {
            (r.estimate, r.lower, r.upper) = (0.0, 0.0, f64::INFINITY);
            r.flags = if n == 0 { no_cases_flag.into() } else { "not_estimable".into() };
        }
    }
}

fn fill_ratio(r: &mut SignalResult, m: &Model, column: usize, min_cases: u64) {
    let e = m.fit.rate_ratio(column);
    (r.estimate, r.lower, r.upper) = (e.ratio, e.lower, e.upper);
    r.p_value = Some(e.p);
    let small = if r.n < min_cases { "small_count" } else { "" };
    r.flags = join_flags(&["adjusted", small, &m.flags()]);
}

fn strata_model(cfg: &SignalsConfig, levels: &Levels, harm: &HarmSplit, out: &mut Vec<SignalResult>) {
    let rows: Vec<&PtRow> = harm.rows.iter().collect();
    let strata: BTreeSet<u16> = rows.iter().map(|r| r.stratum).collect();
    if strata.len() < 2 {
        return;
    }
    let mut terms = vec![Term::Factor { name: "stratum", level: |r| i64::from(r.stratum), reference: None }];
    terms.extend(adjusters());
    let model = fit_terms(&rows, &terms);
    let reference = model.as_ref().and_then(|m| m.references.get("stratum").copied());
    let Some(reference) = reference else { return };
    let (ref_product, ref_route) = &levels.strata[reference as usize];
    for &s in strata.iter().filter(|&&s| i64::from(s) != reference) {
        let (product, route) = &levels.strata[usize::from(s)];
        let (n, years) = totals(rows.iter().copied().filter(|r| r.stratum == s));
        let mut r = base(
            Analysis::RateRatio,
            product,
            route,
            "*",
            &harm.group,
            &format!("vs {ref_product}/{ref_route}"),
        );
        level_ratio(&mut r, model.as_ref(), ("stratum", i64::from(s)), (n, years), "no_cases", cfg.min_cases);
        out.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohort::Excluded;
    use pv_stats::regression::Row;

    /// A row of patient `patient` with `days` at risk and `events`.
    fn row(patient: u32, stratum: u16, band: Option<u8>, clinic: u16, days: f64, events: u32) -> PtRow {
        PtRow {
            patient,
            stratum,
            band,
            clinic,
            age: 0,
            sex: 0,
            ipss: 3,
            sud: 2,
            quarter: 8104,
            on_treatment: 0,
            days,
            events,
            events_imputed: events,
            artefact: false,
        }
    }

    fn cohort(rows: Vec<PtRow>) -> Cohort {
        Cohort {
            levels: Levels {
                strata: vec![
                    ("ketamine".into(), "iv".into()),
                    ("ketamine".into(), "im".into()),
                    ("esketamine".into(), "intranasal".into()),
                ],
                clinics: vec!["c1".into(), "c2".into()],
                ages: vec!["age_35_44".into()],
                sexes: vec!["female".into()],
                patients: (0..20).map(|i| format!("p{i}")).collect(),
            },
            harms: vec![HarmSplit {
                group: "urological".into(),
                rows,
                accrual: BTreeMap::new(),
                incident: vec![],
                excluded: Excluded::default(),
            }],
        }
    }

    fn find<'a>(
        rs: &'a [SignalResult],
        analysis: Analysis,
        product: &str,
        route: &str,
        band: &str,
        sub: &str,
    ) -> &'a SignalResult {
        rs.iter()
            .find(|r| {
                r.analysis == analysis.name()
                    && (r.product.as_str(), r.route.as_str(), r.dose_band.as_str(), r.subgroup.as_str())
                        == (product, route, band, sub)
            })
            .unwrap_or_else(|| panic!("no {analysis:?} {product} {route} {band} {sub}: {rs:#?}"))
    }

    const YEAR: f64 = DAYS_PER_YEAR;

    #[test]
    fn incidence_per_100_patient_years_by_product_route_band_and_subgroup() {
        // Ketamine IV: 4 cases in 2 years (band 0: 1 in 1.5 y, band 1: 3 in 0.5 y) at c1;
        // ketamine IM: 1 case in 1 year at c2; esketamine: 0 cases in 2 years at c2.
        let c = cohort(vec![
            row(0, 0, Some(0), 0, 1.5 * YEAR, 1),
            row(1, 0, Some(1), 0, 0.5 * YEAR, 3),
            row(2, 1, Some(0), 1, YEAR, 1),
            row(3, 2, Some(0), 1, 2.0 * YEAR, 0),
        ]);
        let rs = analyse(&SignalsConfig::default(), &c);
        let all = find(&rs, Analysis::IncidencePatientYears, "*", "*", "*", "*");
        assert_eq!((all.n, all.denominator, all.estimate), (5, 5.0, 100.0));
        let exact = poisson::rate(5, 5.0, 100.0, 0.95);
        assert_eq!((all.lower, all.upper), (exact.lower, exact.upper));
        let ket = find(&rs, Analysis::IncidencePatientYears, "ketamine", "*", "*", "*");
        assert_eq!((ket.n, ket.denominator), (5, 3.0));
        assert!((ket.estimate - 500.0 / 3.0).abs() < 1e-9);
        let iv = find(&rs, Analysis::IncidencePatientYears, "ketamine", "iv", "*", "*");
        assert_eq!((iv.n, iv.estimate), (4, 200.0));
        let band = find(&rs, Analysis::IncidencePatientYears, "ketamine", "*", "5-10 mg/kg", "*");
        assert_eq!((band.n, band.estimate), (3, 600.0));
        let clinic = find(&rs, Analysis::IncidencePatientYears, "ketamine", "*", "*", "clinic=c2");
        assert_eq!((clinic.n, clinic.estimate), (1, 100.0));
        let esk = find(&rs, Analysis::IncidencePatientYears, "esketamine", "*", "*", "*");
        assert_eq!((esk.n, esk.estimate, esk.lower), (0, 0.0, 0.0));
        assert!(esk.flags.contains("small_count") && !esk.signal);
        // Esketamine has one route: no separate route row.
        assert!(!rs.iter().any(|r| {
            r.analysis == Analysis::IncidencePatientYears.name()
                && r.product == "esketamine"
                && r.route == "intranasal"
        }));
        // Without cases, esketamine cannot be the reference of the product comparison: it is
        // compared with ketamine IV and reported as having no cases.
        let esk = find(&rs, Analysis::RateRatio, "esketamine", "intranasal", "*", "vs ketamine/iv");
        assert_eq!((esk.n, esk.flags.as_str()), (0, "no_cases"));
        // The sensitivity analysis has its own row per product.
        let s = find(&rs, Analysis::IncidencePatientYears, "ketamine", "*", "*", "missing_onset_imputed");
        assert_eq!(s.n, 5);
    }

    #[test]
    fn rate_ratios_match_the_crude_ratio_when_nothing_else_varies() {
        // Ketamine IV only, one clinic: band 0 has 2 cases in 2 years, band 1 has 6 in 1 year:
        // RR = (6/1) / (2/2) = 6, and the trend per band step is the same ratio.
        let mut rows = vec![row(0, 0, Some(0), 0, YEAR, 2), row(1, 0, Some(0), 0, YEAR, 0)];
        rows.extend((2..8).map(|p| row(p, 0, Some(1), 0, YEAR / 6.0, [2, 0, 1, 1, 2, 0][p as usize - 2])));
        let rs = analyse(&SignalsConfig::default(), &cohort(rows.clone()));
        let rr = find(&rs, Analysis::RateRatio, "ketamine", "*", "5-10 mg/kg", "vs < 5 mg/kg");
        assert!((rr.estimate - 6.0).abs() < 1e-9, "{rr:?}");
        assert!(rr.n == 6 && (rr.denominator - 1.0).abs() < 1e-12);
        assert!(rr.lower < 6.0 && rr.upper > 6.0 && rr.p_value.is_some());
        let trend = find(&rs, Analysis::RateRatio, "ketamine", "*", "*", "trend per band");
        assert!((trend.estimate - 6.0).abs() < 1e-9);
        assert!(trend.trend_z.expect("z") > 0.0);
        // A higher band without cases: reported as such, not as a rate ratio of zero.
        rows.push(row(9, 0, Some(2), 0, YEAR, 0));
        let rs = analyse(&SignalsConfig::default(), &cohort(rows));
        let none = find(&rs, Analysis::RateRatio, "ketamine", "*", "10-20 mg/kg", "vs < 5 mg/kg");
        assert_eq!((none.n, none.flags.as_str()), (0, "no_cases_in_band"));
        assert!(
            (find(&rs, Analysis::RateRatio, "ketamine", "*", "5-10 mg/kg", "vs < 5 mg/kg").estimate - 6.0)
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn strata_are_compared_with_the_one_with_most_time_adjusting_for_clinic() {
        // Ketamine IV (most time) 3 cases in 3 years; esketamine 4 in 1 year: RR 4. Clinics split
        // both strata evenly, so adjusting for clinic leaves the crude ratio.
        let rows = vec![
            row(0, 0, Some(0), 0, 1.5 * YEAR, 1),
            row(1, 0, Some(0), 1, 1.5 * YEAR, 2),
            row(2, 2, Some(0), 0, 0.5 * YEAR, 2),
            row(3, 2, Some(0), 1, 0.5 * YEAR, 2),
        ];
        let rs = analyse(&SignalsConfig::default(), &cohort(rows));
        let r = find(&rs, Analysis::RateRatio, "esketamine", "intranasal", "*", "vs ketamine/iv");
        assert!(r.estimate > 1.0 && r.flags.contains("adjusted"), "{r:?}");
        // With clinic in the model the estimate is the Mantel-Haenszel-like pooled ratio:
        // check it against a direct fit of the same design.
        let design = [
            Row { x: vec![1.0, 0.0, 0.0], events: 1.0, exposure: 1.5, cluster: 0 },
            Row { x: vec![1.0, 0.0, 1.0], events: 2.0, exposure: 1.5, cluster: 1 },
            Row { x: vec![1.0, 1.0, 0.0], events: 2.0, exposure: 0.5, cluster: 2 },
            Row { x: vec![1.0, 1.0, 1.0], events: 2.0, exposure: 0.5, cluster: 3 },
        ];
        let f = regression::fit(&["i", "esketamine", "c2"], &design).expect("fits");
        assert!((r.estimate - f.rate_ratio(1).ratio).abs() < 1e-9);
        assert!((r.upper - f.rate_ratio(1).upper).abs() < 1e-9);
    }

    #[test]
    fn time_to_onset_counts_days_from_the_first_dose_of_incident_cases() {
        use crate::cohort::Incident;
        let mut c = cohort(vec![
            row(0, 0, Some(0), 0, YEAR, 1),
            row(1, 2, Some(0), 0, YEAR, 1),
            row(2, 0, Some(0), 0, YEAR, 1),
        ]);
        let incident = |row: usize, days: i32, imputed: bool| Incident {
            who: crate::model::CaseRef::default(),
            day: 20_000 + days,
            imputed,
            days_from_entry: days,
            row,
        };
        c.harms[0].incident = vec![
            incident(0, 10, false),
            incident(2, 30, false),
            incident(1, 7, false),
            incident(0, 99, true),
        ];
        let rs = analyse(&SignalsConfig::default(), &c);
        let t = find(&rs, Analysis::TimeToOnset, "ketamine", "*", "*", "*");
        // Ketamine: 10 and 30 days (the imputed onset has no time to onset): median 20,
        // quartiles 15 and 25 (type 7).
        assert_eq!((t.n, t.estimate, t.lower, t.upper), (2, 20.0, 15.0, 25.0));
        assert_eq!(find(&rs, Analysis::TimeToOnset, "esketamine", "*", "*", "*").estimate, 7.0);
    }

    #[test]
    fn pooling_patients_by_clinic_changes_no_estimate() {
        // 40 clinics (above the fixed-effect limit: errors clustered by clinic), 5 patients each,
        // half of them in band 1 with a rate that varies by clinic.
        let mut rows = Vec::new();
        let mut direct = Vec::new();
        for clinic in 0..40u16 {
            for p in 0..5u32 {
                let patient = u32::from(clinic) * 5 + p;
                let band = u8::from(p % 2 == 1);
                let events =
                    (patient * 7 + u32::from(clinic)) % 3 + u32::from(band) * (1 + u32::from(clinic % 4));
                rows.push(row(patient, 0, Some(band), clinic, YEAR * (1.0 + f64::from(p) / 4.0), events));
                let cols = if band == 1 { vec![(0, 1.0), (1, 1.0)] } else { vec![(0, 1.0)] };
                direct.push(SparseRow {
                    cols,
                    events: f64::from(events),
                    exposure: 1.0 + f64::from(p) / 4.0,
                    cluster: u64::from(clinic),
                });
            }
        }
        let mut c = cohort(rows);
        c.levels.clinics = (0..40).map(|i| format!("c{i}")).collect();
        c.levels.patients = (0..200).map(|i| format!("p{i}")).collect();
        let rs = analyse(&SignalsConfig::default(), &c);
        let rr = find(&rs, Analysis::RateRatio, "ketamine", "*", "5-10 mg/kg", "vs < 5 mg/kg");
        let f = regression::fit_sparse(&["i", "band_1"], &direct).expect("fits");
        let want = f.rate_ratio(1);
        assert!(
            (rr.estimate - want.ratio).abs() < 1e-9 && (rr.upper - want.upper).abs() < 1e-9,
            "{rr:?} {want:?}"
        );
        assert!(rr.flags.contains("robust_errors_by_clinic:40_clinics"), "{}", rr.flags);
    }
}
