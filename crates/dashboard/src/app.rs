//! The application: shared state, the router, sign-in and sessions, and the layers every
//! request passes (security headers, CSRF on every state-changing request, the session check).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use pv_runtime::Shutdown;
use pv_store::Db;
use pv_store::workflow::{USER_VISITS, UserVisit};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::DashboardConfig;
use crate::error::AppError;
use crate::health::{HealthCache, Pipeline};
use crate::scope::Viewer;
use crate::sessions::{Sessions, SignInLimit};
use crate::users::Users;
use crate::workflow::WorkflowLog;
use crate::{api, pages};

/// The session cookie.
pub const SESSION_COOKIE: &str = "pv_session";
/// The cookie of the sign-in form's CSRF token (before there is a session).
pub const SIGNIN_COOKIE: &str = "pv_signin";
/// The header an API client sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What every request can reach.
#[derive(Debug)]
pub struct AppState {
    /// Settings.
    pub cfg: DashboardConfig,
    /// The store.
    pub db: Db,
    /// Live sessions.
    pub sessions: Sessions,
    /// The sign-in rate limit.
    pub limit: SignInLimit,
    /// The workflow log.
    pub workflow: WorkflowLog,
    /// Pipeline health.
    pub health: HealthCache,
    /// The users file, with the modification time and length it was read at.
    users: std::sync::Mutex<Option<(UsersStamp, Arc<Users>)>>,
}

/// When and how long a users file was when read (`None`: it did not exist).
type UsersStamp = Option<(Option<std::time::SystemTime>, u64)>;

impl AppState {
    /// The state for `cfg`, reading `db`, writing the workflow log on `pipeline.kafka`.
    pub fn new(cfg: DashboardConfig, db: Db, pipeline: Pipeline) -> anyhow::Result<Self> {
        let delivery = Duration::from_millis(cfg.delivery_timeout_ms);
        let workflow = WorkflowLog::new(&pipeline.kafka, &cfg.workflow_topic, db.clone(), delivery)?;
        Ok(Self {
            sessions: Sessions::new(
                Duration::from_secs(cfg.session_idle_secs),
                Duration::from_secs(cfg.session_absolute_secs),
            ),
            limit: SignInLimit::new(cfg.signin_max_failures, Duration::from_secs(cfg.signin_window_secs)),
            health: HealthCache::new(pipeline, db.clone(), Duration::from_secs(10)),
            workflow,
            db,
            cfg,
            users: std::sync::Mutex::new(None),
        })
    }

    /// The users file as it is now: read again whenever it changed on disk, so users added,
    /// removed or given another role take effect at their next request.
    pub fn users(&self) -> Result<Arc<Users>, AppError> {
        let stamp = std::fs::metadata(&self.cfg.users_file).ok().map(|m| (m.modified().ok(), m.len()));
        let mut cached = crate::locked(&self.users);
        if let Some((at, users)) = cached.as_ref() {
            if *at == stamp {
                return Ok(users.clone());
            }
        }
        let users =
            Arc::new(Users::load(&self.cfg.users_file).map_err(|e| AppError::internal(&e.to_string()))?);
        *cached = Some((stamp, users.clone()));
        Ok(users)
    }
}

/// A request made in a live session.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Who.
    pub viewer: Viewer,
    /// The session's CSRF token (pages embed it in their forms).
    pub csrf: String,
}

fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers).get(SESSION_COOKIE).map(|c| c.value().to_string())
}

impl FromRequestParts<Arc<AppState>> for Signed {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, AppError> {
        let token = session_token(&parts.headers).ok_or_else(AppError::unauthenticated)?;
        let s = state.sessions.touch(&token, now_ms()).ok_or_else(AppError::unauthenticated)?;
        // A user removed or given another role or clinic since signing in signs in again.
        let users = state.users()?;
        if users.get(&s.user).is_none_or(|u| u.role != s.role || u.clinic != s.clinic) {
            state.sessions.end(&token);
            return Err(AppError::unauthenticated());
        }
        Ok(Signed {
            viewer: Viewer {
                user: s.user,
                role: s.role,
                clinic: s.clinic,
                previous_visit_ms: s.previous_visit_ms,
            },
            csrf: s.csrf,
        })
    }
}

/// A sign-in attempt.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Checks `c` from `addr` against the rate limit and the users file; on success ends the
/// session the browser held before (`jar`: its cookies; a new sign-in never inherits an old
/// session), starts a new one and records the visit. Returns the session cookie.
pub async fn sign_in(
    state: &AppState,
    c: &Credentials,
    addr: SocketAddr,
    jar: &CookieJar,
) -> Result<Cookie<'static>, AppError> {
    let (user_key, addr_key) = (format!("user:{}", c.user), format!("addr:{}", addr.ip()));
    let keys = [user_key.as_str(), addr_key.as_str()];
    let now = now_ms();
    if let Err(wait) = state.limit.begin(&keys, now) {
        return Err(AppError::too_many(&format!(
            "too many failed sign-ins: try again in {} s",
            wait.as_secs()
        )));
    }
    let users = state.users()?;
    let Some(user) = users.verify(&c.user, &c.password).cloned() else {
        tracing::warn!(user = %c.user, addr = %addr.ip(), "failed sign-in");
        return Err(AppError {
            reason: "unknown user or wrong password".into(),
            ..AppError::unauthenticated()
        });
    };
    state.limit.succeeded(&keys, now);
    if let Some(old) = jar.get(SESSION_COOKIE) {
        state.sessions.end(old.value());
    }
    #[derive(Debug, clickhouse::Row, Deserialize)]
    struct Last {
        at: i64,
    }
    let last: Last = state
        .db
        .sql("SELECT toInt64(ifNull(max(visited_at_ms), 0)) AS at FROM {user_visits} WHERE user = {user}")
        .bind("user", user.name.clone())
        .fetch_one()
        .await?;
    let visit = UserVisit { user: user.name.clone(), visited_at_ms: now };
    state.db.insert(&USER_VISITS, &[visit]).await.map_err(pv_store::StoreError::from)?;
    let token = state.sessions.start(&user.name, user.role, user.clinic.clone(), last.at, now);
    tracing::info!(user = %user.name, role = user.role.name(), "signed in");
    Ok(session_cookie(&state.cfg, token))
}

/// The session cookie: HttpOnly, SameSite=Strict, Secure when configured; a browser-session
/// cookie (the server ends the session itself, idle or absolute).
pub fn session_cookie(cfg: &DashboardConfig, value: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(cfg.secure_cookies)
        .path("/")
        .build()
}

/// Ends the session of the request, if any; returns the jar that clears its cookie.
pub fn sign_out(state: &AppState, headers: &axum::http::HeaderMap) -> CookieJar {
    if let Some(token) = session_token(headers) {
        state.sessions.end(&token);
    }
    CookieJar::from_headers(headers).remove(Cookie::build(SESSION_COOKIE).path("/"))
}

/// Every state-changing request (other than signing in) must carry the session's CSRF token:
/// in the `X-CSRF-Token` header, or as the `csrf` field of a form.
async fn require_csrf(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let path = req.uri().path();
    if path == "/signin" || path == "/api/v1/session" {
        return next.run(req).await;
    }
    let live = session_token(req.headers()).is_some_and(|t| state.sessions.touch(&t, now_ms()).is_some());
    if !live && (path == "/signout" || path == "/api/v1/session/end") {
        // Nothing to protect: signing out of an expired session only clears its cookie.
        return next.run(req).await;
    }
    let Some(session) = session_token(req.headers()).and_then(|t| state.sessions.touch(&t, now_ms())) else {
        return AppError::unauthenticated().into_response();
    };
    let (parts, body) = req.into_parts();
    let header = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return AppError::bad_request("body", "larger than 1 MiB").into_response();
    };
    let field = form_field(&parts.headers, &bytes, "csrf");
    let sent = header.or(field).unwrap_or_default();
    if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
        tracing::warn!(user = %session.user, path = %parts.uri.path(), "request without a valid CSRF token refused");
        return AppError::forbidden("missing or wrong CSRF token: reload the page and try again")
            .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn form_field(headers: &axum::http::HeaderMap, body: &[u8], name: &str) -> Option<String> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return None;
    }
    serde_urlencoded_pairs(body).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn serde_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// Equal in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Headers on every answer: no caching of data, no framing, a strict content policy (the
/// pages have no scripts at all).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(h, "cache-control", "no-store");
    res
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self }))).into_response()
    }
}

async fn favicon() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/svg+xml")], pages::FAVICON)
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(api::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/static/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css")], pages::CSS) }))
        .route("/static/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .fallback(|| async { AppError::not_found("path", "no such page") })
        .layer(middleware::from_fn_with_state(state.clone(), require_csrf))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves the workbench on `listener` until `shutdown`.
pub async fn serve(state: Arc<AppState>, listener: TcpListener, shutdown: Shutdown) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "workbench listening");
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await
}

/// The client address of a request (for the sign-in limit).
pub type ClientAddr = ConnectInfo<SocketAddr>;

/// 303 to `to`.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}
