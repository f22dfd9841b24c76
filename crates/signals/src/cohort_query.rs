//! The cohort's data, read from the sink's tables as received by the as-of time: every
//! patient's doses, their enrolment covariates, and the current version of every case with a
//! reaction in a monitored group.
//!
//! "As received": a row counts when the gateway accepted it at or before the as-of instant
//! (`received_at_ms`), and a case is the latest version received by then (not nullified by
//! then). Re-running with the same as-of time after more data arrived gives the same inputs.

use std::collections::BTreeMap;

use clickhouse::Row;
use pv_store::column::Day;
use pv_store::events::earliest_accepted;
use pv_store::{Db, StoreError};
use serde::Deserialize;

use crate::artefacts::ClinicBlock;
use crate::cohort::{CohortCase, CohortDose, CohortPatient};
use crate::config::SignalsConfig;
use crate::model::CaseRef;

const DAY_MS: i64 = 86_400_000;

/// A stored dose: (event id, dedup version, instant ms, product, route, mg, weight kg or 0, session).
type StoredDose = (String, u64, i64, String, String, f64, f64, i32);

/// A stored monitoring form: (event id, dedup version, session, monitored-at ms, CADSS if scored).
type StoredScore = (String, u64, i32, i64, Option<i32>);

#[derive(Debug, Row, Deserialize)]
struct DoseHistory {
    patient_key: String,
    clinic_id: String,
    /// (event id, dedup version, instant ms, product, route, mg, weight kg or 0, session): every
    /// stored copy, reduced by [`first_accepted`].
    doses: Vec<StoredDose>,
}

#[derive(Debug, Row, Deserialize)]
struct Dissociation {
    patient_key: String,
    /// (event id, dedup version, session, monitored-at ms, CADSS): every stored copy, reduced by
    /// [`first_accepted`].
    scores: Vec<StoredScore>,
}

#[derive(Debug, Row, Deserialize)]
struct Enrolment {
    patient_key: String,
    age_band: String,
    sex: String,
    protocol: String,
    baseline_ipss: Option<i32>,
    prior_sud: Option<u8>,
}

#[derive(Debug, Row, Deserialize)]
struct CaseVersion {
    clinic_id: String,
    report_id: String,
    patient_key: String,
    version: i32,
    reported_at_ms: i64,
    exposure_as_of_ms: i64,
    groups: Vec<Vec<String>>,
    onsets: Vec<Option<Day>>,
}

/// Every treated patient as received by `as_of_ms`.
pub async fn cohort(db: &Db, cfg: &SignalsConfig, as_of_ms: i64) -> Result<Vec<CohortPatient>, StoreError> {
    // Doses given after the as-of instant (clock skew within the gateway's limit) wait for the
    // next run, as they do in the other analyses' windows.
    let groups: Vec<String> = cfg.harms.keys().cloned().collect();
    let doses = db
        .sql(
            "SELECT patient_key, any(clinic_id),
                    groupArray((toString(event_id), dedup_version, administered_at_ms, toString(product), toString(route), dose_mg, ifNull(weight_kg, 0.), session_number))
             FROM {doses}
             WHERE received_at_ms <= {to}
             GROUP BY patient_key",
        )
        .bind("to", as_of_ms)
        .fetch_all::<DoseHistory>();
    let enrolments = db
        .sql(
            "SELECT pk, argMax(ab, (rcv, id)), argMax(sx, (rcv, id)), argMax(pr, (rcv, id)),
                    argMax(ipss, (rcv, id)), argMax(sud, (rcv, id))
             FROM (
                SELECT argMax(patient_key, dedup_version) AS pk, argMax(toString(age_band), dedup_version) AS ab,
                       argMax(toString(sex), dedup_version) AS sx, argMax(protocol, dedup_version) AS pr,
                       argMax(baseline_urinary_score, dedup_version) AS ipss,
                       argMax(prior_substance_use_disorder, dedup_version) AS sud,
                       min(received_at_ms) AS rcv, toString(event_id) AS id
                FROM {enrolments} WHERE received_at_ms <= {to} GROUP BY clinic_id, event_id)
             GROUP BY pk",
        )
        .bind("to", as_of_ms)
        .fetch_all::<Enrolment>();
    let cases = db
        .sql(
            "SELECT clinic_id, report_id, patient_key, v, reported, as_of, gs, onsets FROM (
                SELECT clinic_id, report_id, argMax(patient_key, (version, dedup_version)) AS patient_key,
                       max(version) AS v, argMax(nullification, (version, dedup_version)) AS nullified,
                       argMax(reported_at_ms, (version, dedup_version)) AS reported,
                       argMax(exposure_as_of_ms, (version, dedup_version)) AS as_of,
                       argMax(reaction_groups, (version, dedup_version)) AS gs,
                       argMax(reaction_onset_date, (version, dedup_version)) AS onsets
                FROM {ae_report_versions}
                WHERE received_at_ms <= {to}
                GROUP BY clinic_id, report_id)
             WHERE nullified = 0 AND arrayExists(g -> hasAny(g, {groups}), gs)",
        )
        .bind("to", as_of_ms)
        .bind("groups", groups.clone())
        .fetch_all::<CaseVersion>();
    let dissociation = db
        .sql(
            "SELECT patient_key, groupArray((toString(event_id), dedup_version, session_number, monitored_at_ms, dissociation_cadss))
             FROM {monitoring_forms}
             WHERE received_at_ms <= {to}
             GROUP BY patient_key",
        )
        .bind("to", as_of_ms)
        .fetch_all::<Dissociation>();
    let (doses, enrolments, cases, dissociation) = tokio::try_join!(doses, enrolments, cases, dissociation)?;
    let mut patients = assemble(&groups, doses, enrolments, cases, as_of_ms);
    let mut scores: BTreeMap<String, Vec<StoredScore>> =
        dissociation.into_iter().map(|d| (d.patient_key, d.scores)).collect();
    for p in &mut patients {
        let copies = scores.remove(&p.key).unwrap_or_default().into_iter();
        // Copies are collapsed before anything is filtered: the earliest copy decides.
        let mut s: Vec<(i32, i32, f64)> = first_accepted(copies.map(|(id, v, a, b, c)| (id, v, (a, b, c))))
            .into_iter()
            .filter(|(_, ms, _)| *ms <= as_of_ms)
            .filter_map(|(session, ms, cadss)| Some((session, day(ms), f64::from(cadss?))))
            .collect();
        s.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
        p.dissociation = s;
    }
    Ok(patients)
}

/// Each stored event once, the earliest acceptance ([`earliest_accepted`]). Copies are grouped
/// by patient first: a copy re-sent under another patient is that patient's (the gateway cannot
/// tell it from a new event).
fn first_accepted<T>(copies: impl Iterator<Item = (String, u64, T)>) -> Vec<T> {
    earliest_accepted(copies)
}

/// The patients, ordered by key (ClickHouse returns groups in no fixed order; the analyses are
/// reproducible to the last bit only on a fixed order).
fn assemble(
    groups: &[String],
    mut doses: Vec<DoseHistory>,
    enrolments: Vec<Enrolment>,
    mut cases: Vec<CaseVersion>,
    as_of_ms: i64,
) -> Vec<CohortPatient> {
    doses.sort_by(|a, b| a.patient_key.cmp(&b.patient_key));
    cases.sort_by(|a, b| (&a.clinic_id, &a.report_id).cmp(&(&b.clinic_id, &b.report_id)));
    let enrolled: BTreeMap<String, Enrolment> =
        enrolments.into_iter().map(|e| (e.patient_key.clone(), e)).collect();
    let mut case_map: BTreeMap<String, Vec<CohortCase>> = BTreeMap::new();
    for c in cases {
        for g in groups {
            // The earliest onset among the reactions of the group; none when none has a date.
            let in_group: Vec<Option<Day>> = c
                .groups
                .iter()
                .zip(c.onsets.iter().chain(std::iter::repeat(&None)))
                .filter(|(gs, _)| gs.contains(g))
                .map(|(_, d)| *d)
                .collect();
            if in_group.is_empty() {
                continue;
            }
            let onset_day = in_group.iter().flatten().map(|d| i32::from(d.0)).min();
            case_map.entry(c.patient_key.clone()).or_default().push(CohortCase {
                group: g.clone(),
                onset_day,
                reported_day: day(c.reported_at_ms),
                who: CaseRef {
                    clinic_id: c.clinic_id.clone(),
                    report_id: c.report_id.clone(),
                    version: c.version,
                    patient_key: c.patient_key.clone(),
                    onset_ms: c.exposure_as_of_ms,
                },
            });
        }
    }
    doses
        .into_iter()
        .map(|mut h| {
            // Copies are collapsed before anything is filtered: the earliest copy decides. Doses
            // given after the as-of instant (clock skew within the gateway's limit) wait for the
            // next run, as they do in the other analyses' windows.
            let copies = std::mem::take(&mut h.doses).into_iter();
            let mut doses: Vec<_> =
                first_accepted(copies.map(|(id, v, ms, p, r, mg, w, s)| (id, v, (ms, p, r, mg, w, s))))
                    .into_iter()
                    .filter(|d| d.0 <= as_of_ms)
                    .collect();
            doses.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)).then(a.3.total_cmp(&b.3)));
            let e = enrolled.get(&h.patient_key);
            CohortPatient {
                age_band: e.map_or_else(|| "unknown".into(), |e| e.age_band.clone()),
                sex: e.map_or_else(|| "unknown".into(), |e| e.sex.clone()),
                protocol: e.map_or_else(String::new, |e| e.protocol.clone()),
                dissociation: vec![],
                baseline_ipss: e.and_then(|e| e.baseline_ipss),
                prior_sud: e.and_then(|e| e.prior_sud).map(|v| v > 0),
                cases: case_map.remove(&h.patient_key).unwrap_or_default(),
                doses: doses
                    .into_iter()
                    .map(|(ms, product, route, mg, weight, session)| CohortDose {
                        day: day(ms),
                        product,
                        route,
                        mg,
                        weight_kg: (weight > 0.0).then_some(weight),
                        session,
                    })
                    .collect(),
                key: h.patient_key,
                clinic_id: h.clinic_id,
            }
        })
        .filter(|p| !p.doses.is_empty())
        .collect()
}

#[derive(Debug, Row, Deserialize)]
struct BlockCount {
    clinic_id: String,
    block: i32,
    n: u64,
}

/// Initial reports (by report day) and administrations per clinic and block of
/// `artefacts.block_days`, as received by `as_of_ms`.
pub async fn reporting_blocks(
    db: &Db,
    cfg: &SignalsConfig,
    as_of_ms: i64,
) -> Result<Vec<ClinicBlock>, StoreError> {
    let block_ms = i64::from(cfg.artefacts.block_days) * DAY_MS;
    let reports = db
        .sql(
            "SELECT clinic_id, toInt32(intDiv(reported_at_ms, {block_ms})) AS b, uniqExact(report_id)
             FROM {ae_report_versions} WHERE received_at_ms <= {to} AND version = 1
             GROUP BY clinic_id, b",
        )
        .bind("block_ms", block_ms)
        .bind("to", as_of_ms)
        .fetch_all::<BlockCount>();
    let doses = db
        .sql(
            "SELECT clinic_id, toInt32(intDiv(administered_at_ms, {block_ms})) AS b, uniqExact(event_id)
             FROM {doses} WHERE received_at_ms <= {to} GROUP BY clinic_id, b",
        )
        .bind("block_ms", block_ms)
        .bind("to", as_of_ms)
        .fetch_all::<BlockCount>();
    let (reports, doses) = tokio::try_join!(reports, doses)?;
    let mut blocks: BTreeMap<(String, i32), ClinicBlock> = BTreeMap::new();
    for (counts, is_report) in [(reports, true), (doses, false)] {
        for c in counts {
            let b = blocks.entry((c.clinic_id.clone(), c.block)).or_insert_with(|| ClinicBlock {
                clinic_id: c.clinic_id.clone(),
                block: c.block,
                reports: 0,
                administrations: 0,
            });
            if is_report {
                b.reports = c.n;
            } else {
                b.administrations = c.n;
            }
        }
    }
    Ok(blocks.into_values().collect())
}

fn day(ms: i64) -> i32 {
    i32::try_from(ms.div_euclid(DAY_MS)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_take_the_earliest_dated_reaction_of_each_group_and_patients_their_enrolment() {
        let groups = ["dependence".to_string(), "urological".to_string()];
        let doses = vec![DoseHistory {
            patient_key: "pk".into(),
            clinic_id: "c1".into(),
            doses: vec![
                ("e1".into(), 1, 3 * DAY_MS + 5, "ketamine".into(), "iv".into(), 35.0, 70.0, 1),
                ("e2".into(), 1, 4 * DAY_MS, "ketamine".into(), "iv".into(), 35.0, 0.0, 2),
            ],
        }];
        let enrolments = vec![Enrolment {
            patient_key: "pk".into(),
            age_band: "age_65_74".into(),
            sex: "male".into(),
            protocol: "p".into(),
            baseline_ipss: Some(9),
            prior_sud: None,
        }];
        let cases = vec![CaseVersion {
            clinic_id: "c1".into(),
            report_id: "r1".into(),
            patient_key: "pk".into(),
            version: 2,
            reported_at_ms: 20 * DAY_MS + 7,
            exposure_as_of_ms: 0,
            groups: vec![
                vec!["urological".into()],
                vec![],
                vec!["urological".into()],
                vec!["dependence".into()],
            ],
            onsets: vec![Some(Day(12)), Some(Day(1)), Some(Day(9)), None],
        }];
        let ps = assemble(&groups, doses, enrolments, cases, i64::MAX);
        assert_eq!(ps.len(), 1);
        let p = &ps[0];
        assert_eq!((p.age_band.as_str(), p.sex.as_str()), ("age_65_74", "male"));
        assert_eq!((p.baseline_ipss, p.prior_sud), (Some(9), None));
        assert_eq!(
            p.doses.iter().map(|d| (d.day, d.weight_kg)).collect::<Vec<_>>(),
            [(3, Some(70.0)), (4, None)]
        );
        let by_group: Vec<(&str, Option<i32>, i32)> =
            p.cases.iter().map(|c| (c.group.as_str(), c.onset_day, c.reported_day)).collect();
        assert_eq!(by_group, [("dependence", None, 20), ("urological", Some(9), 20)]);
        // A patient without an enrolment is `unknown`, not dropped.
        let ps = assemble(
            &groups,
            vec![DoseHistory {
                patient_key: "x".into(),
                clinic_id: "c".into(),
                doses: vec![("e".into(), 1, 0, "ketamine".into(), "iv".into(), 35.0, 0.0, 1)],
            }],
            vec![],
            vec![],
            i64::MAX,
        );
        assert_eq!(ps[0].age_band, "unknown");
    }

    #[test]
    fn copies_collapse_before_the_as_of_filter() {
        // The earliest copy of "a" is dated after the as-of instant, a later re-sent copy before
        // it: the earliest copy decides, so the dose waits (and the patient with it).
        let history = |doses| DoseHistory { patient_key: "p".into(), clinic_id: "c".into(), doses };
        let dose = |v: u64, ms: i64| ("a".to_owned(), v, ms, "ketamine".into(), "iv".into(), 35.0, 70.0, 1);
        let ps = assemble(&[], vec![history(vec![dose(30, 200), dose(10, 50)])], vec![], vec![], 100);
        assert!(ps.is_empty(), "{ps:?}");
        let ps = assemble(&[], vec![history(vec![dose(10, 200), dose(30, 50)])], vec![], vec![], 100);
        assert_eq!(ps[0].doses.len(), 1);
    }

    #[test]
    fn the_earliest_accepted_copy_of_an_event_wins_whatever_the_order() {
        // Dedup version = u64::MAX - received ms: higher is earlier.
        let copies = || {
            vec![
                ("b".to_owned(), 10, "b late"),
                ("a".to_owned(), 30, "a early"),
                ("b".to_owned(), 20, "b early"),
                ("a".to_owned(), 30, "a early"),
                ("a".to_owned(), 5, "a late"),
            ]
        };
        assert_eq!(first_accepted(copies().into_iter()), ["a early", "b early"]);
        assert_eq!(first_accepted(copies().into_iter().rev()), ["a early", "b early"]);
    }
}
