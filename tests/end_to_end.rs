//! Events of all three kinds go through the real gateway, the real broker and the real sink
//! into real ClickHouse, and arrive field for field.

mod common;

use std::time::Duration;

use common::{TestEnv, post, token};
use pv_events::{ClinicEvent, Timestamp, event_to_json, sample};
use pv_sink::rows::{AdverseEventRow, DoseRow, MonitoringRow};

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("valid time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_arrives_in_clickhouse_field_for_field() {
    let env = TestEnv::new("e2e").await;
    let gateway = env.start_gateway(env.gateway_config(), &env.kafka).await;
    let sink = env.start_sink(env.sink_config());

    // A batch with every kind (all optional fields set), and one single event with options empty.
    let mut report =
        sample::adverse_event("clinic-north", "pt-001", "CASE-77", at("2026-03-02T10:15:30.250Z"));
    report.reactions[0].verbatim = "Blasenschmerzen – \"painful\" bladder, 膀胱".into(); // non-ASCII and quotes survive
    let batch: Vec<ClinicEvent> = vec![
        sample::dose("clinic-north", "pt-001", 8, at("2026-03-01T09:00:00.125Z")).into(),
        sample::monitoring("clinic-north", "pt-001", 8, at("2026-03-01T09:05:00Z")).into(),
        report.into(),
    ];
    let mut bare = sample::dose("clinic-north", "pt-002", 1, at("2026-03-03T08:00:00Z"));
    bare.weight_kg = None;
    bare.protocol = None;
    bare.lot_number = None;
    let bare: ClinicEvent = bare.into();

    let before = Timestamp::now();
    let ndjson: String = batch.iter().map(|e| event_to_json(e).to_string() + "\n").collect();
    let (status, _, body) =
        post(&gateway.url, Some(token("clinic-north")), "application/x-ndjson", ndjson).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 3);
    let (status, _, body) =
        post(&gateway.url, Some(token("clinic-north")), "application/json", event_to_json(&bare).to_string())
            .await;
    assert_eq!(status, 202, "{body}");
    let after = Timestamp::now();

    env.wait_for_count("dose_administered", true, 2, Duration::from_secs(60)).await;
    env.wait_for_count("session_monitoring", true, 1, Duration::from_secs(60)).await;
    env.wait_for_count("adverse_event_report", true, 1, Duration::from_secs(60)).await;

    let ch = env.clickhouse();
    let doses: Vec<DoseRow> = ch
        .query("SELECT ?fields FROM dose_administered FINAL ORDER BY session_number DESC")
        .fetch_all()
        .await
        .expect("doses");
    let monitoring: Vec<MonitoringRow> =
        ch.query("SELECT ?fields FROM session_monitoring FINAL").fetch_all().await.expect("monitoring");
    let reports: Vec<AdverseEventRow> =
        ch.query("SELECT ?fields FROM adverse_event_report FINAL").fetch_all().await.expect("reports");
    let mut stored: Vec<ClinicEvent> = vec![
        doses[0].to_event().into(),
        monitoring[0].to_event().into(),
        reports[0].to_event().expect("consistent arrays").into(),
        doses[1].to_event().into(),
    ];
    // received_at is the gateway's acceptance time: check it, then compare everything else.
    for e in &mut stored {
        let r = e.received_at();
        assert!(before <= r && r <= after, "received_at {r} outside the request window {before}..{after}");
        e.set_received_at(Timestamp::default());
    }
    let sent: Vec<ClinicEvent> = batch.into_iter().chain([bare]).collect();
    assert_eq!(stored, sent);

    // The materialised DateTime columns agree with the millisecond columns.
    let t: u32 = ch
        .query("SELECT toUInt32(administered_at) FROM dose_administered FINAL WHERE session_number = 8")
        .fetch_one()
        .await
        .expect("datetime");
    assert_eq!(i64::from(t), at("2026-03-01T09:00:00.125Z").millis() / 1000);

    // `pv summary` reads the same tables with its portable SQL (typed rows: a Nullable
    // aggregate where a plain one is expected would garble the numbers or fail).
    let config = env.write_config(&env.sink_config());
    let out = std::process::Command::new(common::pv_binary())
        .args(["--config", config.to_str().expect("utf-8"), "summary", "--wait"])
        .output()
        .expect("run pv summary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |prefix: &str| -> Vec<String> {
        let l = text.lines().find(|l| l.trim_start().starts_with(prefix)).unwrap_or_default();
        l.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(line("dose_administered")[1], "2");
    assert_eq!(line("ketamine    iv")[2..5], ["2", "2", "35.0"], "doses, patients, median mg");
    assert_eq!(line("sessions monitored")[2], "1");
    assert_eq!(line("systolic rise")[5], "0");
    assert_eq!(line("cases")[..2], ["cases", "1,"]);
    let verbatim = line("Blasenschmerzen");
    assert_eq!(verbatim[verbatim.len() - 2..], ["1", "1"], "1 case, serious (hospitalisation)");

    sink.stop().await;
    gateway.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_messages_go_to_the_dead_letter_topic_and_the_rest_flows() {
    use rdkafka::Message;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Headers;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let env = TestEnv::new("dlq").await;
    let producer: FutureProducer =
        pv_runtime::kafka::producer_config(&env.kafka, Duration::from_secs(10)).create().expect("producer");
    let codec = pv_events::EventCodec::global();
    let good = |i: i32| -> ClinicEvent {
        let mut d = sample::dose("clinic-north", "pt-9", i, at("2026-03-01T09:00:00Z"));
        d.received_at = Timestamp::now();
        d.into()
    };
    let poison: &[u8] = b"{\"not\": \"avro\"}";
    for payload in
        [codec.encode(&good(1)).expect("encode"), poison.to_vec(), codec.encode(&good(2)).expect("encode")]
    {
        producer
            .send(
                FutureRecord::to(&env.raw_topic).key("clinic-north/pt-9").payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .expect("produce");
    }
    let sink = env.start_sink(env.sink_config());
    env.wait_for_count("dose_administered", true, 2, Duration::from_secs(60)).await;

    let consumer: StreamConsumer =
        pv_runtime::kafka::consumer_config(&env.kafka, &format!("pvt-dlq-reader-{}", env.id))
            .create()
            .expect("consumer");
    consumer.subscribe(&[env.dlq_topic.as_str()]).expect("subscribe");
    let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a dead letter within 30 s")
        .expect("recv");
    assert_eq!(m.payload(), Some(poison), "the original bytes, unchanged");
    let headers = m.headers().expect("headers");
    let header = |name: &str| -> String {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("pv-error"), "not an Avro single-object message (missing C3 01 header)");
    assert_eq!(header("pv-source-topic"), env.raw_topic);
    assert_eq!(header("pv-source-offset"), "1");
    assert_eq!(env.topic_messages(&env.dlq_topic), 1);

    sink.stop().await;
    env.cleanup().await;
}
