//! What the pages and the API read from ClickHouse, scoped to the viewer. Every query names its
//! tables through `pv_store::Db` and binds its values; a clinic user's queries always carry
//! their clinic.

use clickhouse::Row;
use pv_signals::contributions::counts;
use pv_store::signals::{SignalContribution, SignalResult};
use pv_store::workflow::WorkflowAction;
use pv_store::{Db, StoreError};
use serde::{Deserialize, Serialize};

use crate::scope::Viewer;

/// The clinic bound to `{clinic}`, or the empty string meaning "every clinic".
fn clinic_bind(v: &Viewer) -> String {
    v.clinic_scope().unwrap_or("").to_string()
}

/// `AND clinic_id = {clinic}` when the viewer is scoped (SQL fragment; the value is bound).
const CLINIC_FILTER: &str = "({clinic} = '' OR clinic_id = {clinic})";

/// Events of one kind, clinic and day.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct DayCount {
    /// Day (days since 1970-01-01).
    pub day: u16,
    /// `dose`, `monitoring` or `adverse_event`.
    pub kind: String,
    /// The clinic.
    pub clinic_id: String,
    /// Distinct events.
    pub events: u64,
}

/// Events per day by kind and clinic over the `days` days up to the latest event.
pub async fn events_per_day(db: &Db, v: &Viewer, days: u16) -> Result<Vec<DayCount>, StoreError> {
    let sql = format!(
        "SELECT day, kind, clinic_id, events FROM (
            SELECT toUInt16(toDate(administered_at)) AS day, 'dose' AS kind, clinic_id, uniqExact(event_id) AS events
            FROM {{doses}} WHERE {CLINIC_FILTER} GROUP BY day, clinic_id
            UNION ALL
            SELECT toUInt16(toDate(monitored_at)) AS day, 'monitoring' AS kind, clinic_id, uniqExact(event_id) AS events
            FROM {{monitoring_forms}} WHERE {CLINIC_FILTER} GROUP BY day, clinic_id
            UNION ALL
            SELECT toUInt16(toDate(reported_at)) AS day, 'adverse_event' AS kind, clinic_id, uniqExact(event_id) AS events
            FROM {{ae_report_versions}} WHERE {CLINIC_FILTER} GROUP BY day, clinic_id)
         ORDER BY day, kind, clinic_id"
    );
    let mut rows: Vec<DayCount> = db.sql(&sql).bind("clinic", clinic_bind(v)).fetch_all().await?;
    let last = rows.iter().map(|r| r.day).max().unwrap_or(0);
    rows.retain(|r| r.day + days > last);
    Ok(rows)
}

/// A current case (latest version, not nullified) as the line listing shows it.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct CaseLine {
    /// The clinic.
    pub clinic_id: String,
    /// The clinic's report id.
    pub report_id: String,
    /// Latest version.
    pub version: i32,
    /// Patient pseudonym.
    pub patient_key: String,
    /// Received (ms since the epoch).
    pub received_at_ms: i64,
    /// Reported (ms since the epoch).
    pub reported_at_ms: i64,
    /// Reporter qualification.
    pub reporter: String,
    /// Any reaction serious.
    pub serious: bool,
    /// Any reaction fatal.
    pub fatal: bool,
    /// Preferred terms (verbatim where uncoded).
    pub pts: Vec<String>,
    /// Event groups.
    pub groups: Vec<String>,
    /// Suspect product.
    pub product: String,
}

/// Filters of the case listing.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct CaseFilter {
    /// Only this clinic (within the viewer's scope).
    #[serde(default)]
    pub clinic: String,
    /// Only serious cases.
    #[serde(default)]
    pub serious: bool,
    /// Only cases with this event group or preferred term.
    #[serde(default)]
    pub event: String,
}

/// Every current case in the viewer's scope matching `f`, most recently received first.
pub async fn cases(db: &Db, v: &Viewer, f: &CaseFilter) -> Result<Vec<CaseLine>, StoreError> {
    let sql = format!(
        "SELECT clinic_id, report_id, version, patient_key, received_at_ms, reported_at_ms,
                toString(reporter_qualification),
                arrayExists((a, b, c, d, e, f) -> a OR b OR c OR d OR e OR f, reaction_death, reaction_life_threatening,
                    reaction_hospitalisation, reaction_disability, reaction_congenital_anomaly,
                    reaction_other_medically_important) AS serious,
                arrayExists(x -> x = 1, reaction_death) AS fatal,
                arrayMap((p, v) -> ifNull(p, v), reaction_pt, reaction_verbatim) AS pts,
                arrayReduce('groupUniqArrayArray', reaction_groups) AS groups,
                ifNull(toString(drug_product[indexOf(drug_role, 1)]), '') AS product
         FROM {{ae_report_versions}} FINAL
         WHERE event_id IN (SELECT event_id FROM {{ae_cases}} FINAL WHERE nullification = 0 AND {CLINIC_FILTER})
           AND {CLINIC_FILTER} AND ({{only}} = '' OR clinic_id = {{only}})
         ORDER BY received_at_ms DESC, clinic_id, report_id"
    );
    let rows: Vec<CaseLine> =
        db.sql(&sql).bind("clinic", clinic_bind(v)).bind("only", f.clinic.clone()).fetch_all().await?;
    Ok(rows
        .into_iter()
        .filter(|c| !f.serious || c.serious)
        .filter(|c| f.event.is_empty() || c.pts.contains(&f.event) || c.groups.contains(&f.event))
        .collect())
}

/// The latest signals run, and the one before it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Runs {
    /// The latest run's results.
    pub latest: Vec<SignalResult>,
    /// The previous run's results.
    pub previous: Vec<SignalResult>,
}

#[derive(Debug, Row, Deserialize)]
struct RunAt {
    run_at_ms: i64,
}

/// The two latest runs' results.
pub async fn latest_runs(db: &Db) -> Result<Runs, StoreError> {
    let runs: Vec<RunAt> = db
        .sql("SELECT DISTINCT run_at_ms FROM {signal_results} ORDER BY run_at_ms DESC LIMIT 2")
        .fetch_all()
        .await?;
    let mut out = Runs::default();
    for (i, r) in runs.iter().enumerate() {
        let rows: Vec<SignalResult> = db
            .sql("SELECT ?fields FROM {signal_results} WHERE run_at_ms = {run}")
            .bind("run", r.run_at_ms)
            .fetch_all()
            .await?;
        if i == 0 {
            out.latest = rows;
        } else {
            out.previous = rows;
        }
    }
    Ok(out)
}

/// Every result of `key` across runs, oldest first.
pub async fn history(db: &Db, key: &SignalResult) -> Result<Vec<SignalResult>, StoreError> {
    let rows: Vec<SignalResult> = db
        .sql(
            "SELECT ?fields FROM {signal_results}
             WHERE analysis = {analysis} AND product = {product} AND event = {event}
               AND time_window = {window} AND route = {route} AND formulation = {formulation} AND dose_band = {band}
             ORDER BY run_at_ms",
        )
        .bind("analysis", key.analysis.clone())
        .bind("product", key.product.clone())
        .bind("event", key.event.clone())
        .bind("window", key.time_window.clone())
        .bind("route", key.route.clone())
        .bind("formulation", key.formulation.clone())
        .bind("band", key.dose_band.clone())
        .fetch_all()
        .await?;
    Ok(rows)
}

/// The cases (or patients) `r` counted in its run, restricted to the viewer's clinic.
pub async fn contributing(
    db: &Db,
    v: &Viewer,
    r: &SignalResult,
) -> Result<Vec<SignalContribution>, StoreError> {
    let sql = format!(
        "SELECT ?fields FROM {{signal_contributions}}
         WHERE run_at_ms = {{run}} AND ({{product}} = '*' OR product = {{product}}) AND {CLINIC_FILTER}
         ORDER BY onset_ms, clinic_id, report_id, patient_key"
    );
    let rows: Vec<SignalContribution> = db
        .sql(&sql)
        .bind("run", r.run_at_ms)
        .bind("product", r.product.clone())
        .bind("clinic", clinic_bind(v))
        .fetch_all()
        .await?;
    Ok(rows.into_iter().filter(|c| counts(r, c)).collect())
}

/// The clinics each result of run `run_at_ms` counted a case or patient of (for the clinic
/// filter of the signals table): the run's contributions of `clinic`.
pub async fn contributions_of_clinic(
    db: &Db,
    run_at_ms: i64,
    clinic: &str,
) -> Result<Vec<SignalContribution>, StoreError> {
    db.sql("SELECT ?fields FROM {signal_contributions} WHERE run_at_ms = {run} AND clinic_id = {clinic}")
        .bind("run", run_at_ms)
        .bind("clinic", clinic.to_string())
        .fetch_all()
        .await
}

/// Administrations per month (first day of the month, days since the epoch) of a stratum
/// (`*` matches any), all clinics or the viewer's.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct Exposure {
    /// Month (its first day, days since 1970-01-01), or a clinic, by query.
    pub month: u16,
    /// The clinic.
    pub clinic_id: String,
    /// Administrations.
    pub administrations: u64,
}

/// Administrations per month and clinic of a stratum.
pub async fn exposure(db: &Db, v: &Viewer, r: &SignalResult) -> Result<Vec<Exposure>, StoreError> {
    let sql = format!(
        "SELECT toUInt16(toStartOfMonth(administered_at)) AS month, clinic_id, uniqExact(event_id) AS administrations
         FROM {{doses}}
         WHERE ({{product}} = '*' OR toString(product) = {{product}}) AND ({{route}} = '*' OR toString(route) = {{route}})
           AND ({{formulation}} = '*' OR formulation = {{formulation}}) AND administered_at_ms <= {{as_of}}
           AND {CLINIC_FILTER}
         GROUP BY month, clinic_id ORDER BY month, clinic_id"
    );
    db.sql(&sql)
        .bind("product", r.product.clone())
        .bind("route", r.route.clone())
        .bind("formulation", r.formulation.clone())
        .bind("as_of", r.as_of_ms)
        .bind("clinic", clinic_bind(v))
        .fetch_all()
        .await
}

/// Every workflow action, oldest first (`key`: only that signal's).
pub async fn workflow(db: &Db, key: Option<&str>) -> Result<Vec<WorkflowAction>, StoreError> {
    db.sql(
        "SELECT ?fields FROM {signal_workflow} FINAL
         WHERE {key} = '' OR signal_key = {key} ORDER BY at_ms, signal_key, sequence",
    )
    .bind("key", key.unwrap_or("").to_string())
    .fetch_all()
    .await
}

/// A signal change of the signals service.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct ChangeLine {
    /// `new`, `updated`, `closed`.
    pub change: String,
    /// The signal.
    pub signal_key: String,
    /// When.
    pub run_at_ms: i64,
    /// Cases.
    pub n: i64,
    /// Cases before.
    pub previous_n: Option<i64>,
    /// Estimate.
    pub estimate: f64,
}

/// Signal changes after `since_ms`, newest first.
pub async fn changes_since(db: &Db, since_ms: i64) -> Result<Vec<ChangeLine>, StoreError> {
    db.sql(
        "SELECT change, signal_key, run_at_ms, n, previous_n, estimate FROM {signal_changes}
         WHERE run_at_ms > {since} ORDER BY run_at_ms DESC, signal_key LIMIT 200",
    )
    .bind("since", since_ms)
    .fetch_all()
    .await
}

/// The latest event received from each clinic.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct LastEvent {
    /// The clinic.
    pub clinic_id: String,
    /// Latest acceptance time (ms since the epoch).
    pub received_at_ms: i64,
    /// Events stored.
    pub events: u64,
}

/// The latest event per clinic (the viewer's clinic only for clinic users).
pub async fn last_event_per_clinic(db: &Db, v: &Viewer) -> Result<Vec<LastEvent>, StoreError> {
    let sql = format!(
        "SELECT clinic_id, max(received_at_ms) AS received_at_ms, sum(n) AS events FROM (
            SELECT clinic_id, max(received_at_ms) AS received_at_ms, count() AS n FROM {{doses}} WHERE {CLINIC_FILTER} GROUP BY clinic_id
            UNION ALL
            SELECT clinic_id, max(received_at_ms), count() FROM {{monitoring_forms}} WHERE {CLINIC_FILTER} GROUP BY clinic_id
            UNION ALL
            SELECT clinic_id, max(received_at_ms), count() FROM {{ae_report_versions}} WHERE {CLINIC_FILTER} GROUP BY clinic_id)
         GROUP BY clinic_id ORDER BY clinic_id"
    );
    db.sql(&sql).bind("clinic", clinic_bind(v)).fetch_all().await
}

/// Every version of one case, oldest first; empty when it does not exist or is outside the
/// viewer's scope.
pub async fn case_versions(
    db: &Db,
    v: &Viewer,
    clinic: &str,
    report: &str,
) -> Result<Vec<pv_store::events::AdverseEventRow>, StoreError> {
    if !v.sees_clinic(clinic) {
        return Ok(vec![]);
    }
    db.sql("SELECT ?fields FROM {ae_report_versions} FINAL WHERE clinic_id = {clinic} AND report_id = {report} ORDER BY version")
        .bind("clinic", clinic.to_string())
        .bind("report", report.to_string())
        .fetch_all()
        .await
}

/// A dose in a patient's history.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct DoseLine {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Product.
    pub product: String,
    /// Route.
    pub route: String,
    /// Dose (mg).
    pub dose_mg: f64,
    /// Session number.
    pub session_number: i32,
}

/// A monitoring form in a patient's history.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct MonitoringLine {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Session number.
    pub session_number: i32,
    /// Peak systolic pressure after the dose.
    pub bp_systolic_post: Option<i32>,
    /// Dissociation (CADSS).
    pub dissociation_cadss: Option<i32>,
    /// Sedation (MOAA/S).
    pub sedation_moaas: Option<i32>,
}

/// A patient's doses and monitoring forms at one clinic.
pub async fn patient_history(
    db: &Db,
    clinic: &str,
    patient_key: &str,
) -> Result<(Vec<DoseLine>, Vec<MonitoringLine>), StoreError> {
    let doses = db
        .sql(
            "SELECT administered_at_ms, toString(product), toString(route), dose_mg, session_number
             FROM {doses} FINAL WHERE clinic_id = {clinic} AND patient_key = {patient} ORDER BY administered_at_ms",
        )
        .bind("clinic", clinic.to_string())
        .bind("patient", patient_key.to_string())
        .fetch_all();
    let forms = db
        .sql(
            "SELECT monitored_at_ms, session_number, bp_systolic_post, dissociation_cadss, sedation_moaas
             FROM {monitoring_forms} FINAL WHERE clinic_id = {clinic} AND patient_key = {patient} ORDER BY monitored_at_ms",
        )
        .bind("clinic", clinic.to_string())
        .bind("patient", patient_key.to_string())
        .fetch_all();
    tokio::try_join!(doses, forms)
}
