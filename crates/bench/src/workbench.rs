//! The workbench at scale: a database filled to `target_events` (as for the signals benchmark),
//! two signals runs over it, then the workbench served in-process on a loopback port and every
//! page and API call timed over HTTP as a signed-in safety officer and a clinic user
//! (sequential requests; the median and the slowest of `requests` after one warm-up each).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pv_dashboard::{AppState, DashboardConfig, Pipeline, Role, Users};
use pv_runtime::Shutdown;
use pv_signals::{SignalsConfig, SignalsService};
use serde_json::{Value, json};

use crate::signals::{Loaded, load_at_scale};
use crate::{BenchEnv, median};

/// One route's timings.
#[derive(Debug, Clone)]
pub struct RouteTiming {
    /// Who asked (`officer`, `clinic`).
    pub role: &'static str,
    /// Method and path (ids shortened).
    pub route: String,
    /// Median, ms.
    pub median_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Response size of the last request, bytes.
    pub bytes: usize,
}

/// What the workbench benchmark measured.
#[derive(Debug, Clone)]
pub struct WorkbenchBenchReport {
    /// The database.
    pub loaded: Loaded,
    /// Per route.
    pub routes: Vec<RouteTiming>,
}

struct Session {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn sign_in(base: &str, user: &str, password: &str) -> anyhow::Result<Session> {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let res = http
            .post(format!("{base}/api/v1/session"))
            .json(&json!({"user": user, "password": password}))
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "sign-in of {user}: {}", res.status());
        let cookie = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("no session cookie")?
            .to_string();
        let body: Value = res.json().await?;
        let csrf = body["csrf"].as_str().unwrap_or_default().to_string();
        Ok(Session { http, base: base.into(), cookie, csrf })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(Duration, String)> {
        let started = Instant::now();
        let res = self.http.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await?;
        let status = res.status();
        let body = res.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "GET {path}: {status}: {}",
            body.chars().take(300).collect::<String>()
        );
        Ok((started.elapsed(), body))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(Duration, String)> {
        let started = Instant::now();
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        anyhow::ensure!(status.is_success(), "POST {path}: {status}: {text}");
        Ok((started.elapsed(), text))
    }
}

fn summary(role: &'static str, route: String, times: &[Duration], bytes: usize) -> RouteTiming {
    let ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    RouteTiming { role, route, median_ms: median(&ms), max_ms: ms.iter().copied().fold(0.0, f64::max), bytes }
}

async fn time_get(
    s: &Session,
    role: &'static str,
    label: &str,
    path: &str,
    requests: usize,
) -> anyhow::Result<RouteTiming> {
    s.get(path).await?;
    let mut times = Vec::with_capacity(requests);
    let mut bytes = 0;
    for _ in 0..requests {
        let (t, body) = s.get(path).await?;
        times.push(t);
        bytes = body.len();
    }
    Ok(summary(role, format!("GET {label}"), &times, bytes))
}

/// Loads the database, runs the signals service twice, and times every route `requests` times.
pub async fn workbench_at_scale(
    env: &BenchEnv,
    clinics: u32,
    patients: u32,
    target_events: u64,
    requests: usize,
) -> anyhow::Result<WorkbenchBenchReport> {
    let loaded = load_at_scale(env, clinics, patients, target_events).await?;
    let cfg = SignalsConfig { topic: env.topic("signals"), ..SignalsConfig::default() };
    let service = SignalsService::new(cfg, &env.clickhouse, &env.kafka)?;
    service.run_once(None).await?;
    service.run_once(None).await?;

    let users_file = env.dir.join("users.toml");
    let mut users = Users::default();
    users.add("officer", Role::SafetyOfficer, None, "officer-bench-password")?;
    users.add("clinic", Role::Clinic, Some("clinic-01"), "clinic-bench-password")?;
    users.save(&users_file)?;
    let dashboard =
        DashboardConfig { users_file, workflow_topic: env.topic("workflow"), ..DashboardConfig::default() };
    let pipeline = Pipeline {
        kafka: env.kafka.clone(),
        stages: vec![],
        dead_letter_topics: vec![],
        sink_metrics_url: "http://127.0.0.1:1/metrics".into(),
    };
    let state = Arc::new(AppState::new(dashboard, env.db(), pipeline)?);
    state.workflow.ensure_topic().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = Shutdown::new();
    tokio::spawn(pv_dashboard::serve(state, listener, shutdown.clone()));

    let officer = Session::sign_in(&base, "officer", "officer-bench-password").await?;
    let clinic = Session::sign_in(&base, "clinic", "clinic-bench-password").await?;
    let (_, signals) = officer.get("/api/v1/signals?signal=1&sort=n&limit=1").await?;
    let signals: Value = serde_json::from_str(&signals)?;
    let key = signals["page"]["rows"][0]["key"].as_str().context("no signal to open")?.to_string();
    let key_q = serde_urlencoded::to_string([("key", key.as_str())])?;
    let (_, cases) = clinic.get("/api/v1/cases?limit=1").await?;
    let cases: Value = serde_json::from_str(&cases)?;
    let report = cases["rows"][0]["report_id"].as_str().context("no case of clinic-01")?.to_string();
    let case = format!("/cases/clinic-01/{report}");

    let mut routes = Vec::new();
    // The workflow first, so that the audit trail has actions to list.
    let mut times = Vec::with_capacity(requests);
    for i in 0..requests {
        let body = json!({"signal_key": key, "expected_sequence": i, "action": "comment", "rationale": format!("bench comment {i}")});
        times.push(officer.post("/api/v1/signals/actions", &body).await?.0);
    }
    routes.push(summary("officer", "POST /api/v1/signals/actions (comment)".into(), &times, 0));
    let officer_routes = [
        ("/", "/".to_string()),
        ("/api/v1/overview", "/api/v1/overview".to_string()),
        ("/signals", "/signals".to_string()),
        ("/api/v1/signals", "/api/v1/signals".to_string()),
        ("/api/v1/signals?format=csv (50 rows)", "/api/v1/signals?format=csv".to_string()),
        ("/signals?signal=1&product=ketamine", "/signals?signal=1&product=ketamine".to_string()),
        ("/signals?clinic=clinic-01", "/signals?clinic=clinic-01".to_string()),
        ("/signals/detail?key=<top signal>", format!("/signals/detail?{key_q}")),
        ("/api/v1/signals/detail?key=<top signal>", format!("/api/v1/signals/detail?{key_q}")),
        ("/cases", "/cases".to_string()),
        ("/api/v1/cases?serious=1", "/api/v1/cases?serious=1".to_string()),
        ("/cases/<clinic>/<report>", case.clone()),
        ("/api/v1/cases/<clinic>/<report>", format!("/api/v1{case}")),
        ("/audit", "/audit".to_string()),
        ("/api/v1/audit?format=csv", "/api/v1/audit?format=csv".to_string()),
        ("/api/v1/audit?format=csv&evidence=1", "/api/v1/audit?format=csv&evidence=1".to_string()),
    ];
    for (label, path) in &officer_routes {
        routes.push(time_get(&officer, "officer", label, path, requests).await?);
    }
    for (label, path) in [("/", "/"), ("/cases", "/cases"), ("/api/v1/cases", "/api/v1/cases")] {
        routes.push(time_get(&clinic, "clinic", label, path, requests).await?);
    }
    shutdown.trigger();
    Ok(WorkbenchBenchReport { loaded, routes })
}
