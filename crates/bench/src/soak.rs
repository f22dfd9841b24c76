//! The soak run: a million events offered to the raw topic at a fixed rate while the enricher
//! and the sink run, with faults injected on a schedule — the sink and the enricher killed by
//! SIGKILL, ClickHouse killed and restarted, the broker restarted — on private servers
//! ([`crate::servers`]) that nothing else uses. At the end every event is looked up in the
//! deduplicated tables: sent, found, missing, counted twice.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pv_events::{ClinicEvent, EventId, Timestamp};
use pv_gateway::produce::send_events;
use pv_runtime::KafkaConfig;
use pv_runtime::kafka::DurableProducer;
use pv_simulate::Harms;
use pv_store::Db;
use pv_store::events::EVENT_TABLES;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::env::BenchEnv;
use crate::servers::{Kind, OwnServer};

/// One injected fault and how long the pipeline took to make progress again.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// What was done.
    pub fault: &'static str,
    /// When, after the feed started.
    pub at: Duration,
    /// Messages not yet stored (enricher + sink lag) when it struck.
    pub backlog: i64,
    /// From the end of the fault (process restarted, server back) until the affected stage
    /// committed new progress.
    pub recovery: Duration,
}

/// What the soak run measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Events produced (including the simulator's re-submitted copies).
    pub sent: u64,
    /// Distinct events among them (the number that must be found).
    pub distinct: u64,
    /// Distinct events found in the tables.
    pub found: u64,
    /// Events counted more than once by `FINAL` queries.
    pub counted_twice: u64,
    /// Rows physically stored beyond one per event (re-deliveries the tables absorb).
    pub absorbed_copies: u64,
    /// Messages in the dead-letter topics.
    pub dead_letters: i64,
    /// Rate the feed achieved, events/s.
    pub offered_per_s: f64,
    /// Time from the first event sent to the last one stored.
    pub total: Duration,
    /// The faults, in order.
    pub faults: Vec<FaultReport>,
    /// Peak resident memory of the last enricher and sink processes (started at the enricher
    /// and sink faults, so they lived through the ClickHouse outage and the broker restart).
    pub peak_rss: (u64, u64),
}

impl SoakReport {
    /// Distinct events not found.
    pub fn missing(&self) -> u64 {
        self.distinct.saturating_sub(self.found)
    }

    /// Events stored per second over the whole run, faults included.
    pub fn throughput(&self) -> f64 {
        self.distinct as f64 / self.total.as_secs_f64()
    }
}

/// Runs the soak: `events` events offered at `rate` events/s; `repo` is the repository root
/// (for `deploy/local/start.sh`), `pv` the binary that runs the services.
pub async fn soak(repo: &Path, pv: std::path::PathBuf, events: u64, rate: f64) -> anyhow::Result<SoakReport> {
    let r = repo.to_owned();
    let (ch, kafka) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok((
            OwnServer::start(Kind::ClickHouse, "soak-ch", &r)?,
            OwnServer::start(Kind::Kafka, "soak-kafka", &r)?,
        ))
    })
    .await??;
    let kafka_cfg = KafkaConfig { bootstrap_servers: kafka.address(), ..KafkaConfig::default() };
    let env = BenchEnv::new(kafka_cfg, &ch.address(), pv, 0).await?;
    tracing::info!(dir = %env.dir.display(), clickhouse = %ch.address(), kafka = %kafka.address(), "soak: private servers up");

    // The feed: a base stream replayed as new patients until `events` are sent.
    let (base, _) = crate::stream(17, 10, 400, Harms::default());
    let mut feed: Vec<(u32, usize)> = Vec::new(); // (pass, chunk start)
    let mut distinct: HashSet<EventId> = HashSet::new();
    let mut planned = 0u64;
    'plan: for pass in 1.. {
        for start in (0..base.len()).step_by(1000) {
            let end = (start + 1000).min(base.len());
            for e in &base[start..end] {
                distinct.insert(crate::replay_copy(e, pass).event_id());
            }
            feed.push((pass, start));
            planned += (end - start) as u64;
            if planned >= events {
                break 'plan;
            }
        }
    }
    let distinct = distinct.len() as u64;

    let enrich = env.start("enrich").await?;
    let sink = env.start("sink").await?;
    let producer = Arc::new(DurableProducer::new(&env.kafka, &env.topic("raw"), Duration::from_secs(300))?);
    let base = Arc::new(base);
    let started = Instant::now();
    let feeding = {
        let (producer, base) = (producer.clone(), base.clone());
        tokio::spawn(async move {
            let in_flight = Arc::new(tokio::sync::Semaphore::new(8));
            let mut tasks = tokio::task::JoinSet::new();
            let mut sent = 0u64;
            for (pass, start) in feed {
                let due = started + Duration::from_secs_f64(sent as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let now = Timestamp::now();
                let chunk: Vec<ClinicEvent> = base[start..(start + 1000).min(base.len())]
                    .iter()
                    .map(|e| {
                        let mut c = crate::replay_copy(e, pass);
                        c.set_received_at(now);
                        c
                    })
                    .collect();
                sent += chunk.len() as u64;
                let permit = in_flight.clone().acquire_owned().await?;
                let producer = producer.clone();
                tasks.spawn(async move {
                    let result = send_events(&producer, &chunk, None).await;
                    drop(permit);
                    result
                });
            }
            let offered = sent as f64 / started.elapsed().as_secs_f64();
            while let Some(done) = tasks.join_next().await {
                done?.context("feeding the raw topic")?;
            }
            anyhow::Ok((sent, offered))
        })
    };

    let mut faults = Vec::new();
    let rows = |env: &BenchEnv| physical_rows(env.db());
    // 1. The sink killed mid-batch and restarted at once.
    wait_until(started + Duration::from_secs(5)).await;
    let (sink, fault) = kill_and_restart(&env, sink, &format!("pvb-sink-{}", env.id), "enriched").await?;
    faults.push(report("sink SIGKILL, restarted", fault, started));

    // 2. The enricher killed mid-transaction and restarted at once.
    wait_until(started + Duration::from_secs(15)).await;
    let group = format!("pvb-enrich-{}", env.id);
    let (enrich, fault) = kill_and_restart(&env, enrich, &group, "raw").await?;
    faults.push(report("enricher SIGKILL, restarted", fault, started));
    let (mut enrich, mut sink) = (enrich, sink);

    // 3. ClickHouse killed, back after 10 s.
    wait_until(started + Duration::from_secs(25)).await;
    let backlog = env.total_lag().await?;
    let ch = tokio::task::spawn_blocking(move || ch.stop("KILL").map(|()| ch)).await??;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let ch = tokio::task::spawn_blocking(move || ch.up().map(|()| ch)).await??;
    let restarted = Instant::now();
    let before = rows(&env).await?;
    progress(|| async { Ok(rows(&env).await? > before) }).await.context("recovery after ClickHouse")?;
    faults.push(report(
        "ClickHouse SIGKILL, down 10 s, restarted",
        Recovered { backlog, restarted },
        started,
    ));

    // 4. The broker stopped (SIGTERM) and started again on its data.
    wait_until(started + Duration::from_secs(45)).await;
    let backlog = env.total_lag().await?;
    let kafka = tokio::task::spawn_blocking(move || {
        kafka.stop("TERM")?;
        kafka.up()?;
        anyhow::Ok(kafka)
    })
    .await??;
    let restarted = Instant::now();
    // Positions as the broker comes back (the clients still have to reconnect and rejoin).
    let deadline = Instant::now() + Duration::from_secs(120);
    let (before, rows_before) = loop {
        match (committed(&env.kafka, &group, &env.topic("raw")).await, rows(&env).await) {
            (Ok(c), Ok(r)) => break (c, r),
            _ => anyhow::ensure!(Instant::now() < deadline, "the broker does not answer after its restart"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Both stages move again (or, if the stream was through, the broker answers with no lag).
    progress(|| async {
        Ok((committed(&env.kafka, &group, &env.topic("raw")).await? > before
            && rows(&env).await? > rows_before)
            || env.total_lag().await? == 0)
    })
    .await
    .context("recovery after the broker restart")?;
    faults.push(report("broker SIGTERM, restarted", Recovered { backlog, restarted }, started));

    let (sent, offered_per_s) = feeding.await??;
    env.wait_drained(Duration::from_secs(3600)).await?;
    let found_deadline = Instant::now() + Duration::from_secs(300);
    let (found, counted_twice, absorbed_copies) = loop {
        let (found, twice, copies) = counts(&env.db()).await?;
        if found >= distinct || Instant::now() > found_deadline {
            break (found, twice, copies);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let total = started.elapsed();
    for (name, service) in [("enrich", &mut enrich), ("sink", &mut sink)] {
        anyhow::ensure!(service.running(), "pv {name} exited on its own; see {}", env.dir.display());
    }
    let peak_rss = (enrich.peak_rss().unwrap_or(0), sink.peak_rss().unwrap_or(0));
    sink.stop().await?;
    enrich.stop().await?;
    let dead_letters = dead_letters(&env).await?;
    env.cleanup().await;
    drop((ch, kafka));
    Ok(SoakReport {
        sent,
        distinct,
        found,
        counted_twice,
        absorbed_copies,
        dead_letters,
        offered_per_s,
        total,
        faults,
        peak_rss,
    })
}

/// A fault waited out: the backlog when it struck, and when the process or server was back.
struct Recovered {
    backlog: i64,
    restarted: Instant,
}

/// The report of `fault`, recovered from just now.
fn report(fault: &'static str, r: Recovered, started: Instant) -> FaultReport {
    let recovery = r.restarted.elapsed();
    let at = r.restarted - started;
    tracing::info!(
        fault,
        at_s = at.as_secs_f64(),
        backlog = r.backlog,
        recovery_s = recovery.as_secs_f64(),
        "soak: recovered"
    );
    FaultReport { fault, at, backlog: r.backlog, recovery }
}

/// Kills `service` with SIGKILL, starts it again at once, and waits until its consumer `group`
/// commits on the run's `topic` past what the killed instance had committed.
async fn kill_and_restart(
    env: &BenchEnv,
    service: crate::env::Service,
    group: &str,
    topic: &str,
) -> anyhow::Result<(crate::env::Service, Recovered)> {
    let backlog = env.total_lag().await?;
    let name = service.name;
    service.kill().await?;
    // What the killed instance committed (its last commit may land just before it dies).
    let before = committed(&env.kafka, group, &env.topic(topic)).await?;
    let service = env.start(name).await?;
    let restarted = Instant::now();
    progress(|| async { Ok(committed(&env.kafka, group, &env.topic(topic)).await? > before) })
        .await
        .with_context(|| format!("{name} recovery"))?;
    Ok((service, Recovered { backlog, restarted }))
}

async fn wait_until(t: Instant) {
    tokio::time::sleep_until(t.into()).await;
}

/// Polls `check` every 100 ms until it holds (at most 5 minutes).
async fn progress<F, Fut>(mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // A server that is coming back answers with errors for a moment: keep polling.
        if matches!(check().await, Ok(true)) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "no progress within 5 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rows physically stored in the event tables (copies included).
async fn physical_rows(db: Db) -> anyhow::Result<u64> {
    let mut n = 0;
    for table in EVENT_TABLES {
        n += db.count(table, false).await?;
    }
    Ok(n)
}

/// (distinct events found, events counted twice by FINAL, physical copies beyond one per event).
async fn counts(db: &Db) -> anyhow::Result<(u64, u64, u64)> {
    let (mut found, mut twice, mut copies) = (0, 0, 0);
    for table in EVENT_TABLES {
        let (final_rows, distinct): (u64, u64) = db
            .sql("SELECT count(), uniqExact(event_id) FROM {t} FINAL")
            .table("t", table)
            .fetch_one()
            .await?;
        let physical = db.count(table, false).await?;
        found += distinct;
        twice += final_rows - distinct;
        copies += physical.saturating_sub(final_rows);
    }
    Ok((found, twice, copies))
}

/// Sum of the offsets `group` committed on `topic`.
async fn committed(kafka: &KafkaConfig, group: &str, topic: &str) -> anyhow::Result<i64> {
    let (kafka, group, topic) = (kafka.clone(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        // read_uncommitted: otherwise librdkafka asks for stable offsets only (KIP-447) and the
        // broker keeps answering "unstable" while the enricher has a transaction open.
        let mut cfg = pv_runtime::kafka::consumer_config(&kafka, &group);
        cfg.set("isolation.level", "read_uncommitted");
        let consumer: BaseConsumer = cfg.create()?;
        let timeout = Duration::from_secs(5);
        let md = consumer.fetch_metadata(Some(&topic), timeout)?;
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition(&topic, p.id());
            }
        }
        let committed = consumer.committed_offsets(tpl, timeout)?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum())
    })
    .await?
}

async fn dead_letters(env: &BenchEnv) -> anyhow::Result<i64> {
    let mut n = 0;
    for t in ["raw-dlq", "enriched-dlq"] {
        let (kafka, topic) = (env.kafka.clone(), env.topic(t));
        n += tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
            let consumer: BaseConsumer =
                pv_runtime::kafka::consumer_config(&kafka, "pvb-dlq-count").create()?;
            let (low, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(5))?;
            Ok(high - low)
        })
        .await??;
    }
    Ok(n)
}
