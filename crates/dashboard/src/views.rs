//! What each screen shows, built once for both the HTML pages and the JSON API: the signals
//! table with its filters, sorting and paging; a signal's detail; the case listing and one
//! case; the audit trail; the overview.

use std::collections::{BTreeMap, HashMap};

use pv_events::{Drug, EnrichedAdverseEvent, EnrichedReaction, Seriousness};
use pv_signals::contributions::counts;
use pv_stats::poisson;
use pv_store::signals::{SignalContribution, SignalResult};
use pv_store::workflow::WorkflowAction;
use pv_workflow::{State, Status, project};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::AppError;
use crate::reads::{self, CaseFilter, CaseLine, ChangeLine, DayCount, DoseLine, LastEvent, MonitoringLine};
use crate::scope::Viewer;

/// A page of rows.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// Rows matching the filters.
    pub total: usize,
    /// First row shown (0-based).
    pub offset: usize,
    /// Rows per page.
    pub limit: usize,
    /// The rows shown.
    pub rows: Vec<T>,
}

/// Paging parameters (`offset`, `limit`; `limit` at most 1000).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Paging {
    /// First row (0-based).
    #[serde(default)]
    pub offset: usize,
    /// Rows per page (0: the configured page size).
    #[serde(default)]
    pub limit: usize,
}

fn page<T>(rows: Vec<T>, p: &Paging, default_limit: usize) -> Page<T> {
    let limit = if p.limit == 0 { default_limit } else { p.limit.min(1000) };
    let total = rows.len();
    let rows = rows.into_iter().skip(p.offset).take(limit).collect();
    Page { total, offset: p.offset, limit, rows }
}

/// One measure of a result, labelled for its analysis.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Measure {
    /// Short name (column of the CSV).
    pub name: &'static str,
    /// Its value.
    pub value: f64,
}

/// What the main estimate of an analysis is (unknown analyses: "estimate").
pub fn estimate_label(analysis: &str) -> &'static str {
    match analysis {
        "disproportionality" => "PRR",
        "incidence_per_1000_administrations" => "cases per 1,000 administrations",
        "incidence_per_100_patient_years" => "cases per 100 patient-years",
        "dose_response" => "rate ratio, highest vs lowest band",
        "time_to_onset" => "median days from first dose (IQR)",
        "dependence_marker" => "share of patients",
        "maxsprt" | "sequential_test" => "observed / expected",
        "rate_ratio" => "adjusted rate ratio",
        "reporting_rate" => "reports / expected from other clinics",
        _ => "estimate",
    }
}

/// What the denominator of an analysis counts.
pub fn denominator_label(analysis: &str) -> &'static str {
    match analysis {
        "disproportionality" => "expected cases",
        "incidence_per_1000_administrations" | "dose_response" => "administrations",
        "incidence_per_100_patient_years" => "patient-years at risk",
        "time_to_onset" => "cases with onset known",
        "dependence_marker" => "patients treated",
        "maxsprt" | "sequential_test" => "expected cases under the background",
        "rate_ratio" => "patient-years at risk",
        "reporting_rate" => "expected reports",
        _ => "denominator",
    }
}

/// The measures a result carries: those of its analysis that are present, in a fixed order.
pub fn measures(r: &SignalResult) -> Vec<Measure> {
    let optional = [
        ("ror", r.ror),
        ("ror_lower", r.ror_lower),
        ("ic025", r.ic025),
        ("ebgm", r.ebgm),
        ("eb05", r.eb05),
        ("chi2", r.chi2),
        ("trend_z", r.trend_z),
        ("llr", r.llr),
        ("cv", r.cv),
        ("p_value", r.p_value),
        ("q_value", r.q_value),
    ];
    optional.into_iter().filter_map(|(name, v)| v.map(|value| Measure { name, value })).collect()
}

/// Filters, sort and paging of the signals table (all optional; empty matches everything).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct SignalsQuery {
    /// Analysis name.
    #[serde(default)]
    pub analysis: String,
    /// Product.
    #[serde(default)]
    pub product: String,
    /// Route.
    #[serde(default)]
    pub route: String,
    /// Event group, preferred term or marker.
    #[serde(default)]
    pub event: String,
    /// `period` or `cumulative`.
    #[serde(default)]
    pub window: String,
    /// Workflow state.
    #[serde(default)]
    pub status: String,
    /// Only results counting a case (or patient) of this clinic.
    #[serde(default)]
    pub clinic: String,
    /// `1`: only results that are signals.
    #[serde(default)]
    pub signal: String,
    /// Sort column: `n`, `estimate`, `lower`, `event`, `product`, `analysis`, `status`,
    /// `priority`, `due_date`, `change` (default: signals first, then lower bound, descending).
    #[serde(default)]
    pub sort: String,
    /// `asc` or `desc` (default `desc` for numbers).
    #[serde(default)]
    pub dir: String,
    /// First row (0-based).
    #[serde(default)]
    pub offset: usize,
    /// Rows per page (0: the configured page size).
    #[serde(default)]
    pub limit: usize,
}

/// One row of the signals table.
#[derive(Debug, Clone, Serialize)]
pub struct SignalRow {
    /// The signal key.
    pub key: String,
    /// The result of the latest run.
    pub result: SignalResult,
    /// Label of its estimate.
    pub estimate_label: &'static str,
    /// Label of its denominator.
    pub denominator_label: &'static str,
    /// Its other measures.
    pub measures: Vec<Measure>,
    /// Cases in the previous run.
    pub previous_n: Option<u64>,
    /// Estimate in the previous run.
    pub previous_estimate: Option<f64>,
    /// `up`, `down`, `same` (estimate vs the previous run) or `new` (no previous result).
    pub direction: &'static str,
    /// Workflow status.
    pub status: Status,
}

impl SignalRow {
    /// The row of `result`, compared with its `previous` run's result, in workflow `status`.
    pub fn new(result: SignalResult, previous: Option<&SignalResult>, status: Status) -> Self {
        SignalRow {
            key: result.key(),
            estimate_label: estimate_label(&result.analysis),
            denominator_label: denominator_label(&result.analysis),
            measures: measures(&result),
            previous_n: previous.map(|p| p.n),
            previous_estimate: previous.map(|p| p.estimate),
            direction: direction(result.estimate, previous.map(|p| p.estimate)),
            status,
            result,
        }
    }
}

/// Refuses clinic users: every signal statistic is computed from all clinics' data.
fn require_signals(v: &Viewer) -> Result<(), AppError> {
    if v.sees_signals() {
        Ok(())
    } else {
        Err(AppError::forbidden("signals are computed from every clinic's data: not for clinic users"))
    }
}

/// The result of the latest run with `key`, or 404 naming `field` (the parameter it came in).
pub fn latest_result<'a>(
    runs: &'a reads::Runs,
    key: &str,
    field: &str,
) -> Result<&'a SignalResult, AppError> {
    runs.latest
        .iter()
        .find(|r| r.key() == key)
        .ok_or_else(|| AppError::not_found(field, "no result of the latest signals run has this key"))
}

/// The signals table.
#[derive(Debug, Clone, Serialize)]
pub struct SignalsView {
    /// The latest run (ms since the epoch; 0: no run yet).
    pub run_at_ms: i64,
    /// The data time it analysed up to.
    pub as_of_ms: i64,
    /// The run before it.
    pub previous_run_at_ms: i64,
    /// The rows.
    pub page: Page<SignalRow>,
    /// Values the filters can take (from the latest run).
    pub options: BTreeMap<&'static str, Vec<String>>,
}

fn direction(now: f64, before: Option<f64>) -> &'static str {
    match before {
        None => "new",
        Some(b) if (now - b).abs() <= 1e-9 * b.abs().max(1.0) => "same",
        Some(b) if now > b => "up",
        Some(_) => "down",
    }
}

fn sort_rows(rows: &mut [SignalRow], sort: &str, dir: &str) {
    use std::cmp::Ordering;
    let num = |a: f64, b: f64| a.partial_cmp(&b).unwrap_or(Ordering::Equal);
    let prio = |s: &Status| s.priority.map_or(9, |p| p as u8);
    rows.sort_by(|a, b| {
        let (x, y) = (&a.result, &b.result);
        let o = match sort {
            "n" => x.n.cmp(&y.n),
            "estimate" => num(x.estimate, y.estimate),
            "lower" => num(x.lower, y.lower),
            "event" => x.event.cmp(&y.event),
            "product" => (&x.product, &x.route).cmp(&(&y.product, &y.route)),
            "analysis" => x.analysis.cmp(&y.analysis),
            "status" => a.status.state.cmp(&b.status.state),
            "priority" => prio(&a.status).cmp(&prio(&b.status)),
            "due_date" => a.status.due_date.cmp(&b.status.due_date),
            "change" => a.direction.cmp(b.direction),
            _ => x.signal.cmp(&y.signal).then(num(x.lower, y.lower)),
        };
        let o = if dir == "asc"
            || (dir.is_empty()
                && matches!(sort, "event" | "product" | "analysis" | "status" | "priority" | "due_date"))
        {
            o
        } else {
            o.reverse()
        };
        o.then_with(|| a.key.cmp(&b.key))
    });
}

/// The signals table for `q`.
pub async fn signals(state: &AppState, v: &Viewer, q: &SignalsQuery) -> Result<SignalsView, AppError> {
    require_signals(v)?;
    let runs = reads::latest_runs(&state.db).await?;
    let before: HashMap<String, &SignalResult> = runs.previous.iter().map(|r| (r.key(), r)).collect();
    let statuses = project(&reads::workflow(&state.db, None).await?);
    let clinic_rows = match (q.clinic.as_str(), runs.latest.first()) {
        ("", _) | (_, None) => None,
        (c, Some(r)) => Some(reads::contributions_of_clinic(&state.db, r.run_at_ms, c).await?),
    };
    let mut options: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for r in &runs.latest {
        for (name, value) in [
            ("analysis", &r.analysis),
            ("product", &r.product),
            ("route", &r.route),
            ("event", &r.event),
            ("window", &r.time_window),
        ] {
            options.entry(name).or_default().push(value.clone());
        }
    }
    for values in options.values_mut() {
        values.sort();
        values.dedup();
    }
    let is = |want: &str, have: &str| want.is_empty() || want == have;
    let mut rows: Vec<SignalRow> = runs
        .latest
        .iter()
        .filter(|r| is(&q.analysis, &r.analysis) && is(&q.product, &r.product) && is(&q.route, &r.route))
        .filter(|r| {
            is(&q.event, &r.event) && is(&q.window, &r.time_window) && (q.signal.is_empty() || r.signal)
        })
        .filter(|r| clinic_rows.as_ref().is_none_or(|cs| cs.iter().any(|c| counts(r, c))))
        .map(|r| {
            let key = r.key();
            let status = statuses.get(&key).cloned().unwrap_or_else(|| Status::detected(&key));
            SignalRow::new(r.clone(), before.get(&key).copied(), status)
        })
        .filter(|row| is(&q.status, row.status.state.name()))
        .collect();
    sort_rows(&mut rows, &q.sort, &q.dir);
    Ok(SignalsView {
        run_at_ms: runs.latest.first().map_or(0, |r| r.run_at_ms),
        as_of_ms: runs.latest.first().map_or(0, |r| r.as_of_ms),
        previous_run_at_ms: runs.previous.first().map_or(0, |r| r.run_at_ms),
        page: page(rows, &Paging { offset: q.offset, limit: q.limit }, state.cfg.page_size),
        options,
    })
}

/// A rate with its exact 95% interval, for one month or one clinic.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RatePoint {
    /// Month (first day, `YYYY-MM-DD`) or clinic.
    pub label: String,
    /// Days since the epoch (months; 0 for clinics).
    pub day: u16,
    /// Cases.
    pub cases: u64,
    /// Administrations.
    pub administrations: u64,
    /// Cases per 1,000 administrations.
    pub rate: f64,
    /// Lower 95% bound.
    pub lower: f64,
    /// Upper 95% bound.
    pub upper: f64,
}

fn rate_point(label: String, day: u16, cases: u64, administrations: u64) -> RatePoint {
    let r = poisson::rate(cases, administrations as f64, 1000.0, 0.95);
    let upper = if r.upper.is_finite() { r.upper } else { 0.0 };
    RatePoint { label, day, cases, administrations, rate: r.estimate, lower: r.lower, upper }
}

/// Contributing cases listed on a signal's detail.
pub const CONTRIBUTING_SHOWN: usize = 200;

/// A signal's detail.
#[derive(Debug, Clone, Serialize)]
pub struct DetailView {
    /// The result of the latest run.
    pub row: SignalRow,
    /// Its results across runs, oldest first.
    pub history: Vec<SignalResult>,
    /// The cases (or patients) it counts, in the viewer's scope: the first
    /// [`CONTRIBUTING_SHOWN`] by onset (all of them: `/api/v1/signals/cases`).
    pub contributing: Vec<SignalContribution>,
    /// How many it counts in the viewer's scope.
    pub contributing_total: usize,
    /// Cases per 1,000 administrations by month of onset, with exact intervals.
    pub by_month: Vec<RatePoint>,
    /// Cases per 1,000 administrations by clinic.
    pub by_clinic: Vec<RatePoint>,
    /// The incidence of the same stratum and event by cumulative-dose band (latest run).
    pub by_band: Vec<SignalResult>,
    /// Days from the first dose to onset of the contributing cases.
    pub onset_days: Vec<f64>,
    /// The workflow history, oldest first.
    pub actions: Vec<WorkflowAction>,
    /// States the signal may move to next.
    pub next_states: Vec<State>,
}

fn month_of(ms: i64) -> u16 {
    let date = chrono::DateTime::from_timestamp_millis(ms).map(|d| d.date_naive()).unwrap_or_default();
    let first =
        chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&date), chrono::Datelike::month(&date), 1)
            .unwrap_or_default();
    u16::try_from((first - chrono::NaiveDate::default()).num_days()).unwrap_or(0)
}

/// `YYYY-MM-DD` of a day number.
pub fn day_label(day: u16) -> String {
    (chrono::NaiveDate::default() + chrono::Days::new(u64::from(day))).to_string()
}

/// The detail of the signal `key` as of the latest run.
pub async fn detail(state: &AppState, v: &Viewer, key: &str) -> Result<DetailView, AppError> {
    require_signals(v)?;
    let runs = reads::latest_runs(&state.db).await?;
    let prev: Option<&SignalResult> = runs.previous.iter().find(|r| r.key() == key);
    let result = latest_result(&runs, key, "key")?.clone();
    let (history, contributing, exposure, actions) = tokio::try_join!(
        reads::history(&state.db, &result),
        reads::contributing(&state.db, v, &result),
        reads::exposure(&state.db, v, &result),
        reads::workflow(&state.db, Some(key)),
    )?;
    let status = project(&actions).remove(key).unwrap_or_else(|| Status::detected(key));
    let cases: Vec<&SignalContribution> = contributing.iter().filter(|c| c.kind != "patient").collect();
    let (months, clinics) = exposure;
    let mut by_month: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    let mut by_clinic: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in &months {
        by_month.entry(e.day).or_default().1 += e.administrations;
    }
    for e in &clinics {
        by_clinic.entry(e.label.clone()).or_default().1 += e.administrations;
    }
    for c in &cases {
        by_month.entry(month_of(c.onset_ms)).or_default().0 += 1;
        by_clinic.entry(c.clinic_id.clone()).or_default().0 += 1;
    }
    // The dose-response of the result's product and harm, on person-time per product band.
    let by_band = runs
        .latest
        .iter()
        .filter(|r| r.analysis == "incidence_per_100_patient_years" && r.subgroup == "*" && r.route == "*")
        .filter(|r| (&r.product, &r.event) == (&result.product, &result.event))
        .filter(|r| r.dose_band != "*")
        .cloned()
        .collect();
    let row = SignalRow::new(result, prev, status.clone());
    let onset_days = cases.iter().filter_map(|c| c.days_from_first_dose).filter(|d| d.is_finite()).collect();
    let contributing_total = contributing.len();
    let mut contributing = contributing;
    contributing.truncate(CONTRIBUTING_SHOWN);
    Ok(DetailView {
        onset_days,
        contributing_total,
        by_month: by_month.into_iter().map(|(m, (c, a))| rate_point(day_label(m), m, c, a)).collect(),
        by_clinic: by_clinic.into_iter().map(|(k, (c, a))| rate_point(k, 0, c, a)).collect(),
        by_band,
        history,
        contributing,
        next_states: status.state.next().to_vec(),
        actions,
        row,
    })
}

/// Paging of a signal's contributing cases.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ContributingQuery {
    /// The signal.
    pub key: String,
    /// First row (0-based).
    #[serde(default)]
    pub offset: usize,
    /// Rows per page (0: the configured page size).
    #[serde(default)]
    pub limit: usize,
}

/// A page of the cases (or patients) the signal `q.key` counts in the latest run, in the
/// viewer's scope.
pub async fn contributing(
    state: &AppState,
    v: &Viewer,
    q: &ContributingQuery,
) -> Result<Page<SignalContribution>, AppError> {
    let rows = all_contributing(state, v, &q.key).await?;
    Ok(page(rows, &Paging { offset: q.offset, limit: q.limit }, state.cfg.page_size))
}

/// Every case (or patient) the signal `key` counts in the latest run, in the viewer's scope.
pub async fn all_contributing(
    state: &AppState,
    v: &Viewer,
    key: &str,
) -> Result<Vec<SignalContribution>, AppError> {
    require_signals(v)?;
    let runs = reads::latest_runs(&state.db).await?;
    let result = latest_result(&runs, key, "key")?;
    Ok(reads::contributing(&state.db, v, result).await?)
}

/// The overview.
#[derive(Debug, Clone, Serialize)]
pub struct OverviewView {
    /// The window the event counts cover: the `to` day (default today) and the 89 days before
    /// (ms).
    pub window_from_ms: i64,
    /// Its end.
    pub window_to_ms: i64,
    /// Events per day by kind over the window (of `clinic` when given).
    pub events_per_day: Vec<DayCount>,
    /// The clinic the events per day are restricted to (empty: every clinic in scope).
    pub clinic: String,
    /// Current serious cases received since the viewer's previous visit (all when first; at
    /// most 50, newest first).
    pub serious_since_visit: Vec<CaseLine>,
    /// How many there are.
    pub serious_since_visit_total: u64,
    /// Current serious cases, in all.
    pub serious_total: u64,
    /// Current cases, in all.
    pub cases_total: u64,
    /// Signal changes since the viewer's previous visit (not for clinic users).
    pub signal_changes: Vec<ChangeLine>,
    /// The latest event per clinic (every clinic: as of the pipeline health's last reading).
    pub last_events: Vec<LastEvent>,
    /// Pipeline health (not for clinic users).
    pub health: Option<crate::health::Health>,
    /// What the rates' denominators are, and what they cannot show.
    pub denominators: Vec<&'static str>,
}

/// The statement of what the rates on every screen count.
pub const DENOMINATORS: [&str; 5] = [
    "Cases are adverse-event reports in their latest version, not nullified, counted once per report; several reactions of one report count one case.",
    "Cases per 1,000 administrations divide cases by the administrations recorded for the same product, route and formulation (and cumulative-dose band at onset) up to the run's as-of time.",
    "Cases per 100 patient-years divide cases by the time from each patient's first dose to 14 days after their last (configurable), within the window.",
    "Disproportionality compares a stratum's share of an event among its cases with the other strata's: it measures reporting, not risk.",
    "Rates count what clinics reported and recorded: a clinic that under-reports lowers them, and none of them alone establishes that the drug caused the harm.",
];

const DAY_MS: i64 = 86_400_000;

/// The overview's filter.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct OverviewQuery {
    /// Events per day of this clinic only (empty: every clinic in the viewer's scope).
    #[serde(default)]
    pub clinic: String,
    /// The last day of the 90-day window of events per day (`YYYY-MM-DD`; default today).
    #[serde(default)]
    pub to: String,
}

/// The overview for `v`.
pub async fn overview(state: &AppState, v: &Viewer, q: &OverviewQuery) -> Result<OverviewView, AppError> {
    let db = &state.db;
    let to = match day_start_ms(&q.to, "to")? {
        Some(day) => day + DAY_MS - 1,
        None => crate::app::now_ms(),
    };
    let from = to - 89 * DAY_MS - to.rem_euclid(DAY_MS);
    let all = CaseFilter::default();
    let since = CaseFilter { serious: true, received_after_ms: v.previous_visit_ms, ..CaseFilter::default() };
    let (events_per_day, case_counts, serious_since_visit) = tokio::try_join!(
        reads::events_per_day(db, v, &q.clinic, from, to),
        reads::case_counts(db, v, &all, v.previous_visit_ms),
        reads::cases(db, v, &since, 0, 50),
    )?;
    let signal_changes =
        if v.sees_signals() { reads::changes_since(db, v.previous_visit_ms).await? } else { vec![] };
    // Every clinic's latest event is pipeline health (cached); a clinic's own is read live
    // (its key prefix makes it cheap).
    let (health, last_events) = if v.sees_pipeline() {
        let h = state.health.get().await;
        let last = h.last_events.clone();
        (Some(h), last)
    } else {
        (None, reads::last_event_per_clinic(db, v.clinic_scope()).await?)
    };
    Ok(OverviewView {
        window_from_ms: from,
        window_to_ms: to,
        events_per_day,
        clinic: q.clinic.clone(),
        serious_since_visit,
        serious_since_visit_total: case_counts.n_serious_since,
        serious_total: case_counts.n_serious,
        cases_total: case_counts.n_all,
        signal_changes,
        last_events,
        health,
        denominators: DENOMINATORS.to_vec(),
    })
}

/// Filters and paging of the case listing.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct CasesQuery {
    /// Only this clinic (within the viewer's scope).
    #[serde(default)]
    pub clinic: String,
    /// `1`: only serious cases.
    #[serde(default)]
    pub serious: String,
    /// Only cases with this event group or preferred term.
    #[serde(default)]
    pub event: String,
    /// First row (0-based).
    #[serde(default)]
    pub offset: usize,
    /// Rows per page (0: the configured page size).
    #[serde(default)]
    pub limit: usize,
}

/// The case listing.
pub async fn cases(state: &AppState, v: &Viewer, q: &CasesQuery) -> Result<Page<CaseLine>, AppError> {
    let filter = CaseFilter {
        clinic: q.clinic.clone(),
        serious: !q.serious.is_empty(),
        event: q.event.clone(),
        received_after_ms: 0,
    };
    let limit = if q.limit == 0 { state.cfg.page_size } else { q.limit.min(1000) };
    let (counts, rows) = tokio::try_join!(
        reads::case_counts(&state.db, v, &filter, 0),
        reads::cases(&state.db, v, &filter, q.offset, limit),
    )?;
    Ok(Page { total: usize::try_from(counts.n_all).unwrap_or(usize::MAX), offset: q.offset, limit, rows })
}

/// One version of a case as shown (narrative removed for viewers who may not read it).
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    /// The version.
    pub report: EnrichedAdverseEvent,
    /// Any reaction serious.
    pub serious: bool,
    /// What changed from the version before (empty for the first).
    pub changes: Vec<String>,
}

/// One case with its patient's history.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
    /// Whether narratives are shown to this viewer.
    pub narratives_shown: bool,
    /// The patient's doses.
    pub doses: Vec<DoseLine>,
    /// The patient's monitoring forms.
    pub monitoring: Vec<MonitoringLine>,
}

/// The wire name of an enum value (its serde name).
pub fn name_of<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|j| j.as_str().map(str::to_string)).unwrap_or_else(|| "-".into())
}

/// The seriousness criteria a reaction meets.
pub fn criteria(s: &Seriousness) -> Vec<&'static str> {
    [
        ("death", s.death),
        ("life-threatening", s.life_threatening),
        ("hospitalisation", s.hospitalisation),
        ("disability", s.disability),
        ("congenital anomaly", s.congenital_anomaly),
        ("other medically important", s.other_medically_important),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| n)
    .collect()
}

fn reaction_line(r: &EnrichedReaction) -> String {
    format!(
        "{} -> {} ({}), onset {}, outcome {}, serious: {}",
        r.verbatim,
        r.pt.as_deref().unwrap_or("uncoded"),
        r.soc.as_deref().unwrap_or("-"),
        r.onset_date.map_or_else(|| "unknown".into(), |d| d.to_string()),
        name_of(&r.outcome),
        criteria(&r.seriousness).join(", "),
    )
}

fn drug_line(d: &Drug) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    format!(
        "{} {} ({}), causality {}, dechallenge {}, rechallenge {}",
        name_of(&d.role),
        d.name,
        opt(d.route.map(|r| name_of(&r))),
        opt(d.causality.map(|c| name_of(&c))),
        opt(d.dechallenge.map(|c| name_of(&c))),
        opt(d.rechallenge.map(|c| name_of(&c))),
    )
}

/// What changed from `a` to `b`, one line per difference.
pub fn version_changes(a: &EnrichedAdverseEvent, b: &EnrichedAdverseEvent) -> Vec<String> {
    let mut out = Vec::new();
    let diff = |what: &str, xs: Vec<String>, ys: Vec<String>, out: &mut Vec<String>| {
        out.extend(ys.iter().filter(|y| !xs.contains(y)).map(|y| format!("{what} now: {y}")));
        out.extend(xs.iter().filter(|x| !ys.contains(x)).map(|x| format!("{what} before: {x}")));
    };
    diff(
        "reaction",
        a.reactions.iter().map(reaction_line).collect(),
        b.reactions.iter().map(reaction_line).collect(),
        &mut out,
    );
    diff("drug", a.drugs.iter().map(drug_line).collect(), b.drugs.iter().map(drug_line).collect(), &mut out);
    if a.reporter_qualification != b.reporter_qualification {
        out.push(format!(
            "reporter: {} -> {}",
            name_of(&a.reporter_qualification),
            name_of(&b.reporter_qualification)
        ));
    }
    if a.narrative != b.narrative {
        out.push("narrative changed".into());
    }
    if a.nullification != b.nullification {
        out.push(format!("nullified: {}", b.nullification_reason.clone().unwrap_or_default()));
    }
    out
}

/// The case `report` of `clinic`, if the viewer may see it.
pub async fn case(state: &AppState, v: &Viewer, clinic: &str, report: &str) -> Result<CaseView, AppError> {
    let rows = reads::case_versions(&state.db, v, clinic, report).await?;
    let Some(patient) = rows.first().map(|r| r.patient_key.clone()) else {
        return Err(AppError::not_found("report_id", "no such case (or not yours to see)"));
    };
    let narratives_shown = v.sees_narratives();
    let (doses, monitoring) = reads::patient_history(&state.db, clinic, &patient).await?;
    let mut versions: Vec<VersionView> = Vec::new();
    for row in rows {
        let Some(mut report) = row.to_event() else {
            return Err(AppError::internal(&format!(
                "version {} of the case is stored inconsistently",
                row.version
            )));
        };
        if !narratives_shown {
            report.narrative = None;
        }
        let changes = versions.last().map(|p| version_changes(&p.report, &report)).unwrap_or_default();
        let serious = report.reactions.iter().any(|r| !criteria(&r.seriousness).is_empty());
        versions.push(VersionView { report, serious, changes });
    }
    Ok(CaseView { versions, narratives_shown, doses, monitoring })
}

/// Filters and paging of the audit trail.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct AuditQuery {
    /// Only this actor.
    #[serde(default)]
    pub actor: String,
    /// Only this action (`transition`, `assign`, ...).
    #[serde(default)]
    pub action: String,
    /// Only signals whose key contains this.
    #[serde(default)]
    pub signal: String,
    /// From this day (`YYYY-MM-DD`, inclusive).
    #[serde(default)]
    pub from: String,
    /// To this day (`YYYY-MM-DD`, inclusive).
    #[serde(default)]
    pub to: String,
    /// First row (0-based).
    #[serde(default)]
    pub offset: usize,
    /// Rows per page (0: the configured page size).
    #[serde(default)]
    pub limit: usize,
}

fn day_start_ms(day: &str, field: &'static str) -> Result<Option<i64>, AppError> {
    if day.is_empty() {
        return Ok(None);
    }
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| AppError::bad_request(field, &format!("`{day}` is not a date (YYYY-MM-DD)")))?;
    Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()))
}

/// The audit trail: who did what, when and why, newest first.
pub async fn audit(state: &AppState, v: &Viewer, q: &AuditQuery) -> Result<Page<WorkflowAction>, AppError> {
    if !v.sees_signals() {
        return Err(AppError::forbidden("the signal workflow is not for clinic users"));
    }
    let from = day_start_ms(&q.from, "from")?;
    let to = day_start_ms(&q.to, "to")?.map(|t| t + 86_400_000);
    let mut rows = reads::workflow(&state.db, None).await?;
    rows.retain(|a| {
        (q.actor.is_empty() || a.actor == q.actor)
            && (q.action.is_empty() || a.action == q.action)
            && (q.signal.is_empty() || a.signal_key.contains(&q.signal))
            && from.is_none_or(|f| a.at_ms >= f)
            && to.is_none_or(|t| a.at_ms < t)
    });
    rows.reverse();
    Ok(page(rows, &Paging { offset: q.offset, limit: q.limit }, state.cfg.page_size))
}

/// Whether a counted row is an adverse-event report (a case, or an incident case of the
/// person-time analyses) rather than a patient or a dated protocol deviation.
pub fn is_report(c: &SignalContribution) -> bool {
    (c.kind == "case" || c.kind.starts_with("incident")) && c.version > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_and_labels() {
        assert_eq!(direction(2.0, None), "new");
        assert_eq!(direction(2.0, Some(1.0)), "up");
        assert_eq!(direction(1.0, Some(2.0)), "down");
        assert_eq!(direction(1.0, Some(1.0)), "same");
        assert_eq!(estimate_label("an_analysis_added_later"), "estimate");
        assert_eq!(day_label(0), "1970-01-01");
        assert_eq!(month_of(1_700_000_000_000), 19662, "2023-11-01");
    }

    #[test]
    fn paging_caps_the_limit() {
        let p = page((0..30).collect::<Vec<_>>(), &Paging { offset: 10, limit: 5000 }, 50);
        assert_eq!((p.total, p.limit, p.rows.len(), p.rows[0]), (30, 1000, 20, 10));
        let p = page((0..30).collect::<Vec<_>>(), &Paging::default(), 7);
        assert_eq!(p.rows, (0..7).collect::<Vec<_>>());
    }
}
