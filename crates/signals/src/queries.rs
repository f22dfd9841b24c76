//! The aggregates the analyses need, read from the sink's tables.
//!
//! Two queries per run, side by side, both windows at once (conditions on the period bound):
//!
//! - the dosing stream, per patient: the ordered dose history, from which the time at risk,
//!   the administrations per cumulative-dose band and per month, summed per
//!   stratum. Doses are made distinct per patient by (instant, dose, band), the enricher's own
//!   identity of a dose (a re-sent dose is the same dose), so re-delivered rows count once
//!   without `FINAL`, whose merge-on-read would cost more than the rest of the query;
//! - the current cases (latest version, not nullified: `ae_cases FINAL`, versions `FINAL`)
//!   with their groups, PTs, band and time to onset.
//!
//! The SQL keeps to what ClickHouse 18.16 runs: no window functions, one join, `ifNull` around
//! nullable values.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use clickhouse::Row;
use pv_store::{Db, StoreError};
use serde::Deserialize;

use crate::config::SignalsConfig;
use crate::model::{Case, CaseRef, DoseCell, Inputs, MonthExposure, Stratum, Window};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// The time bounds of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Only what the gateway had accepted by this instant counts, each case as the version
    /// received by then (ms since the epoch).
    pub as_of_ms: i64,
    /// How far the data reach: the latest administration received by `as_of_ms` (or `as_of_ms`
    /// itself, if earlier or when nothing was received). Follow-up ends here and the period
    /// window ends here: a stream replayed long after its events does not gain empty time.
    pub data_end_ms: i64,
    /// The period window starts here (`period_days` before `data_end_ms`).
    pub period_from_ms: i64,
}

impl Bounds {
    /// The bounds of a run as of `as_of_ms` whose data reach `data_end_ms`, with a period of
    /// `period_days`.
    pub fn new(as_of_ms: i64, data_end_ms: i64, period_days: u32) -> Self {
        let data_end_ms = if data_end_ms <= 0 { as_of_ms } else { data_end_ms.min(as_of_ms) };
        Self { as_of_ms, data_end_ms, period_from_ms: data_end_ms - i64::from(period_days) * DAY_MS }
    }
}

/// The latest administration received by `as_of_ms` (0 when none).
pub async fn latest_administration(db: &Db, as_of_ms: i64) -> Result<i64, StoreError> {
    db.sql("SELECT max(administered_at_ms) FROM {doses} WHERE received_at_ms <= {as_of}")
        .bind("as_of", as_of_ms)
        .fetch_one()
        .await
}

/// The cumulative-dose band of `exp_cumulative_mg`: how many of the `edges` band edges (bound
/// as the array `{band_edges}`) it reached. Spelled out edge by edge: an `arrayMap` over the
/// edges costs about twice as much per row.
fn band_sql(edges: usize) -> String {
    let reached: String =
        (1..=edges).map(|i| format!(" + (exp_cumulative_mg >= {{band_edges}}[{i}])")).collect();
    format!("toUInt32(0{reached})")
}

/// Per stratum and clinic: patients, administrations per cumulative-dose band and per month.
#[derive(Debug, Row, Deserialize)]
struct PatientRow {
    product: String,
    route: String,
    formulation: String,
    clinic: String,
    /// Administrations per cumulative-dose band, all and in the period.
    band_all: Vec<u64>,
    band_period: Vec<u64>,
    /// Administrations per month (first day, days since the epoch): (months, counts).
    months: (Vec<u16>, Vec<u64>),
}

#[derive(Debug, Row, Deserialize)]
struct CaseRow {
    clinic_id: String,
    report_id: String,
    version: i32,
    patient_key: String,
    suspect_product: String,
    suspect_route: String,
    patient_product: String,
    patient_route: String,
    patient_formulation: String,
    onset_ms: i64,
    cumulative_mg: f64,
    days_from_first_dose: Option<f64>,
    groups: Vec<String>,
    pts: Vec<String>,
    /// Preferred terms of the reactions coded to a monitored harm's group.
    harm_pts: Vec<String>,
}

/// Reads both windows' inputs (period first, then cumulative).
pub async fn inputs(db: &Db, cfg: &SignalsConfig, bounds: Bounds) -> Result<[Inputs; 2], StoreError> {
    let Bounds { as_of_ms: to, period_from_ms: from, .. } = bounds;
    let band = band_sql(cfg.dose_bands_mg.len());
    let patients = db
        .sql(&format!(
            "SELECT p, r, f, clinic,
                    sumForEach(all_b), sumForEach(period_b),
                    sumMap(ms, arrayMap(m -> toUInt64(1), ms))
             FROM (
                SELECT patient_key, toString(product) AS p, toString(route) AS r, formulation AS f,
                       any(clinic_id) AS clinic,
                       arraySort(arrayDistinct(groupArray((administered_at_ms, dose_mg, {band})))) AS hist,
                       arrayMap(b -> arrayCount(x -> x.3 = b, hist), range({{bands}})) AS all_b,
                       arrayMap(b -> arrayCount(x -> x.3 = b AND x.1 >= {{from}}, hist), range({{bands}})) AS period_b,
                       arrayMap(x -> toUInt16(toStartOfMonth(toDateTime(intDiv(x.1, 1000)))), hist) AS ms
                FROM {{doses}} WHERE received_at_ms <= {{to}}
                GROUP BY patient_key, p, r, f)
             GROUP BY p, r, f, clinic"
        ))
        .bind("from", from)
        .bind("to", to)
        .bind("band_edges", cfg.dose_bands_mg.clone())
        .bind("bands", cfg.dose_bands_mg.len() + 1)
        .fetch_all::<PatientRow>();

    let cases = db
        .sql(
            "SELECT clinic_id, report_id, v, patient_key,
                    sp, sr, ifNull(dp, ''), ifNull(dr, ''), ifNull(df, ''), onset_ms, cum_mg, ttf, gs, pts, hpts FROM (
                SELECT clinic_id, report_id, max(version) AS v, any(patient_key) AS patient_key,
                       argMax(nullification, version) AS nullified,
                       argMax(ifNull(toString(drug_product[indexOf(drug_role, 1)]), ''), version) AS sp,
                       argMax(ifNull(toString(drug_route[indexOf(drug_role, 1)]), ''), version) AS sr,
                       argMax(exposure_as_of_ms, version) AS onset_ms, argMax(exp_cumulative_mg, version) AS cum_mg,
                       argMax(days_since_first_dose, version) AS ttf,
                       argMax(arrayReduce('groupUniqArrayArray', reaction_groups), version) AS gs,
                       argMax(arrayReduce('groupUniqArray', arrayMap(x -> assumeNotNull(x), arrayFilter(x -> isNotNull(x), reaction_pt))), version) AS pts,
                       argMax(arrayMap(x -> assumeNotNull(x), arrayFilter((x, g) -> isNotNull(x) AND hasAny(g, {groups}), reaction_pt, reaction_groups)), version) AS hpts
                FROM {ae_report_versions}
                WHERE received_at_ms <= {to}
                GROUP BY clinic_id, report_id
                HAVING nullified = 0)
             ANY LEFT JOIN (
                SELECT patient_key, argMin(toString(product), administered_at_ms) AS dp,
                       argMin(toString(route), administered_at_ms) AS dr, argMin(formulation, administered_at_ms) AS df
                FROM {doses}
                WHERE received_at_ms <= {to} AND patient_key IN (SELECT patient_key FROM {ae_report_versions})
                GROUP BY patient_key) USING patient_key",
        )
        .bind("to", to)
        .bind("groups", cfg.harms.keys().cloned().collect::<Vec<String>>())
        .fetch_all::<CaseRow>();

    // Both at once: the cores stay busy.
    let (patients, case_rows) = tokio::try_join!(patients, cases)?;
    Ok(assemble(cfg, bounds, patients, case_rows))
}

fn stratum(product: &str, route: &str, formulation: &str) -> Stratum {
    let or_unknown = |s: &str| if s.is_empty() { "unknown" } else { s }.to_string();
    Stratum { product: or_unknown(product), route: or_unknown(route), formulation: or_unknown(formulation) }
}

impl PatientRow {
    /// Adds another clinic's row of the same stratum.
    fn add(&mut self, o: PatientRow) {
        for (a, b) in [(&mut self.band_all, o.band_all), (&mut self.band_period, o.band_period)] {
            if a.len() < b.len() {
                a.resize(b.len(), 0);
            }
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
}

/// Both windows' inputs, in a fixed order whatever order ClickHouse returned the groups in.
fn assemble(
    cfg: &SignalsConfig,
    bounds: Bounds,
    mut patients: Vec<PatientRow>,
    mut case_rows: Vec<CaseRow>,
) -> [Inputs; 2] {
    patients.sort_by(|a, b| {
        (&a.product, &a.route, &a.formulation, &a.clinic).cmp(&(
            &b.product,
            &b.route,
            &b.formulation,
            &b.clinic,
        ))
    });
    case_rows.sort_by(|a, b| (&a.clinic_id, &a.report_id).cmp(&(&b.clinic_id, &b.report_id)));
    let mut period = Inputs {
        window: Window::Period,
        doses: vec![],
        cases: vec![],
        harm_pts: BTreeSet::new(),
        exposure: vec![],
    };
    let mut cumulative = Inputs { window: Window::Cumulative, ..period.clone() };
    // One row per stratum and clinic: every count adds up across clinics.
    let mut strata: BTreeMap<Stratum, PatientRow> = BTreeMap::new();
    for t in patients {
        let s = stratum(&t.product, &t.route, &t.formulation);
        for (&month, &n) in t.months.0.iter().zip(&t.months.1) {
            cumulative.exposure.push(MonthExposure {
                stratum: s.clone(),
                clinic_id: t.clinic.clone(),
                month,
                administrations: n,
            });
        }
        match strata.entry(s) {
            Entry::Vacant(v) => {
                v.insert(t);
            }
            Entry::Occupied(mut o) => o.get_mut().add(t),
        }
    }
    for (s, t) in strata {
        for (band, (&all, &in_period)) in t.band_all.iter().zip(&t.band_period).enumerate() {
            if in_period > 0 {
                period.doses.push(DoseCell { stratum: s.clone(), band, administrations: in_period });
            }
            if all > 0 {
                cumulative.doses.push(DoseCell { stratum: s.clone(), band, administrations: all });
            }
        }
    }
    for r in case_rows {
        // The suspect drug's product and route; the patient's dosing where the report lacks them.
        let product = if r.suspect_product.is_empty() { &r.patient_product } else { &r.suspect_product };
        let route = if r.suspect_route.is_empty() { &r.patient_route } else { &r.suspect_route };
        let case = Case {
            who: CaseRef {
                clinic_id: r.clinic_id,
                report_id: r.report_id,
                version: r.version,
                patient_key: r.patient_key,
                onset_ms: r.onset_ms,
            },
            stratum: stratum(product, route, &r.patient_formulation),
            band: cfg.band_of(r.cumulative_mg),
            groups: r.groups.into_iter().collect::<BTreeSet<_>>(),
            pts: r.pts.into_iter().collect::<BTreeSet<_>>(),
            days_from_first_dose: r.days_from_first_dose,
        };
        if r.onset_ms >= bounds.period_from_ms {
            period.harm_pts.extend(r.harm_pts.iter().cloned());
            period.cases.push(case.clone());
        }
        cumulative.harm_pts.extend(r.harm_pts);
        cumulative.cases.push(case);
    }
    [period, cumulative]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_counts_the_edges_reached() {
        assert_eq!(
            band_sql(2),
            "toUInt32(0 + (exp_cumulative_mg >= {band_edges}[1]) + (exp_cumulative_mg >= {band_edges}[2]))"
        );
        assert_eq!(band_sql(0), "toUInt32(0)");
    }

    fn row_clone(r: &PatientRow) -> PatientRow {
        PatientRow {
            product: r.product.clone(),
            route: r.route.clone(),
            formulation: r.formulation.clone(),
            clinic: r.clinic.clone(),
            band_all: r.band_all.clone(),
            band_period: r.band_period.clone(),
            months: r.months.clone(),
        }
    }

    #[test]
    fn patient_rows_give_dose_cells_per_band_and_month() {
        let cfg = SignalsConfig::default();
        let row = PatientRow {
            product: "ketamine".into(),
            route: "iv".into(),
            formulation: "solution".into(),
            clinic: "c1".into(),
            band_all: vec![100, 40, 0, 5],
            band_period: vec![0, 12, 0, 5],
            months: (vec![20000, 20031], vec![100, 45]),
        };
        // The same stratum at a second clinic adds up.
        let other = PatientRow {
            clinic: "c2".into(),
            band_all: vec![3],
            band_period: vec![0],
            months: (vec![20031], vec![3]),
            ..row_clone(&row)
        };
        let [period, cumulative] =
            assemble(&cfg, Bounds::new(100 * DAY_MS, 100 * DAY_MS, 30), vec![row, other], vec![]);
        let cells = |i: &Inputs| i.doses.iter().map(|d| (d.band, d.administrations)).collect::<Vec<_>>();
        assert_eq!(cells(&cumulative), [(0, 103), (1, 40), (3, 5)], "empty bands are left out");
        assert_eq!(cells(&period), [(1, 12), (3, 5)]);
        let months: Vec<(&str, u16, u64)> =
            cumulative.exposure.iter().map(|e| (e.clinic_id.as_str(), e.month, e.administrations)).collect();
        assert_eq!(months, [("c1", 20000, 100), ("c1", 20031, 45), ("c2", 20031, 3)]);
        assert!(period.exposure.is_empty());
    }

    #[test]
    fn cases_take_the_suspect_drug_and_fall_back_to_the_patients_dosing() {
        let cfg = SignalsConfig::default();
        let row = |sp: &str, sr: &str, onset_ms: i64| CaseRow {
            clinic_id: "c1".into(),
            report_id: "r1".into(),
            version: 2,
            patient_key: "pk".into(),
            suspect_product: sp.into(),
            suspect_route: sr.into(),
            patient_product: "ketamine".into(),
            patient_route: "iv".into(),
            patient_formulation: "solution".into(),
            onset_ms,
            cumulative_mg: 1200.0,
            days_from_first_dose: Some(30.0),
            groups: vec!["urological".into()],
            pts: vec!["Dysuria".into(), "Dysuria".into()],
            harm_pts: vec!["Dysuria".into()],
        };
        let bounds = Bounds::new(100 * DAY_MS, 100 * DAY_MS, 30);
        let [period, cumulative] = assemble(
            &cfg,
            bounds,
            vec![],
            vec![row("esketamine", "intranasal", 90 * DAY_MS), row("", "", 10 * DAY_MS)],
        );
        assert_eq!(cumulative.cases.len(), 2);
        assert_eq!(period.cases.len(), 1, "onset before the period");
        assert_eq!(cumulative.cases[0].stratum, Stratum::new("esketamine", "intranasal", "solution"));
        assert_eq!(cumulative.cases[1].stratum, Stratum::new("ketamine", "iv", "solution"));
        assert_eq!(cumulative.cases[0].band, 2);
        assert_eq!(cumulative.cases[0].pts.len(), 1);
    }
}
