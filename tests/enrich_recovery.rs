//! The enricher on the real broker: poison and conflicting events go to the dead-letter topic
//! while the rest flows; killed mid-stream (mid-transaction, and by SIGKILL) and restarted, it
//! produces every enriched event exactly once with exact exposure values.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TestEnv, produce_raw, pv_binary, read_topic, wait_for_messages};
use pv_events::{ClinicEvent, EnrichedEvent, EventCodec, EventId, Timestamp, sample};

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_conflicts_are_dead_lettered_with_reasons_and_the_rest_flows() {
    use rdkafka::producer::FutureRecord;
    let env = TestEnv::new("enrich_dlq").await;
    let mut first = sample::dose("clinic-north", "pt-1", 1, at("2026-04-01T09:00:00Z"));
    first.received_at = at("2026-04-01T09:05:00Z");
    let mut clash = first.clone();
    clash.event_id = EventId::new_random();
    clash.dose_mg = 50.0;
    let mut form = sample::monitoring("clinic-north", "pt-1", 1, at("2026-04-01T09:05:00Z"));
    form.received_at = at("2026-04-01T12:00:00Z");
    produce_raw(&env.kafka, &env.raw_topic, &[first.clone().into()]).await;
    let producer = env.producer(10);
    producer
        .send(
            FutureRecord::to(&env.raw_topic).key("clinic-north/pt-1").payload(&b"garbage"[..]),
            Duration::from_secs(5),
        )
        .await
        .expect("poison produced");
    produce_raw(&env.kafka, &env.raw_topic, &[clash.into(), form.clone().into()]).await;

    let enricher = env.start_enricher(env.enrich_config());
    let dead = wait_for_messages(&env.kafka, &env.raw_dlq_topic, 2, Duration::from_secs(60)).await;
    let out = wait_for_messages(&env.kafka, &env.enriched_topic, 2, Duration::from_secs(60)).await;
    enricher.stop().await;

    let ids: Vec<EventId> = out
        .iter()
        .map(|m| EventCodec::global().decode_enriched(&m.payload).expect("decodes").event_id())
        .collect();
    assert_eq!(ids, [first.event_id, form.event_id], "the good events flowed, in order");
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| m.headers.iter().find(|h| h.0 == "pv-error").map(|h| h.1.clone()).unwrap_or_default())
        .collect();
    assert_eq!(reasons[0], "not an Avro single-object message (missing C3 01 header)");
    assert_eq!(
        reasons[1],
        "a different dose (35 mg) is already recorded for this patient at 2026-04-01T09:00:00.000Z"
    );
    assert_eq!(dead[0].payload, b"garbage", "the original bytes");
    for m in &dead {
        let h = |k: &str| m.headers.iter().find(|h| h.0 == k).map(|h| h.1.clone()).unwrap_or_default();
        assert_eq!((h("pv-stage"), h("pv-source-topic")), ("enrich".to_string(), env.raw_topic.clone()));
    }
    let offsets: Vec<String> = dead
        .iter()
        .map(|m| {
            m.headers.iter().find(|h| h.0 == "pv-source-offset").map(|h| h.1.clone()).unwrap_or_default()
        })
        .collect();
    assert_eq!(offsets, ["1", "2"]);
    env.cleanup().await;
}

/// The simulated stream, stamped as accepted an hour after each event's time.
fn stream() -> Vec<ClinicEvent> {
    stream_of(3, 20)
}

fn stream_of(clinics: u32, patients_per_clinic: u32) -> Vec<ClinicEvent> {
    common::simulated_stream(clinics, patients_per_clinic, 150)
}

fn spawn_enricher(config: &std::path::Path, fault: Option<&str>) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(pv_binary());
    cmd.args(["--config", config.to_str().expect("utf-8"), "enrich"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(n) = fault {
        cmd.env(pv_enrich::fault::FAULT_ABORT_MID_TRANSACTION, n);
    }
    cmd.spawn().expect("spawn pv enrich")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_and_restarted_the_enricher_is_exact_and_exactly_once() {
    let env = TestEnv::new("enrich_kill").await;
    let events = stream();
    let n = events.len();
    assert!(n > 1000, "a stream long enough for many transactions: {n}");
    produce_raw(&env.kafka, &env.raw_topic, &events).await;
    // The test enricher commits a transaction every 100 messages (TestEnv::enrich_config).
    let config = env.write_config(&env.sink_config());

    // 1 and 2: crash in the middle of the 3rd transaction of a run (outputs produced, nothing
    // committed), twice; each run commits two transactions first, so the stream advances.
    use std::os::unix::process::ExitStatusExt as _;
    let mut progress = vec![0];
    for _ in 0..2 {
        let status =
            tokio::time::timeout(Duration::from_secs(120), spawn_enricher(&config, Some("3")).wait())
                .await
                .expect("aborts in time")
                .expect("ran");
        assert_eq!(status.signal(), Some(6), "fault hook aborts the process, got {status}");
        progress.push(read_topic(&env.kafka, &env.enriched_topic).len());
    }
    assert!(progress[0] < progress[1] && progress[1] < progress[2] && progress[2] < n, "{progress:?} of {n}");

    // 3: restart and SIGKILL it at an arbitrary moment.
    let mut child = spawn_enricher(&config, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;

    // 4: restart and finish; a graceful SIGTERM stop exits 0.
    let mut child = spawn_enricher(&config, None);
    let started = Instant::now();
    let out = wait_for_messages(&env.kafka, &env.enriched_topic, n, Duration::from_secs(180)).await;
    assert!(started.elapsed() < Duration::from_secs(180), "finished in time");
    common::terminate(&mut child, Duration::from_secs(60)).await;

    // Exactly once: every raw event appears once in the committed output ...
    let codec = EventCodec::global();
    let got: Vec<EnrichedEvent> =
        out.iter().map(|m| codec.decode_enriched(&m.payload).expect("decodes")).collect();
    assert_eq!(got.len(), n, "no event lost or duplicated across three crashes");
    let mut by_id: HashMap<EventId, EnrichedEvent> = HashMap::new();
    for e in got {
        assert!(by_id.insert(e.event_id(), e).is_none(), "duplicate in the committed output");
    }
    // ... with exactly the exposure an uninterrupted run computes.
    let enricher = TestEnv::enricher();
    let mut stores: HashMap<i32, pv_enrich::PatientStore> = HashMap::new();
    let mut checked = 0;
    for m in read_topic(&env.kafka, &env.raw_topic) {
        let event = codec.decode(&m.payload).expect("raw decodes");
        let want = enricher.enrich(stores.entry(m.partition).or_default(), &event).expect("enriches").event;
        assert_eq!(by_id.get(&want.event_id()), Some(&want), "event {} differs", want.event_id());
        checked += 1;
    }
    assert_eq!(checked, n);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_takes_over_partitions_with_their_state() {
    let env = TestEnv::new("enrich_scale").await;
    let events = stream_of(6, 30);
    let n = events.len();
    // The first half of the stream in time (every patient's early sessions), then the rest.
    let (early, late) = events.split_at(n / 2);
    produce_raw(&env.kafka, &env.raw_topic, early).await;
    let first = env.start_enricher(env.enrich_config());
    wait_for_messages(&env.kafka, &env.enriched_topic, early.len(), Duration::from_secs(120)).await;
    assert_eq!(first.enriched(), early.len() as u64);

    // A second instance joins the group (its own transactional id): partitions move to it, and
    // the state of their patients must follow through the changelog.
    let second_cfg = pv_enrich::EnrichConfig {
        transactional_id: Some(format!("pvt-enrich-{}-b", env.id)),
        ..env.enrich_config()
    };
    let second = env.start_enricher(second_cfg);
    tokio::time::sleep(Duration::from_secs(6)).await; // the group rebalances
    produce_raw(&env.kafka, &env.raw_topic, late).await;
    let out = wait_for_messages(&env.kafka, &env.enriched_topic, n, Duration::from_secs(180)).await;
    let (a, b) = (first.enriched(), second.enriched());
    second.stop().await;
    first.stop().await;
    assert!(b > 0 && a > early.len() as u64, "both instances took part (first {a}, second {b}, of {n})");

    let codec = EventCodec::global();
    let mut by_id: HashMap<EventId, EnrichedEvent> = HashMap::new();
    for m in &out {
        let e = codec.decode_enriched(&m.payload).expect("decodes");
        assert!(by_id.insert(e.event_id(), e).is_none(), "duplicate in the committed output");
    }
    assert_eq!(by_id.len(), n);
    // Exact: the second instance continued each moved patient's history where the first left it.
    let enricher = TestEnv::enricher();
    let mut stores: HashMap<i32, pv_enrich::PatientStore> = HashMap::new();
    for m in read_topic(&env.kafka, &env.raw_topic) {
        let event = codec.decode(&m.payload).expect("raw decodes");
        let want = enricher.enrich(stores.entry(m.partition).or_default(), &event).expect("enriches").event;
        assert_eq!(by_id.get(&want.event_id()), Some(&want), "event {} differs", want.event_id());
    }
    env.cleanup().await;
}
