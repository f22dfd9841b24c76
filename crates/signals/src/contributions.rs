//! What each result counts: the cases (and, for dependence markers, the patients) behind it.
//!
//! A run records every case and every marker-positive patient it analysed once
//! ([`of_run`]), in `signal_contributions`; the contributing cases of any of its results are the
//! rows that [`counts`] accepts for that result. One rule, here, used by the workbench; the tests
//! check it against the count of every result the analyser computes.

use pv_store::column::Day;
use pv_store::signals::{SignalContribution, SignalExposure};

use crate::cohort::Cohort;
use crate::config::SignalsConfig;
use crate::model::{Analysis, Inputs, SignalResult, Window};
use crate::person_time;

/// `kind` of a case row.
pub const CASE: &str = "case";
/// `kind` of a marker-positive patient row (earlier releases).
pub const PATIENT: &str = "patient";
/// `kind` of an incident case of the person-time analyses.
pub const INCIDENT: &str = "incident";
/// `kind` of a case without an onset date, counted on its report day (sensitivity analysis).
pub const INCIDENT_IMPUTED: &str = "incident_imputed";
/// The subgroup of an incident case that fell in its clinic's reporting surge.
pub const IN_SURGE: &str = "in_reporting_surge";

/// The rows of one run: every case of the cumulative window (marked when it also falls in the
/// period window, onset at or after `period_from_ms`) and every patient showing a marker.
pub fn of_run(
    cfg: &SignalsConfig,
    run_at_ms: i64,
    period_from_ms: i64,
    cumulative: &Inputs,
) -> Vec<SignalContribution> {
    let cases = cumulative.cases.iter().map(|c| SignalContribution {
        run_at_ms,
        kind: CASE.into(),
        clinic_id: c.who.clinic_id.clone(),
        patient_key: c.who.patient_key.clone(),
        report_id: c.who.report_id.clone(),
        version: c.who.version,
        product: c.stratum.product.clone(),
        route: c.stratum.route.clone(),
        formulation: c.stratum.formulation.clone(),
        dose_band: cfg.band_label(c.band),
        groups: c.groups.iter().cloned().collect(),
        pts: c.pts.iter().cloned().collect(),
        markers: vec![],
        subgroups: vec![],
        onset_ms: c.who.onset_ms,
        days_from_first_dose: c.days_from_first_dose,
        in_period: c.who.onset_ms >= period_from_ms,
    });
    cases.collect()
}

/// The incident cases of the person-time analyses of one run, with the cell each fell in.
pub fn of_cohort(cfg: &SignalsConfig, run_at_ms: i64, cohort: &Cohort) -> Vec<SignalContribution> {
    let levels = &cohort.levels;
    cohort
        .harms
        .iter()
        .flat_map(|h| {
            h.incident.iter().map(move |i| {
                let row = &h.rows[i.row];
                let (product, route) = &levels.strata[usize::from(row.stratum)];
                SignalContribution {
                    run_at_ms,
                    kind: if i.imputed { INCIDENT_IMPUTED } else { INCIDENT }.into(),
                    clinic_id: i.who.clinic_id.clone(),
                    patient_key: i.who.patient_key.clone(),
                    report_id: i.who.report_id.clone(),
                    version: i.who.version,
                    product: product.clone(),
                    route: route.clone(),
                    formulation: "*".into(),
                    dose_band: person_time::band_label(cfg, product, row.band),
                    groups: vec![h.group.clone()],
                    subgroups: {
                        let mut s = person_time::subgroups(levels, row).to_vec();
                        if row.artefact {
                            s.push(IN_SURGE.into());
                        }
                        s
                    },
                    onset_ms: i64::from(i.day) * 86_400_000,
                    days_from_first_dose: Some(f64::from(i.days_from_entry)),
                    in_period: true,
                    ..SignalContribution::default()
                }
            })
        })
        .collect()
}

/// The exposure rows of one run: administrations per stratum, clinic and month.
pub fn exposure_of_run(run_at_ms: i64, cumulative: &Inputs) -> Vec<SignalExposure> {
    cumulative
        .exposure
        .iter()
        .map(|e| SignalExposure {
            run_at_ms,
            product: e.stratum.product.clone(),
            route: e.stratum.route.clone(),
            formulation: e.stratum.formulation.clone(),
            clinic_id: e.clinic_id.clone(),
            month: Day(e.month),
            administrations: e.administrations,
        })
        .collect()
}

/// Whether result `r` counts row `c` of its own run.
pub fn counts(r: &SignalResult, c: &SignalContribution) -> bool {
    let any_or = |want: &str, have: &str| want == "*" || want == have;
    let in_window = r.time_window != Window::Period.name() || c.in_period;
    let in_stratum = any_or(&r.product, &c.product)
        && any_or(&r.route, &c.route)
        && any_or(&r.formulation, &c.formulation)
        && any_or(&r.dose_band, &c.dose_band);
    if r.analysis == Analysis::SequentialTest.name() {
        // The cases a sequential test counts: incident, dated, outside reporting surges (and
        // within the planned length, which these rows do not mark: past it the test stops).
        return in_stratum
            && c.kind == INCIDENT
            && c.groups.contains(&r.event)
            && !c.subgroups.iter().any(|s| s == IN_SURGE);
    }
    if r.analysis == Analysis::TimeToOnset.name() {
        return in_stratum && c.kind == INCIDENT && c.groups.contains(&r.event);
    }
    if r.analysis == Analysis::IncidencePatientYears.name() || r.analysis == Analysis::RateRatio.name() {
        return in_stratum && counts_incident(r, c);
    }
    let has = |items: &[String]| items.contains(&r.event);
    let item = if r.analysis == Analysis::DependenceMarker.name() {
        c.kind == PATIENT && has(&c.markers)
    } else {
        let event = match r.event_level.as_str() {
            "group" => has(&c.groups),
            "pt" => has(&c.pts),
            _ => false,
        };
        c.kind == CASE && event
    };
    in_window && in_stratum && item
}

/// The person-time analyses' rule: incident cases of the harm, in the result's subgroup; the
/// sensitivity analysis also counts the cases without an onset date; the trend counts the
/// bands it models (a known weight where the unit is mg/kg).
fn counts_incident(r: &SignalResult, c: &SignalContribution) -> bool {
    let imputed = r.subgroup == person_time::IMPUTED;
    let kind = c.kind == INCIDENT || (imputed && c.kind == INCIDENT_IMPUTED);
    let comparison = r.subgroup.starts_with("vs ") || r.subgroup == person_time::TREND;
    let subgroup = r.subgroup == "*" || imputed || comparison || c.subgroups.contains(&r.subgroup);
    let band = r.subgroup != person_time::TREND || c.dose_band != person_time::UNKNOWN_WEIGHT;
    kind && subgroup && band && c.groups.contains(&r.event)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::Analyser;
    use crate::model::{Case, CaseRef, DoseCell, Stratum};

    const DAY: i64 = 86_400_000;

    fn case(i: usize, stratum: &Stratum, band: usize, groups: &[&str], pts: &[&str], onset_day: i64) -> Case {
        Case {
            who: CaseRef {
                clinic_id: format!("clinic-{}", i % 3),
                report_id: format!("r{i}"),
                version: 1,
                patient_key: format!("p{i}"),
                onset_ms: onset_day * DAY,
            },
            stratum: stratum.clone(),
            band,
            groups: groups.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            pts: pts.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            days_from_first_dose: (i % 4 != 0).then_some(i as f64),
        }
    }

    /// A cumulative window with cases in two strata and every band, some in the period.
    fn cumulative() -> Inputs {
        let ket = Stratum::new("ketamine", "iv", "solution");
        let esk = Stratum::new("esketamine", "intranasal", "spray");
        let mut cases = Vec::new();
        for i in 0..60 {
            let (s, g, pt) = match i % 5 {
                0 | 1 => (&ket, "urological", "Cystitis"),
                2 => (&ket, "dependence", "Drug abuse"),
                3 => (&esk, "urological", "Dysuria"),
                _ => (&esk, "none", "Nausea"),
            };
            let groups: &[&str] = if g == "none" { &[] } else { &[g] };
            cases.push(case(i, s, i % 4, groups, &[pt, "Headache"][..1 + i % 2], 100 + i as i64));
        }
        let doses = [&ket, &esk]
            .iter()
            .flat_map(|s| (0..4).map(|band| DoseCell { stratum: (*s).clone(), band, administrations: 500 }))
            .collect();
        Inputs { window: Window::Cumulative, doses, cases, harm_pts: BTreeSet::new(), exposure: vec![] }
    }

    #[test]
    fn every_result_counts_exactly_its_recorded_cases() {
        let cfg = SignalsConfig::default();
        let analyser = Analyser::new(cfg.clone()).expect("valid");
        let cumulative = cumulative();
        let period_from = 130 * DAY;
        let period = Inputs {
            window: Window::Period,
            cases: cumulative.cases.iter().filter(|c| c.who.onset_ms >= period_from).cloned().collect(),
            ..cumulative.clone()
        };
        let rows = of_run(&cfg, 1, period_from, &cumulative);
        assert_eq!(rows.len(), 60);
        assert_eq!(rows.iter().filter(|r| r.in_period && r.kind == CASE).count(), period.cases.len());
        let mut results = analyser.run(&period);
        results.extend(analyser.run(&cumulative));
        let analyses: BTreeSet<&str> = results.iter().map(|r| r.analysis.as_str()).collect();
        assert_eq!(analyses.len(), 2, "every analysis is checked: {analyses:?}");
        for r in &results {
            let counted = rows.iter().filter(|c| counts(r, c)).count() as u64;
            assert_eq!(counted, r.n, "{}", r.key());
        }
        assert!(results.iter().any(|r| r.n > 10), "the check is not vacuous");
    }

    /// Sixty patients on three strata with doses over a year, some cases dated, some not,
    /// some patients without a weight: every person-time result counts exactly its n.
    #[test]
    fn every_person_time_result_counts_exactly_its_incident_cases() {
        use crate::cohort::{CohortCase, CohortDose, CohortPatient, SplitSpec, split};
        let cfg = SignalsConfig::default();
        let patients: Vec<CohortPatient> = (0..60)
            .map(|i: i32| {
                let (product, route) =
                    [("ketamine", "iv"), ("ketamine", "im"), ("esketamine", "intranasal")][i as usize % 3];
                let doses = (0..30 + i % 20)
                    .map(|k| CohortDose {
                        day: 20_000 + i + k * 7,
                        product: product.into(),
                        route: route.into(),
                        mg: if product == "esketamine" { 84.0 } else { 40.0 },
                        weight_kg: (i % 7 != 0).then_some(80.0),
                        session: k + 1,
                    })
                    .collect();
                let group = if i % 2 == 0 { "urological" } else { "dependence" };
                let cases = (i % 3 != 1)
                    .then(|| CohortCase {
                        group: group.into(),
                        onset_day: (i % 5 != 0).then_some(20_000 + i + 40 + i * 3),
                        reported_day: 20_000 + i + 45 + i * 3,
                        who: CaseRef {
                            clinic_id: format!("clinic-{}", i % 4),
                            report_id: format!("r{i}"),
                            version: 1,
                            patient_key: format!("p{i}"),
                            onset_ms: 0,
                        },
                    })
                    .into_iter()
                    .collect();
                CohortPatient {
                    key: format!("p{i}"),
                    clinic_id: format!("clinic-{}", i % 4),
                    age_band: ["age_25_34", "age_45_54", "age_65_74"][i as usize % 3].into(),
                    sex: ["female", "male"][i as usize % 2].into(),
                    doses,
                    cases,
                    protocol: String::new(),
                    dissociation: vec![],
                    baseline_ipss: (i % 4 != 0).then_some(i % 25),
                    prior_sud: (i % 5 != 0).then_some(i % 3 == 0),
                }
            })
            .collect();
        let spec = SplitSpec {
            harms: &cfg.harms,
            bands: &cfg.product_bands,
            on_treatment_days: &cfg.on_treatment_days,
            as_of_day: 20_500,
            artefacts: &[],
        };
        let cohort = split(&spec, &patients);
        let mut results = person_time::analyse(&cfg, &cohort);
        results.extend(crate::sequential::analyse(&cfg, &cohort));
        let rows = of_cohort(&cfg, 1, &cohort);
        assert!(rows.iter().any(|r| r.kind == INCIDENT_IMPUTED) && rows.iter().any(|r| r.kind == INCIDENT));
        assert!(rows.iter().any(|r| r.dose_band == person_time::UNKNOWN_WEIGHT));
        let analyses: BTreeSet<&str> = results.iter().map(|r| r.analysis.as_str()).collect();
        assert_eq!(analyses.len(), 4, "{analyses:?}");
        for r in &results {
            let counted = rows.iter().filter(|c| counts(r, c)).count() as u64;
            assert_eq!(counted, r.n, "{}", r.key());
        }
        assert!(results.iter().any(|r| r.n > 10), "the check is not vacuous");
        assert!(results.iter().any(|r| r.subgroup.starts_with("clinic=") && r.n > 0));
    }
}
