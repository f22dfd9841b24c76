//! Shared harness for the integration tests: every test gets its own topics, consumer group and
//! ClickHouse database on the real local servers, so tests run in parallel without seeing each
//! other's data. Server addresses come from `PV_TEST_KAFKA` / `PV_TEST_CLICKHOUSE` (defaults:
//! the local servers of deploy/local/).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pv_enrich::EnrichConfig;
use pv_gateway::GatewayConfig;
use pv_gateway::auth::{ClinicEntry, ClinicTokens, hash_token};
use pv_runtime::kafka::{DurableProducer, PartitionReader, TopicSpec};
use pv_runtime::{ClickHouseConfig, KafkaConfig, Shutdown};
use pv_sink::SinkConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

pub mod workbench;

/// Clinics and tokens every test gateway knows.
pub const CLINICS: &[(&str, &str)] =
    &[("clinic-north", "token-north-0123456789"), ("clinic-south", "token-south-9876543210")];

/// One test's private slice of the servers.
pub struct TestEnv {
    pub id: String,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub raw_topic: String,
    pub raw_dlq_topic: String,
    pub enriched_topic: String,
    pub dlq_topic: String,
    pub state_topic: String,
    pub signals_topic: String,
    pub dir: PathBuf,
}

/// The pseudonymisation secret of every test enricher.
pub const TEST_SECRET: &str = "integration-test-secret-0123456789abcdef";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The services' logs. With `PV_TEST_LOG` set, all of them on stderr (`RUST_LOG` filters), for
/// debugging a test by hand. Otherwise their warnings and errors go to the test's captured
/// output, which the harness shows only when the test fails (CI keeps that output). The
/// librdkafka lines are left out there: they come from its own threads, which the harness does
/// not capture, and would fill every passing run's output.
fn capture_logs() {
    if std::env::var_os("PV_TEST_LOG").is_some() {
        pv_runtime::telemetry::init_logging();
        return;
    }
    let filter = tracing_subscriber::EnvFilter::new("warn,librdkafka=off,rdkafka=off");
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().try_init();
}

impl TestEnv {
    /// Creates topics (3 partitions) and a migrated database named after the test.
    pub async fn new(name: &str) -> TestEnv {
        Self::on(name, None, None).await
    }

    /// Like [`TestEnv::new`] on the given broker and ClickHouse (default: the shared ones).
    pub async fn on(name: &str, kafka: Option<String>, clickhouse: Option<String>) -> TestEnv {
        let kafka = KafkaConfig {
            bootstrap_servers: kafka.unwrap_or_else(|| {
                std::env::var("PV_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
            }),
            ..KafkaConfig::default()
        };
        let clickhouse = ClickHouseConfig {
            url: clickhouse.unwrap_or_else(|| {
                std::env::var("PV_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
            }),
            ..ClickHouseConfig::default()
        };
        Self::with_configs(name, kafka, clickhouse).await
    }

    /// Like [`TestEnv::new`] with these connection settings (the database is the test's own).
    pub async fn with_configs(name: &str, kafka: KafkaConfig, clickhouse: ClickHouseConfig) -> TestEnv {
        capture_logs();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let id = format!(
            "{name}_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            nanos % 100_000
        );
        let clickhouse = ClickHouseConfig { database: format!("pvt_{id}"), ..clickhouse };
        let raw_topic = format!("pvt.{id}.raw");
        let raw_dlq_topic = format!("pvt.{id}.raw-dlq");
        let enriched_topic = format!("pvt.{id}.enriched");
        let dlq_topic = format!("pvt.{id}.enriched-dlq");
        let state_topic = format!("pvt.{id}.state");
        let signals_topic = format!("pvt.{id}.signals");
        // As `pv topics apply`: the event topics are kept forever. Test events carry
        // acceptance times months back, which the broker's default 7-day retention would delete
        // from under a running test.
        let forever = || vec![("retention.ms".to_string(), "-1".to_string())];
        let topics = [
            TopicSpec { name: raw_topic.clone(), partitions: 3, configs: forever() },
            TopicSpec { name: raw_dlq_topic.clone(), partitions: 1, configs: forever() },
            TopicSpec { name: enriched_topic.clone(), partitions: 3, configs: forever() },
            TopicSpec { name: dlq_topic.clone(), partitions: 1, configs: forever() },
            TopicSpec {
                name: state_topic.clone(),
                partitions: 3,
                configs: vec![("cleanup.policy".into(), "compact".into())],
            },
            TopicSpec { name: signals_topic.clone(), partitions: 1, configs: forever() },
        ];
        pv_runtime::kafka::ensure_topics(&kafka, &topics)
            .await
            .expect("creating test topics (is the broker up? deploy/local/start.sh)");
        pv_store::migrate(&clickhouse)
            .await
            .expect("migrating the test database (is ClickHouse up? deploy/local/start.sh)");
        let dir = std::env::temp_dir().join(format!("pv-test-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("secret"), TEST_SECRET).expect("secret file");
        TestEnv {
            id,
            kafka,
            clickhouse,
            raw_topic,
            raw_dlq_topic,
            enriched_topic,
            dlq_topic,
            state_topic,
            signals_topic,
            dir,
        }
    }

    pub fn tokens() -> ClinicTokens {
        let entries: Vec<ClinicEntry> = CLINICS
            .iter()
            .map(|(id, token)| ClinicEntry { id: (*id).into(), token_sha256: hex_encode(&hash_token(token)) })
            .collect();
        ClinicTokens::from_entries(&entries).expect("test clinics")
    }

    pub fn gateway_config(&self) -> GatewayConfig {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            topic: self.raw_topic.clone(),
            max_body_bytes: 256 * 1024,
            max_events_per_request: 50,
            delivery_timeout_ms: 10_000,
            admin_listen: None,
            // The per-clinic rate limit has its own test (gateway_openapi); the others send fast.
            rate_per_clinic: 0.0,
            ..GatewayConfig::default()
        }
    }

    /// Starts an in-process gateway; returns its base URL.
    pub async fn start_gateway(&self, cfg: GatewayConfig, kafka: &KafkaConfig) -> RunningGateway {
        let gateway =
            Arc::new(pv_gateway::Gateway::with_tokens(cfg, kafka, Self::tokens()).expect("gateway"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(pv_gateway::serve(gateway, listener, shutdown.clone()));
        RunningGateway { url: format!("http://{addr}"), shutdown, task }
    }

    pub fn enrich_config(&self) -> EnrichConfig {
        EnrichConfig {
            input_topic: self.raw_topic.clone(),
            output_topic: self.enriched_topic.clone(),
            changelog_topic: self.state_topic.clone(),
            dlq_topic: self.raw_dlq_topic.clone(),
            group_id: format!("pvt-enrich-{}", self.id),
            transactional_id: Some(format!("pvt-enrich-{}", self.id)),
            batch_max_messages: 100,
            batch_max_wait_ms: 100,
            secret_file: Some(self.dir.join("secret")),
            metrics_listen: None,
            ..EnrichConfig::default()
        }
    }

    /// The enricher a test expects: same secret, demo dictionary, default limits.
    pub fn enricher() -> pv_enrich::Enricher {
        let p = pv_enrich::Pseudonymiser::new(TEST_SECRET.as_bytes()).expect("secret");
        pv_enrich::Enricher::new(p, pv_coding::Coder::demo().expect("demo"), pv_events::Limits::default())
    }

    /// Starts an in-process enricher on its own thread.
    pub fn start_enricher(&self, cfg: EnrichConfig) -> RunningEnricher {
        self.start_enricher_with(cfg, Self::enricher())
    }

    /// Starts `enricher` (say, with other limits) in-process on its own thread.
    pub fn start_enricher_with(&self, cfg: EnrichConfig, enricher: pv_enrich::Enricher) -> RunningEnricher {
        let service = pv_enrich::EnrichService::new(cfg, self.kafka.clone(), enricher).expect("enricher");
        let metrics = service.metrics().clone();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let thread = std::thread::spawn(move || service.run(&s));
        RunningEnricher { shutdown, thread, metrics }
    }

    pub fn sink_config(&self) -> SinkConfig {
        SinkConfig {
            topics: vec![self.enriched_topic.clone()],
            group_id: format!("pvt-sink-{}", self.id),
            dlq_topic: self.dlq_topic.clone(),
            batch_max_messages: 1000,
            batch_max_wait_ms: 200,
            buffer_max_messages: 3000,
            retry_initial_ms: 100,
            retry_max_ms: 1000,
            shutdown_timeout_ms: 10_000,
            metrics_listen: None,
            ..SinkConfig::default()
        }
    }

    /// Starts an in-process sink.
    pub fn start_sink(&self, cfg: SinkConfig) -> RunningSink {
        let sink = pv_sink::Sink::new(cfg, self.kafka.clone(), self.clickhouse.clone()).expect("sink");
        let metrics = sink.metrics().clone();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let task = tokio::spawn(async move { sink.run(s).await });
        RunningSink { shutdown, task, metrics }
    }

    /// The test's signal workflow topic.
    pub fn workflow_topic(&self) -> String {
        format!("pvt.{}.workflow", self.id)
    }

    /// Writes a pv config file for subprocess runs of the `pv` binary.
    pub fn write_config(&self, sink: &SinkConfig) -> PathBuf {
        let e = self.enrich_config();
        let enrich = format!(
            "\n[enrich]\ninput_topic = \"{}\"\noutput_topic = \"{}\"\nchangelog_topic = \"{}\"\ndlq_topic = \"{}\"\ngroup_id = \"{}\"\ntransactional_id = \"{}\"\nbatch_max_messages = {}\nbatch_max_wait_ms = {}\nsecret_file = \"{}\"\nmetrics_listen = \"127.0.0.1:0\"\n",
            e.input_topic,
            e.output_topic,
            e.changelog_topic,
            e.dlq_topic,
            e.group_id,
            e.transactional_id.unwrap_or_default(),
            e.batch_max_messages,
            e.batch_max_wait_ms,
            self.dir.join("secret").display(),
        );
        let path = self.dir.join("pv.toml");
        let text = format!(
            "[kafka]\nbootstrap_servers = \"{}\"\n\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{}\"\n\n[sink]\ntopics = [\"{}\"]\ngroup_id = \"{}\"\ndlq_topic = \"{}\"\nbatch_max_messages = {}\nbatch_max_wait_ms = {}\nretry_initial_ms = {}\nretry_max_ms = {}\nshutdown_timeout_ms = {}\nmetrics_listen = \"127.0.0.1:0\"\n",
            self.kafka.bootstrap_servers,
            self.clickhouse.url,
            self.clickhouse.database,
            sink.topics[0],
            sink.group_id,
            sink.dlq_topic,
            sink.batch_max_messages,
            sink.batch_max_wait_ms,
            sink.retry_initial_ms,
            sink.retry_max_ms,
            sink.shutdown_timeout_ms,
        );
        let dashboard = format!("\n[dashboard]\nworkflow_topic = \"{}\"\n", self.workflow_topic());
        std::fs::write(&path, text + &enrich + &dashboard).expect("write config");
        path
    }

    /// The test's database.
    pub fn db(&self) -> pv_store::Db {
        pv_store::Db::new(&self.clickhouse)
    }

    /// A producer to the test's broker (deliveries time out after `secs`).
    pub fn producer(&self, secs: u64) -> rdkafka::producer::FutureProducer {
        pv_runtime::kafka::producer_config(&self.kafka, Duration::from_secs(secs)).create().expect("producer")
    }

    /// The one number `sql` (a query over the store's `{tables}`) answers.
    pub async fn number(&self, sql: &str) -> u64 {
        self.db().sql(sql).fetch_one().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `SELECT count() FROM table [FINAL]`.
    pub async fn count(&self, table: &str, final_: bool) -> u64 {
        self.db().count(store_table(table), final_).await.expect("count")
    }

    /// Polls `SELECT count()` until it reaches `want` (panics after `timeout`).
    pub async fn wait_for_count(&self, table: &str, final_: bool, want: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.count(table, final_).await;
            if n >= want {
                assert_eq!(n, want, "{table}: more rows than expected");
                return;
            }
            assert!(Instant::now() < deadline, "{table}: {n} rows after {timeout:?}, want {want}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until every distinct event of each kind in `events` is stored (`FINAL`), each
    /// table within `wait` (panics otherwise, or on more rows than events).
    pub async fn wait_for_all(&self, events: &[pv_events::ClinicEvent], wait: Duration) {
        let [doses, forms, reports, enrolments] = distinct(events);
        self.wait_for_count("doses", true, doses, wait).await;
        self.wait_for_count("monitoring_forms", true, forms, wait).await;
        self.wait_for_count("ae_report_versions", true, reports, wait).await;
        self.wait_for_count("enrolments", true, enrolments, wait).await;
    }

    /// Total messages on a topic (sum of high watermarks; topics start empty).
    pub fn topic_messages(&self, topic: &str) -> i64 {
        let consumer: BaseConsumer =
            pv_runtime::kafka::consumer_config(&self.kafka, &format!("pvt-peek-{}", self.id))
                .create()
                .expect("consumer");
        let timeout = Duration::from_secs(10);
        pv_runtime::kafka::topics::partitions(consumer.client(), topic, timeout)
            .expect("partitions")
            .into_iter()
            .map(|p| consumer.fetch_watermarks(topic, p, timeout).expect("watermarks").1)
            .sum()
    }

    /// Drops the test's topics and database.
    pub async fn cleanup(self) {
        let topics = [
            &self.raw_topic,
            &self.raw_dlq_topic,
            &self.enriched_topic,
            &self.dlq_topic,
            &self.state_topic,
            &self.signals_topic,
            &self.workflow_topic(),
        ];
        let names: Vec<&str> = topics.iter().map(|t| t.as_str()).collect();
        let _ = pv_runtime::kafka::delete_topics(&self.kafka, &names).await;
        let server = pv_runtime::clickhouse::server_client(&self.clickhouse);
        let _ =
            server.query(&format!("DROP DATABASE IF EXISTS {}", self.clickhouse.database)).execute().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct RunningGateway {
    pub url: String,
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningGateway {
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("gateway stopped cleanly");
    }
}

pub struct RunningEnricher {
    pub shutdown: Shutdown,
    pub thread: std::thread::JoinHandle<Result<(), pv_enrich::SessionError>>,
    pub metrics: pv_enrich::metrics::EnrichMetrics,
}

impl RunningEnricher {
    /// Enriched events this instance produced (committed or not).
    pub fn enriched(&self) -> u64 {
        ["dose", "monitoring", "adverse_event", "enrolment"]
            .iter()
            .map(|k| self.metrics.enriched.with_label_values(&[k]).get())
            .sum()
    }
}

impl RunningEnricher {
    pub async fn stop(self) {
        self.shutdown.trigger();
        let result = tokio::task::spawn_blocking(move || self.thread.join()).await.expect("join");
        result.expect("enricher thread").expect("enricher stopped cleanly");
    }
}

pub struct RunningSink {
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub metrics: pv_sink::metrics::SinkMetrics,
}

impl RunningSink {
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("sink stopped cleanly");
    }
}

/// A simulated clinic stream of `clinics` x `patients_per_clinic` over `days`, without
/// re-submitted copies (the tests count each event's output exactly once), each event accepted
/// an hour after its own time.
pub fn simulated_stream(clinics: u32, patients_per_clinic: u32, days: u32) -> Vec<pv_events::ClinicEvent> {
    let cfg = pv_simulate::SimConfig {
        clinics,
        patients_per_clinic,
        days,
        duplicate_rate: 0.0,
        ..Default::default()
    };
    let mut events = pv_simulate::generate(&cfg).events;
    for e in &mut events {
        let t = pv_simulate::event_time(e);
        e.set_received_at(pv_events::Timestamp::from_millis(t.millis() + 3_600_000));
    }
    events
}

/// The store's table called `name`.
pub fn store_table(name: &str) -> &'static dyn pv_store::Schema {
    *pv_store::TABLES.iter().find(|t| t.name() == name).unwrap_or_else(|| panic!("no table {name}"))
}

/// A private ClickHouse or broker for a test that kills it (see `pv_bench::servers`).
pub fn own_server(kind: pv_bench::servers::Kind, name: &str) -> pv_bench::servers::OwnServer {
    pv_bench::servers::OwnServer::start(kind, name, Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("starting a private server (deploy/local/install.sh done?)")
}

/// Sends SIGTERM to a `pv` service and expects a clean exit (status 0) within `within`.
pub async fn terminate(child: &mut tokio::process::Child, within: Duration) {
    let pid = child.id().expect("running");
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let status = tokio::time::timeout(within, child.wait()).await.expect("stops in time").expect("wait");
    assert!(status.success(), "graceful stop exits 0, got {status}");
}

/// Runs `pv --config CONFIG ARGS...` to its end.
pub async fn run_pv(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(pv_binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .expect("pv runs")
}

/// Path of the `pv` binary built for these tests.
pub fn pv_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pv"))
}

pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// POSTs `body` to the gateway as `clinic`'s token (or `token` if given).
pub async fn post(
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/v1/events"))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, headers, json)
}

pub fn token(clinic: &str) -> &'static str {
    CLINICS.iter().find(|(c, _)| *c == clinic).map(|(_, t)| *t).expect("known clinic")
}

/// One message read back from a topic.
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Every committed message of `topic`, per partition in offset order (reads to the end).
pub fn read_topic(kafka: &KafkaConfig, topic: &str) -> Vec<Read> {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    let reader = PartitionReader::new(kafka, "pvt-reader").expect("reader");
    let mut out = Vec::new();
    reader
        .read_all(topic, Duration::from_secs(60), |m| {
            let headers = m.headers().map(|h| {
                h.iter()
                    .map(|x| {
                        (x.key.to_owned(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())
                    })
                    .collect()
            });
            out.push(Read {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers: headers.unwrap_or_default(),
            });
            std::ops::ControlFlow::Continue(())
        })
        .unwrap_or_else(|e| panic!("reading {topic} to its end: {e}"));
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// Produces `events` to the raw topic as the gateway would (key = clinic/patient).
/// Distinct event ids of each kind: doses, monitoring forms, report versions, enrolments (what
/// the FINAL tables hold once everything arrived).
pub fn distinct(events: &[pv_events::ClinicEvent]) -> [u64; 4] {
    use pv_events::ClinicEvent;
    let mut seen = [
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    ];
    for e in events {
        let i = match e {
            ClinicEvent::DoseAdministered(_) => 0,
            ClinicEvent::SessionMonitoring(_) => 1,
            ClinicEvent::AdverseEventReport(_) => 2,
            ClinicEvent::PatientEnrolment(_) => 3,
        };
        seen[i].insert(e.event_id());
    }
    seen.map(|s| s.len() as u64)
}

/// Sends `events` to the raw topic as the gateway would accept them now (the enricher rejects
/// events from the future), runs the enricher and the sink until every distinct event of each
/// kind is stored, and stops them.
pub async fn through_pipeline(env: &TestEnv, events: &mut [pv_events::ClinicEvent]) {
    let all = events.to_vec();
    arrive(env, events, &all).await;
}

/// Like [`through_pipeline`] when the store already holds other events: sends `events` as
/// accepted now and waits until the store holds every distinct event of `all` (those already
/// stored and these).
pub async fn arrive(env: &TestEnv, events: &mut [pv_events::ClinicEvent], all: &[pv_events::ClinicEvent]) {
    let now = pv_events::Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    for e in events.iter_mut() {
        e.set_received_at(now);
    }
    produce_raw(&env.kafka, &env.raw_topic, events).await;
    let enricher =
        env.start_enricher(pv_enrich::EnrichConfig { batch_max_messages: 5_000, ..env.enrich_config() });
    let sink = env.start_sink(pv_sink::SinkConfig {
        batch_max_messages: 10_000,
        buffer_max_messages: 30_000,
        ..env.sink_config()
    });
    env.wait_for_all(all, Duration::from_secs(240)).await;
    enricher.stop().await;
    sink.stop().await;
}

pub async fn produce_raw(kafka: &KafkaConfig, topic: &str, events: &[pv_events::ClinicEvent]) {
    let producer = DurableProducer::new(kafka, topic, Duration::from_secs(10)).expect("producer");
    pv_gateway::produce::send_events(&producer, events, None).await.expect("acked");
}

/// Waits until `topic` holds at least `n` committed messages.
pub async fn wait_for_messages(kafka: &KafkaConfig, topic: &str, n: usize, timeout: Duration) -> Vec<Read> {
    let deadline = Instant::now() + timeout;
    loop {
        let (k, t) = (kafka.clone(), topic.to_owned());
        let read = tokio::task::spawn_blocking(move || read_topic(&k, &t)).await.expect("read");
        if read.len() >= n || Instant::now() > deadline {
            return read;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
