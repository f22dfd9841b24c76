//! The sink writes few, large parts: rows are buffered per table and month, so a stream whose
//! months interleave (a backfill) still gives one insert, one part, per month. Offsets are
//! committed only below every row not yet acknowledged, whatever order the inserts of different
//! months complete in. Under a steady load above `busy_rate`, buffers wait longer. Real broker,
//! real ClickHouse, the sink in-process.

mod common;

use std::time::{Duration, Instant};

use common::TestEnv;
use pv_events::{EnrichedEvent, EventCodec, EventId, Timestamp, sample};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::FutureRecord;

/// Mid-January, mid-February and mid-March 2026 (UTC), in ms.
const MONTHS: [(u32, i64); 3] =
    [(202_601, 1_768_435_200_000), (202_602, 1_771_113_600_000), (202_603, 1_773_532_800_000)];

/// Mid-November and mid-December 2025: the months of the test that holds inserts (holds apply
/// to the whole test binary).
const HELD_MONTHS: [(u32, i64); 2] = [(202_511, 1_763_208_000_000), (202_512, 1_765_800_000_000)];

/// An enriched dose of its own event id, administered at `at_ms`, encoded.
fn dose_payload(at_ms: i64) -> Vec<u8> {
    let mut d = sample::enriched_dose();
    d.event_id = EventId::new_random();
    d.administered_at = Timestamp::from_millis(at_ms);
    d.received_at = Timestamp::now();
    EventCodec::global().encode_enriched(&EnrichedEvent::Dose(d)).expect("encode")
}

/// Produces `n` doses to partition 0 of the enriched topic, their months taking turns
/// (offset i holds `months[i % months.len()]`).
async fn produce_interleaved(env: &TestEnv, n: usize, months: &[(u32, i64)]) {
    let producer = env.producer(10);
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let payload = dose_payload(months[i % months.len()].1 + i as i64);
        let record = FutureRecord::to(&env.enriched_topic).partition(0).key("p").payload(&payload);
        pending.push(producer.send(record, Duration::from_secs(10)).await);
    }
    assert!(pending.iter().all(Result::is_ok), "all produced");
}

/// The sink group's committed position on partition 0 of the enriched topic (-1: none).
fn committed(env: &TestEnv) -> i64 {
    let consumer: BaseConsumer = pv_runtime::kafka::consumer_config(&env.kafka, &env.sink_config().group_id)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&env.enriched_topic, 0);
    let got = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("committed");
    got.elements().first().and_then(|e| e.offset().to_raw()).unwrap_or(-1)
}

/// (partition, level-0 parts, rows) of `doses` as ClickHouse reports them: level 0 is what
/// inserts wrote, before any merge (inactive parts count until ClickHouse removes them).
async fn inserted_parts(env: &TestEnv) -> Vec<(String, u64, u64)> {
    let sql = format!(
        "SELECT partition, count(), sum(rows) FROM system.parts WHERE database = '{}' AND table = 'doses' \
         AND level = 0 GROUP BY partition ORDER BY partition",
        env.clickhouse.database
    );
    pv_runtime::clickhouse::server_client(&env.clickhouse)
        .query(&sql)
        .fetch_all()
        .await
        .expect("system.parts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_months_are_inserted_as_one_part_per_month() {
    let env = TestEnv::new("sink_parts").await;
    produce_interleaved(&env, 3_000, &MONTHS).await;
    // Each month's buffer fills at 1,000 rows; no buffer is due by age within the test.
    let cfg = pv_sink::SinkConfig {
        batch_max_messages: 1_000,
        buffer_max_messages: 3_000,
        batch_max_wait_ms: 120_000,
        ..env.sink_config()
    };
    let sink = env.start_sink(cfg);
    env.wait_for_count("doses", false, 3_000, Duration::from_secs(60)).await;
    let parts = inserted_parts(&env).await;
    let want: Vec<(String, u64, u64)> = MONTHS.iter().map(|(m, _)| (m.to_string(), 1, 1_000)).collect();
    // The old sink wrote a batch of 1,000 interleaved rows as three parts: nine in all.
    assert_eq!(parts, want, "one part of 1,000 rows per month, in the partition the sink computed");
    assert_eq!(sink.metrics.insert_rows.get_sample_count(), 3, "three inserts");
    sink.stop().await;
    assert_eq!(committed(&env), 3_000, "everything committed");
    assert_eq!(env.count("doses", true).await, 3_000);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_month_holds_back_the_commit_of_every_month_read_after_its_rows() {
    let env = TestEnv::new("sink_order").await;
    // Offsets 0, 2, 4, ... are November, 1, 3, 5, ... December; November's insert is held 8 s.
    produce_interleaved(&env, 1_000, &HELD_MONTHS).await;
    pv_sink::fault::hold_inserts(HELD_MONTHS[0].0, Duration::from_secs(8));
    let cfg = pv_sink::SinkConfig {
        batch_max_messages: 500,
        buffer_max_messages: 1_000,
        inserts_in_flight: 2,
        ..env.sink_config()
    };
    let sink = env.start_sink(cfg);
    let dec = format!(
        "SELECT count() FROM {{doses}} WHERE toYYYYMM(toDateTime(intDiv(administered_at_ms, 1000))) = {}",
        HELD_MONTHS[1].0
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.number(&dec).await < 500 {
        assert!(Instant::now() < deadline, "December stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // December is durable, November not: the group may not commit past offset 0, November's
    // first row, though everything up to 999 was read and December's rows run to offset 999.
    // Wait long enough for the background commits (every second) to have happened.
    assert_eq!(env.count("doses", false).await, 500, "November is still held");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at = committed(&env);
    assert!(at <= 0, "committed {at} while November's rows from offset 0 were not durable");
    env.wait_for_count("doses", false, 1_000, Duration::from_secs(60)).await;
    sink.stop().await;
    assert_eq!(committed(&env), 1_000, "everything committed once November was durable");
    env.cleanup().await;
}

/// Mid-April 2026 (UTC), in ms: the busy test's month.
const BUSY_MONTH: i64 = 1_776_211_200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_steady_load_above_busy_rate_buffers_wait_longer_and_inserts_come_less_often() {
    let env = TestEnv::new("sink_busy").await;
    // 1,000 messages/s against a busy_rate of 200: five times the rate, five times the 100 ms
    // wait, capped at 600 ms. The backlog wait equals the live one, so only the load can
    // lengthen the wait.
    let cfg = pv_sink::SinkConfig {
        batch_max_messages: 100_000,
        buffer_max_messages: 100_000,
        batch_max_wait_ms: 100,
        backlog_max_wait_ms: 100,
        busy_rate: 200,
        busy_max_wait_ms: 600,
        ..env.sink_config()
    };
    let sink = env.start_sink(cfg);
    let producer = env.producer(10);
    let mut deliveries = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(50));
    let (mut longest_wait, mut inserts_at_steady) = (0.0f64, 0);
    for tick in 0..80 {
        ticks.tick().await;
        for i in 0..50 {
            let payload = dose_payload(BUSY_MONTH + tick * 50 + i);
            let record = FutureRecord::to(&env.enriched_topic).partition(0).key("p").payload(&payload);
            deliveries.push(producer.send_result(record).map_err(|(e, _)| e).expect("enqueued"));
        }
        // The rate is known after the first second; from 1.5 s the load is steady.
        if tick == 30 {
            inserts_at_steady = sink.metrics.insert_rows.get_sample_count();
        }
        if tick >= 30 {
            longest_wait = longest_wait.max(sink.metrics.buffer_age_limit.get());
        }
    }
    let inserts = sink.metrics.insert_rows.get_sample_count() - inserts_at_steady;
    for delivery in deliveries {
        assert!(matches!(delivery.await, Ok(Ok(_))), "every message acknowledged by the broker");
    }
    assert!(
        longest_wait >= 0.4,
        "the wait under load: {longest_wait} s, want ~0.5 s (100 ms at 5x the busy rate)"
    );
    // At 100 ms the 2.5 s of steady load would take ~25 inserts; at ~500 ms about 5.
    assert!(inserts <= 10, "{inserts} inserts in 2.5 s of steady load");
    // Once the input stops, the wait returns to batch_max_wait_ms.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.metrics.buffer_age_limit.get() > 0.1 {
        assert!(
            Instant::now() < deadline,
            "the wait stayed at {} s after the input stopped",
            sink.metrics.buffer_age_limit.get()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.wait_for_count("doses", false, 4_000, Duration::from_secs(60)).await;
    sink.stop().await;
    assert_eq!(committed(&env), 4_000, "everything committed");
    env.cleanup().await;
}
