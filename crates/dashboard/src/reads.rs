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

/// Events of one kind and day.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct DayCount {
    /// Day (days since 1970-01-01).
    pub day: u16,
    /// `dose`, `monitoring` or `adverse_event`.
    pub kind: String,
    /// Distinct events.
    pub events: u64,
}

/// Distinct events per day by kind over `[from_ms, to_ms]` (by when they happened), in the
/// viewer's scope, of clinic `only` (empty: every clinic in scope). One query per table: partitions outside the window are not read.
pub async fn events_per_day(
    db: &Db,
    v: &Viewer,
    only: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DayCount>, StoreError> {
    let per_table = |table: &'static dyn pv_store::Schema, time: &str, kind: &str| {
        let sql = format!(
            "SELECT toUInt16(toDate(toDateTime(intDiv({time}, 1000)))) AS day, '{kind}' AS kind, uniqExact(event_id) AS events
             FROM {{t}} WHERE {time} >= {{from}} AND {time} <= {{to}} AND {CLINIC_FILTER}
               AND ({{only}} = '' OR clinic_id = {{only}})
             GROUP BY day ORDER BY day"
        );
        let query = db
            .sql(&sql)
            .table("t", table)
            .bind("clinic", clinic_bind(v))
            .bind("only", only.to_string())
            .bind("from", from_ms)
            .bind("to", to_ms);
        query.fetch_all::<DayCount>()
    };
    let (doses, forms, reports, enrolments) = tokio::try_join!(
        per_table(&pv_store::events::DOSES, "administered_at_ms", "dose"),
        per_table(&pv_store::events::MONITORING_FORMS, "monitored_at_ms", "monitoring"),
        per_table(&pv_store::events::AE_REPORT_VERSIONS, "reported_at_ms", "adverse_event"),
        per_table(&pv_store::events::ENROLMENTS, "enrolled_at_ms", "enrolment"),
    )?;
    let mut all: Vec<DayCount> = doses.into_iter().chain(forms).chain(reports).chain(enrolments).collect();
    all.sort_by(|a, b| (a.day, &a.kind).cmp(&(b.day, &b.kind)));
    Ok(all)
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
    /// Only cases received after this instant (ms since the epoch; 0: all).
    #[serde(default)]
    pub received_after_ms: i64,
}

/// The conditions of a case listing (on `case_summaries FINAL`), values bound by [`bind_cases`].
fn case_conditions() -> String {
    format!(
        "nullification = 0 AND {CLINIC_FILTER} AND ({{only}} = '' OR clinic_id = {{only}})
         AND ({{serious}} = 0 OR serious = 1) AND ({{event}} = '' OR has(pts, {{event}}) OR has(groups, {{event}}))
         AND received_at_ms > {{after}}"
    )
}

fn bind_cases<'a>(sql: pv_store::Sql<'a>, v: &Viewer, f: &CaseFilter) -> pv_store::Sql<'a> {
    sql.bind("clinic", clinic_bind(v))
        .bind("only", f.clinic.clone())
        .bind("serious", u8::from(f.serious))
        .bind("event", f.event.clone())
        .bind("after", f.received_after_ms)
}

/// How many current cases match a filter.
#[derive(Debug, Clone, Copy, Row, Deserialize, Serialize, PartialEq)]
pub struct CaseCounts {
    /// Cases.
    pub n_all: u64,
    /// Serious cases.
    pub n_serious: u64,
    /// Serious cases received after the given instant.
    pub n_serious_since: u64,
}

/// Current cases in the viewer's scope matching `f`, of which serious, and serious received
/// after `since_ms`: one pass.
pub async fn case_counts(
    db: &Db,
    v: &Viewer,
    f: &CaseFilter,
    since_ms: i64,
) -> Result<CaseCounts, StoreError> {
    // Aliases must not shadow columns: ClickHouse resolves aliases in WHERE too.
    let sql = format!(
        "SELECT count() AS n_all, countIf(serious = 1) AS n_serious,
                countIf(serious = 1 AND received_at_ms > {{since}}) AS n_serious_since
         FROM {{case_summaries}} FINAL WHERE {}",
        case_conditions()
    );
    bind_cases(db.sql(&sql), v, f).bind("since", since_ms).fetch_one().await
}

/// A page of the current cases in the viewer's scope matching `f`, most recently received
/// first (`offset` rows skipped, at most `limit`).
pub async fn cases(
    db: &Db,
    v: &Viewer,
    f: &CaseFilter,
    offset: usize,
    limit: usize,
) -> Result<Vec<CaseLine>, StoreError> {
    let sql = format!(
        "SELECT clinic_id, report_id, version, patient_key, received_at_ms, reported_at_ms, reporter, serious, fatal,
                pts, groups, product
         FROM {{case_summaries}} FINAL WHERE {}
         ORDER BY received_at_ms DESC, clinic_id, report_id LIMIT {{offset}}, {{limit}}",
        case_conditions()
    );
    bind_cases(db.sql(&sql), v, f).bind("offset", offset as u64).bind("limit", limit as u64).fetch_all().await
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

/// The cases (or patients) `r` counted in its run, restricted to the viewer's clinic. The SQL
/// keeps a superset of the rows (same stratum, the event among the row's groups, terms or
/// markers, in the window); [`counts`] decides.
pub async fn contributing(
    db: &Db,
    v: &Viewer,
    r: &SignalResult,
) -> Result<Vec<SignalContribution>, StoreError> {
    let sql = format!(
        "SELECT ?fields FROM {{signal_contributions}}
         WHERE run_at_ms = {{run}} AND ({{product}} = '*' OR product = {{product}})
           AND ({{route}} = '*' OR route = {{route}}) AND ({{formulation}} = '*' OR formulation = {{formulation}})
           AND ({{band}} = '*' OR dose_band = {{band}}) AND ({{period}} = 0 OR in_period = 1)
           AND (has(groups, {{event}}) OR has(pts, {{event}}) OR has(markers, {{event}}))
           AND {CLINIC_FILTER}
         ORDER BY onset_ms, clinic_id, report_id, patient_key"
    );
    let rows: Vec<SignalContribution> = db
        .sql(&sql)
        .bind("run", r.run_at_ms)
        .bind("product", r.product.clone())
        .bind("route", r.route.clone())
        .bind("formulation", r.formulation.clone())
        .bind("band", r.dose_band.clone())
        .bind("period", u8::from(r.time_window == "period"))
        .bind("event", r.event.clone())
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

/// Administrations of a stratum in one month or at one clinic.
#[derive(Debug, Clone, Row, Deserialize, Serialize, PartialEq)]
pub struct Exposure {
    /// The month (its first day, `YYYY-MM-DD`) or the clinic.
    pub label: String,
    /// The month's first day (days since 1970-01-01; 0 for clinics).
    pub day: u16,
    /// Distinct administrations.
    pub administrations: u64,
}

/// Administrations of the stratum of `r` (`*` matches any) as its run counted them, in the
/// viewer's scope: by month, and by clinic.
pub async fn exposure(
    db: &Db,
    v: &Viewer,
    r: &SignalResult,
) -> Result<(Vec<Exposure>, Vec<Exposure>), StoreError> {
    let by = |key: &str, day: &str| {
        let sql = format!(
            "SELECT {key} AS label, {day} AS day, sum(administrations) AS administrations
             FROM {{signal_exposure}}
             WHERE run_at_ms = {{run}} AND ({{product}} = '*' OR product = {{product}})
               AND ({{route}} = '*' OR route = {{route}}) AND ({{formulation}} = '*' OR formulation = {{formulation}})
               AND {CLINIC_FILTER}
             GROUP BY label, day ORDER BY day, label"
        );
        let query = db
            .sql(&sql)
            .bind("run", r.run_at_ms)
            .bind("product", r.product.clone())
            .bind("route", r.route.clone())
            .bind("formulation", r.formulation.clone())
            .bind("clinic", clinic_bind(v));
        query.fetch_all::<Exposure>()
    };
    tokio::try_join!(by("toString(month)", "toUInt16(month)"), by("clinic_id", "toUInt16(0)"))
}

/// Every workflow action, oldest first (`key`: only that signal's), without the evidence case
/// lists (`evidence_cases` empty; `evidence_n` says how many): what statuses, histories and
/// listings need, at a few hundred bytes an action instead of up to megabytes.
pub async fn workflow(db: &Db, key: Option<&str>) -> Result<Vec<WorkflowAction>, StoreError> {
    use pv_store::TableRow as _;
    let columns: Vec<String> = WorkflowAction::columns()
        .into_iter()
        .map(|c| {
            if c.name == "evidence_cases" {
                "emptyArrayString() AS evidence_cases".to_string()
            } else {
                c.name
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM {{signal_workflow}} FINAL
         WHERE {{key}} = '' OR signal_key = {{key}} ORDER BY at_ms, signal_key, sequence",
        columns.join(", ")
    );
    db.sql(&sql).bind("key", key.unwrap_or("").to_string()).fetch_all().await
}

/// The evidence case lists of the actions `event_ids`.
pub async fn workflow_evidence(
    db: &Db,
    event_ids: Vec<String>,
) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
    #[derive(Debug, Row, Deserialize)]
    struct Evidence {
        event_id: String,
        evidence_cases: Vec<String>,
    }
    if event_ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<Evidence> = db
        .sql("SELECT event_id, any(evidence_cases) FROM {signal_workflow} WHERE has({ids}, event_id) GROUP BY event_id")
        .bind("ids", event_ids)
        .fetch_all()
        .await?;
    Ok(rows.into_iter().map(|e| (e.event_id, e.evidence_cases)).collect())
}

/// Every workflow action with its evidence, oldest first.
pub async fn workflow_with_evidence(db: &Db) -> Result<Vec<WorkflowAction>, StoreError> {
    db.sql("SELECT ?fields FROM {signal_workflow} FINAL ORDER BY at_ms, signal_key, sequence")
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

/// The latest event per clinic: every clinic (`scope` `None`) or one.
pub async fn last_event_per_clinic(db: &Db, scope: Option<&str>) -> Result<Vec<LastEvent>, StoreError> {
    let sql = format!(
        "SELECT clinic_id, max(received_at_ms) AS received_at_ms, sum(n) AS events FROM (
            SELECT clinic_id, max(received_at_ms) AS received_at_ms, count() AS n FROM {{doses}} WHERE {CLINIC_FILTER} GROUP BY clinic_id
            UNION ALL
            SELECT clinic_id, max(received_at_ms), count() FROM {{monitoring_forms}} WHERE {CLINIC_FILTER} GROUP BY clinic_id
            UNION ALL
            SELECT clinic_id, max(received_at_ms), count() FROM {{ae_report_versions}} WHERE {CLINIC_FILTER} GROUP BY clinic_id)
         GROUP BY clinic_id ORDER BY clinic_id"
    );
    db.sql(&sql).bind("clinic", scope.unwrap_or("").to_string()).fetch_all().await
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
