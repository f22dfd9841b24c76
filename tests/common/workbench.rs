//! The workbench on a filled database, for the API and browser tests.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::NaiveDate;
use pv_dashboard::{AppState, DashboardConfig, Pipeline, Role, Users};
use pv_runtime::Shutdown;
use pv_signals::{SignalsConfig, SignalsService};
use pv_simulate::{Harms, SimConfig, generate};

use super::TestEnv;

const DAYS: u32 = 270;

pub fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")
}

/// Users of every role; their passwords are their names repeated.
pub fn users_file(env: &TestEnv) -> std::path::PathBuf {
    let path = env.dir.join("users.toml");
    let mut users = Users::default();
    for (name, role, clinic) in [
        ("officer", Role::SafetyOfficer, None),
        ("officer2", Role::SafetyOfficer, None),
        ("regulator", Role::Regulator, None),
        ("north", Role::Clinic, Some("clinic-01")),
    ] {
        users.add(name, role, clinic, &format!("{name}-{name}-{name}")).expect("user");
    }
    users.save(&path).expect("save users");
    path
}

/// Stream, enrich, sink, one signals run.
pub async fn fill(env: &TestEnv) {
    let mut sim = generate(&SimConfig {
        seed: 11,
        clinics: 10,
        patients_per_clinic: 150,
        start: start(),
        days: DAYS,
        harms: Harms::default(),
        ..SimConfig::default()
    });
    super::through_pipeline(env, &mut sim.events).await;
    let cfg = SignalsConfig { topic: env.signals_topic.clone(), ..SignalsConfig::default() };
    let service = SignalsService::new(cfg, &env.clickhouse, &env.kafka).expect("signals");
    // As received now: everything just sent counts.
    service.run_once(None).await.expect("signals run");
}

pub struct Workbench {
    pub base: String,
    pub state: Arc<AppState>,
    pub shutdown: Shutdown,
}

pub async fn serve(env: &TestEnv, cfg: DashboardConfig) -> Workbench {
    let pipeline = Pipeline {
        kafka: env.kafka.clone(),
        stages: vec![],
        dead_letter_topics: vec![env.raw_dlq_topic.clone()],
        sink_metrics_url: "http://127.0.0.1:1/metrics".into(),
    };
    let state = Arc::new(AppState::new(cfg, env.db(), pipeline).expect("state"));
    state.workflow.ensure_topic().await.expect("workflow topic");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    tokio::spawn(pv_dashboard::serve(state.clone(), listener, shutdown.clone()));
    Workbench { base: format!("http://{addr}"), state, shutdown }
}
