//! `pv dlq redrive` against the real broker: the chosen range of dead letters goes back to its
//! source topic with its key and bytes, marked with where it came from; running it again sends
//! nothing twice; a wider range sends only what is new; and the re-sent events are enriched and
//! stored.

mod common;

use std::time::Duration;

use common::{TestEnv, pv_binary, read_topic};
use pv_events::{ClinicEvent, EventCodec, Timestamp, sample};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

async fn redrive(env: &TestEnv, config: &std::path::Path, from: i64, to: i64) -> String {
    let log = format!("pvt.{}.redriven", env.id);
    let out = tokio::process::Command::new(pv_binary())
        .args(["--config", config.to_str().expect("utf-8"), "dlq", "redrive", "--topic", &env.raw_dlq_topic])
        .args(["--from", &from.to_string(), "--to", &to.to_string(), "--log-topic", &log])
        .output()
        .await
        .expect("pv runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "pv dlq redrive: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

async fn raw(env: &TestEnv) -> Vec<common::Read> {
    let (k, t) = (env.kafka.clone(), env.raw_topic.clone());
    tokio::task::spawn_blocking(move || read_topic(&k, &t)).await.expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_back_once() {
    let env = TestEnv::new("dlq_redrive").await;
    let config = env.write_config(&env.sink_config());
    // Three dead letters of the raw topic, as the enricher writes them (valid events, say refused
    // under an older configuration).
    let producer: FutureProducer = env.producer(10);
    let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    for i in 0..3 {
        let mut e = ClinicEvent::from(sample::dose(
            "clinic-north",
            &format!("p-{i}"),
            1,
            Timestamp::from_millis(now.millis() - 3_600_000),
        ));
        e.set_received_at(now);
        let payload = EventCodec::global().encode(&e).expect("encode");
        let key = e.partition_key();
        let limits = pv_events::Limits::default().to_header();
        let mut headers = OwnedHeaders::new()
            .insert(Header { key: "pv-error", value: Some("refused") })
            .insert(Header { key: "pv-source-topic", value: Some(env.raw_topic.as_str()) });
        if i == 0 {
            // Accepted by the gateway: the limits it passed travel with the letter.
            headers = headers.insert(Header { key: pv_events::Limits::HEADER, value: Some(limits.as_str()) });
        }
        producer
            .send(
                FutureRecord::to(&env.raw_dlq_topic).key(&key).payload(&payload).headers(headers),
                Duration::from_secs(10),
            )
            .await
            .expect("dead letter written");
    }

    assert!(redrive(&env, &config, 0, 1).await.contains("2 re-sent"));
    assert!(redrive(&env, &config, 0, 1).await.contains("0 re-sent, 2 already redriven"), "idempotent");
    assert!(redrive(&env, &config, 0, 2).await.contains("1 re-sent, 2 already redriven"), "only what is new");
    let back = raw(&env).await;
    assert_eq!(back.len(), 3, "each dead letter once on its source topic");
    let mut from: Vec<String> = back
        .iter()
        .filter_map(|m| m.headers.iter().find(|(k, _)| k == "pv-redriven-from").map(|(_, v)| v.clone()))
        .collect();
    from.sort();
    let want: Vec<String> = (0..3).map(|o| format!("{}/0/{o}", env.raw_dlq_topic)).collect();
    assert_eq!(from, want, "each marked with where it came from");
    let kept: Vec<&common::Read> =
        back.iter().filter(|m| m.headers.iter().any(|(k, _)| k == pv_events::Limits::HEADER)).collect();
    assert_eq!(kept.len(), 1, "the limits a letter was accepted under go back with it");

    let enricher = env.start_enricher(env.enrich_config());
    let sink = env.start_sink(env.sink_config());
    env.wait_for_count("doses", true, 3, Duration::from_secs(60)).await;
    enricher.stop().await;
    sink.stop().await;
    let log = format!("pvt.{}.redriven", env.id);
    let _ = pv_runtime::kafka::delete_topics(&env.kafka, &[log.as_str()]).await;
    env.cleanup().await;
}
