//! `pv replay` rebuilds the ClickHouse tables from the Kafka topics (the log of record) and the
//! rebuilt database answers exactly like the live one: same digests of every table and the same
//! inputs to the signals analyses. Real broker, real ClickHouse, the real `pv` binary.

mod common;

use std::time::Duration;

use common::{TestEnv, produce_raw, pv_binary, read_topic};
use pv_events::Timestamp;
use rdkafka::producer::FutureRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_tables_that_answer_like_the_live_ones() {
    let env = TestEnv::new("replay").await;
    // A stream with re-submitted events (1%) and several versions of reports.
    let cfg = pv_simulate::SimConfig { clinics: 3, patients_per_clinic: 30, days: 200, ..Default::default() };
    let mut events = pv_simulate::generate(&cfg).events;
    for e in &mut events {
        let t = pv_simulate::event_time(e);
        e.set_received_at(Timestamp::from_millis(t.millis() + 3_600_000));
    }
    produce_raw(&env.kafka, &env.raw_topic, &events).await;
    let enricher = env.start_enricher(env.enrich_config());
    let sink = env.start_sink(env.sink_config());
    let enriched =
        common::wait_for_messages(&env.kafka, &env.enriched_topic, events.len(), Duration::from_secs(120))
            .await
            .len();
    assert!(enriched > 2_000, "{enriched} enriched events");
    // Re-deliver a third of the enriched topic, as a sink crash would: copies on the topic and
    // in the tables, counted once.
    let producer = env.producer(10);
    for m in read_topic(&env.kafka, &env.enriched_topic).iter().step_by(3) {
        let key = m.key.clone().unwrap_or_default();
        producer
            .send(FutureRecord::to(&env.enriched_topic).key(&key).payload(&m.payload), Duration::from_secs(5))
            .await
            .expect("re-delivered");
    }
    let total = read_topic(&env.kafka, &env.enriched_topic).len();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while pv_runtime::kafka::group_lag(
        &env.kafka,
        &env.sink_config().group_id,
        &[env.enriched_topic.as_str()],
        Duration::from_secs(10),
    )
    .expect("lag")
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "the sink did not catch up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sink.stop().await;
    enricher.stop().await;

    // Two decisions on a signal: on the workflow topic and in the live table.
    let log = pv_dashboard::workflow::WorkflowLog::new(
        &env.kafka,
        &env.workflow_topic(),
        env.db(),
        Duration::from_secs(10),
    )
    .expect("workflow log");
    log.ensure_topic().await.expect("workflow topic");
    for (seq, to) in [(0, pv_workflow::State::Validation), (1, pv_workflow::State::NotValidated)] {
        let req = pv_workflow::Request {
            signal_key: "k".into(),
            expected_sequence: seq,
            change: pv_workflow::Change::Transition(to),
            rationale: "replay test".into(),
        };
        let ctx = pv_workflow::Context {
            event_id: uuid::Uuid::new_v4().to_string(),
            actor: "officer".into(),
            actor_role: "safety_officer".into(),
            at_ms: 1,
            evidence: (0, 0, 0.0, 0.0, 0.0),
            // The second decision cites 60,000 cases (~2.5 MB, above Kafka's 1 MB default).
            evidence_cases: (0..if seq == 0 { 3 } else { 60_000 })
                .map(|i| format!("clinic-{:02}/s42-01-{i:05}-AE-00001/v1", i % 40))
                .collect(),
        };
        log.act(&req, &ctx).await.expect("recorded");
    }
    let live = pv_store::digest::digest(&env.db()).await.expect("live digest");
    let rebuilt_db = format!("{}_r", env.clickhouse.database);
    let config = env.write_config(&env.sink_config());
    let out = tokio::process::Command::new(pv_binary())
        .args([
            "--config",
            config.to_str().expect("utf-8"),
            "replay",
            "--into",
            &rebuilt_db,
            "--drop",
            "--verify",
        ])
        .output()
        .await
        .expect("pv replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pv replay failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("replayed {total} messages from 3 partitions")), "{stdout}");
    // The five tables of the digest (doses, monitoring forms, report versions, enrolments, cases)
    // and the signals' workflow status.
    assert_eq!(stdout.matches("identical").count(), 6, "{stdout}");
    assert!(stdout.contains("replayed 2 workflow actions"), "{stdout}");
    let rebuilt_cfg_db =
        pv_runtime::ClickHouseConfig { database: rebuilt_db.clone(), ..env.clickhouse.clone() };
    let states = pv_workflow::project(
        &pv_dashboard::reads::workflow(&pv_store::Db::new(&rebuilt_cfg_db), None).await.expect("rows"),
    );
    assert_eq!(
        states["k"].state,
        pv_workflow::State::NotValidated,
        "the workflow status rebuilt from the topic"
    );
    let rebuilt_actions =
        pv_dashboard::reads::workflow_with_evidence(&pv_store::Db::new(&rebuilt_cfg_db)).await.expect("rows");
    let kept: Vec<usize> = rebuilt_actions.iter().map(|a| a.evidence_cases.len()).collect();
    assert_eq!(kept, [3, 60_000], "the evidence travels with each decision");
    let light = pv_dashboard::reads::workflow(&pv_store::Db::new(&rebuilt_cfg_db), None).await.expect("rows");
    assert!(light.iter().all(|a| a.evidence_cases.is_empty()), "listings are read without it");

    let mut rebuilt_cfg = env.clickhouse.clone();
    rebuilt_cfg.database = rebuilt_db.clone();
    let rebuilt_store = pv_store::Db::new(&rebuilt_cfg);
    let rebuilt = pv_store::digest::digest(&rebuilt_store).await.expect("rebuilt digest");
    assert_eq!(rebuilt, live);
    assert!(live.iter().all(|t| t.rows > 0), "{live:?}");
    assert!(rebuilt_store.count(&pv_store::events::DOSES, false).await.expect("n") > 0);

    // The signals service reads the same inputs from both.
    let signals = pv_signals::SignalsConfig::default();
    let as_of = Timestamp::parse_rfc3339("2026-12-31T00:00:00Z").expect("time").millis();
    let end = pv_signals::queries::latest_administration(&env.db(), as_of).await.expect("data end");
    assert_eq!(pv_signals::queries::latest_administration(&rebuilt_store, as_of).await.expect("end"), end);
    let bounds = pv_signals::queries::Bounds::new(as_of, end, signals.period_days);
    let a = pv_signals::queries::inputs(&env.db(), &signals, bounds).await.expect("live inputs");
    let b = pv_signals::queries::inputs(&rebuilt_store, &signals, bounds).await.expect("rebuilt inputs");
    assert_eq!(a, b);
    let a = pv_signals::cohort_query::cohort(&env.db(), &signals, as_of).await.expect("live cohort");
    let b = pv_signals::cohort_query::cohort(&rebuilt_store, &signals, as_of).await.expect("rebuilt cohort");
    assert!(!a.is_empty() && a.iter().any(|p| !p.cases.is_empty()));
    assert_eq!(a, b);

    // Replaying again into the rebuilt database (without --drop) adds copies that count once.
    let again = tokio::process::Command::new(pv_binary())
        .args(["--config", config.to_str().expect("utf-8"), "replay", "--into", &rebuilt_db, "--verify"])
        .output()
        .await
        .expect("pv replay");
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(pv_store::digest::digest(&rebuilt_store).await.expect("digest"), live);

    let server = pv_runtime::clickhouse::server_client(&env.clickhouse);
    server.query(&format!("DROP DATABASE IF EXISTS {rebuilt_db}")).execute().await.expect("drop");
    env.cleanup().await;
}
