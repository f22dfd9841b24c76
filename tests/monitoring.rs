//! Monitoring: the Prometheus configuration and alerting rules are valid and their unit tests
//! pass (`promtool`, from Debian's prometheus package, installed by deploy/local/install.sh);
//! and the metrics the alerts read move when events flow: the gateway's per-clinic last
//! acceptance and its request counts, the enricher's consumer lag up with a backlog and back to
//! zero once it is consumed.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestEnv, post, produce_raw, simulated_stream, token};
use pv_events::{Timestamp, event_to_json, sample};

fn promtool(args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool runs (deploy/local/install.sh installs Debian's prometheus package)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_prometheus_configuration_and_alerts_check_and_their_tests_pass() {
    assert!(promtool(&["check", "config", "prometheus.yml"]).contains("SUCCESS"));
    assert!(promtool(&["check", "rules", "alerts.yml"]).contains("11 rules found"));
    assert!(promtool(&["test", "rules", "alerts_test.yml"]).contains("SUCCESS"));
}

/// The value of the sample `name` (with its labels, as rendered) in a /metrics text.
fn sample_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_the_alerts_read_move_when_events_flow() {
    let env = TestEnv::new("monitoring").await;
    // The gateway: its /metrics text (what Prometheus scrapes) before and after a request.
    let gateway = Arc::new(
        pv_gateway::Gateway::with_tokens(env.gateway_config(), &env.kafka, TestEnv::tokens())
            .expect("gateway"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = pv_runtime::Shutdown::new();
    let serving = tokio::spawn(pv_gateway::serve(gateway.clone(), listener, shutdown.clone()));
    let scrape = || pv_runtime::telemetry::render(&gateway.metrics().registry);
    let last = r#"pv_gateway_last_accepted_timestamp_seconds{clinic="clinic-north"}"#;
    assert_eq!(sample_value(&scrape(), last), None, "no event yet");
    let hour_ago = Timestamp::from_millis(chrono::Utc::now().timestamp_millis() - 3_600_000);
    let body = event_to_json(&sample::dose("clinic-north", "p-1", 1, hour_ago).into()).to_string();
    let (status, _, _) = post(&url, Some(token("clinic-north")), "application/json", body).await;
    assert_eq!(status, 202);
    let text = scrape();
    let at = sample_value(&text, last).expect("set on acceptance");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - at).abs() < 60.0, "the acceptance time: {at} vs {now}");
    assert_eq!(sample_value(&text, r#"pv_gateway_requests_total{status="202"}"#), Some(1.0));
    assert_eq!(sample_value(&text, "pv_gateway_events_accepted_total"), Some(1.0));
    shutdown.trigger();
    serving.await.expect("joined").expect("served");

    // The enricher's consumer lag: a backlog shows, then drains to zero.
    let mut events = simulated_stream(1, 5, 30);
    let now = Timestamp::now();
    for e in &mut events {
        e.set_received_at(now);
    }
    produce_raw(&env.kafka, &env.raw_topic, &events).await;
    let enricher = env.start_enricher(env.enrich_config());
    let (mut peak, deadline) = (0, Instant::now() + Duration::from_secs(60));
    loop {
        let lag = enricher.metrics.consumer_lag.get();
        peak = peak.max(lag);
        if peak > 0 && lag == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "consumer lag: peak {peak}, now {lag}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(peak > 0 && peak <= events.len() as i64 * 2, "the backlog seen: {peak} of {}", events.len());
    enricher.stop().await;
    env.cleanup().await;
}
