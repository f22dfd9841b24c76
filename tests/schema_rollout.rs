//! Safe schema roll-outs: a message written with a schema this build does not know (a producer
//! upgraded before the enricher) halts its partition instead of being dead-lettered. Nothing
//! after it on that partition is processed or committed, the metric says so, the other
//! partitions go on, and a restarted enricher (the build that knows the schema, in production)
//! starts exactly at that message.

mod common;

use std::time::Duration;

use common::{TestEnv, produce_raw, read_topic};
use pv_events::{ClinicEvent, EventCodec, Timestamp, sample};
use pv_runtime::kafka::{DurableProducer, Outgoing};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// The offset `group` has committed on `topic`/`partition`.
fn committed(env: &TestEnv, group: &str, topic: &str, partition: i32) -> Option<Offset> {
    let consumer: BaseConsumer =
        pv_runtime::kafka::consumer_config(&env.kafka, group).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("committed");
    committed.find_partition(topic, partition).map(|e| e.offset())
}

fn dose(patient: &str, session: i32) -> ClinicEvent {
    let at = Timestamp::from_millis(
        chrono::Utc::now().timestamp_millis() - 86_400_000 + i64::from(session) * 60_000,
    );
    let mut e = ClinicEvent::from(sample::dose("clinic-north", patient, session, at));
    e.set_received_at(Timestamp::from_millis(chrono::Utc::now().timestamp_millis()));
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_schema_halts_its_partition_and_nothing_else() {
    let env = TestEnv::new("schema_rollout").await;
    // p-0: a dose, a message from a newer producer, another dose; twelve other patients' doses.
    produce_raw(&env.kafka, &env.raw_topic, &[dose("p-0", 1)]).await;
    let mut newer = EventCodec::global().encode(&dose("p-0", 2)).expect("encode");
    newer[2..10].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]);
    let producer =
        DurableProducer::new(&env.kafka, &env.raw_topic, Duration::from_secs(10)).expect("producer");
    producer
        .send_all(&[Outgoing {
            key: b"clinic-north/p-0".to_vec(),
            payload: newer,
            timestamp_ms: None,
            headers: Vec::new(),
        }])
        .await
        .expect("sent");
    let others: Vec<ClinicEvent> = (1..=12).map(|i| dose(&format!("p-{i}"), 1)).collect();
    produce_raw(&env.kafka, &env.raw_topic, &[dose("p-0", 3)]).await;
    produce_raw(&env.kafka, &env.raw_topic, &others).await;

    let (k, t) = (env.kafka.clone(), env.raw_topic.clone());
    let raw = tokio::task::spawn_blocking(move || read_topic(&k, &t)).await.expect("read");
    let halt = raw
        .iter()
        .find(|m| m.payload[2..10] == [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1])
        .expect("the newer message");
    let (halted_partition, halted_offset) = (halt.partition, halt.offset);
    let expected =
        raw.iter().filter(|m| m.partition != halted_partition || m.offset < halted_offset).count() as u64;
    assert!(expected < raw.len() as u64 - 1, "a dose waits behind the newer message");

    for round in 0..2 {
        let enricher = env.start_enricher(env.enrich_config());
        let sink = env.start_sink(env.sink_config());
        env.wait_for_count("doses", true, expected, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            env.count("doses", true).await,
            expected,
            "round {round}: nothing after the halt is processed"
        );
        assert_eq!(enricher.metrics.halted_partitions.get(), 1, "round {round}: the halt is in the metrics");
        assert_eq!(
            enricher.metrics.dead_letters.get(),
            0,
            "round {round}: the newer message is not a dead letter"
        );
        enricher.stop().await;
        sink.stop().await;
        // A build that knows the schema starts at the newer message: it is the committed position.
        let at = committed(&env, &env.enrich_config().group_id, &env.raw_topic, halted_partition);
        assert_eq!(
            at,
            Some(Offset::Offset(halted_offset)),
            "round {round}: committed up to the newer message"
        );
    }
    assert_eq!(env.topic_messages(&env.raw_dlq_topic), 0, "no dead letters");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_enriched_schema_halts_the_sinks_partition() {
    let env = TestEnv::new("schema_rollout_sink").await;
    let codec = EventCodec::global();
    let enriched = || {
        let mut d = sample::enriched_dose();
        d.event_id = pv_events::EventId::new_random();
        codec.encode_enriched(&pv_events::EnrichedEvent::Dose(d)).expect("encode")
    };
    let mut newer = enriched();
    newer[2..10].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 2]);
    let producer =
        DurableProducer::new(&env.kafka, &env.enriched_topic, Duration::from_secs(10)).expect("producer");
    let message = |payload| Outgoing { key: b"k".to_vec(), payload, timestamp_ms: None, headers: Vec::new() };
    producer.send_all(&[message(enriched()), message(newer), message(enriched())]).await.expect("sent");

    let admin = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let sink = env.start_sink(pv_sink::SinkConfig { metrics_listen: Some(admin), ..env.sink_config() });
    env.wait_for_count("doses", true, 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.count("doses", true).await, 1, "nothing after the halt is stored");
    assert_eq!(sink.metrics.halted_partitions.get(), 1, "the halt is in the metrics");
    let ready = reqwest::get(format!("http://{admin}/readyz")).await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 503, "not ready while halted");
    assert!(ready.text().await.expect("body").contains("halted"), "readiness says why");
    let metrics =
        reqwest::get(format!("http://{admin}/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("pv_sink_halted_partitions 1"), "the halt is scraped");
    assert_eq!(sink.metrics.dead_letters.get(), 0, "not a dead letter");
    sink.stop().await;
    let (k, t) = (env.kafka.clone(), env.enriched_topic.clone());
    let read = tokio::task::spawn_blocking(move || read_topic(&k, &t)).await.expect("read");
    let halt = read.iter().find(|m| m.payload[2..10] == [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 2]).expect("newer");
    let at = committed(&env, &env.sink_config().group_id, &env.enriched_topic, halt.partition);
    assert_eq!(at, Some(Offset::Offset(halt.offset)), "a sink that knows the schema starts at it");
    assert_eq!(env.topic_messages(&env.dlq_topic), 0, "no dead letters");
    env.cleanup().await;
}
