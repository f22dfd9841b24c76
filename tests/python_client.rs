//! The contract as a third-party client speaks it: a Python producer (confluent-kafka +
//! fastavro, pinned in tests/python/requirements.txt, installed by deploy/local/test.sh) writes
//! every event kind straight to the raw topic with the Avro single-object encoding exactly as the
//! specification describes it; the events arrive in ClickHouse enriched; malformed messages (not
//! single-object encoded; a body cut short) land in the dead-letter topic with their reason; the enriched and signal topics are read back with
//! fastavro alone; and a plain HTTP client (requests) posts to the gateway.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{TestEnv, read_topic, token};
use pv_events::EventCodec;
use pv_runtime::kafka::{DurableProducer, Outgoing};
use serde_json::Value;

fn python(args: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let interpreter = root.join(".state/pyenv/bin/python");
    assert!(
        interpreter.exists(),
        "{} missing: deploy/local/test.sh installs the Python client (tests/python/requirements.txt)",
        interpreter.display()
    );
    let out = Command::new(&interpreter)
        .arg(root.join("tests/python/pv_client.py"))
        .args(args)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "pv_client.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("pv_client.py {args:?} printed no JSON: {e}"))
}

async fn stored_ids(env: &TestEnv, table: &str) -> Vec<String> {
    env.db()
        .sql(&format!("SELECT toString(event_id) FROM {{{table}}} FINAL ORDER BY event_id"))
        .fetch_all::<String>()
        .await
        .expect("event ids")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_speaks_the_contract_both_ways() {
    let env = TestEnv::new("python_client").await;
    let bootstrap = env.kafka.bootstrap_servers.clone();
    let sent = python(&[
        "produce",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &env.raw_topic,
        "--clinic",
        "clinic-north",
    ]);
    python(&["malformed", "--bootstrap", &bootstrap, "--topic", &env.raw_topic, "--clinic", "clinic-north"]);

    let enricher = env.start_enricher(env.enrich_config());
    let sink = env.start_sink(env.sink_config());
    let wait = Duration::from_secs(120);
    for table in ["enrolments", "doses", "monitoring_forms", "ae_report_versions"] {
        env.wait_for_count(table, true, 1, wait).await;
    }
    for (family, table) in [
        ("patient_enrolment", "enrolments"),
        ("dose_administered", "doses"),
        ("session_monitoring", "monitoring_forms"),
        ("adverse_event_report", "ae_report_versions"),
    ] {
        assert_eq!(stored_ids(&env, table).await, [sent[family].as_str().expect("id")], "{family} stored");
    }
    // Enriched: pseudonymised, coded, with the exposure at the event.
    let pt: String = env
        .db()
        .sql("SELECT ifNull(reaction_pt[1], '') FROM {ae_report_versions} FINAL")
        .fetch_one()
        .await
        .expect("pt");
    assert!(!pt.is_empty(), "the reaction was coded");
    let key: String = env.db().sql("SELECT patient_key FROM {doses} FINAL").fetch_one().await.expect("key");
    assert_eq!(key.len(), 64, "the patient is a pseudonym, not the clinic's reference");

    // The malformed messages are dead letters with their reason, nothing else is.
    let k = env.kafka.clone();
    let dlq = env.raw_dlq_topic.clone();
    let dead = tokio::task::spawn_blocking(move || read_topic(&k, &dlq)).await.expect("read dlq");
    assert_eq!(dead.len(), 2, "two dead letters");
    let reasons: Vec<&str> = dead
        .iter()
        .filter_map(|d| d.headers.iter().find(|(k, _)| k == "pv-error").map(|(_, v)| v.as_str()))
        .collect();
    assert!(reasons.iter().any(|r| r.contains("single-object")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("does not decode")), "{reasons:?}");
    assert_eq!(reasons.len(), 2, "each dead letter says why: {reasons:?}");

    // The enriched topic, read with fastavro alone.
    let enriched =
        python(&["read", "--bootstrap", &bootstrap, "--topic", &env.enriched_topic, "--expect", "4"]);
    let mut families: Vec<&str> =
        enriched.as_array().expect("list").iter().filter_map(|m| m["family"].as_str()).collect();
    families.sort_unstable();
    assert_eq!(
        families,
        ["enriched_adverse_event", "enriched_dose", "enriched_enrolment", "enriched_monitoring"]
    );
    let dose =
        enriched.as_array().expect("list").iter().find(|m| m["family"] == "enriched_dose").expect("dose");
    assert_eq!(dose["event_id"], sent["dose_administered"]);
    assert_eq!(dose["record"]["patient_key"].as_str(), Some(key.as_str()));

    // The signal topic, read with fastavro alone (a change as the signals service emits it).
    let change = pv_store::signals::SignalEvent::of_result(
        &pv_store::signals::SignalResult {
            analysis: "sequential_test".into(),
            event: "urological".into(),
            ..Default::default()
        },
        "new",
        "change-1".into(),
        1,
        1,
        None,
    );
    let payload = EventCodec::global().encode_record(&change).expect("encode");
    let producer =
        DurableProducer::new(&env.kafka, &env.signals_topic, Duration::from_secs(10)).expect("producer");
    producer
        .send_all(&[Outgoing { key: b"k".to_vec(), payload, timestamp_ms: None, headers: Vec::new() }])
        .await
        .expect("sent");
    let signals =
        python(&["read", "--bootstrap", &bootstrap, "--topic", &env.signals_topic, "--expect", "1"]);
    assert_eq!(signals[0]["family"], "signal_event");
    assert_eq!(signals[0]["record"]["event"], "urological");

    // A plain HTTP client: accepted, and a bad event refused with the field named.
    let gateway = env.start_gateway(env.gateway_config(), &env.kafka).await;
    let posted = python(&[
        "post",
        "--url",
        &gateway.url,
        "--token",
        token("clinic-north"),
        "--clinic",
        "clinic-north",
    ]);
    assert_eq!(posted["ok"]["status"], 202, "{posted}");
    assert_eq!(posted["ok"]["body"]["event_ids"][0], posted["event_id"]);
    assert_eq!(posted["bad"]["status"], 422, "{posted}");
    assert!(posted["bad"]["body"].to_string().contains("dose_mg"), "the refusal names the field: {posted}");

    gateway.stop().await;
    enricher.stop().await;
    sink.stop().await;
    env.cleanup().await;
}
