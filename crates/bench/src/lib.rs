//! The benchmark harness: runs the pipeline's services on the local servers (each run in its own
//! topics and database) and measures what the product promises. `pv-bench --help` lists the
//! scenarios; results print as lines ready for BENCHMARKS.md.

pub mod detection;
pub mod env;
pub mod meter;
pub mod servers;
pub mod signals;
pub mod soak;
pub mod workbench;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pv_events::{ClinicEvent, Timestamp};
use pv_gateway::produce::send_events;
use pv_runtime::kafka::DurableProducer;
use pv_simulate::{Harms, Pacing, SimConfig, generate, send_by_clinic};

pub use env::{BenchEnv, Service};
pub use meter::{Meter, Usage};

/// Where the servers are and which pv binary runs the services.
#[derive(Debug, Clone)]
pub struct Servers {
    /// Broker.
    pub kafka: pv_runtime::KafkaConfig,
    /// ClickHouse HTTP URL.
    pub clickhouse_url: String,
    /// The pv binary.
    pub pv: std::path::PathBuf,
    /// Port for the bench gateway.
    pub gateway_port: u16,
}

impl Servers {
    /// A fresh environment for one run.
    pub async fn env(&self) -> anyhow::Result<BenchEnv> {
        BenchEnv::new(self.kafka.clone(), &self.clickhouse_url, self.pv.clone(), self.gateway_port).await
    }
}

/// Median of a sample, nearest rank (NaN for none).
pub fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// The `q` quantile of a sample, nearest rank (NaN for none).
pub fn percentile(v: &[f64], q: f64) -> f64 {
    pv_stats::quantile::nearest_rank(v, q)
}

/// A simulated stream of about `clinics * patients * 28` events, stamped as not yet received.
pub fn stream(
    seed: u64,
    clinics: u32,
    patients: u32,
    harms: Harms,
) -> (Vec<ClinicEvent>, pv_simulate::GroundTruth) {
    let end = chrono::Utc::now().date_naive();
    let cfg = SimConfig {
        seed,
        clinics,
        patients_per_clinic: patients,
        start: end - chrono::Duration::days(180),
        days: 180,
        harms,
        ..SimConfig::default()
    };
    let sim = generate(&cfg);
    (sim.events, sim.truth)
}

/// Gateway ingest: events accepted and durable per second, `batch` events per request, one
/// concurrent sender per clinic.
pub async fn gateway_ingest(
    env: &BenchEnv,
    seed: u64,
    batch: usize,
    clinics: u32,
    patients: u32,
) -> anyhow::Result<f64> {
    let (events, _) = stream(seed, clinics, patients, Harms::default());
    let pacing = Pacing { batch_size: batch, rate: None, progress: false };
    let sender = pv_simulate::gateway_sender(&env.gateway_url, env.tokens.clone())?;
    let report = send_by_clinic(events, pacing, sender).await?;
    Ok(report.accepted as f64 / report.elapsed.as_secs_f64())
}

/// Produces `events` straight to the run's raw topic (as the gateway would); returns events/s.
pub async fn preload(env: &BenchEnv, events: Vec<ClinicEvent>) -> anyhow::Result<f64> {
    let producer = Arc::new(DurableProducer::new(&env.kafka, &env.topic("raw"), Duration::from_secs(30))?);
    let n = events.len();
    let started = Instant::now();
    let mut events = events;
    let now = Timestamp::now();
    for e in &mut events {
        e.set_received_at(now);
    }
    for chunk in events.chunks(10_000) {
        send_events(&producer, chunk, None).await.context("preloading the raw topic")?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Raw topic -> rows in ClickHouse: preloads the stream, then starts the enricher and the sink
/// and times them to an empty backlog.
pub async fn pipeline_throughput(env: &BenchEnv, events: Vec<ClinicEvent>) -> anyhow::Result<PipelineReport> {
    let n = events.len() as f64;
    preload(env, events).await?;
    meter::quiet_clickhouse().await;
    let enrich = env.start("enrich").await?;
    let sink = env.start("sink").await?;
    let meter = Meter::start(&[&enrich, &sink], &env.clickhouse).await;
    let (enriched, stored) = env.wait_drained(Duration::from_secs(3600)).await?;
    let usage = meter.finish(n as u64, &env.clickhouse).await;
    let peak_rss = (enrich.peak_rss().unwrap_or(0), sink.peak_rss().unwrap_or(0));
    sink.stop().await?;
    enrich.stop().await?;
    Ok(PipelineReport {
        events: n as u64,
        enriched_per_s: n / enriched.as_secs_f64(),
        stored_per_s: n / stored.as_secs_f64(),
        peak_rss,
        usage,
    })
}

/// Each stage alone on the same backlog: the enricher to an empty raw backlog, then the sink to
/// an empty enriched backlog. Returns the enricher's and the sink's events/s, each with where the
/// cores went.
pub async fn stage_throughput(env: &BenchEnv, events: Vec<ClinicEvent>) -> anyhow::Result<[(f64, Usage); 2]> {
    let n = events.len() as u64;
    preload(env, events).await?;
    Ok([stage_alone(env, "enrich", n).await?, stage_alone(env, "sink", n).await?])
}

/// `stage` alone to an empty backlog of `n` events: events/s, and where the cores went.
async fn stage_alone(env: &BenchEnv, stage: &'static str, n: u64) -> anyhow::Result<(f64, Usage)> {
    meter::quiet_clickhouse().await;
    let started = Instant::now();
    let service = env.start(stage).await?;
    let meter = Meter::start(&[&service], &env.clickhouse).await;
    env.wait_group(stage, Duration::from_secs(3600)).await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let usage = meter.finish(n, &env.clickhouse).await;
    service.stop().await?;
    Ok((rate, usage))
}

/// What [`pipeline_throughput`] measured (both rates include start-up: group join, state load).
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// Events in the backlog.
    pub events: u64,
    /// Events/s until the enricher had committed all of them.
    pub enriched_per_s: f64,
    /// Events/s until the sink had stored all of them in ClickHouse.
    pub stored_per_s: f64,
    /// Peak RSS of enrich and sink, bytes.
    pub peak_rss: (u64, u64),
    /// Where the cores went until the sink was done (enrich, sink, kafka, clickhouse), and
    /// what ClickHouse did with the rows.
    pub usage: Usage,
}

/// End-to-end latency at a steady rate: gateway acceptance (`received_at`) to the row being
/// visible in ClickHouse, sampled by polling every 50 ms. Returns (p50 s, p99 s, achieved
/// events/s, peak RSS of gateway, enrich, sink).
pub async fn latency_at_rate(env: &BenchEnv, rate: f64, secs: u64) -> anyhow::Result<LatencyReport> {
    meter::quiet_clickhouse().await;
    let gateway = env.start("gateway").await?;
    let enrich = env.start("enrich").await?;
    let sink = env.start("sink").await?;
    // Let the consumers join their groups before the clock starts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let meter = Meter::start(&[&gateway, &enrich, &sink], &env.clickhouse).await;
    let clinics = 20;
    let mut patients = 10;
    let want = (rate * secs as f64) as usize;
    let mut events = stream(7, clinics, patients, Harms::default()).0;
    while events.len() < want {
        patients *= 2;
        events = stream(7, clinics, patients, Harms::default()).0;
    }
    events.truncate(want);
    let db = env.db();
    let polls = Arc::new(std::sync::Mutex::new(Vec::<(i64, u64)>::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (db, polls, done) = (db.clone(), polls.clone(), done.clone());
        tokio::spawn(async move {
            const Q: &str = "SELECT (SELECT count() FROM {doses}) + (SELECT count() FROM {monitoring_forms})
                             + (SELECT count() FROM {ae_report_versions})
                             + (SELECT count() FROM {enrolments})";
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = db.sql(Q).fetch_one::<u64>().await
                    && let Ok(mut p) = polls.lock()
                {
                    p.push((Timestamp::now().millis(), n));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let pacing = Pacing { batch_size: 100, rate: Some(rate), progress: false };
    let sender = pv_simulate::gateway_sender(&env.gateway_url, env.tokens.clone())?;
    let report = send_by_clinic(events, pacing, sender).await?;
    env.wait_drained(Duration::from_secs(600)).await?;
    let usage = meter.finish(report.accepted, &env.clickhouse).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = poller.await;
    let mut received: Vec<i64> = Vec::new();
    for table in pv_store::events::EVENT_TABLES {
        received.extend(db.sql("SELECT received_at_ms FROM {t}").table("t", table).fetch_all::<i64>().await?);
    }
    received.sort_unstable();
    let polls = polls.lock().map(|p| p.clone()).unwrap_or_default();
    let mut latencies = Vec::with_capacity(received.len());
    let mut j = 0;
    for (k, r) in received.iter().enumerate() {
        while j < polls.len() && polls[j].1 < (k as u64 + 1) {
            j += 1;
        }
        if let Some((t, _)) = polls.get(j) {
            latencies.push((t - r) as f64 / 1000.0);
        }
    }
    let peaks = [gateway.peak_rss(), enrich.peak_rss(), sink.peak_rss()].map(|p| p.unwrap_or(0));
    sink.stop().await?;
    enrich.stop().await?;
    gateway.stop().await?;
    Ok(LatencyReport {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        achieved: report.accepted as f64 / report.elapsed.as_secs_f64(),
        events: report.accepted,
        peak_rss: peaks,
        usage,
    })
}

/// What [`latency_at_rate`] measured.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    /// Median latency, seconds.
    pub p50: f64,
    /// 99th percentile latency, seconds.
    pub p99: f64,
    /// Rate actually offered, events/s.
    pub achieved: f64,
    /// Events sent.
    pub events: u64,
    /// Peak RSS of gateway, enrich, sink, bytes.
    pub peak_rss: [u64; 3],
    /// Where the cores went from the first event sent to the last stored (the latency poller's
    /// queries, every 50 ms, count in ClickHouse's share).
    pub usage: Usage,
}

/// A copy of `e` for replay pass `pass`: new event id, and patient and report references of
/// their own, so every pass is new data (new patients) rather than duplicates.
pub fn replay_copy(e: &ClinicEvent, pass: u32) -> ClinicEvent {
    let mut e = e.clone();
    let fresh = |id: pv_events::EventId| {
        let mut b = *id.0.as_bytes();
        for (i, x) in pass.to_le_bytes().iter().enumerate() {
            b[i] ^= x;
        }
        pv_events::EventId(uuid::Uuid::from_bytes(b))
    };
    match &mut e {
        ClinicEvent::DoseAdministered(d) => {
            d.event_id = fresh(d.event_id);
            d.patient_ref = format!("{}-r{pass}", d.patient_ref);
        }
        ClinicEvent::SessionMonitoring(m) => {
            m.event_id = fresh(m.event_id);
            m.patient_ref = format!("{}-r{pass}", m.patient_ref);
        }
        ClinicEvent::AdverseEventReport(r) => {
            r.event_id = fresh(r.event_id);
            r.patient_ref = format!("{}-r{pass}", r.patient_ref);
            r.report_id = format!("{}-r{pass}", r.report_id);
        }
        ClinicEvent::PatientEnrolment(p) => {
            p.event_id = fresh(p.event_id);
            p.patient_ref = format!("{}-r{pass}", p.patient_ref);
        }
    }
    e
}

/// A sustained run: the enricher and the sink consume while the raw topic is fed at `rate`
/// events/s for `secs` seconds (a base stream replayed as new patients), straight to Kafka.
pub async fn sustained(env: &BenchEnv, rate: f64, secs: u64) -> anyhow::Result<SustainedReport> {
    let (base, _) = stream(400, 10, 300, Harms::default());
    meter::quiet_clickhouse().await;
    let enrich = env.start("enrich").await?;
    let sink = env.start("sink").await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let producer = Arc::new(DurableProducer::new(&env.kafka, &env.topic("raw"), Duration::from_secs(30))?);
    let meter = Meter::start(&[&enrich, &sink], &env.clickhouse).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut sent: u64 = 0;
    let mut max_lag: i64 = 0;
    let mut next_sample = started + Duration::from_secs(10);
    let mut pass = 0u32;
    'feed: loop {
        pass += 1;
        for chunk in base.chunks(1000) {
            if Instant::now() >= deadline {
                break 'feed;
            }
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let now = Timestamp::now();
            let batch: Vec<ClinicEvent> = chunk
                .iter()
                .map(|e| {
                    let mut c = replay_copy(e, pass);
                    c.set_received_at(now);
                    c
                })
                .collect();
            send_events(&producer, &batch, None).await.context("feeding the raw topic")?;
            sent += batch.len() as u64;
            if Instant::now() >= next_sample {
                next_sample += Duration::from_secs(10);
                let lag = env.total_lag().await?;
                max_lag = max_lag.max(lag);
                tracing::info!(sent, lag, "sustained run");
            }
        }
    }
    let fed = started.elapsed();
    let (_, drained) = env.wait_drained(Duration::from_secs(3600)).await?;
    let usage = meter.finish(sent, &env.clickhouse).await;
    let peak_rss = (enrich.peak_rss().unwrap_or(0), sink.peak_rss().unwrap_or(0));
    sink.stop().await?;
    enrich.stop().await?;
    Ok(SustainedReport {
        events: sent,
        offered_per_s: sent as f64 / fed.as_secs_f64(),
        max_backlog: max_lag,
        drain_after_feed: drained,
        stored_per_s: sent as f64 / (fed + drained).as_secs_f64(),
        peak_rss,
        usage,
    })
}

/// What [`sustained`] measured.
#[derive(Debug, Clone)]
pub struct SustainedReport {
    /// Events fed.
    pub events: u64,
    /// Rate achieved feeding, events/s.
    pub offered_per_s: f64,
    /// Largest backlog (enricher + sink lag) sampled every 10 s while feeding.
    pub max_backlog: i64,
    /// Time to an empty backlog once feeding stopped.
    pub drain_after_feed: Duration,
    /// Events over (feeding + draining) time.
    pub stored_per_s: f64,
    /// Peak RSS of enrich and sink, bytes.
    pub peak_rss: (u64, u64),
    /// Where the cores went while feeding and draining (the feeder, in pv-bench, not counted).
    pub usage: Usage,
}

#[cfg(test)]
mod tests {
    use pv_events::sample;

    use super::*;

    #[test]
    fn replay_copies_are_new_events_of_new_patients() {
        let r = ClinicEvent::from(sample::adverse_event("c", "p1", "R1", Timestamp::from_millis(0)));
        let (a, b) = (replay_copy(&r, 1), replay_copy(&r, 2));
        assert_ne!(a.event_id(), r.event_id());
        assert_ne!(a.event_id(), b.event_id());
        assert_eq!(a.event_id(), replay_copy(&r, 1).event_id(), "deterministic");
        assert_eq!((a.patient_ref(), b.patient_ref()), ("p1-r1", "p1-r2"));
        let ClinicEvent::AdverseEventReport(a) = a else { panic!("report") };
        assert_eq!(a.report_id, "R1-r1");
        let e = ClinicEvent::from(sample::enrolment("c", "p1", Timestamp::from_millis(0)));
        let copy = replay_copy(&e, 3);
        assert_ne!(copy.event_id(), e.event_id());
        assert_eq!(copy.patient_ref(), "p1-r3", "the copy enrols the copied patient");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!((median(&v), percentile(&v, 0.0), percentile(&v, 1.0)), (3.0, 1.0, 5.0));
        assert!(median(&[]).is_nan());
    }
}
