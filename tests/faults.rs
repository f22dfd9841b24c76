//! Fault injection against the real broker and the real ClickHouse: each test sends a known set
//! of events (tens of batches) while a fault strikes mid-stream, then checks ClickHouse event by
//! event — every event stored, none counted twice — in the deduplicated (`FINAL`) tables the
//! dashboard and reports query.
//!
//! (a) ClickHouse killed and restarted; (b) the sink killed by SIGKILL three times;
//! (c) the broker restarted; (d) a row ClickHouse refuses; (e) the enricher killed by SIGKILL
//! and by an abort mid-transaction. ClickHouse and the broker are stopped only in private
//! instances (`common::servers`), never the shared ones.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{TestEnv, own_server, pv_binary, read_topic, simulated_stream, terminate};
use pv_bench::servers::{Kind, OwnServer};
use pv_events::{ClinicEvent, EnrichedEvent, EventCodec};
use pv_sink::SinkConfig;
use rdkafka::producer::FutureRecord;

/// One event of a known set: its table and id (as ClickHouse prints it), message key, payload.
#[derive(Clone)]
struct Sent {
    table: &'static str,
    id: String,
    key: String,
    payload: Vec<u8>,
}

fn table_of(e: &EnrichedEvent) -> &'static str {
    match e {
        EnrichedEvent::Dose(_) => "doses",
        EnrichedEvent::Monitoring(_) => "monitoring_forms",
        EnrichedEvent::AdverseEvent(_) => "ae_report_versions",
        EnrichedEvent::Enrolment(_) => "enrolments",
    }
}

/// The stream enriched in-process, as the enricher would produce it.
fn enriched(raw: &[ClinicEvent]) -> Vec<(Sent, EnrichedEvent)> {
    let enricher = TestEnv::enricher();
    let mut store = pv_enrich::PatientStore::default();
    let codec = EventCodec::global();
    raw.iter()
        .map(|e| {
            let out = enricher.enrich(&mut store, e).expect("enriches");
            let sent = Sent {
                table: table_of(&out.event),
                id: out.event.event_id().to_string(),
                key: pv_enrich::pseudonym::key_hex(&out.key),
                payload: codec.encode_enriched(&out.event).expect("encodes"),
            };
            (sent, out.event)
        })
        .collect()
}

/// The enriched messages of the known set most tests send (~9,000 events, ~30 sink batches).
fn known_enriched_set() -> Vec<Sent> {
    enriched(&simulated_stream(8, 40, 150)).into_iter().map(|(s, _)| s).collect()
}

/// The raw stream as the gateway would produce it, with the table each event ends in.
fn raw_messages(raw: &[ClinicEvent]) -> Vec<Sent> {
    let codec = EventCodec::global();
    enriched(raw)
        .into_iter()
        .zip(raw)
        .map(|((s, _), e)| Sent { key: e.partition_key(), payload: codec.encode(e).expect("encodes"), ..s })
        .collect()
}

/// Produces `messages` to `topic` at about `per_sec`, in the background; resolves when every
/// message is acknowledged (the producer rides out a broker restart: 5 minutes to deliver, as the
/// fault tests run side by side on two cores and a restarted broker can be slow to lead again).
fn produce_at(
    env: &TestEnv,
    topic: &str,
    messages: Vec<Sent>,
    per_sec: usize,
) -> tokio::task::JoinHandle<usize> {
    let producer = env.producer(300);
    let topic = topic.to_owned();
    tokio::spawn(async move {
        let tick = Duration::from_millis(50);
        let per_tick = (per_sec / 20).max(1);
        let mut pending = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(per_tick) {
            let started = Instant::now();
            for m in chunk {
                let record = FutureRecord::to(&topic).key(&m.key).payload(&m.payload);
                pending.push(producer.send_result(record).map_err(|(e, _)| e).expect("enqueued"));
            }
            tokio::time::sleep(tick.saturating_sub(started.elapsed())).await;
        }
        let n = pending.len();
        for p in pending {
            p.await.expect("delivery reported").expect("acknowledged by the broker");
        }
        n
    })
}

/// Distinct event ids per table of a known set.
fn expected(sent: &[Sent]) -> HashMap<&'static str, HashSet<String>> {
    let mut out: HashMap<&'static str, HashSet<String>> = HashMap::new();
    for s in sent {
        assert!(out.entry(s.table).or_default().insert(s.id.clone()), "the test set repeats {}", s.id);
    }
    out
}

/// Rows per event id as queries count them (`FINAL`).
async fn stored(env: &TestEnv, table: &str) -> HashMap<String, u64> {
    env.db()
        .sql("SELECT toString(event_id), count() FROM {t} FINAL GROUP BY event_id")
        .table("t", common::store_table(table))
        .fetch_all::<(String, u64)>()
        .await
        .expect("per-event counts")
        .into_iter()
        .collect()
}

/// Waits for `producing` to have sent all `sent` messages, then does [`assert_exactly_once`].
async fn assert_sent_and_stored_once(
    env: &TestEnv,
    producing: tokio::task::JoinHandle<usize>,
    sent: usize,
    want: &HashMap<&'static str, HashSet<String>>,
    timeout: Duration,
) {
    assert_eq!(producing.await.expect("producer"), sent);
    assert_exactly_once(env, want, timeout).await;
}

/// Waits until every table holds as many events as `want` (or `timeout`), then asserts each
/// wanted event is stored exactly once and nothing else is.
async fn assert_exactly_once(
    env: &TestEnv,
    want: &HashMap<&'static str, HashSet<String>>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    for (table, ids) in want {
        loop {
            let n = env.count(table, true).await;
            if n >= ids.len() as u64 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let got = stored(env, table).await;
        let missing = ids.iter().filter(|id| !got.contains_key(*id)).count();
        let twice = got.values().filter(|&&c| c > 1).count();
        let unknown = got.keys().filter(|id| !ids.contains(*id)).count();
        assert_eq!(
            (missing, twice, unknown),
            (0, 0, 0),
            "{table}: {missing} of {} events missing, {twice} counted twice, {unknown} unknown",
            ids.len()
        );
        assert_eq!(env.count(table, true).await, ids.len() as u64, "{table}: count() FINAL");
    }
    // Cases (the latest version of each report, filled by a view) count each case once.
    let cases = env.number("SELECT uniqExact(clinic_id, report_id) FROM {ae_report_versions} FINAL").await;
    assert_eq!(env.count("ae_cases", true).await, cases, "ae_cases holds one row per case");
}

/// Runs a blocking action on a private server off the async threads; gives the server back.
async fn on_server<F>(server: OwnServer, action: F) -> OwnServer
where
    F: FnOnce(&OwnServer) -> anyhow::Result<()> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        action(&server).expect("stopping or starting a private server");
        server
    })
    .await
    .expect("joined")
}

fn sink_config(env: &TestEnv) -> SinkConfig {
    SinkConfig { batch_max_messages: 300, batch_max_wait_ms: 200, ..env.sink_config() }
}

fn spawn_pv(config: &std::path::Path, service: &str, env_vars: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(pv_binary());
    cmd.args(["--config", config.to_str().expect("utf-8"), service])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env_vars {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn pv")
}

fn lag(env: &TestEnv, group: &str, topic: &str) -> i64 {
    pv_runtime::kafka::group_lag(&env.kafka, group, &[topic], Duration::from_secs(10)).expect("lag")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clickhouse_killed_and_restarted_mid_stream() {
    let ch = tokio::task::spawn_blocking(|| own_server(Kind::ClickHouse, "faults_a")).await.expect("ch");
    let env = TestEnv::on("fault_a", None, Some(ch.address())).await;
    let set = known_enriched_set();
    let want = expected(&set);
    assert!(set.len() > 8_000, "{} events: dozens of batches", set.len());

    let sink = env.start_sink(sink_config(&env));
    let producing = produce_at(&env, &env.enriched_topic, set.clone(), 1_000);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = env.count("doses", false).await;
    assert!(before > 0, "the sink was storing before the fault");
    let ch = on_server(ch, |s| s.stop("KILL")).await;
    // While ClickHouse is down the sink pauses consumption instead of buffering the stream.
    let down = Instant::now();
    let mut paused = false;
    while down.elapsed() < Duration::from_secs(6) {
        paused |= sink.metrics.paused.get() == 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The flush in flight retries whichever of its inserts was not acknowledged yet.
    let failed: u64 = ["doses", "monitoring_forms", "ae_report_versions", "enrolments"]
        .iter()
        .map(|t| sink.metrics.insert_failures.with_label_values(&[t]).get())
        .sum();
    assert!(paused, "consumption paused during the outage");
    assert!(failed > 0, "inserts failed and were retried meanwhile");
    let ch = on_server(ch, |s| s.up()).await;

    assert_sent_and_stored_once(&env, producing, set.len(), &want, Duration::from_secs(120)).await;
    sink.stop().await;
    assert_eq!(lag(&env, &env.sink_config().group_id, &env.enriched_topic), 0, "everything committed");
    assert_eq!(env.topic_messages(&env.dlq_topic), 0, "an outage dead-letters nothing");
    env.cleanup().await;
    drop(ch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2_a_hung_clickhouse_is_timed_out_and_retried() {
    let ch = tokio::task::spawn_blocking(|| own_server(Kind::ClickHouse, "faults_a2")).await.expect("ch");
    let env = TestEnv::on("fault_a2", None, Some(ch.address())).await;
    let set = known_enriched_set();
    let want = expected(&set);
    let sink = env.start_sink(SinkConfig { insert_timeout_ms: 1_000, ..sink_config(&env) });
    let producing = produce_at(&env, &env.enriched_topic, set.clone(), 1_000);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(env.count("doses", false).await > 0, "the sink was storing before the fault");
    // Frozen: the server keeps its connections open and answers nothing.
    let ch = on_server(ch, |s| s.freeze(true)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let failed: u64 = ["doses", "monitoring_forms", "ae_report_versions", "enrolments"]
        .iter()
        .map(|t| sink.metrics.insert_failures.with_label_values(&[t]).get())
        .sum();
    let ch = on_server(ch, |s| s.freeze(false)).await;
    assert!(failed > 0, "inserts to the hung server timed out and were retried, not waited on");

    assert_sent_and_stored_once(&env, producing, set.len(), &want, Duration::from_secs(120)).await;
    sink.stop().await;
    assert_eq!(env.topic_messages(&env.dlq_topic), 0, "a hang dead-letters nothing");
    env.cleanup().await;
    drop(ch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_sink_killed_three_times_mid_stream() {
    let env = TestEnv::new("fault_b").await;
    let set = known_enriched_set();
    let want = expected(&set);
    let cfg = sink_config(&env);
    let config = env.write_config(&cfg);

    // About 30 s of stream: a restarted sink waits up to the session timeout (10 s) for the
    // group to drop its killed predecessor, so the three kills need that long.
    let producing = produce_at(&env, &env.enriched_topic, set.clone(), 300);
    let mut sink = spawn_pv(&config, "sink", &[]);
    let mut stored_at_kill = vec![0];
    for extra_ms in [100, 350, 700] {
        // Kill once this instance has stored something, at a different moment each time.
        let deadline = Instant::now() + Duration::from_secs(60);
        while env.count("doses", false).await <= stored_at_kill[stored_at_kill.len() - 1] {
            assert!(Instant::now() < deadline, "the restarted sink stored nothing within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(extra_ms)).await;
        assert!(!producing.is_finished(), "killed mid-stream");
        sink.start_kill().expect("SIGKILL");
        let _ = sink.wait().await;
        stored_at_kill.push(env.count("doses", false).await);
        sink = spawn_pv(&config, "sink", &[]);
    }
    assert_sent_and_stored_once(&env, producing, set.len(), &want, Duration::from_secs(120)).await;
    terminate(&mut sink, Duration::from_secs(30)).await;
    assert_eq!(lag(&env, &cfg.group_id, &env.enriched_topic), 0, "everything committed");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_two_sinks_in_one_group_one_stopped_and_one_killed() {
    let env = TestEnv::new("fault_b2").await;
    let set = known_enriched_set();
    let want = expected(&set);
    let config = env.write_config(&sink_config(&env));
    // About 30 s of stream over three partitions, shared by two sinks of one group.
    let producing = produce_at(&env, &env.enriched_topic, set.clone(), 300);
    let mut first = spawn_pv(&config, "sink", &[]);
    let mut second = spawn_pv(&config, "sink", &[]);
    let stored_more_than = |n: u64| {
        let env = &env;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while env.count("doses", false).await <= n {
                assert!(Instant::now() < deadline, "nothing more stored within 60 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            env.count("doses", false).await
        }
    };
    let at_stop = stored_more_than(0).await;
    // One leaves cleanly (SIGTERM: its last batch made durable, its partitions handed over) ...
    terminate(&mut first, Duration::from_secs(30)).await;
    stored_more_than(at_stop).await;
    assert!(!producing.is_finished(), "stopped mid-stream");
    // ... the other is killed outright, and a new one takes over what it had not committed.
    second.start_kill().expect("SIGKILL");
    let _ = second.wait().await;
    let mut third = spawn_pv(&config, "sink", &[]);
    assert_sent_and_stored_once(&env, producing, set.len(), &want, Duration::from_secs(120)).await;
    terminate(&mut third, Duration::from_secs(30)).await;
    assert_eq!(lag(&env, &env.sink_config().group_id, &env.enriched_topic), 0, "everything committed");
    assert_eq!(env.topic_messages(&env.dlq_topic), 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_broker_restarted_mid_stream() {
    let kafka = tokio::task::spawn_blocking(|| own_server(Kind::Kafka, "faults_c")).await.expect("kafka");
    let env = TestEnv::on("fault_c", Some(kafka.address()), None).await;
    let raw = simulated_stream(8, 40, 150);
    let set = raw_messages(&raw);
    let want = expected(&set);

    let enricher = env.start_enricher(env.enrich_config());
    let sink = env.start_sink(sink_config(&env));
    let producing = produce_at(&env, &env.raw_topic, set.clone(), 500);
    // A fresh broker first creates its offsets and transaction-state topics.
    let deadline = Instant::now() + Duration::from_secs(90);
    while env.count("doses", false).await < 500 {
        assert!(Instant::now() < deadline, "the pipeline stored nothing within 90 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!producing.is_finished(), "restarted mid-stream");
    let kafka = on_server(kafka, |s| {
        s.stop("TERM")?;
        // Down for longer than a transaction waits (30 s): the clients must survive that.
        std::thread::sleep(Duration::from_secs(35));
        s.up()
    })
    .await;

    assert_sent_and_stored_once(&env, producing, set.len(), &want, Duration::from_secs(180)).await;
    sink.stop().await;
    enricher.stop().await;
    assert_eq!(env.topic_messages(&env.raw_dlq_topic), 0, "nothing dead-lettered");
    env.cleanup().await;
    drop(kafka);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_a_row_clickhouse_refuses_is_dead_lettered_and_the_rest_stored() {
    let env = TestEnv::new("fault_d").await;
    // A check this database enforces on every row (ClickHouse 18.16 has no CHECK constraints; a
    // MATERIALIZED `throwIf` column is its equivalent, and current releases refuse the row the
    // same way with VIOLATED_CONSTRAINT). One dose in the stream violates it.
    env.db()
        .sql("ALTER TABLE {doses} ADD COLUMN dose_checked UInt8 MATERIALIZED throwIf(dose_mg > 2000)")
        .execute()
        .await
        .expect("alter");
    let mut events = enriched(&simulated_stream(8, 40, 150));
    let codec = EventCodec::global();
    let poison_at = events.len() / 2 + 7;
    let (poison_id, poison_payload) = {
        let index = (poison_at..events.len())
            .find(|&i| matches!(events[i].1, EnrichedEvent::Dose(_)))
            .expect("a dose in the second half");
        let (sent, event) = &mut events[index];
        if let EnrichedEvent::Dose(d) = event {
            d.dose_mg = 2_500.0;
        }
        sent.payload = codec.encode_enriched(event).expect("encodes");
        (sent.id.clone(), sent.payload.clone())
    };
    let set: Vec<Sent> = events.into_iter().map(|(s, _)| s).collect();
    let mut want = expected(&set);
    assert!(want.get_mut("doses").expect("doses").remove(&poison_id));

    let sink = env.start_sink(sink_config(&env));
    let producing = produce_at(&env, &env.enriched_topic, set.clone(), 2_000);
    assert_sent_and_stored_once(&env, producing, set.len(), &want, Duration::from_secs(120)).await;
    let dead = common::wait_for_messages(&env.kafka, &env.dlq_topic, 1, Duration::from_secs(30)).await;
    let refused = sink.metrics.rows_refused.with_label_values(&["doses"]).get();
    sink.stop().await;

    assert_eq!(dead.len(), 1, "exactly the refused row is dead-lettered");
    assert_eq!(refused, 1);
    assert_eq!(dead[0].payload, poison_payload, "the original message");
    let header = |k: &str| dead[0].headers.iter().find(|h| h.0 == k).map(|h| h.1.clone()).unwrap_or_default();
    let error = header("pv-error");
    assert!(
        error.starts_with("ClickHouse refused the row: ") && error.contains("Code: 395"),
        "the server's error: {error}"
    );
    assert_eq!((header("pv-stage"), header("pv-source-topic")), ("sink".into(), env.enriched_topic.clone()));
    let source = read_topic(&env.kafka, &env.enriched_topic)
        .into_iter()
        .find(|m| m.payload == poison_payload)
        .expect("the poison message is on the topic");
    assert_eq!(header("pv-source-offset"), source.offset.to_string());
    assert_eq!(header("pv-source-partition"), source.partition.to_string());
    assert_eq!(lag(&env, &env.sink_config().group_id, &env.enriched_topic), 0, "the partition moved on");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d2_a_table_refusing_every_row_holds_the_stream_instead_of_dead_lettering_it() {
    let env = TestEnv::new("fault_d2").await;
    // A drift between the table and the rows: the table now refuses every dose.
    let alter = |sql: &'static str| {
        let db = env.db();
        async move { db.sql(sql).execute().await.expect("alter") }
    };
    alter("ALTER TABLE {doses} ADD COLUMN drift UInt8 MATERIALIZED throwIf(dose_mg > 0)").await;
    let set = known_enriched_set();
    let want = expected(&set);
    let sink = env.start_sink(sink_config(&env));
    let producing = produce_at(&env, &env.enriched_topic, set.clone(), 2_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.metrics.systemic_refusals.with_label_values(&["doses"]).get() == 0 {
        assert!(Instant::now() < deadline, "the drift was never noticed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.count("doses", false).await, 0);
    assert_eq!(
        env.topic_messages(&env.dlq_topic),
        0,
        "nothing dead-lettered while the table refuses everything"
    );
    assert_eq!(sink.metrics.rows_refused.with_label_values(&["doses"]).get(), 0);

    // The drift is mended: the held batch and the rest of the stream arrive, each once.
    alter("ALTER TABLE {doses} DROP COLUMN drift").await;
    assert_sent_and_stored_once(&env, producing, set.len(), &want, Duration::from_secs(120)).await;
    sink.stop().await;
    assert_eq!(env.topic_messages(&env.dlq_topic), 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_two_enrichers_with_one_transactional_id_stop_on_repeated_fencing() {
    let env = TestEnv::new("fault_e2").await;
    let raw = simulated_stream(8, 40, 150);
    let set = raw_messages(&raw);
    let ids: HashSet<String> = set.iter().map(|s| s.id.clone()).collect();
    // A continuous feed of about 18 s.
    let producing = produce_at(&env, &env.raw_topic, set.clone(), 500);
    let start = |env: &TestEnv| {
        let service =
            pv_enrich::EnrichService::new(env.enrich_config(), env.kafka.clone(), TestEnv::enricher())
                .expect("service");
        let shutdown = pv_runtime::Shutdown::new();
        let stop = shutdown.clone();
        (std::thread::spawn(move || service.run(&shutdown)), stop)
    };
    let (a, stop_a) = start(&env);
    common::wait_for_messages(&env.kafka, &env.enriched_topic, 1, Duration::from_secs(60)).await;
    // A second instance deployed by mistake with the same transactional id: each start fences
    // the other, and the policy stops one of them after repeated fencing.
    let (b, stop_b) = start(&env);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !a.is_finished() && !b.is_finished() {
        assert!(Instant::now() < deadline, "neither stopped after repeated fencing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (stopped, survivor, stop_survivor) = if a.is_finished() { (a, b, stop_b) } else { (b, a, stop_a) };
    let error = stopped.join().expect("joined").expect_err("stopped by the fencing policy");
    assert!(matches!(error, pv_enrich::SessionError::Fenced(_)), "{error}");

    // The survivor goes on alone: every event enriched exactly once (committed output only).
    assert_eq!(producing.await.expect("producer"), set.len());
    let read =
        common::wait_for_messages(&env.kafka, &env.enriched_topic, ids.len(), Duration::from_secs(120)).await;
    stop_survivor.trigger();
    tokio::task::spawn_blocking(move || survivor.join())
        .await
        .expect("joined")
        .expect("thread")
        .expect("clean stop");
    let codec = EventCodec::global();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &read {
        let event = codec.decode_enriched(&m.payload).expect("an enriched event");
        *seen.entry(event.event_id().to_string()).or_default() += 1;
    }
    let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    let twice = seen.values().filter(|&&n| n > 1).count();
    assert_eq!((missing, twice, seen.len()), (0, 0, ids.len()), "each event enriched exactly once");
    assert_eq!(env.topic_messages(&env.raw_dlq_topic), 0, "nothing dead-lettered");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_enricher_killed_mid_stream() {
    let env = TestEnv::new("fault_e").await;
    let raw = simulated_stream(8, 40, 150);
    let set = raw_messages(&raw);
    let want = expected(&set);
    let config = env.write_config(&sink_config(&env));

    let sink = env.start_sink(sink_config(&env));
    let producing = produce_at(&env, &env.raw_topic, set.clone(), 1_000);
    // SIGKILL twice at arbitrary moments, then an abort in the middle of a transaction (its
    // outputs produced, nothing committed), then a clean run.
    let mut enricher = spawn_pv(&config, "enrich", &[]);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        enricher.start_kill().expect("SIGKILL");
        let _ = enricher.wait().await;
        enricher = spawn_pv(&config, "enrich", &[]);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    enricher.start_kill().expect("SIGKILL");
    let _ = enricher.wait().await;
    let status = tokio::time::timeout(
        Duration::from_secs(120),
        spawn_pv(&config, "enrich", &[(pv_enrich::fault::FAULT_ABORT_MID_TRANSACTION, "3")]).wait(),
    )
    .await
    .expect("aborts in time")
    .expect("ran");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(6), "the fault hook aborts mid-transaction, got {status}");
    let mut enricher = spawn_pv(&config, "enrich", &[]);

    assert_sent_and_stored_once(&env, producing, set.len(), &want, Duration::from_secs(180)).await;
    terminate(&mut enricher, Duration::from_secs(60)).await;
    sink.stop().await;
    assert_eq!(env.topic_messages(&env.raw_dlq_topic), 0, "nothing dead-lettered");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_clickhouse_outage_stops_in_bounded_time_and_loses_nothing() {
    let ch = tokio::task::spawn_blocking(|| own_server(Kind::ClickHouse, "faults_term")).await.expect("ch");
    let env = TestEnv::on("fault_term", None, Some(ch.address())).await;
    let set: Vec<Sent> = enriched(&simulated_stream(2, 20, 150)).into_iter().map(|(s, _)| s).collect();
    let want = expected(&set);
    let cfg = SinkConfig { shutdown_timeout_ms: 3_000, ..sink_config(&env) };
    let config = env.write_config(&cfg);

    let mut sink = spawn_pv(&config, "sink", &[]);
    let producing = produce_at(&env, &env.enriched_topic, set.clone(), 1_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.count("doses", false).await == 0 {
        assert!(Instant::now() < deadline, "the sink stored nothing within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ch = on_server(ch, |s| s.stop("KILL")).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // The batches in flight cannot become durable: the sink gives up after shutdown_timeout_ms,
    // commits only what is durable and exits 0.
    let asked = Instant::now();
    terminate(&mut sink, Duration::from_secs(15)).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(3 + 5), "stopped {took:?} after SIGTERM (timeout 3 s)");

    let ch = on_server(ch, |s| s.up()).await;
    assert_eq!(producing.await.expect("producer"), set.len());
    let mut sink = spawn_pv(&config, "sink", &[]);
    assert_exactly_once(&env, &want, Duration::from_secs(120)).await;
    terminate(&mut sink, Duration::from_secs(30)).await;
    assert_eq!(lag(&env, &cfg.group_id, &env.enriched_topic), 0, "everything committed");
    env.cleanup().await;
    drop(ch);
}
