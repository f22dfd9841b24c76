//! Clinic credentials managed while the gateway runs: `pv clinics add` gives a clinic a token the
//! running gateway accepts within its reload period, `pv clinics revoke` takes it away, no restart.

mod common;

use std::time::{Duration, Instant};

use common::TestEnv;
use pv_events::{ClinicEvent, Timestamp, event_to_json, sample};

async fn pv(config: &std::path::Path, args: &[&str]) -> String {
    let out = common::run_pv(config, args).await;
    assert!(out.status.success(), "pv {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// POSTs one dose of `clinic` with `token`; the status.
async fn post(url: &str, clinic: &str, token: &str) -> u16 {
    let at = Timestamp::from_millis(chrono::Utc::now().timestamp_millis() - 3_600_000);
    let body = event_to_json(&ClinicEvent::from(sample::dose(clinic, "p-1", 1, at))).to_string();
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/events"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    resp.status().as_u16()
}

/// Waits (up to 10 s) until `clinic` with `token` gets `want`.
async fn eventually(url: &str, clinic: &str, token: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = post(url, clinic, token).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{clinic}: {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn token_of(out: &str) -> String {
    out.rsplit(' ').next().expect("token").trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_added_and_revoked_without_a_restart() {
    let env = TestEnv::new("clinic_tokens").await;
    let clinics_file = env.dir.join("clinics.toml");
    let config = env.dir.join("pv.toml");
    let text = format!("[gateway]\nclinics_file = \"{}\"\n", clinics_file.display());
    std::fs::write(&config, text).expect("config");
    let north = token_of(&pv(&config, &["clinics", "add", "--clinic", "clinic-north"]).await);

    let cfg = pv_gateway::GatewayConfig {
        clinics_file: clinics_file.clone(),
        clinics_reload_secs: 1,
        ..env.gateway_config()
    };
    let gateway =
        std::sync::Arc::new(pv_gateway::Gateway::new(cfg, &env.kafka).expect("gateway from the file"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = pv_runtime::Shutdown::new();
    let task = tokio::spawn(pv_gateway::serve(gateway, listener, shutdown.clone()));

    assert_eq!(post(&url, "clinic-north", &north).await, 202);
    let east = token_of(&pv(&config, &["clinics", "add", "--clinic", "clinic-east"]).await);
    assert_ne!(east, north);
    eventually(&url, "clinic-east", &east, 202).await;
    pv(&config, &["clinics", "revoke", "--clinic", "clinic-north"]).await;
    eventually(&url, "clinic-north", &north, 401).await;
    assert_eq!(post(&url, "clinic-east", &east).await, 202, "the other clinic is untouched");
    let listed = pv(&config, &["clinics", "list"]).await;
    assert!(listed.contains("clinic-east") && !listed.contains("clinic-north"), "{listed}");

    shutdown.trigger();
    let _ = task.await;
    env.cleanup().await;
}
