//! A private slice of the local servers for one benchmark run: its own topics, consumer groups,
//! database, clinics and secret, and the pv services as child processes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pv_runtime::kafka::TopicSpec;
use pv_runtime::{ClickHouseConfig, KafkaConfig};

/// One run's topics, database and files.
#[derive(Debug)]
pub struct BenchEnv {
    /// Unique id of the run.
    pub id: String,
    /// Broker.
    pub kafka: KafkaConfig,
    /// ClickHouse (its database is the run's own).
    pub clickhouse: ClickHouseConfig,
    /// Folder with the run's config, clinics, secret and service logs.
    pub dir: PathBuf,
    /// The pv binary to run services with.
    pub pv: PathBuf,
    /// Clinic id -> token.
    pub tokens: std::collections::BTreeMap<String, String>,
    /// The gateway's address.
    pub gateway_url: String,
}

/// A pv service running as a child process.
#[derive(Debug)]
pub struct Service {
    /// Its name (`gateway`, `enrich`, `sink`).
    pub name: &'static str,
    child: tokio::process::Child,
}

impl Service {
    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Kills it with SIGKILL (no chance to flush or commit) and waits until it is gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Whether it still runs (it has not exited on its own).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it with SIGTERM and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await??;
        anyhow::ensure!(status.success(), "pv {} exited with {status}", self.name);
        Ok(())
    }
}

impl BenchEnv {
    /// Creates the run's topics and database and writes its config.
    pub async fn new(
        kafka: KafkaConfig,
        clickhouse_url: &str,
        pv: PathBuf,
        gateway_port: u16,
    ) -> anyhow::Result<Self> {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}_{}_{run}", chrono::Utc::now().format("%H%M%S"), std::process::id());
        let dir = std::env::temp_dir().join(format!("pv-bench-{id}"));
        std::fs::create_dir_all(&dir)?;
        let clickhouse = ClickHouseConfig {
            url: clickhouse_url.into(),
            database: format!("pvb_{id}"),
            ..ClickHouseConfig::default()
        };
        let mut env = Self {
            id,
            kafka,
            clickhouse,
            dir,
            pv,
            tokens: Default::default(),
            gateway_url: format!("http://127.0.0.1:{gateway_port}"),
        };
        let topics = [
            ("raw", 6, vec![]),
            ("raw-dlq", 1, vec![]),
            ("enriched", 6, vec![]),
            ("enriched-dlq", 1, vec![]),
            ("state", 6, vec![("cleanup.policy".to_string(), "compact".to_string())]),
            ("signals", 1, vec![]),
        ]
        .map(|(t, partitions, configs)| TopicSpec { name: env.topic(t), partitions, configs });
        pv_runtime::kafka::ensure_topics(&env.kafka, &topics).await.context("creating bench topics")?;
        env.write_files(gateway_port)?;
        // The database in the shape of the pv binary under test: its own migrations.
        let config = env.config_path().display().to_string();
        let out = tokio::process::Command::new(&env.pv)
            .args(["--config", &config, "migrate"])
            .output()
            .await
            .context("running pv migrate")?;
        anyhow::ensure!(out.status.success(), "pv migrate: {}", String::from_utf8_lossy(&out.stderr));
        Ok(env)
    }

    /// The run's name for topic `what`.
    pub fn topic(&self, what: &str) -> String {
        format!("pvb.{}.{what}", self.id)
    }

    fn write_files(&mut self, gateway_port: u16) -> anyhow::Result<()> {
        let mut clinics = String::new();
        for i in 1..=64 {
            let clinic = format!("clinic-{i:02}");
            let token = format!("bench-token-{}-{i}", self.id);
            clinics.push_str(&pv_gateway::auth::clinic_entry_toml(&clinic, &token));
            self.tokens.insert(clinic, token);
        }
        std::fs::write(self.dir.join("clinics.toml"), clinics)?;
        std::fs::write(self.dir.join("secret"), format!("bench-secret-{}-0123456789abcdef0123", self.id))?;
        let t = |w: &str| self.topic(w);
        let config = format!(
            r#"[kafka]
bootstrap_servers = "{kafka}"

[clickhouse]
url = "{ch}"
database = "{db}"

[gateway]
listen = "127.0.0.1:{gateway_port}"
admin_listen = "127.0.0.1:0"
# The benchmarks measure the gateway's capacity, not the per-clinic limit.
rate_per_clinic = 0.0
topic = "{raw}"
clinics_file = "{dir}/clinics.toml"

[enrich]
input_topic = "{raw}"
output_topic = "{enriched}"
changelog_topic = "{state}"
dlq_topic = "{raw_dlq}"
group_id = "pvb-enrich-{id}"
transactional_id = "pvb-enrich-{id}"
secret_file = "{dir}/secret"
metrics_listen = "127.0.0.1:0"

[sink]
topics = ["{enriched}"]
group_id = "pvb-sink-{id}"
dlq_topic = "{enriched_dlq}"
metrics_listen = "127.0.0.1:0"
"#,
            kafka = self.kafka.bootstrap_servers,
            ch = self.clickhouse.url,
            db = self.clickhouse.database,
            raw = t("raw"),
            enriched = t("enriched"),
            state = t("state"),
            raw_dlq = t("raw-dlq"),
            enriched_dlq = t("enriched-dlq"),
            id = self.id,
            dir = self.dir.display(),
        );
        std::fs::write(self.config_path(), config)?;
        Ok(())
    }

    /// The run's pv config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("pv.toml")
    }

    /// Starts `pv <name>` with the run's config (log in the run folder); for the gateway, waits
    /// until it is ready.
    pub async fn start(&self, name: &'static str) -> anyhow::Result<Service> {
        // Appending: a restarted service continues the log of the one it replaces.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))?;
        let child = tokio::process::Command::new(&self.pv)
            .args(["--config", &self.config_path().display().to_string(), name])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting pv {name}"))?;
        let service = Service { name, child };
        if name == "gateway" {
            let url = format!("{}/readyz", self.gateway_url);
            let deadline = Instant::now() + Duration::from_secs(30);
            while reqwest_ready(&url).await.is_err() {
                anyhow::ensure!(Instant::now() < deadline, "gateway not ready; see {}", self.dir.display());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(service)
    }

    /// Waits until the enricher and the sink have committed everything (consumer lag 0);
    /// returns the time until each was done.
    pub async fn wait_drained(&self, timeout: Duration) -> anyhow::Result<(Duration, Duration)> {
        let started = Instant::now();
        self.wait_group("enrich", timeout).await?;
        let enriched = started.elapsed();
        self.wait_group("sink", timeout).await?;
        Ok((enriched, started.elapsed()))
    }

    /// Messages the enricher and the sink have yet to commit, together.
    pub async fn total_lag(&self) -> anyhow::Result<i64> {
        let mut total = 0;
        for (group, topic) in [
            (format!("pvb-enrich-{}", self.id), self.topic("raw")),
            (format!("pvb-sink-{}", self.id), self.topic("enriched")),
        ] {
            let k = self.kafka.clone();
            total += tokio::task::spawn_blocking(move || {
                pv_runtime::kafka::group_lag(&k, &group, &[topic.as_str()], Duration::from_secs(10))
            })
            .await??;
        }
        Ok(total)
    }

    /// Waits until the `enrich` or `sink` consumer group has committed everything on its input.
    pub async fn wait_group(&self, stage: &str, timeout: Duration) -> anyhow::Result<()> {
        let (group, topic) = match stage {
            "enrich" => (format!("pvb-enrich-{}", self.id), self.topic("raw")),
            _ => (format!("pvb-sink-{}", self.id), self.topic("enriched")),
        };
        let started = Instant::now();
        loop {
            let (k, g, t) = (self.kafka.clone(), group.clone(), topic.clone());
            let lag = tokio::task::spawn_blocking(move || {
                pv_runtime::kafka::group_lag(&k, &g, &[t.as_str()], Duration::from_secs(10))
            })
            .await??;
            if lag == 0 {
                return Ok(());
            }
            anyhow::ensure!(started.elapsed() < timeout, "{group} still {lag} behind after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The run's database.
    pub fn db(&self) -> pv_store::Db {
        pv_store::Db::new(&self.clickhouse)
    }

    /// Deletes the run's topics, database and folder (the folder stays when `PVB_KEEP_LOGS` is
    /// set, the database when `PVB_KEEP_DB` is).
    pub async fn cleanup(self) {
        let names: Vec<String> = ["raw", "raw-dlq", "enriched", "enriched-dlq", "state", "signals"]
            .map(|t| self.topic(t))
            .to_vec();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let _ = pv_runtime::kafka::delete_topics(&self.kafka, &refs).await;
        if std::env::var_os("PVB_KEEP_DB").is_none() {
            let server = pv_runtime::clickhouse::server_client(&self.clickhouse);
            let _ = server
                .query(&format!("DROP DATABASE IF EXISTS {}", self.clickhouse.database))
                .execute()
                .await;
        }
        if std::env::var_os("PVB_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn reqwest_ready(url: &str) -> anyhow::Result<()> {
    let resp = reqwest::get(url).await?;
    anyhow::ensure!(resp.status().is_success(), "not ready: {}", resp.status());
    Ok(())
}

/// CPU seconds (user + system) a process has used, from /proc (0 if unreadable).
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// CPU seconds a process has used in user space and in the kernel, from /proc (0 if unreadable).
pub fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// The pids of the local Kafka broker and ClickHouse server, found by their command lines.
pub fn server_pids() -> Vec<(&'static str, u32)> {
    let mut out = Vec::new();
    for (name, pattern) in [("kafka", "kafka.Kafka"), ("clickhouse", "clickhouse-server")] {
        let found = std::process::Command::new("pgrep").args(["-f", pattern]).output();
        if let Ok(o) = found
            && let Some(pid) =
                String::from_utf8_lossy(&o.stdout).lines().next().and_then(|l| l.trim().parse().ok())
        {
            out.push((name, pid));
        }
    }
    out
}
