//! The JSON API under `/api/v1`: every screen's data, with the same filters, sorting and paging
//! as the pages (`offset`, `limit`), and `format=csv` for the listings. Errors are
//! `{"error": {"field": ..., "reason": ...}}` with a fitting status.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::CookieJar;
use pv_workflow::{Change, Context, Priority, Request, State as WfState};
use serde::Deserialize;
use serde_json::json;

use crate::app::{AppState, ClientAddr, Credentials, Signed, now_ms, sign_in, sign_out};
use crate::error::AppError;
use crate::users::Role;
use crate::views::{self, AuditQuery, CasesQuery, SignalsQuery};
use crate::{export, reads};

/// `format=csv` or JSON; `evidence=1` (audit): with the decisions' evidence case lists.
#[derive(Debug, Default, Deserialize)]
struct Format {
    #[serde(default)]
    format: String,
    #[serde(default)]
    evidence: String,
}

fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.csv\"")),
        ],
        body,
    )
        .into_response()
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/session", get(session).post(start_session))
        .route("/api/v1/session/end", post(end_session))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/signals", get(signals))
        .route("/api/v1/signals/detail", get(detail))
        .route("/api/v1/signals/cases", get(contributing))
        .route("/api/v1/signals/actions", post(act))
        .route("/api/v1/cases", get(cases))
        .route("/api/v1/cases/{clinic}/{report}", get(case))
        .route("/api/v1/audit", get(audit))
}

async fn session(s: Signed) -> Json<serde_json::Value> {
    let v = s.viewer;
    Json(
        json!({"user": v.user, "role": v.role, "clinic": v.clinic, "csrf": s.csrf, "previous_visit_ms": v.previous_visit_ms}),
    )
}

async fn start_session(
    State(state): State<Arc<AppState>>,
    addr: ClientAddr,
    jar: CookieJar,
    Json(c): Json<Credentials>,
) -> Result<Response, AppError> {
    let cookie = sign_in(&state, &c, addr.0, &jar).await?;
    let token = cookie.value().to_string();
    let s = state.sessions.touch(&token, now_ms()).ok_or_else(AppError::unauthenticated)?;
    let body = json!({"user": s.user, "role": s.role, "clinic": s.clinic, "csrf": s.csrf, "previous_visit_ms": s.previous_visit_ms});
    Ok((jar.add(cookie), Json(body)).into_response())
}

async fn end_session(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    (sign_out(&state, &headers), Json(json!({"signed_out": true}))).into_response()
}

async fn overview(
    State(state): State<Arc<AppState>>,
    s: Signed,
    Query(q): Query<views::OverviewQuery>,
) -> Result<Response, AppError> {
    Ok(Json(views::overview(&state, &s.viewer, &q).await?).into_response())
}

async fn signals(
    State(state): State<Arc<AppState>>,
    s: Signed,
    Query(q): Query<SignalsQuery>,
    Query(f): Query<Format>,
) -> Result<Response, AppError> {
    let view = views::signals(&state, &s.viewer, &q).await?;
    if f.format == "csv" {
        return Ok(csv_response("signals", export::signals(&view.page.rows)));
    }
    Ok(Json(view).into_response())
}

#[derive(Debug, Deserialize)]
struct Key {
    key: String,
}

async fn detail(
    State(state): State<Arc<AppState>>,
    s: Signed,
    Query(k): Query<Key>,
) -> Result<Response, AppError> {
    Ok(Json(views::detail(&state, &s.viewer, &k.key).await?).into_response())
}

async fn contributing(
    State(state): State<Arc<AppState>>,
    s: Signed,
    Query(q): Query<views::ContributingQuery>,
    Query(f): Query<Format>,
) -> Result<Response, AppError> {
    if f.format == "csv" {
        // Every contributing case, not a page: the evidence behind the result, whole.
        let rows = views::all_contributing(&state, &s.viewer, &q.key).await?;
        return Ok(csv_response("contributing", export::contributing(&rows)));
    }
    Ok(Json(views::contributing(&state, &s.viewer, &q).await?).into_response())
}

/// A workflow action as the API and the forms send it.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionForm {
    /// The signal.
    pub signal_key: String,
    /// The sequence of the status the request was made on.
    pub expected_sequence: i32,
    /// `transition`, `assign`, `prioritise`, `schedule` or `comment`.
    pub action: String,
    /// For a transition: the state to move to.
    #[serde(default)]
    pub to_state: String,
    /// For an assignment: the user (empty: nobody).
    #[serde(default)]
    pub assignee: String,
    /// For a priority: `high`, `medium` or `low`.
    #[serde(default)]
    pub priority: String,
    /// For a due date: `YYYY-MM-DD`.
    #[serde(default)]
    pub due_date: String,
    /// Why. Required.
    #[serde(default)]
    pub rationale: String,
}

/// How a decision's evidence names a counted case (`clinic/report/vN`) or patient
/// (`clinic/patient/KEY`).
pub fn evidence_id(c: &pv_store::signals::SignalContribution) -> String {
    if c.kind == "patient" {
        format!("{}/patient/{}", c.clinic_id, c.patient_key)
    } else {
        format!("{}/{}/v{}", c.clinic_id, c.report_id, c.version)
    }
}

/// Checks and records `form` for `s`; the action recorded.
pub async fn record_action(
    state: &AppState,
    s: &Signed,
    form: &ActionForm,
) -> Result<pv_store::workflow::WorkflowAction, AppError> {
    if !s.viewer.acts() {
        return Err(AppError::forbidden("only safety officers act on signals"));
    }
    let change = match form.action.as_str() {
        "transition" => Change::Transition(WfState::parse(&form.to_state).ok_or_else(|| {
            AppError::unprocessable("to_state", &format!("`{}` is not a workflow state", form.to_state))
        })?),
        "assign" => {
            let users = state.users()?;
            let ok = form.assignee.is_empty()
                || users.get(&form.assignee).is_some_and(|u| u.role == Role::SafetyOfficer);
            if !ok {
                return Err(AppError::unprocessable(
                    "assignee",
                    &format!("`{}` is not a safety officer", form.assignee),
                ));
            }
            Change::Assign(form.assignee.clone())
        }
        "prioritise" => Change::Prioritise(
            Priority::parse(&form.priority)
                .ok_or_else(|| AppError::unprocessable("priority", "one of high, medium, low"))?,
        ),
        "schedule" => Change::Schedule(form.due_date.clone()),
        "comment" => Change::Comment,
        other => {
            return Err(AppError::unprocessable(
                "action",
                &format!("`{other}` is not one of transition, assign, prioritise, schedule, comment"),
            ));
        }
    };
    let runs = reads::latest_runs(&state.db).await?;
    let r = views::latest_result(&runs, &form.signal_key, "signal_key")?;
    let req = Request {
        signal_key: form.signal_key.clone(),
        expected_sequence: form.expected_sequence,
        change,
        rationale: form.rationale.clone(),
    };
    // The evidence kept with the decision: every case the result counts (not only the actor's
    // page of them; safety officers see every clinic).
    let evidence_cases =
        reads::contributing(&state.db, &s.viewer, r).await?.iter().map(evidence_id).collect();
    let ctx = Context {
        event_id: uuid::Uuid::new_v4().to_string(),
        actor: s.viewer.user.clone(),
        actor_role: s.viewer.role.name().into(),
        at_ms: now_ms(),
        evidence: (r.run_at_ms, i64::try_from(r.n).unwrap_or(i64::MAX), r.estimate, r.lower, r.upper),
        evidence_cases,
    };
    Ok(state.workflow.act(&req, &ctx).await?)
}

async fn act(
    State(state): State<Arc<AppState>>,
    s: Signed,
    Json(form): Json<ActionForm>,
) -> Result<Response, AppError> {
    let action = record_action(&state, &s, &form).await?;
    Ok((axum::http::StatusCode::CREATED, Json(action)).into_response())
}

async fn cases(
    State(state): State<Arc<AppState>>,
    s: Signed,
    Query(q): Query<CasesQuery>,
    Query(f): Query<Format>,
) -> Result<Response, AppError> {
    let page = views::cases(&state, &s.viewer, &q).await?;
    if f.format == "csv" {
        return Ok(csv_response("cases", export::cases(&page.rows)));
    }
    Ok(Json(page).into_response())
}

async fn case(
    State(state): State<Arc<AppState>>,
    s: Signed,
    Path((clinic, report)): Path<(String, String)>,
) -> Result<Response, AppError> {
    Ok(Json(views::case(&state, &s.viewer, &clinic, &report).await?).into_response())
}

async fn audit(
    State(state): State<Arc<AppState>>,
    s: Signed,
    Query(q): Query<AuditQuery>,
    Query(f): Query<Format>,
) -> Result<Response, AppError> {
    let mut page = views::audit(&state, &s.viewer, &q).await?;
    // `evidence=1`: with every case each decision rested on (up to megabytes per decision);
    // the listing itself is read without them.
    let with_evidence = f.evidence == "1";
    if with_evidence {
        let ids = page.rows.iter().map(|a| a.event_id.clone()).collect();
        let mut evidence = reads::workflow_evidence(&state.db, ids).await?;
        for a in &mut page.rows {
            a.evidence_cases = evidence.remove(&a.event_id).unwrap_or_default();
        }
    }
    if f.format == "csv" {
        return Ok(csv_response("audit", export::audit(&page.rows)));
    }
    Ok(Json(page).into_response())
}
