//! The server-rendered pages. No scripts: filters are GET forms, sorting and paging are links,
//! actions are POST forms carrying the session's CSRF token, charts are inline SVG. Every page
//! reads the same views as the API.

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use pv_charts::{Bar, Dose, Frame, Marker, Point, Series, Stack};
use pv_store::signals::SignalResult;
use serde::Deserialize;

use crate::api::{ActionForm, record_action};
use crate::app::{
    AppState, ClientAddr, Credentials, SIGNIN_COOKIE, Signed, constant_time_eq, see_other, sign_in, sign_out,
};
use crate::error::AppError;
use crate::sessions::random_token;
use crate::views::{self, AuditQuery, CasesQuery, DetailView, SignalsQuery, name_of};

/// The stylesheet (served at `/static/app.css`).
pub const CSS: &str = include_str!("app.css");

/// The icon (served at `/static/favicon.svg` and `/favicon.ico`).
pub const FAVICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f3a5f"/><path d="M3 11 L6 6 L9 9 L13 3" stroke="#f8c9a0" stroke-width="2" fill="none"/></svg>"##;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(overview))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/signals", get(signals))
        .route("/signals/detail", get(detail))
        .route("/signals/act", post(act))
        .route("/cases", get(cases))
        .route("/cases/{clinic}/{report}", get(case))
        .route("/audit", get(audit))
}

/// A page's error: 401 sends the browser to the sign-in page; the others render the reason.
#[derive(Debug)]
struct PageError(AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.0.status == StatusCode::UNAUTHORIZED {
            return see_other("/signin");
        }
        let body = html! {
            (DOCTYPE)
            html lang="en" { head { meta charset="utf-8"; title { "Error · pv workbench" } link rel="stylesheet" href="/static/app.css"; link rel="icon" href="/static/favicon.svg" type="image/svg+xml"; }
                body { main {
                    h1 { (self.0.status.as_u16()) " " (self.0.status.canonical_reason().unwrap_or("")) }
                    p.error { @if let Some(f) = &self.0.field { code { (f) } ": " } (self.0.reason) }
                    p { a href="/" { "Back to the overview" } }
                } }
            }
        };
        (self.0.status, body).into_response()
    }
}

/// A page for a signed-in user, redirected to sign in otherwise.
struct Page(Signed);

impl axum::extract::FromRequestParts<Arc<AppState>> for Page {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, PageError> {
        Ok(Page(Signed::from_request_parts(parts, state).await?))
    }
}

type PageResult = Result<Response, PageError>;

fn when(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// A measure as shown: p- and q-values below 0.001 as `< 0.001` (not a rounded 0.000).
fn measure(m: &crate::views::Measure) -> String {
    let p = m.name == "p_value" || m.name == "q_value";
    if p && m.value < 0.001 { "< 0.001".into() } else { num(m.value) }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        return if v > 0.0 { "∞".into() } else { "-".into() };
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn layout(title: &str, s: &Signed, body: Markup) -> Response {
    let v = &s.viewer;
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · pv workbench" } link rel="stylesheet" href="/static/app.css"; link rel="icon" href="/static/favicon.svg" type="image/svg+xml"; }
            body {
                header {
                    strong { "pv workbench" }
                    nav {
                        a href="/" { "Overview" }
                        @if v.sees_signals() { a href="/signals" { "Signals" } }
                        a href="/cases" { "Cases" }
                        @if v.sees_signals() { a href="/audit" { "Audit" } }
                    }
                    span.who { (v.user) " · " (v.role.name()) @if let Some(c) = &v.clinic { " · " (c) } }
                    form.inline method="post" action="/signout" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        button id="signout" type="submit" { "Sign out" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
    .into_response()
}

async fn signin_form(State(state): State<Arc<AppState>>, jar: CookieJar) -> Response {
    signin_page(&state, jar, StatusCode::OK, None)
}

/// The sign-in form with a fresh double-submit token (cookie and hidden field), and the reason
/// the last attempt failed, if it did.
fn signin_page(state: &AppState, jar: CookieJar, status: StatusCode, error: Option<&str>) -> Response {
    let token = random_token();
    let cookie = Cookie::build((SIGNIN_COOKIE, token.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.cfg.secure_cookies)
        .path("/signin")
        .build();
    let page = html! {
        (DOCTYPE)
        html lang="en" { head { meta charset="utf-8"; title { "Sign in · pv workbench" } link rel="stylesheet" href="/static/app.css"; link rel="icon" href="/static/favicon.svg" type="image/svg+xml"; }
            body { main.signin {
                h1 { "pv workbench" }
                p { "Ketamine and esketamine safety surveillance." }
                @if let Some(e) = error { p.error #signin-error role="alert" { (e) } }
                form method="post" action="/signin" {
                    input type="hidden" name="csrf" value=(token);
                    label { "User " input #user name="user" autocomplete="username" required; }
                    label { "Password " input #password name="password" type="password" autocomplete="current-password" required; }
                    button #signin type="submit" { "Sign in" }
                }
            } }
        }
    };
    (status, jar.add(cookie), page).into_response()
}

#[derive(Debug, Deserialize)]
struct SigninForm {
    user: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn signin(
    State(state): State<Arc<AppState>>,
    addr: ClientAddr,
    jar: CookieJar,
    Form(f): Form<SigninForm>,
) -> Response {
    let expected = jar.get(SIGNIN_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return PageError(AppError::forbidden("the sign-in form expired: reload it")).into_response();
    }
    match sign_in(&state, &Credentials { user: f.user, password: f.password }, addr.0, &jar).await {
        Ok(cookie) => (jar.add(cookie), see_other("/")).into_response(),
        // A refused sign-in re-renders the form (200; the API answers 401); too many: 429.
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            signin_page(&state, jar, e.status, Some(&e.reason))
        }
        Err(e) => signin_page(&state, jar, StatusCode::OK, Some(&e.reason)),
    }
}

async fn signout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    (sign_out(&state, &headers), see_other("/signin")).into_response()
}

fn events_chart(rows: &[crate::reads::DayCount], clinic: &str) -> String {
    let mut stacks: Vec<Stack> = Vec::new();
    for kind in ["dose", "monitoring", "adverse_event", "enrolment"] {
        let mut by_day: std::collections::BTreeMap<u16, f64> = std::collections::BTreeMap::new();
        for r in rows.iter().filter(|r| r.kind == kind) {
            *by_day.entry(r.day).or_default() += r.events as f64;
        }
        stacks.push(Stack {
            name: kind.replace('_', " "),
            values: by_day.into_iter().map(|(d, n)| (f64::from(d), n)).collect(),
        });
    }
    let title = if clinic.is_empty() {
        "Events per day by kind, every clinic in view".to_string()
    } else {
        format!("Events per day by kind, {clinic}")
    };
    pv_charts::stacked_bars(&Frame::new(&title, "day of the event", "events"), &stacks)
}

async fn overview(
    State(state): State<Arc<AppState>>,
    Page(s): Page,
    Query(q): Query<views::OverviewQuery>,
) -> PageResult {
    let o = views::overview(&state, &s.viewer, &q).await?;
    let clinics: Vec<String> = o.last_events.iter().map(|l| l.clinic_id.clone()).collect();
    let since = if s.viewer.previous_visit_ms > 0 {
        format!("since your last visit ({})", when(s.viewer.previous_visit_ms))
    } else {
        "(first visit: everything)".into()
    };
    let body = html! {
        section.cards {
            div.card { div.big #cases-total { (o.cases_total) } "current cases" }
            div.card { div.big #serious-total { (o.serious_total) } "serious cases" }
            div.card { div.big { (o.serious_since_visit_total) } "serious cases received " (since) }
            @if s.viewer.sees_signals() { div.card { div.big #changes-since { (o.signal_changes.len()) } "signal changes " (since) } }
        }
        section { h2 { "Events per day" } @if s.viewer.clinic_scope().is_none() {
                form.filters method="get" action="/" { (select("clinic", "Clinic", &clinics, &o.clinic)) button type="submit" { "Show" } }
            }
            (PreEscaped(events_chart(&o.events_per_day, &o.clinic)))
            p.note { "Distinct events from " (when(o.window_from_ms)) " to " (when(o.window_to_ms)) " (the last 90 days), by the day each event happened. Per clinic: the pipeline health below." }
        }
        @if s.viewer.sees_signals() {
            section { h2 { "Signals new or changed " (since) }
                @if o.signal_changes.is_empty() { p { "None." } } @else {
                table #signal-changes { thead { tr { th { "when" } th { "change" } th { "signal" } th { "cases" } th { "before" } th { "estimate" } } }
                    tbody { @for c in o.signal_changes.iter().take(50) { tr {
                        td { (when(c.run_at_ms)) } td { span class={"chip " (c.change)} { (c.change) } }
                        td { a href={"/signals/detail?" (key_query(&c.signal_key))} { (c.signal_key) } }
                        td.num { (c.n) } td.num { (c.previous_n.map_or("-".into(), |n| n.to_string())) } td.num { (num(c.estimate)) }
                    } } } }
                }
            }
        }
        section { h2 { "Serious cases received " (since) }
            (case_table(&o.serious_since_visit))
            @if o.serious_since_visit_total > o.serious_since_visit.len() as u64 { p { a href="/cases?serious=1" { "All " (o.serious_since_visit_total) " →" } } }
        }
        section { h2 { "Pipeline health" }
            table #clinics { thead { tr { th { "clinic" } th { "last event received" } th { "rows stored (a re-delivered event counts until ClickHouse merges it away)" } } }
                tbody { @for l in &o.last_events { tr { td { (l.clinic_id) } td { (when(l.received_at_ms)) } td.num { (l.events) } } } } }
            @if let Some(h) = &o.health {
                table #lag { thead { tr { th { "stage" } th { "lag (messages not yet processed)" } } }
                    tbody { @for st in &h.stages { tr { td { (st.stage) } td.num { @if let Some(l) = st.lag { (l) } @else { "unknown: " (st.error.clone().unwrap_or_default()) } } } } } }
                p { "Sink: " strong #sink-paused { @match h.sink_paused { Some(true) => "paused, waiting for ClickHouse", Some(false) => "running", None => "metrics not reachable" } } }
                h3 { "Dead letters by reason" }
                @if h.dead_letters.is_empty() { p { "None." @if let Some(e) = &h.dead_letters_error { " (could not read: " (e) ")" } } } @else {
                    table { thead { tr { th { "topic" } th { "reason" } th { "messages" } } }
                        tbody { @for d in &h.dead_letters { tr { td { (d.topic) } td { (d.reason) } td.num { (d.count) } } } } }
                }
            }
        }
        section #denominators { h2 { "What the rates count" } ul { @for d in &o.denominators { li { (d) } } } }
    };
    Ok(layout("Overview", &s, body))
}

fn case_table(rows: &[crate::reads::CaseLine]) -> Markup {
    html! {
        @if rows.is_empty() { p { "None." } } @else {
        table.cases { thead { tr { th { "case" } th { "version" } th { "clinic" } th { "received" } th { "reporter" } th { "serious" } th { "reactions (PT)" } th { "suspect" } } }
            tbody { @for c in rows { tr {
                td { a href=(case_href(&c.clinic_id, &c.report_id)) { (c.report_id) } }
                td.num { (c.version) } td { (c.clinic_id) } td { (when(c.received_at_ms)) } td { (c.reporter) }
                td { @if c.fatal { "fatal" } @else if c.serious { "serious" } @else { "no" } }
                td { (c.pts.join(", ")) } td { (c.product) }
            } } } }
        }
    }
}

/// The case page of a clinic's report, each part percent-encoded as a path segment.
fn case_href(clinic: &str, report: &str) -> String {
    let seg = |s: &str| percent_encoding::utf8_percent_encode(s, PATH_SEGMENT).to_string();
    format!("/cases/{}/{}", seg(clinic), seg(report))
}

/// What a path segment must encode: everything but the unreserved characters.
const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// "1 case", "3 cases".
fn cases_label(n: u64) -> String {
    if n == 1 { "1 case".into() } else { format!("{n} cases") }
}

fn key_query(key: &str) -> String {
    serde_urlencoded::to_string([("key", key)]).unwrap_or_default()
}

fn query_with(q: &SignalsQuery, f: impl FnOnce(&mut SignalsQuery)) -> String {
    let mut q = q.clone();
    f(&mut q);
    serde_urlencoded::to_string(&q).unwrap_or_default()
}

fn select(name: &str, label: &str, options: &[String], current: &str) -> Markup {
    html! { label { (label) " " select name=(name) { option value="" { "any" } @for o in options { option value=(o) selected[o == current] { (o) } } } } }
}

async fn signals(
    State(state): State<Arc<AppState>>,
    Page(s): Page,
    Query(q): Query<SignalsQuery>,
) -> PageResult {
    let view = views::signals(&state, &s.viewer, &q).await?;
    let opts = |k: &str| view.options.get(k).cloned().unwrap_or_default();
    let states: Vec<String> = pv_workflow::State::ALL.iter().map(|s| s.name().to_string()).collect();
    let clinics: Vec<String> =
        state.health.get().await.last_events.into_iter().map(|l| l.clinic_id).collect();
    let sort_link = |col: &str, label: &str| {
        let dir = if q.sort == col && q.dir != "asc" { "asc" } else { "desc" };
        html! { a href={"/signals?" (query_with(&q, |x| { x.sort = col.into(); x.dir = dir.into(); x.offset = 0; }))} { (label) } }
    };
    let p = &view.page;
    let body = html! {
        p { "Latest run " (when(view.run_at_ms)) ", data as of " (when(view.as_of_ms)) "; compared with the run of " (when(view.previous_run_at_ms)) "." }
        form.filters method="get" action="/signals" {
            (select("analysis", "Analysis", &opts("analysis"), &q.analysis))
            (select("product", "Product", &opts("product"), &q.product))
            (select("route", "Route", &opts("route"), &q.route))
            (select("event", "Harm group / PT", &opts("event"), &q.event))
            (select("window", "Window", &opts("window"), &q.window))
            (select("status", "Status", &states, &q.status))
            (select("clinic", "Clinic", &clinics, &q.clinic))
            label { input type="checkbox" name="signal" value="1" checked[!q.signal.is_empty()]; " signals only" }
            button #filter type="submit" { "Filter" }
        }
        p { (p.total) " results; showing " (p.offset + usize::from(!p.rows.is_empty())) "–" (p.offset + p.rows.len()) ". "
            a #export href={"/api/v1/signals?" (query_with(&q, |_| {})) "&format=csv"} { "Export these rows (CSV)" } }
        table #signals {
            thead { tr {
                th { (sort_link("analysis", "analysis")) } th { "window" } th { (sort_link("product", "stratum")) } th { "band" }
                th { (sort_link("event", "event")) } th { (sort_link("n", "N")) } th { "denominator" } th { (sort_link("estimate", "estimate")) }
                th { (sort_link("lower", "95% CI")) } th { "other measures" } th { (sort_link("change", "vs previous run")) }
                th { (sort_link("status", "status")) } th { "assignee" } th { (sort_link("priority", "priority")) } th { (sort_link("due_date", "due")) } th { "last note" }
            } }
            tbody { @for row in &p.rows { @let r = &row.result; tr class={ @if r.signal { "signal" } } {
                td { (r.analysis.replace('_', " ")) } td { (r.time_window) }
                td { a.detail href={"/signals/detail?" (key_query(&row.key))} { (r.product) " " (r.route) " " (r.formulation) } }
                td { (r.dose_band) } td { (r.event) @if !r.subgroup.is_empty() && r.subgroup != "*" { " · " (r.subgroup) } @if r.signal { " " span.chip.alert { "signal" } } }
                td.num { (r.n) } td.num title=(row.denominator_label) { (num(r.denominator)) }
                td.num title=(row.estimate_label) { (num(r.estimate)) } td.num { (num(r.lower)) "–" (num(r.upper)) }
                td.measures { @for m in &row.measures { span { (m.name) " " (measure(m)) } " " } @if !r.flags.is_empty() { br; small { (r.flags) } } }
                td { (row.direction) @if let Some(n) = row.previous_n { " (N " (n) ", " (row.previous_estimate.map_or("-".into(), num)) ")" } }
                td { span.chip { (row.status.state.name()) } } td { (row.status.assignee) }
                td { (row.status.priority.map_or("", |p| p.name())) } td { (row.status.due_date.clone().unwrap_or_default()) }
                td.note title=(row.status.last_rationale) { (row.status.last_rationale.chars().take(80).collect::<String>()) }
            } } }
        }
        nav.paging {
            @if p.offset > 0 { a href={"/signals?" (query_with(&q, |x| x.offset = p.offset.saturating_sub(p.limit)))} { "← previous" } " " }
            @if p.offset + p.rows.len() < p.total { a #next href={"/signals?" (query_with(&q, |x| x.offset = p.offset + p.limit))} { "next →" } }
        }
    };
    Ok(layout("Signals", &s, body))
}

#[derive(Debug, Deserialize)]
struct KeyQuery {
    key: String,
}

fn detail_charts(d: &DetailView) -> Markup {
    let r = &d.row.result;
    let history: Vec<Point> = d
        .history
        .iter()
        .map(|h| Point {
            x: h.run_at_ms as f64 / 86_400_000.0,
            y: h.estimate,
            lower: Some(h.lower),
            upper: Some(h.upper),
        })
        .collect();
    let months: Vec<Point> = d
        .by_month
        .iter()
        .map(|m| Point { x: f64::from(m.day), y: m.rate, lower: Some(m.lower), upper: Some(m.upper) })
        .collect();
    let bands: Vec<Bar> = d
        .by_band
        .iter()
        .map(|b| Bar {
            label: b.dose_band.clone(),
            value: b.estimate,
            lower: Some(b.lower),
            upper: Some(b.upper),
            note: Some(cases_label(b.n)),
        })
        .collect();
    let clinics: Vec<Bar> = d
        .by_clinic
        .iter()
        .map(|c| Bar {
            label: c.label.clone(),
            value: c.rate,
            lower: Some(c.lower),
            upper: Some(c.upper),
            note: Some(format!("{} / {}", c.cases, c.administrations)),
        })
        .collect();
    let per1000 = "cases per 1,000 administrations";
    html! {
        div.charts {
            figure { (PreEscaped(pv_charts::time_series(&Frame::new(&format!("{} across runs (95% interval)", d.row.estimate_label), "run date", d.row.estimate_label), &[Series { name: String::new(), points: history }], None))) }
            @if r.analysis != "dependence_marker" {
                figure { (PreEscaped(pv_charts::time_series(&Frame::new("Cases per 1,000 administrations by month of onset (exact 95% CI)", "month", per1000), &[Series { name: String::new(), points: months }], None))) }
                figure { (PreEscaped(pv_charts::bars(&Frame::new(&format!("Incident cases of {} in {} per 100 patient-years by lagged cumulative-dose band (exact 95% CI)", r.event, r.product), "cumulative dose band (the product's own doses, lagged)", "per 100 patient-years"), &bands, None))) }
                figure { (PreEscaped(pv_charts::histogram(&Frame::new("Time to onset", "days from first dose", "cases"), &d.onset_days, 12))) }
                figure { (PreEscaped(pv_charts::bars(&Frame::new(&format!("By clinic (cases / administrations, exact 95% CI){}", if d.by_clinic.len() > 25 { ", the 25 with most cases" } else { "" }), "clinic", per1000), &clinics, None))) }
            }
        }
    }
}

fn action_forms(d: &DetailView, csrf: &str, officers: &[String]) -> Markup {
    let st = &d.row.status;
    let hidden = html! {
        input type="hidden" name="csrf" value=(csrf);
        input type="hidden" name="signal_key" value=(d.row.key);
        input type="hidden" name="expected_sequence" value=(st.sequence);
    };
    let rationale =
        html! { label { "Rationale (required) " textarea name="rationale" required rows="2" {} } };
    html! {
        div.actions {
            form #transition method="post" action="/signals/act" { (hidden) input type="hidden" name="action" value="transition";
                label { "Move to " select name="to_state" { @for n in &d.next_states { option value=(n.name()) { (n.label()) } } } }
                (rationale) button type="submit" { "Record decision" } }
            form #assign method="post" action="/signals/act" { (hidden) input type="hidden" name="action" value="assign";
                label { "Assign to " select name="assignee" { option value="" { "nobody" } @for o in officers { option value=(o) selected[*o == st.assignee] { (o) } } } }
                (rationale) button type="submit" { "Assign" } }
            form #prioritise method="post" action="/signals/act" { (hidden) input type="hidden" name="action" value="prioritise";
                label { "Priority " select name="priority" { @for p in pv_workflow::Priority::ALL { option value=(p.name()) selected[st.priority == Some(p)] { (p.name()) } } } }
                (rationale) button type="submit" { "Set priority" } }
            form #schedule method="post" action="/signals/act" { (hidden) input type="hidden" name="action" value="schedule";
                label { "Due " input type="date" name="due_date" value=(st.due_date.clone().unwrap_or_default()); }
                (rationale) button type="submit" { "Set due date" } }
            form #comment method="post" action="/signals/act" { (hidden) input type="hidden" name="action" value="comment";
                (rationale) button type="submit" { "Comment" } }
        }
    }
}

fn result_table(r: &SignalResult, d: &DetailView) -> Markup {
    html! {
        table.result { tbody {
            tr { th { "analysis" } td { (r.analysis) " (" (r.time_window) " window)" } }
            tr { th { "stratum" } td { (r.product) " · " (r.route) " · " (r.formulation) " · dose band " (r.dose_band) @if !r.subgroup.is_empty() && r.subgroup != "*" { " · " (r.subgroup) } } }
            tr { th { "event" } td { (r.event) " (" (r.event_level) ")" } }
            tr { th { "N" } td #n { (r.n) } }
            tr { th { (d.row.denominator_label) } td { (num(r.denominator)) } }
            tr { th { (d.row.estimate_label) } td { (num(r.estimate)) " (" (num(r.lower)) "–" (num(r.upper)) ")" } }
            @for m in &d.row.measures { tr { th { (m.name) } td { (measure(m)) } } }
            tr { th { "signal by the thresholds" } td { @if r.signal { strong { "yes" } } @else { "no" } } }
            tr { th { "caveats" } td { (r.flags) } }
            tr { th { "previous run" } td { (d.row.direction) @if let Some(n) = d.row.previous_n { ": N " (n) ", " (d.row.previous_estimate.map_or("-".into(), num)) } } }
            tr { th { "computed" } td { (when(r.run_at_ms)) ", data as of " (when(r.as_of_ms)) } }
        } }
    }
}

async fn render_detail(
    state: &AppState,
    s: &Signed,
    key: &str,
    notice: Option<(StatusCode, String)>,
) -> PageResult {
    let d = views::detail(state, &s.viewer, key).await?;
    let r = &d.row.result;
    let officers: Vec<String> = state
        .users()?
        .users
        .iter()
        .filter(|u| u.role == crate::users::Role::SafetyOfficer)
        .map(|u| u.name.clone())
        .collect();
    let st = &d.row.status;
    let body = html! {
        @if let Some((code, msg)) = &notice { p class={ @if code.is_success() { "ok" } @else { "error" } } role="alert" #notice { (msg) } }
        p.key { code { (d.row.key) } }
        (result_table(r, &d))
        section #workflow { h2 { "Workflow" }
            p { "State: " strong #state { (st.state.label()) } " · assignee " (if st.assignee.is_empty() { "nobody" } else { &st.assignee })
                " · priority " (st.priority.map_or("not set", |p| p.name())) " · due " (st.due_date.clone().unwrap_or_else(|| "not set".into())) }
            p.note { "A result falling under its threshold does not close a signal: only a person does." }
            @if s.viewer.acts() { (action_forms(&d, &s.csrf, &officers)) }
            h3 { "History" }
            @if d.actions.is_empty() { p { "No action yet." } } @else {
                table #history { thead { tr { th { "when" } th { "who" } th { "action" } th { "state" } th { "rationale" } th { "evidence (N, estimate)" } } }
                    tbody { @for a in &d.actions { tr {
                        td { (when(a.at_ms)) } td { (a.actor) " (" (a.actor_role) ")" } td { (a.action) }
                        td { (a.from_state) " → " (a.to_state) } td { (a.rationale) } td { (a.evidence_n) ", " (num(a.evidence_estimate)) }
                    } } } }
            }
        }
        section { h2 { "Over time, by dose, onset and clinic" } (detail_charts(&d)) }
        section { h2 { "Across runs" }
            table { thead { tr { th { "run" } th { "as of" } th { "N" } th { "estimate" } th { "95% CI" } th { "signal" } } }
                tbody { @for h in d.history.iter().rev().take(30) { tr { td { (when(h.run_at_ms)) } td { (when(h.as_of_ms)) } td.num { (h.n) } td.num { (num(h.estimate)) } td.num { (num(h.lower)) "–" (num(h.upper)) } td { (h.signal) } } } } }
        }
        section #contributing { h2 { "Contributing " @if r.analysis == "dependence_marker" { "patients" } @else { "cases" } " (" (d.contributing_total) ")" }
            p { @if d.contributing_total > d.contributing.len() { "The first " (d.contributing.len()) " by onset. " }
                a href={"/api/v1/signals/cases?" (key_query(&d.row.key)) "&format=csv"} { "Export all (CSV)" } }
            table { thead { tr { th { "case" } th { "clinic" } th { "patient" } th { "dose band" } th { "preferred terms" } th { "onset" } th { "days from first dose" } } }
                tbody { @for c in &d.contributing { tr {
                    td { @if crate::views::is_report(c) { a.case href=(case_href(&c.clinic_id, &c.report_id)) { (c.report_id) " v" (c.version) } } @else if c.markers.is_empty() { (c.report_id) } @else { (c.markers.join(", ")) } }
                    td { (c.clinic_id) } td { code { (c.patient_key.chars().take(12).collect::<String>()) } }
                    td { (c.dose_band) } td { (c.pts.join(", ")) } td { (when(c.onset_ms)) }
                    td.num { (c.days_from_first_dose.map_or("-".into(), num)) }
                } } } }
        }
    };
    let status =
        notice.as_ref().map_or(StatusCode::OK, |(c, _)| if c.is_success() { StatusCode::OK } else { *c });
    let mut res = layout(&format!("{} · {}", r.event, r.analysis.replace('_', " ")), s, body);
    *res.status_mut() = status;
    Ok(res)
}

async fn detail(State(state): State<Arc<AppState>>, Page(s): Page, Query(k): Query<KeyQuery>) -> PageResult {
    render_detail(&state, &s, &k.key, None).await
}

async fn act(State(state): State<Arc<AppState>>, Page(s): Page, Form(form): Form<ActionForm>) -> PageResult {
    match record_action(&state, &s, &form).await {
        Ok(a) => {
            render_detail(
                &state,
                &s,
                &form.signal_key,
                Some((
                    StatusCode::OK,
                    format!("Recorded: {} ({} → {}).", a.action, a.from_state, a.to_state),
                )),
            )
            .await
        }
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => Err(e.into()),
        Err(e) => {
            let msg = match &e.field {
                Some(f) => format!("Not recorded. {f}: {}", e.reason),
                None => format!("Not recorded. {}", e.reason),
            };
            render_detail(&state, &s, &form.signal_key, Some((e.status, msg))).await
        }
    }
}

async fn cases(State(state): State<Arc<AppState>>, Page(s): Page, Query(q): Query<CasesQuery>) -> PageResult {
    let p = views::cases(&state, &s.viewer, &q).await?;
    let qs =
        |offset: usize| serde_urlencoded::to_string(CasesQuery { offset, ..q.clone() }).unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/cases" {
            @if s.viewer.clinic_scope().is_none() { label { "Clinic " input name="clinic" value=(q.clinic); } }
            label { "Harm group / PT " input name="event" value=(q.event); }
            label { input type="checkbox" name="serious" value="1" checked[!q.serious.is_empty()]; " serious only" }
            button type="submit" { "Filter" }
        }
        p { (p.total) " current cases. " a href={"/api/v1/cases?" (qs(p.offset)) "&format=csv"} { "Export these rows (CSV)" } }
        (case_table(&p.rows))
        nav.paging {
            @if p.offset > 0 { a href={"/cases?" (qs(p.offset.saturating_sub(p.limit)))} { "← previous" } " " }
            @if p.offset + p.rows.len() < p.total { a href={"/cases?" (qs(p.offset + p.limit))} { "next →" } }
        }
    };
    Ok(layout("Cases", &s, body))
}

fn day_of_ms(ms: i64) -> f64 {
    ms as f64 / 86_400_000.0
}

async fn case(
    State(state): State<Arc<AppState>>,
    Page(s): Page,
    Path((clinic, report)): Path<(String, String)>,
) -> PageResult {
    let c = views::case(&state, &s.viewer, &clinic, &report).await?;
    let Some(latest) = c.versions.last() else {
        return Err(AppError::not_found("report_id", "no such case").into());
    };
    let doses: Vec<Dose> = c
        .doses
        .iter()
        .map(|d| Dose {
            day: day_of_ms(d.at_ms),
            mg: d.dose_mg,
            label: format!("{} {} mg", d.product, d.dose_mg),
        })
        .collect();
    let forms: Vec<Marker> = c
        .monitoring
        .iter()
        .map(|m| Marker { day: day_of_ms(m.at_ms), label: format!("session {}", m.session_number) })
        .collect();
    let reactions: Vec<Marker> = latest
        .report
        .reactions
        .iter()
        .filter_map(|r| {
            r.onset_date.map(|d| Marker {
                day: f64::from(d.days()),
                label: r.pt.clone().unwrap_or_else(|| r.verbatim.clone()),
            })
        })
        .collect();
    let rep = &latest.report;
    let body = html! {
        table.result { tbody {
            tr { th { "case" } td { (rep.report_id) " · version " (rep.version) " of " (c.versions.len()) " stored" } }
            tr { th { "clinic" } td { (rep.clinic_id) } }
            tr { th { "patient (pseudonym)" } td { code { (rep.patient_key) } } }
            tr { th { "received" } td { (when(rep.received_at.millis())) } }
            tr { th { "reporter" } td { (name_of(&rep.reporter_qualification)) } }
            tr { th { "serious" } td { (if latest.serious { "yes" } else { "no" }) } }
            @if rep.nullification { tr { th { "nullified" } td { (rep.nullification_reason.clone().unwrap_or_default()) } } }
        } }
        section { h2 { "Reactions" }
            table #reactions { thead { tr { th { "verbatim" } th { "preferred term" } th { "SOC" } th { "onset" } th { "outcome" } th { "seriousness" } th { "groups" } } }
                tbody { @for r in &rep.reactions { tr {
                    td { (r.verbatim) } td { (r.pt.clone().unwrap_or_else(|| "uncoded".into())) } td { (r.soc.clone().unwrap_or_default()) }
                    td { (r.onset_date.map_or("unknown".into(), |d| d.to_string())) } td { (name_of(&r.outcome)) }
                    td { (views::criteria(&r.seriousness).join(", ")) } td { (r.groups.join(", ")) }
                } } } }
        }
        section { h2 { "Drugs" }
            table { thead { tr { th { "role" } th { "drug" } th { "route" } th { "causality" } th { "dechallenge" } th { "rechallenge" } } }
                tbody { @for d in &rep.drugs { tr {
                    td { (name_of(&d.role)) } td { (d.name) } td { (d.route.map_or("-".into(), |x| name_of(&x))) }
                    td { (d.causality.map_or("-".into(), |x| name_of(&x))) } td { (d.dechallenge.map_or("-".into(), |x| name_of(&x))) }
                    td { (d.rechallenge.map_or("-".into(), |x| name_of(&x))) }
                } } } }
        }
        section #narrative { h2 { "Narrative" }
            @if c.narratives_shown { p { (rep.narrative.clone().unwrap_or_else(|| "(none)".into())) } } @else { p.note { "Narratives are not shown to your role." } }
        }
        section { h2 { "Dosing and monitoring" }
            (PreEscaped(pv_charts::timeline(&Frame::new("Doses (mg), monitoring sessions and reaction onsets", "date", "dose (mg)"), &doses, &forms, &reactions)))
        }
        section #versions { h2 { "Versions" }
            @for v in &c.versions { div.version {
                h3 { "Version " (v.report.version) " · received " (when(v.report.received_at.millis())) }
                @if v.changes.is_empty() { p.note { "First version." } } @else { ul { @for ch in &v.changes { li { (ch) } } } }
            } }
        }
    };
    Ok(layout(&format!("Case {}", rep.report_id), &s, body))
}

async fn audit(State(state): State<Arc<AppState>>, Page(s): Page, Query(q): Query<AuditQuery>) -> PageResult {
    let p = views::audit(&state, &s.viewer, &q).await?;
    let qs =
        |offset: usize| serde_urlencoded::to_string(AuditQuery { offset, ..q.clone() }).unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/audit" {
            label { "Who " input name="actor" value=(q.actor); }
            label { "Action " input name="action" value=(q.action); }
            label { "Signal " input name="signal" value=(q.signal); }
            label { "From " input type="date" name="from" value=(q.from); }
            label { "To " input type="date" name="to" value=(q.to); }
            button type="submit" { "Filter" }
        }
        p { (p.total) " actions. " a href={"/api/v1/audit?" (qs(p.offset)) "&format=csv"} { "Export these rows (CSV)" } }
        table #audit { thead { tr { th { "when" } th { "who" } th { "role" } th { "signal" } th { "action" } th { "state" } th { "assignee" } th { "priority" } th { "due" } th { "why" } th { "evidence" } } }
            tbody { @for a in &p.rows { tr {
                td { (when(a.at_ms)) } td { (a.actor) } td { (a.actor_role) }
                td { a href={"/signals/detail?" (key_query(&a.signal_key))} { (a.signal_key) } }
                td { (a.action) } td { (a.from_state) " → " (a.to_state) } td { (a.assignee) } td { (a.priority) }
                td { (a.due_date.clone().unwrap_or_default()) } td.rationale { (a.rationale) }
                td { "run " (when(a.evidence_run_at_ms)) ": N " (a.evidence_n) ", " (num(a.evidence_estimate)) " (" (num(a.evidence_lower)) "–" (num(a.evidence_upper)) "); " (a.evidence_n) " cases kept with the decision" }
            } } } }
        nav.paging {
            @if p.offset > 0 { a href={"/audit?" (qs(p.offset.saturating_sub(p.limit)))} { "← previous" } " " }
            @if p.offset + p.rows.len() < p.total { a href={"/audit?" (qs(p.offset + p.limit))} { "next →" } }
        }
    };
    Ok(layout("Audit trail", &s, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_links_encode_their_segments() {
        assert_eq!(case_href("clinic-01", "r/1?x#y z"), "/cases/clinic-01/r%2F1%3Fx%23y%20z");
        assert_eq!(case_href("c.1_a~b", "s42-01-0036-AE-00051"), "/cases/c.1_a~b/s42-01-0036-AE-00051");
    }
}
