//! A sink that crashes after ClickHouse acknowledged a batch but before its offsets were
//! committed re-reads and re-inserts the batch on restart; query results still count every
//! event exactly once. Runs the real `pv sink` binary against the real broker and ClickHouse.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestEnv, pv_binary};
use pv_events::{EnrichedEvent, EventCodec, EventId, Timestamp, sample};
use rdkafka::producer::FutureRecord;

const EVENTS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_insert_and_commit_double_counts_nothing() {
    let env = TestEnv::new("crash").await;
    let producer = env.producer(10);
    let codec = EventCodec::global();
    let mut pending = Vec::new();
    for i in 0..EVENTS {
        let mut d = sample::enriched_dose();
        d.event_id = EventId::new_random();
        d.session_number = (i + 1) as i32;
        d.received_at = Timestamp::now();
        let payload = codec.encode_enriched(&EnrichedEvent::Dose(d)).expect("encode");
        let key = format!("patient-{}", i % 17);
        let record = FutureRecord::to(&env.enriched_topic).key(&key).payload(&payload);
        pending.push(producer.send(record, Duration::from_secs(5)).await);
    }
    assert!(pending.iter().all(Result::is_ok), "all produced");

    // One batch holds every event; the sink aborts right after inserting it.
    let mut cfg = env.sink_config();
    cfg.batch_max_messages = EVENTS as usize;
    cfg.batch_max_wait_ms = 60_000;
    let config = env.write_config(&cfg);
    let status = tokio::process::Command::new(pv_binary())
        .args(["--config", config.to_str().expect("utf-8 path"), "sink"])
        .env(pv_sink::fault::FAULT_ABORT_AFTER_INSERTS, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(90), status)
        .await
        .expect("sink aborts in time")
        .expect("ran");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(6), "the fault hook aborts the process (SIGABRT), got {status}");
    assert_eq!(env.count("doses", false).await, EVENTS, "the batch was inserted before the crash");

    // Restart normally: nothing was committed, so everything is read and inserted again.
    cfg.batch_max_wait_ms = 200;
    let config = env.write_config(&cfg);
    let mut child = tokio::process::Command::new(pv_binary())
        .args(["--config", config.to_str().expect("utf-8 path"), "sink"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sink");
    env.wait_for_count("doses", false, 2 * EVENTS, Duration::from_secs(60)).await;

    // The copies are physically there, but queries count each event once.
    assert_eq!(env.count("doses", true).await, EVENTS);
    assert_eq!(env.number("SELECT uniqExact(event_id) FROM {doses}").await, EVENTS);
    let per_event_max =
        env.number("SELECT max(c) FROM (SELECT event_id, count() AS c FROM {doses} FINAL GROUP BY event_id)");
    assert_eq!(per_event_max.await, 1);

    // SIGTERM: the sink commits what it stored and exits 0, leaving nothing to re-read.
    common::terminate(&mut child, Duration::from_secs(30)).await;
    let group = cfg.group_id.clone();
    let lag = pv_runtime::kafka::group_lag(
        &env.kafka,
        &group,
        &[env.enriched_topic.as_str()],
        Duration::from_secs(10),
    )
    .expect("lag");
    assert_eq!(lag, 0, "every message committed after the graceful stop");
    env.cleanup().await;
}
