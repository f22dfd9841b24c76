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

use pv_gateway::GatewayConfig;
use pv_gateway::auth::{ClinicEntry, ClinicTokens, hash_token};
use pv_runtime::kafka::TopicSpec;
use pv_runtime::{ClickHouseConfig, KafkaConfig, Shutdown};
use pv_sink::SinkConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::util::Timeout;

/// Clinics and tokens every test gateway knows.
pub const CLINICS: &[(&str, &str)] =
    &[("clinic-north", "token-north-0123456789"), ("clinic-south", "token-south-9876543210")];

/// One test's private slice of the servers.
pub struct TestEnv {
    pub id: String,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub raw_topic: String,
    pub dlq_topic: String,
    pub dir: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestEnv {
    /// Creates topics (3 partitions) and a migrated database named after the test.
    pub async fn new(name: &str) -> TestEnv {
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
        let kafka = KafkaConfig {
            bootstrap_servers: std::env::var("PV_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into()),
            ..KafkaConfig::default()
        };
        let clickhouse = ClickHouseConfig {
            url: std::env::var("PV_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into()),
            database: format!("pvt_{id}"),
            ..ClickHouseConfig::default()
        };
        let raw_topic = format!("pvt.{id}.raw");
        let dlq_topic = format!("pvt.{id}.dlq");
        let topics = [
            TopicSpec { name: raw_topic.clone(), partitions: 3, configs: vec![] },
            TopicSpec { name: dlq_topic.clone(), partitions: 1, configs: vec![] },
        ];
        pv_runtime::kafka::ensure_topics(&kafka, &topics)
            .await
            .expect("creating test topics (is the broker up? deploy/local/start.sh)");
        pv_sink::migrate(&clickhouse)
            .await
            .expect("migrating the test database (is ClickHouse up? deploy/local/start.sh)");
        let dir = std::env::temp_dir().join(format!("pv-test-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TestEnv { id, kafka, clickhouse, raw_topic, dlq_topic, dir }
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

    pub fn sink_config(&self) -> SinkConfig {
        SinkConfig {
            topics: vec![self.raw_topic.clone()],
            group_id: format!("pvt-sink-{}", self.id),
            dlq_topic: self.dlq_topic.clone(),
            batch_max_messages: 1000,
            batch_max_wait_ms: 200,
            retry_initial_ms: 100,
            retry_max_ms: 1000,
            metrics_listen: None,
        }
    }

    /// Starts an in-process sink.
    pub fn start_sink(&self, cfg: SinkConfig) -> RunningSink {
        let sink = pv_sink::Sink::new(cfg, self.kafka.clone(), self.clickhouse.clone()).expect("sink");
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let task = tokio::spawn(async move { sink.run(s).await });
        RunningSink { shutdown, task }
    }

    /// Writes a pv config file for subprocess runs of the `pv` binary.
    pub fn write_config(&self, sink: &SinkConfig) -> PathBuf {
        let path = self.dir.join("pv.toml");
        let text = format!(
            "[kafka]\nbootstrap_servers = \"{}\"\n\n[clickhouse]\nurl = \"{}\"\ndatabase = \"{}\"\n\n[sink]\ntopics = [\"{}\"]\ngroup_id = \"{}\"\ndlq_topic = \"{}\"\nbatch_max_messages = {}\nbatch_max_wait_ms = {}\nretry_initial_ms = {}\nretry_max_ms = {}\nmetrics_listen = \"127.0.0.1:0\"\n",
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
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    pub fn clickhouse(&self) -> clickhouse::Client {
        pv_runtime::clickhouse::client(&self.clickhouse)
    }

    /// `SELECT count() FROM table [FINAL]`.
    pub async fn count(&self, table: &str, final_: bool) -> u64 {
        let q = format!("SELECT count() FROM {table}{}", if final_ { " FINAL" } else { "" });
        self.clickhouse().query(&q).fetch_one::<u64>().await.expect("count")
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

    /// Total messages on a topic (sum of high watermarks; topics start empty).
    pub fn topic_messages(&self, topic: &str) -> i64 {
        let consumer: BaseConsumer =
            pv_runtime::kafka::consumer_config(&self.kafka, &format!("pvt-peek-{}", self.id))
                .create()
                .expect("consumer");
        let md =
            consumer.fetch_metadata(Some(topic), Timeout::After(Duration::from_secs(10))).expect("metadata");
        let partitions = md.topics()[0].partitions().len() as i32;
        (0..partitions)
            .map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks").1)
            .sum()
    }

    /// Drops the test's topics and database.
    pub async fn cleanup(self) {
        let _ = pv_runtime::kafka::delete_topics(&self.kafka, &[&self.raw_topic, &self.dlq_topic]).await;
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

pub struct RunningSink {
    pub shutdown: Shutdown,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningSink {
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("sink stopped cleanly");
    }
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
