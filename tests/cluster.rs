//! Beyond one machine: the pipeline on the local cluster of `deploy/local/cluster.sh` (three
//! Kafka brokers, topics with three replicas and `min.insync.replicas` 2; ClickHouse in two
//! shards, the first with two replicas, under ZooKeeper). Mid-stream the broker coordinating the
//! enricher's transactions is killed and one ClickHouse replica stopped; both come back; every
//! event is stored exactly once (counted per event id through the Distributed tables), the
//! enriched topic holds each event once, and the stopped replica catches up.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{RunningEnricher, RunningSink, TestEnv, distinct, produce_raw, read_topic, simulated_stream};
use pv_runtime::{ClickHouseConfig, KafkaConfig};
use rdkafka::consumer::Consumer as _;

/// Ports of the test's cluster (`CLUSTER_PORT_BASE`): away from the shared servers' and from
/// the ephemeral range the private test servers take theirs from.
const PORT_BASE: u16 = 19_400;

/// The cluster, stopped and deleted on drop.
struct LocalCluster {
    state: PathBuf,
}

impl LocalCluster {
    fn run(&self, args: &[&str]) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let shared = std::env::var("PV_STATE").map(PathBuf::from).unwrap_or_else(|_| repo.join(".state"));
        let out = Command::new(repo.join("deploy/local/cluster.sh"))
            .args(args)
            .env("PV_STATE", &self.state)
            .env("KAFKA_LIBS", shared.join("kafka-libs"))
            .env("CLUSTER_PORT_BASE", PORT_BASE.to_string())
            .output()
            .expect("cluster.sh runs");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "cluster.sh {args:?}:\n{text}");
    }

    async fn start() -> LocalCluster {
        let state = std::env::temp_dir().join(format!("pv-cluster-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let cluster = LocalCluster { state };
        tokio::task::spawn_blocking(move || {
            cluster.run(&["start"]);
            cluster
        })
        .await
        .expect("started")
    }

    /// `cluster.sh ARGS` off the async threads.
    async fn call(&self, args: &'static [&'static str]) {
        let me = LocalCluster { state: self.state.clone() };
        tokio::task::spawn_blocking(move || {
            me.run(args);
            std::mem::forget(me);
        })
        .await
        .expect("cluster.sh");
    }

    fn clickhouse(node: u16) -> String {
        format!("http://127.0.0.1:{}", PORT_BASE + 30 + node)
    }

    /// After a failure: each node's last warnings and errors in the test's output (all CI
    /// keeps), and the whole logs kept in the temp folder.
    fn report_node_logs(&self) {
        let logs = self.state.join("cluster/log");
        let Ok(entries) = std::fs::read_dir(&logs) else { return };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        // ClickHouse's `*.server.log` repeats its `*.err.log`.
        files.retain(|f| !f.to_string_lossy().ends_with(".server.log"));
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let notable: Vec<&str> = text
                .lines()
                .filter(|l| [" WARN ", " ERROR ", "<Error>"].iter().any(|w| l.contains(w)))
                .filter(|l| !EXPECTED_WHILE_A_NODE_IS_DOWN.iter().any(|w| l.contains(w)))
                .collect();
            let last = &notable[notable.len().saturating_sub(NODE_LOG_LINES)..];
            eprintln!("--- {}: last {} of {} warnings and errors", file.display(), last.len(), notable.len());
            for line in last {
                eprintln!("{line}");
            }
        }
        let kept = std::env::temp_dir().join(format!("pv-cluster-logs-{}", std::process::id()));
        if std::fs::rename(&logs, &kept).is_ok() {
            eprintln!("--- the nodes' whole logs: {}", kept.display());
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.run(&["kill"]);
        if std::thread::panicking() {
            self.report_node_logs();
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// Lines of each node's log shown after a failure.
const NODE_LOG_LINES: usize = 30;

/// What the other nodes log, over and over, while a node is down: left out of the report.
const EXPECTED_WHILE_A_NODE_IS_DOWN: &[&str] =
    &["could not be established. Node may not be available", "Error in response for fetch request"];

/// `sql` on ClickHouse node `node` (1-3), directly (not through the cluster's Distributed tables).
fn node_query(node: u16, sql: &str) -> clickhouse::query::Query {
    let cfg = ClickHouseConfig { url: LocalCluster::clickhouse(node), ..ClickHouseConfig::default() };
    pv_runtime::clickhouse::server_client(&cfg).query(sql)
}

/// The one number `sql` answers on ClickHouse node `node` (1-3).
async fn on_node(node: u16, sql: &str) -> u64 {
    node_query(node, sql).fetch_one().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `sql` on ClickHouse node `node` (1-3).
async fn on_node_execute(node: u16, sql: &str) {
    node_query(node, sql).execute().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `cluster.sh` arguments that kill the broker with node id `node` (1-3).
fn kill_broker(node: i32) -> &'static [&'static str] {
    match node {
        1 => &["kill", "kafka1"],
        2 => &["kill", "kafka2"],
        3 => &["kill", "kafka3"],
        other => panic!("no broker has node id {other} (a partition without a leader reports -1)"),
    }
}

/// The node id of the broker coordinating `transactional_id`'s transactions: the leader of its
/// `__transaction_state` partition (Kafka's `abs(String.hashCode) % partitions`).
fn transaction_coordinator(kafka: &KafkaConfig, transactional_id: &str) -> i32 {
    let hash =
        transactional_id.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let admin: rdkafka::consumer::BaseConsumer =
        pv_runtime::kafka::admin_config(kafka).create().expect("admin client");
    let metadata = admin
        .fetch_metadata(Some("__transaction_state"), Duration::from_secs(10))
        .expect("__transaction_state metadata");
    let partitions = metadata.topics()[0].partitions();
    assert!(!partitions.is_empty(), "__transaction_state has no partitions yet");
    // Kafka's `Utils.abs`: `Math.abs`, with `i32::MIN` as 0.
    let wanted = hash.checked_abs().unwrap_or(0) % partitions.len() as i32;
    partitions.iter().find(|p| p.id() == wanted).map(|p| p.leader()).expect("its partition has a leader")
}

/// What the in-process services report: to tell a stuck enricher from a stuck sink, and either
/// from events refused (dead-lettered) on the way.
fn account(enricher: &RunningEnricher, sink: &RunningSink) -> String {
    fn per_table(count: impl Fn(&str) -> u64) -> String {
        ["doses", "monitoring_forms", "ae_report_versions", "enrolments"]
            .map(|t| format!("{t} {}", count(t)))
            .join(", ")
    }
    let (e, s) = (&enricher.metrics, &sink.metrics);
    format!(
        "enricher: {} enriched, {} transactions, {} aborts, {} session restarts, {} dead letters, stopped: {}, lag {}; \
         sink: rows inserted [{}], failed insert attempts [{}], rows refused [{}], systemic refusals [{}], \
         {} dead letters, {} halted partitions, paused {}, stopped: {}, lag {}",
        enricher.enriched(),
        e.transactions.get(),
        e.aborts.get(),
        e.restarts.get(),
        e.dead_letters.get(),
        enricher.thread.is_finished(),
        e.consumer_lag.get(),
        per_table(|t| s.rows_inserted.with_label_values(&[t]).get()),
        per_table(|t| s.insert_failures.with_label_values(&[t]).get()),
        per_table(|t| s.rows_refused.with_label_values(&[t]).get()),
        per_table(|t| s.systemic_refusals.with_label_values(&[t]).get()),
        s.dead_letters.get(),
        s.halted_partitions.get(),
        s.paused.get(),
        sink.task.is_finished(),
        s.consumer_lag.get(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_stored_once_through_a_broker_kill_and_a_replica_stop() {
    let cluster = LocalCluster::start().await;
    let kafka = KafkaConfig {
        bootstrap_servers: (1..=3)
            .map(|i| format!("127.0.0.1:{}", PORT_BASE + 10 + i))
            .collect::<Vec<_>>()
            .join(","),
        replication_factor: 3,
        min_insync_replicas: 2,
        ..KafkaConfig::default()
    };
    // Every broker registered before topics with three replicas are asked for (open ports come first).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe: rdkafka::consumer::BaseConsumer =
            pv_runtime::kafka::admin_config(&kafka).create().expect("admin client");
        let brokers = probe.fetch_metadata(None, Duration::from_secs(10)).map_or(0, |m| m.brokers().len());
        if brokers == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{brokers} of 3 brokers registered");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The services reach ClickHouse through ch1; ch2 is the replica that is stopped.
    let clickhouse = ClickHouseConfig {
        url: LocalCluster::clickhouse(1),
        cluster: Some("pv".into()),
        ..ClickHouseConfig::default()
    };
    let env = TestEnv::with_configs("cluster", kafka, clickhouse).await;
    let db = env.clickhouse.database.clone();

    let mut events = simulated_stream(2, 6, 40);
    let now = pv_events::Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    for e in &mut events {
        e.set_received_at(now);
    }
    let enricher_cfg = pv_enrich::EnrichConfig { batch_max_messages: 200, ..env.enrich_config() };
    let enricher = env.start_enricher(enricher_cfg.clone());
    let sink = env.start_sink(pv_sink::SinkConfig { batch_max_messages: 300, ..env.sink_config() });
    let chunks: Vec<&[pv_events::ClinicEvent]> = events.chunks(events.len().div_ceil(6)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        produce_raw(&env.kafka, &env.raw_topic, chunk).await;
        match i {
            1 => {
                // Mid-stream means the enricher is running: its start is not what is tested here.
                let deadline = Instant::now() + Duration::from_secs(90);
                while enricher.enriched() == 0 {
                    assert!(!enricher.thread.is_finished(), "the enricher stopped before enriching anything");
                    assert!(Instant::now() < deadline, "nothing enriched within 90 s");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // The hardest broker to lose: the one coordinating the enricher's transactions.
                let coordinator = transaction_coordinator(&env.kafka, &enricher_cfg.transactional_id());
                eprintln!("killing kafka{coordinator}, the enricher's transaction coordinator");
                cluster.call(kill_broker(coordinator)).await;
                cluster.call(&["stop", "ch2"]).await;
            }
            3 => cluster.call(&["start"]).await,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    // A rare failure here (twice in CI before eed5a11, once by hand since) left too little to go
    // on: say what each service did, and its warnings and the nodes' come with the failure.
    let [doses, ..] = distinct(&events);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stored = env.count("doses", true).await;
        if stored >= doses {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "doses not all stored within 180 s: {stored} of {doses}; {}",
            account(&enricher, &sink)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.wait_for_all(&events, Duration::from_secs(180)).await;
    let [doses, forms, reports, enrolments] = distinct(&events);
    enricher.stop().await;
    sink.stop().await;

    // Exactly once per event id, across both shards.
    for (table, want) in [
        ("doses", doses),
        ("monitoring_forms", forms),
        ("ae_report_versions", reports),
        ("enrolments", enrolments),
    ] {
        let once = env
            .number(&format!(
                "SELECT count() FROM (SELECT event_id, count() AS n FROM {{{table}}} FINAL GROUP BY event_id HAVING n = 1)"
            ))
            .await;
        assert_eq!(once, want, "{table}: every event id exactly once");
    }
    // Each case once, though its versions are sharded by patient and the cases by case.
    let cases = env.number("SELECT count() FROM {ae_cases} FINAL").await;
    let reported = env.number("SELECT uniqExact(clinic_id, report_id) FROM {ae_report_versions}").await;
    assert!(cases > 0 && cases == reported, "ae_cases: {cases} rows for {reported} cases");
    // Both shards hold data: the tables really are sharded.
    let shard1 = on_node(1, &format!("SELECT count() FROM {db}.doses_local FINAL")).await;
    let shard2 = on_node(3, &format!("SELECT count() FROM {db}.doses_local FINAL")).await;
    assert!(
        shard1 > 0 && shard2 > 0 && shard1 + shard2 == doses,
        "doses per shard: {shard1} + {shard2} of {doses}"
    );
    // The enriched topic holds each event once (transactions through a broker kill); no stage
    // dead-lettered anything.
    let enriched = read_topic(&env.kafka, &env.enriched_topic);
    assert_eq!(enriched.len(), events.len(), "every raw event enriched exactly once");
    assert!(read_topic(&env.kafka, &env.raw_dlq_topic).is_empty(), "the enricher dead-lettered events");
    assert!(read_topic(&env.kafka, &env.dlq_topic).is_empty(), "the sink dead-lettered events");
    // The stopped replica catches up with its peer.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sql = format!("SELECT count() FROM {db}.doses_local");
    loop {
        let (a, b) = (on_node(1, &sql).await, on_node(2, &sql).await);
        if a == b {
            break;
        }
        assert!(Instant::now() < deadline, "replica ch2 has {b} rows of shard 1's {a}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    upgrades_a_cluster_database_of_an_earlier_release(&env.clickhouse).await;
    drop(cluster);
}

/// A cluster database made by migrations 1-7 (an earlier release, holding a dose) migrates to
/// the end: 8 and 9 change columns, which on 18.16 cannot be done by `ALTER ... ON CLUSTER` on
/// a Distributed table, so the Distributed tables are recreated over the altered local tables.
async fn upgrades_a_cluster_database_of_an_earlier_release(current: &ClickHouseConfig) {
    use pv_store::migrations::{MIGRATIONS, migrate, migrate_with};
    let cfg = ClickHouseConfig { database: format!("{}_upgrade", current.database), ..current.clone() };
    let db = cfg.database.clone();
    let release7: Vec<_> = MIGRATIONS.iter().copied().filter(|m| m.version <= 7).collect();
    migrate_with(&cfg, &release7).await.expect("the earlier release's database");
    // Today's migrations create today's shape: give doses back a column the earlier release had
    // (and migration 9 drops). The Distributed tables are altered server by server, which 18.16
    // allows, as `ON CLUSTER` it does not.
    let old_column = "ADD COLUMN exp_administrations UInt32 AFTER received_at_ms";
    on_node_execute(1, &format!("ALTER TABLE {db}.doses_local ON CLUSTER pv {old_column}")).await;
    for node in 1..=3 {
        on_node_execute(node, &format!("ALTER TABLE {db}.doses {old_column}")).await;
    }
    pv_runtime::clickhouse::server_client(&cfg)
        .query(&format!(
            "INSERT INTO {db}.doses (event_id, patient_key, administered_at_ms, exp_administrations, exp_escalation_ratio) \
             VALUES ('00000000-0000-0000-0000-000000000001', 'p', 1767225600000, 3, 1.5)"
        ))
        .execute()
        .await
        .expect("a dose of the earlier release");
    let applied = migrate(&cfg).await.expect("upgraded");
    assert_eq!(applied, [8, 9]);
    let kept = on_node(1, &format!("SELECT count() FROM {db}.doses WHERE exp_escalation_ratio = 1.5")).await;
    assert_eq!(kept, 1, "the dose is kept, read through the recreated Distributed table");
    // Every table a column step changed: the Distributed table has its local tables' columns.
    let mut tables: Vec<&str> =
        MIGRATIONS.iter().flat_map(|m| m.steps).filter_map(|s| s.column_table()).collect();
    tables.dedup();
    for table in tables {
        let columns = |t: String| {
            format!("SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '{t}'")
        };
        let differing = on_node(
            1,
            &format!(
                "SELECT count() FROM (SELECT name, type, count() AS n FROM ({} UNION ALL {}) GROUP BY name, type HAVING n != 2)",
                columns(table.to_owned()),
                columns(format!("{table}_local"))
            ),
        )
        .await;
        assert_eq!(differing, 0, "{table}: Distributed and local columns differ after the upgrade");
    }
    let dropped = on_node(
        1,
        &format!("SELECT count() FROM system.columns WHERE database = '{db}' AND name = 'exp_administrations' AND table LIKE 'doses%'"),
    )
    .await;
    assert_eq!(dropped, 0, "migration 9 dropped the column from doses and doses_local");
}
