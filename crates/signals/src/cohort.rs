//! The treated cohort on person-time, pure: each patient's follow-up split into time at risk
//! by current product and route, lagged cumulative-dose band of that product, calendar quarter
//! and time on treatment, with the first occurrence of each monitored harm (the incident case).
//!
//! Per harm (event group) with risk window W and lag L (configuration, [`HarmConfig`]):
//! - a patient enters at the first dose; a dose on day d puts them at risk on days d..=d+W, so
//!   a treatment gap longer than W leaves time not at risk, and follow-up ends W days after the
//!   last dose or at the run's as-of day;
//! - the incident case is the patient's earliest case of the harm with a known onset date; the
//!   patient's time stops on its onset day (counted), and it counts as an event when the onset
//!   falls in time at risk. A patient whose first onset precedes the first dose had the harm
//!   before treatment (prevalent) and is left out of that harm's analysis;
//! - a case without an onset date is not given one: the patient is censored on the day it was
//!   reported (primary analysis); the sensitivity analysis counts it as an event on that day;
//! - the current product and route are those of the latest dose; the band is that of the
//!   product's own cumulative dose (mg, or mg/kg where configured and the patient's weight is
//!   known) from doses given at least L days before: an event reflects the dose before it.
//!   Ketamine and esketamine, IV and intranasal, are never added together.
//!
//! Days are whole UTC days since 1970-01-01; person-time is reported in years of 365.25 days.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::CaseRef;

/// Days in a year of person-time.
pub const DAYS_PER_YEAR: f64 = 365.25;

/// How one harm's time at risk is defined.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HarmConfig {
    /// Days after each dose the patient stays at risk.
    pub risk_window_days: u32,
    /// Days before an event that the dose counted towards its band must have been given.
    pub lag_days: u32,
    /// Why these values (shown with the results).
    pub rationale: String,
}

/// The unit a product's cumulative dose is banded in.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DoseUnit {
    /// Milligrams.
    Mg,
    /// Milligrams per kilogram of body weight (patients without a known weight: band unknown).
    MgPerKg,
}

impl DoseUnit {
    /// The unit as written in band labels.
    pub fn label(self) -> &'static str {
        match self {
            DoseUnit::Mg => "mg",
            DoseUnit::MgPerKg => "mg/kg",
        }
    }
}

/// A product's cumulative-dose bands.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProductBands {
    /// The unit of `edges`.
    pub unit: DoseUnit,
    /// Band edges, strictly increasing (bands: below the first, between, at or above the last).
    pub edges: Vec<f64>,
}

impl ProductBands {
    /// The band of a cumulative amount.
    pub fn band_of(&self, amount: f64) -> u8 {
        self.edges.iter().take_while(|&&e| amount >= e).count() as u8
    }

    /// Number of bands.
    pub fn bands(&self) -> usize {
        self.edges.len() + 1
    }

    /// The label of band `i`, e.g. `10-20 mg/kg` (cumulative, lagged).
    pub fn label(&self, i: usize) -> String {
        let u = self.unit.label();
        let num = |x: f64| format!("{x}");
        match i {
            0 => format!("< {} {u}", self.edges.first().map_or("inf".into(), |&x| num(x))),
            i if i >= self.edges.len() => {
                format!(">= {} {u}", self.edges.last().map_or("0".into(), |&x| num(x)))
            }
            i => format!("{}-{} {u}", num(self.edges[i - 1]), num(self.edges[i])),
        }
    }
}

/// One dose of a patient.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortDose {
    /// Day given.
    pub day: i32,
    /// Product (`ketamine`, `esketamine`).
    pub product: String,
    /// Route (`iv`, `intranasal`, ...).
    pub route: String,
    /// Dose, mg.
    pub mg: f64,
    /// Weight at the dose, kg, if recorded.
    pub weight_kg: Option<f64>,
    /// The session number the clinic gave it.
    pub session: i32,
}

/// One current case of a patient with a reaction in a monitored group.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortCase {
    /// The event group.
    pub group: String,
    /// Earliest onset date among its reactions of the group, if any was given.
    pub onset_day: Option<i32>,
    /// Day the clinic reported it (for the censoring of a case without an onset date).
    pub reported_day: i32,
    /// Who it is.
    pub who: CaseRef,
}

/// A treated patient: doses (any order), covariates and cases.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CohortPatient {
    /// Pseudonymous key.
    pub key: String,
    /// Clinic.
    pub clinic_id: String,
    /// Age band at enrolment (`unknown` without an enrolment).
    pub age_band: String,
    /// Sex at enrolment (`unknown` without an enrolment).
    pub sex: String,
    /// The protocol the patient was enrolled on (empty without an enrolment).
    pub protocol: String,
    /// Dissociation scores of monitored sessions: (session, day, CADSS).
    pub dissociation: Vec<(i32, i32, f64)>,
    /// Baseline IPSS at enrolment, if assessed.
    pub baseline_ipss: Option<i32>,
    /// Prior substance-use disorder at enrolment, if recorded.
    pub prior_sud: Option<bool>,
    /// Doses.
    pub doses: Vec<CohortDose>,
    /// Cases of monitored groups.
    pub cases: Vec<CohortCase>,
}

/// The names a row's indices refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Levels {
    /// `product/route` strata.
    pub strata: Vec<(String, String)>,
    /// Clinics.
    pub clinics: Vec<String>,
    /// Age bands.
    pub ages: Vec<String>,
    /// Sexes.
    pub sexes: Vec<String>,
    /// Patients (keys).
    pub patients: Vec<String>,
}

fn intern(names: &mut Vec<String>, name: &str) -> u16 {
    match names.iter().position(|n| n == name) {
        Some(i) => i as u16,
        None => {
            names.push(name.to_string());
            (names.len() - 1) as u16
        }
    }
}

/// Time at risk of one patient in one cell, and the events in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PtRow {
    /// Index into [`Levels::patients`].
    pub patient: u32,
    /// Index into [`Levels::strata`].
    pub stratum: u16,
    /// Lagged cumulative-dose band of the stratum's product; `None` when its unit is mg/kg and
    /// the patient's weight is unknown.
    pub band: Option<u8>,
    /// Index into [`Levels::clinics`].
    pub clinic: u16,
    /// Index into [`Levels::ages`].
    pub age: u16,
    /// Index into [`Levels::sexes`].
    pub sex: u16,
    /// Baseline urinary symptoms: [`IPSS_BANDS`] index.
    pub ipss: u8,
    /// Prior substance-use disorder: [`SUD`] index.
    pub sud: u8,
    /// Calendar quarter: year × 4 + quarter (0-3).
    pub quarter: i32,
    /// Time-on-treatment bucket (index into the configured edges' bands).
    pub on_treatment: u8,
    /// Days at risk.
    pub days: f64,
    /// Incident events (primary analysis).
    pub events: u32,
    /// Incident events when cases without an onset date count on their report day.
    pub events_imputed: u32,
    /// The time lies in a reporting surge of the patient's clinic ([`crate::artefacts`]): left
    /// out of the harm decisions.
    pub artefact: bool,
}

/// An incident case as counted, with the cell it fell in.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Who it is.
    pub who: CaseRef,
    /// Onset day (the report day for an imputed onset).
    pub day: i32,
    /// Whether the onset was imputed (sensitivity analysis only).
    pub imputed: bool,
    /// Days from the patient's first dose to the onset.
    pub days_from_entry: i32,
    /// The row of the person-time it fell in (index into [`HarmSplit::rows`]).
    pub row: usize,
}

/// Cases of the harm that the rates do not count, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Excluded {
    /// Patients whose first onset preceded their first dose (prevalent, left out).
    pub prevalent_patients: u64,
    /// Patients censored at the report of a case without an onset date.
    pub missing_onset_patients: u64,
    /// First onsets outside time at risk (after the risk window ended).
    pub outside_risk_window: u64,
    /// Later cases of patients already counted (repeat reports: not incident).
    pub repeat_cases: u64,
}

/// One harm's person-time.
#[derive(Debug, Clone, PartialEq)]
pub struct HarmSplit {
    /// The event group.
    pub group: String,
    /// Person-time rows (per patient and cell).
    pub rows: Vec<PtRow>,
    /// Per stratum, outside reporting surges: the administrations given to patients still at
    /// risk (before their first event), by day: the exposure the sequential tests' expected
    /// counts follow ([`accrued`]).
    pub accrual: BTreeMap<u16, BTreeMap<i32, i64>>,
    /// Incident cases counted (primary and imputed).
    pub incident: Vec<Incident>,
    /// What was left out.
    pub excluded: Excluded,
}

/// The split of every harm, sharing one set of level names.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    /// Level names.
    pub levels: Levels,
    /// One split per configured harm, in the configuration's order.
    pub harms: Vec<HarmSplit>,
}

/// What the split needs from the configuration.
#[derive(Debug, Clone)]
pub struct SplitSpec<'a> {
    /// Harms by group.
    pub harms: &'a BTreeMap<String, HarmConfig>,
    /// Bands by product.
    pub bands: &'a BTreeMap<String, ProductBands>,
    /// Time-on-treatment bucket edges, days since the first dose.
    pub on_treatment_days: &'a [u32],
    /// The last day of follow-up (the run's as-of day).
    pub as_of_day: i32,
    /// Reporting surges: (clinic, first day, day after).
    pub artefacts: &'a [(String, i32, i32)],
}

/// Splits every patient's follow-up for every harm.
pub fn split(spec: &SplitSpec<'_>, patients: &[CohortPatient]) -> Cohort {
    let mut levels = Levels::default();
    let mut harms: Vec<HarmSplit> = spec
        .harms
        .keys()
        .map(|g| HarmSplit {
            group: g.clone(),
            rows: vec![],
            accrual: BTreeMap::new(),
            incident: vec![],
            excluded: Excluded::default(),
        })
        .collect();
    for p in patients {
        let Some(timeline) = Timeline::new(spec, p, &mut levels) else { continue };
        for (split, (group, harm)) in harms.iter_mut().zip(spec.harms) {
            timeline.follow(spec, harm, group, p, split);
        }
    }
    Cohort { levels, harms }
}

/// One patient's doses as change points: where the stratum changes and where each product's
/// lagged band is reached.
struct Timeline {
    patient: u32,
    clinic: u16,
    age: u16,
    ipss: u8,
    sud: u8,
    sex: u16,
    entry: i32,
    /// Sorted dose days.
    dose_days: Vec<i32>,
    /// (first day, stratum index): the stratum of the latest dose from that day on.
    strata: Vec<(i32, u16)>,
    /// Per stratum index: its product's (day reached without lag, band) steps, or `None` when
    /// the band is unknown (mg/kg without a weight).
    bands: BTreeMap<u16, Option<Vec<(i32, u8)>>>,
}

impl Timeline {
    fn new(spec: &SplitSpec<'_>, p: &CohortPatient, levels: &mut Levels) -> Option<Self> {
        let mut doses: Vec<&CohortDose> = p.doses.iter().filter(|d| d.day <= spec.as_of_day).collect();
        doses.sort_by(|a, b| (a.day, &a.product, &a.route).cmp(&(b.day, &b.product, &b.route)));
        let entry = doses.first()?.day;
        levels.patients.push(p.key.clone());
        let patient = (levels.patients.len() - 1) as u32;
        let mut strata: Vec<(i32, u16)> = Vec::new();
        for d in &doses {
            let s = match levels.strata.iter().position(|(pr, r)| *pr == d.product && *r == d.route) {
                Some(i) => i as u16,
                None => {
                    levels.strata.push((d.product.clone(), d.route.clone()));
                    (levels.strata.len() - 1) as u16
                }
            };
            match strata.last_mut() {
                Some(last) if last.0 == d.day => last.1 = s,
                Some(last) if last.1 == s => {}
                _ => strata.push((d.day, s)),
            }
        }
        // A weight for every dose: its own, else the patient's nearest earlier, else first known.
        let first_weight = doses.iter().find_map(|d| d.weight_kg.filter(|w| *w > 0.0));
        let mut weight = first_weight;
        let mut amounts: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        let mut product_steps: BTreeMap<&str, Vec<(i32, u8)>> = BTreeMap::new();
        for d in &doses {
            weight = d.weight_kg.filter(|w| *w > 0.0).or(weight);
            let a = amounts.entry(d.product.as_str()).or_default();
            a.0 += d.mg;
            a.1 += weight.map_or(0.0, |w| d.mg / w);
            let Some(b) = spec.bands.get(&d.product) else { continue };
            let amount = if b.unit == DoseUnit::Mg { a.0 } else { a.1 };
            let band = b.band_of(amount);
            let steps = product_steps.entry(d.product.as_str()).or_default();
            if steps.last().is_none_or(|s| s.1 != band) {
                steps.push((d.day, band));
            }
        }
        let mut bands = BTreeMap::new();
        for &(_, s) in &strata {
            let product = &levels.strata[s as usize].0;
            let steps = match spec.bands.get(product) {
                Some(b) if b.unit == DoseUnit::MgPerKg && first_weight.is_none() => None,
                Some(_) => Some(product_steps.get(product.as_str()).cloned().unwrap_or_default()),
                None => None,
            };
            bands.insert(s, steps);
        }
        Some(Timeline {
            patient,
            clinic: intern(&mut levels.clinics, &p.clinic_id),
            age: intern(&mut levels.ages, &p.age_band),
            ipss: match p.baseline_ipss {
                Some(s) if s <= 7 => 0,
                Some(s) if s <= 19 => 1,
                Some(_) => 2,
                None => 3,
            },
            sud: match p.prior_sud {
                Some(false) => 0,
                Some(true) => 1,
                None => 2,
            },
            sex: intern(&mut levels.sexes, &p.sex),
            entry,
            dose_days: doses.iter().map(|d| d.day).collect(),
            strata,
            bands,
        })
    }

    /// Days at risk as half-open day intervals: the union of `[d, d + W + 1)` over doses.
    fn at_risk(&self, window: u32) -> Vec<(i32, i32)> {
        let w = window as i32 + 1;
        let mut out: Vec<(i32, i32)> = Vec::new();
        for &d in &self.dose_days {
            match out.last_mut() {
                Some(last) if d <= last.1 => last.1 = last.1.max(d + w),
                _ => out.push((d, d + w)),
            }
        }
        out
    }

    fn stratum_at(&self, day: i32) -> u16 {
        let i = self.strata.partition_point(|s| s.0 <= day);
        self.strata[i.saturating_sub(1)].1
    }

    fn band_at(&self, stratum: u16, day: i32, lag: u32) -> Option<u8> {
        let steps = self.bands.get(&stratum)?.as_ref()?;
        let cutoff = day - lag as i32;
        let i = steps.partition_point(|s| s.0 <= cutoff);
        Some(if i == 0 { 0 } else { steps[i - 1].1 })
    }

    /// The follow-up of one harm: rows, the incident case and exclusions, into `out`.
    fn follow(
        &self,
        spec: &SplitSpec<'_>,
        harm: &HarmConfig,
        group: &str,
        p: &CohortPatient,
        out: &mut HarmSplit,
    ) {
        let mut cases: Vec<&CohortCase> = p.cases.iter().filter(|c| c.group == group).collect();
        cases.sort_by_key(|c| (c.onset_day.unwrap_or(c.reported_day), c.reported_day));
        let first_known = cases.iter().filter_map(|c| c.onset_day.map(|d| (d, *c))).min_by_key(|(d, _)| *d);
        if first_known.is_some_and(|(d, _)| d < self.entry) {
            out.excluded.prevalent_patients += 1;
            return;
        }
        let missing = cases
            .iter()
            .filter(|c| c.onset_day.is_none() && c.reported_day >= self.entry)
            .min_by_key(|c| c.reported_day)
            .copied();
        // Primary: stop at the known onset or at the report of a case without one, whichever is
        // first. Imputed: the same, the report day counting as an onset.
        let known_day = first_known.map(|(d, _)| d);
        let censor_day = missing.map(|c| c.reported_day).filter(|&r| known_day.is_none_or(|k| r < k));
        if censor_day.is_some() {
            out.excluded.missing_onset_patients += 1;
        }
        let counted_cases = usize::from(first_known.is_some()) + usize::from(censor_day.is_some());
        out.excluded.repeat_cases += (cases.len().saturating_sub(counted_cases)) as u64;
        let stop = [known_day, censor_day].into_iter().flatten().min().map_or(spec.as_of_day + 1, |d| d + 1);
        let mut breaks: Vec<i32> = Vec::new();
        let intervals: Vec<(i32, i32)> = self
            .at_risk(harm.risk_window_days)
            .into_iter()
            .map(|(a, b)| (a, b.min(stop).min(spec.as_of_day + 1)))
            .filter(|(a, b)| a < b)
            .collect();
        for &(a, b) in &intervals {
            breaks.extend([a, b]);
        }
        breaks.extend(self.strata.iter().map(|s| s.0));
        for steps in self.bands.values().flatten() {
            breaks.extend(steps.iter().map(|s| s.0 + harm.lag_days as i32));
        }
        breaks.extend(spec.on_treatment_days.iter().map(|&e| self.entry + e as i32));
        for (_, from, to) in spec.artefacts.iter().filter(|a| a.0 == p.clinic_id) {
            breaks.extend([*from, *to]);
        }
        if let (Some(first), Some(last)) = (intervals.first(), intervals.last()) {
            let mut q = quarter_start(first.0);
            while q < last.1 {
                breaks.push(q);
                q = next_quarter_start(q);
            }
        }
        breaks.sort_unstable();
        breaks.dedup();
        let mut rows: Vec<PtRow> = Vec::new();
        for &(a, b) in &intervals {
            let inside: Vec<i32> = breaks.iter().copied().filter(|&x| x > a && x < b).collect();
            let mut from = a;
            for to in inside.into_iter().chain([b]) {
                let cell = self.cell(spec, harm, p, from);
                if !cell.artefact {
                    for &d in self.dose_days.iter().filter(|&&d| d >= from && d < to) {
                        *out.accrual.entry(cell.stratum).or_default().entry(d).or_default() += 1;
                    }
                }
                add(&mut rows, cell, f64::from(to - from));
                from = to;
            }
        }
        let first_row = out.rows.len();
        let event_row = |rows: &[PtRow], day: i32| -> Option<usize> {
            let at_risk = intervals.iter().any(|&(a, b)| day >= a && day < b);
            at_risk.then(|| {
                let cell = self.cell(spec, harm, p, day);
                rows.iter().position(|r| same_cell(r, &cell))
            })?
        };
        if let Some((day, case)) = first_known.filter(|(d, _)| censor_day.is_none_or(|c| *d <= c)) {
            match event_row(&rows, day) {
                Some(i) => {
                    rows[i].events += 1;
                    rows[i].events_imputed += 1;
                    out.incident.push(Incident {
                        who: case.who.clone(),
                        day,
                        imputed: false,
                        days_from_entry: day - self.entry,
                        row: first_row + i,
                    });
                }
                None => out.excluded.outside_risk_window += 1,
            }
        }
        if let (Some(day), Some(case)) = (censor_day, missing) {
            if let Some(i) = event_row(&rows, day) {
                rows[i].events_imputed += 1;
                out.incident.push(Incident {
                    who: case.who.clone(),
                    day,
                    imputed: true,
                    days_from_entry: day - self.entry,
                    row: first_row + i,
                });
            }
        }
        out.rows.extend(rows);
    }

    fn cell(&self, spec: &SplitSpec<'_>, harm: &HarmConfig, p: &CohortPatient, day: i32) -> PtRow {
        let stratum = self.stratum_at(day);
        let since_entry = day - self.entry;
        PtRow {
            patient: self.patient,
            stratum,
            band: self.band_at(stratum, day, harm.lag_days),
            clinic: self.clinic,
            age: self.age,
            sex: self.sex,
            ipss: self.ipss,
            sud: self.sud,
            quarter: quarter_index(day),
            on_treatment: spec.on_treatment_days.iter().take_while(|&&e| since_entry >= e as i32).count()
                as u8,
            days: 0.0,
            events: 0,
            events_imputed: 0,
            artefact: spec
                .artefacts
                .iter()
                .any(|(c, from, to)| *c == p.clinic_id && day >= *from && day < *to),
        }
    }
}

fn same_cell(a: &PtRow, b: &PtRow) -> bool {
    (a.patient, a.stratum, a.band, a.clinic, a.age, a.sex, a.quarter, a.on_treatment, a.artefact)
        == (b.patient, b.stratum, b.band, b.clinic, b.age, b.sex, b.quarter, b.on_treatment, b.artefact)
}

/// Administrations accrued before `day` from an accrual map (administrations by day).
pub fn accrued(accrual: &BTreeMap<i32, i64>, day: i32) -> f64 {
    accrual.range(..day).map(|(_, &n)| n).sum::<i64>() as f64
}

fn add(rows: &mut Vec<PtRow>, cell: PtRow, days: f64) {
    match rows.iter_mut().find(|r| same_cell(r, &cell)) {
        Some(r) => r.days += days,
        None => rows.push(PtRow { days, ..cell }),
    }
}

fn date(day: i32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_num_days_from_ce_opt(day + 719_163).unwrap_or_default()
}

fn day_of(d: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - 719_163
}

/// Baseline IPSS bands (mild, moderate, severe symptoms), then unknown.
pub const IPSS_BANDS: [&str; 4] = ["0-7", "8-19", "20-35", "unknown"];
/// Prior substance-use disorder: no, yes, unknown.
pub const SUD: [&str; 3] = ["no", "yes", "unknown"];

/// A day as `YYYY-MM-DD`.
pub fn date_label(day: i32) -> String {
    date(day).format("%Y-%m-%d").to_string()
}

/// year × 4 + quarter (0-3) of a day.
pub fn quarter_index(day: i32) -> i32 {
    use chrono::Datelike;
    let d = date(day);
    d.year() * 4 + (d.month0() / 3) as i32
}

/// The label of a quarter index, e.g. `2026-Q1`.
pub fn quarter_label(q: i32) -> String {
    format!("{}-Q{}", q.div_euclid(4), q.rem_euclid(4) + 1)
}

fn quarter_start(day: i32) -> i32 {
    use chrono::Datelike;
    let d = date(day);
    let month = d.month0() / 3 * 3 + 1;
    chrono::NaiveDate::from_ymd_opt(d.year(), month, 1).map_or(day, day_of)
}

fn next_quarter_start(q_start: i32) -> i32 {
    use chrono::Datelike;
    let d = date(q_start);
    let (y, m) = if d.month() >= 10 { (d.year() + 1, 1) } else { (d.year(), d.month() + 3) };
    chrono::NaiveDate::from_ymd_opt(y, m, 1).map_or(q_start + 92, day_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(
        harms: &'a BTreeMap<String, HarmConfig>,
        bands: &'a BTreeMap<String, ProductBands>,
        as_of_day: i32,
    ) -> SplitSpec<'a> {
        SplitSpec { harms, bands, on_treatment_days: &[30], as_of_day, artefacts: &[] }
    }

    fn config() -> (BTreeMap<String, HarmConfig>, BTreeMap<String, ProductBands>) {
        let harm = HarmConfig { risk_window_days: 30, lag_days: 5, rationale: "test".into() };
        (
            BTreeMap::from([("urological".to_string(), harm)]),
            BTreeMap::from([
                ("ketamine".to_string(), ProductBands { unit: DoseUnit::MgPerKg, edges: vec![1.0] }),
                ("esketamine".to_string(), ProductBands { unit: DoseUnit::Mg, edges: vec![100.0] }),
            ]),
        )
    }

    fn dose(day: i32, product: &str, mg: f64, weight: Option<f64>) -> CohortDose {
        let route = if product == "ketamine" { "iv" } else { "intranasal" };
        CohortDose { day, product: product.into(), route: route.into(), mg, weight_kg: weight, session: 0 }
    }

    fn case(onset: Option<i32>, reported: i32, id: &str) -> CohortCase {
        CohortCase {
            group: "urological".into(),
            onset_day: onset,
            reported_day: reported,
            who: CaseRef { report_id: id.into(), ..CaseRef::default() },
        }
    }

    /// Ketamine 35 mg at 70 kg (0.5 mg/kg) on days 0, 10, 20: 1 mg/kg reached on day 10, so
    /// band 1 from day 15 (lag 5); at risk on days 0..=50 (window 30); time on treatment
    /// changes bucket on day 30.
    fn patient(cases: Vec<CohortCase>) -> CohortPatient {
        CohortPatient {
            key: "p1".into(),
            clinic_id: "c1".into(),
            age_band: "age_35_44".into(),
            sex: "female".into(),
            doses: vec![
                dose(20, "ketamine", 35.0, None),
                dose(0, "ketamine", 35.0, Some(70.0)),
                dose(10, "ketamine", 35.0, Some(70.0)),
            ],
            cases,
            ..CohortPatient::default()
        }
    }

    fn cells(split: &HarmSplit) -> Vec<(Option<u8>, u8, f64, u32, u32)> {
        split.rows.iter().map(|r| (r.band, r.on_treatment, r.days, r.events, r.events_imputed)).collect()
    }

    #[test]
    fn time_at_risk_is_split_by_lagged_band_and_time_on_treatment() {
        let (harms, bands) = config();
        let c = split(&spec(&harms, &bands, 100), &[patient(vec![])]);
        assert_eq!(
            cells(&c.harms[0]),
            [(Some(0), 0, 15.0, 0, 0), (Some(1), 0, 15.0, 0, 0), (Some(1), 1, 21.0, 0, 0)]
        );
        // The as-of day cuts follow-up (day 40 counted: 41 days).
        let c = split(&spec(&harms, &bands, 40), &[patient(vec![])]);
        assert_eq!(c.harms[0].rows.iter().map(|r| r.days).sum::<f64>(), 41.0);
    }

    #[test]
    fn the_first_onset_ends_follow_up_and_is_the_event() {
        let (harms, bands) = config();
        let c = split(
            &spec(&harms, &bands, 100),
            &[patient(vec![case(Some(40), 45, "a"), case(Some(44), 50, "b")])],
        );
        let h = &c.harms[0];
        assert_eq!(cells(h), [(Some(0), 0, 15.0, 0, 0), (Some(1), 0, 15.0, 0, 0), (Some(1), 1, 11.0, 1, 1)]);
        assert_eq!(h.incident.len(), 1);
        assert_eq!(
            (h.incident[0].who.report_id.as_str(), h.incident[0].day, h.incident[0].row),
            ("a", 40, 2)
        );
        assert_eq!(h.excluded.repeat_cases, 1, "the second report is not incident");
    }

    #[test]
    fn onsets_outside_the_window_before_treatment_or_unknown_are_not_events() {
        let (harms, bands) = config();
        // Day 60: after the window closed on day 50; follow-up stops there, no event.
        let c = split(&spec(&harms, &bands, 100), &[patient(vec![case(Some(60), 61, "late")])]);
        assert_eq!(
            c.harms[0].rows.iter().map(|r| (r.days, r.events)).fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
            (51.0, 0)
        );
        assert_eq!(c.harms[0].excluded.outside_risk_window, 1);
        // Before the first dose: prevalent, the patient leaves this harm's analysis.
        let c = split(&spec(&harms, &bands, 100), &[patient(vec![case(Some(-5), 1, "before")])]);
        assert!(c.harms[0].rows.is_empty());
        assert_eq!(c.harms[0].excluded.prevalent_patients, 1);
        // No onset date, reported on day 25: censored there; the sensitivity analysis counts it.
        let c = split(&spec(&harms, &bands, 100), &[patient(vec![case(None, 25, "undated")])]);
        assert_eq!(cells(&c.harms[0]), [(Some(0), 0, 15.0, 0, 0), (Some(1), 0, 11.0, 0, 1)]);
        assert_eq!(c.harms[0].excluded.missing_onset_patients, 1);
        assert!(c.harms[0].incident[0].imputed);
    }

    #[test]
    fn gaps_leave_time_not_at_risk_and_a_switch_changes_the_stratum_not_the_dose() {
        let (harms, bands) = config();
        let mut p = patient(vec![]);
        // Esketamine 56 mg on day 100, after a gap: at risk again from day 100 to the as-of day 120.
        p.doses.push(dose(100, "esketamine", 56.0, None));
        let c = split(&spec(&harms, &bands, 120), &[p]);
        let h = &c.harms[0];
        let last = h.rows.last().expect("rows");
        assert_eq!(
            c.levels.strata[usize::from(last.stratum)],
            ("esketamine".to_string(), "intranasal".to_string())
        );
        assert_eq!((last.band, last.days), (Some(0), 21.0), "56 mg of esketamine: its own band 0");
        assert_eq!(h.rows.iter().map(|r| r.days).sum::<f64>(), 51.0 + 21.0, "days 51..99 are not at risk");
        assert_ne!(last.quarter, h.rows[0].quarter, "day 100 is in 1970's second quarter");
    }

    #[test]
    fn mg_per_kg_needs_a_weight() {
        let (harms, bands) = config();
        let mut p = patient(vec![]);
        p.doses.iter_mut().for_each(|d| d.weight_kg = None);
        let c = split(&spec(&harms, &bands, 100), &[p]);
        assert!(c.harms[0].rows.iter().all(|r| r.band.is_none()));
        assert_eq!(bands["ketamine"].label(1), ">= 1 mg/kg");
        assert_eq!(bands["esketamine"].label(0), "< 100 mg");
    }

    #[test]
    fn surge_time_is_marked_and_kept_out_of_the_accrual() {
        let (harms, bands) = config();
        let artefacts = [("c1".to_string(), 10, 20)];
        let spec = SplitSpec { artefacts: &artefacts, ..spec(&harms, &bands, 100) };
        let c = split(&spec, &[patient(vec![case(Some(12), 13, "in surge")])]);
        let h = &c.harms[0];
        // Days 0..10 outside, 10..13 inside (the event on day 12 ends follow-up).
        let marked: Vec<(bool, f64, u32)> = h.rows.iter().map(|r| (r.artefact, r.days, r.events)).collect();
        assert_eq!(marked, [(false, 10.0, 0), (true, 3.0, 1)]);
        // Doses on days 0 and 10 (in the surge, not accrued) and 20 (after the event).
        let accrual = &h.accrual[&0];
        assert_eq!((accrued(accrual, 0), accrued(accrual, 1), accrued(accrual, 50)), (0.0, 1.0, 1.0));
        // Without a surge, every administration before the event accrues.
        let c = split(&spec_plain(&harms, &bands), &[patient(vec![])]);
        assert_eq!(accrued(&c.harms[0].accrual[&0], 1000), 3.0);
    }

    fn spec_plain<'a>(
        h: &'a BTreeMap<String, HarmConfig>,
        b: &'a BTreeMap<String, ProductBands>,
    ) -> SplitSpec<'a> {
        spec(h, b, 100)
    }

    #[test]
    fn quarters() {
        assert_eq!(quarter_label(quarter_index(0)), "1970-Q1");
        assert_eq!(quarter_label(quarter_index(90)), "1970-Q2");
        assert_eq!(quarter_start(100), 90);
        assert_eq!(next_quarter_start(90), 181);
    }
}
