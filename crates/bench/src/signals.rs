//! The scheduled signals run at scale: a simulated stream goes through the real enricher and
//! sink, its rows are then multiplied inside ClickHouse (each copy a new set of clinics and
//! patients, new event ids) up to the target event count, and the signals service's run is
//! timed on that database.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use pv_signals::{SignalsConfig, SignalsService};
use pv_simulate::Harms;
use pv_store::events::{AE_CASES, EVENT_TABLES};
use pv_store::{Db, Schema};

use crate::{BenchEnv, median};

/// Copies made by one INSERT ... SELECT.
const COPIES_PER_INSERT: u64 = 8;

/// What the signals benchmark measured.
#[derive(Debug, Clone)]
pub struct SignalsBenchReport {
    /// Distinct events in the database the runs read (FINAL counts of the event tables).
    pub events: u64,
    /// Events of the base stream that went through the pipeline.
    pub base_events: u64,
    /// Seconds spent multiplying rows and merging parts (setup, not measured).
    pub load_secs: f64,
    /// Per run: (total, read, compute, write) in seconds.
    pub runs: Vec<[f64; 4]>,
    /// Results and signals of the last run.
    pub results: usize,
    /// Signals among them.
    pub signals: usize,
}

impl SignalsBenchReport {
    /// Median over runs of column `i` (0 total, 1 read, 2 compute, 3 write).
    pub fn median(&self, i: usize) -> f64 {
        median(&self.runs.iter().map(|r| r[i]).collect::<Vec<_>>())
    }
}

/// A database filled to scale.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    /// Distinct events in it.
    pub events: u64,
    /// Events of the base stream that went through the pipeline.
    pub base_events: u64,
    /// Seconds spent multiplying rows and merging parts.
    pub load_secs: f64,
}

/// Loads a base stream (`clinics` x `patients`, planted harms) through the pipeline into the
/// env's database, multiplies it to at least `target_events` and merges the tables' parts.
pub async fn load_at_scale(
    env: &BenchEnv,
    clinics: u32,
    patients: u32,
    target_events: u64,
) -> anyhow::Result<Loaded> {
    let (events, _) = crate::stream(500, clinics, patients, Harms::default());
    crate::preload(env, events).await?;
    let enrich = env.start("enrich").await?;
    let sink = env.start("sink").await?;
    env.wait_drained(Duration::from_secs(1800)).await?;
    sink.stop().await?;
    enrich.stop().await?;

    let db = env.db();
    let base_events = final_events(&db).await?;
    anyhow::ensure!(base_events > 0, "the base stream left no rows in ClickHouse");
    let copies = target_events.div_ceil(base_events).saturating_sub(1);
    let started = Instant::now();
    for table in EVENT_TABLES {
        multiply(&db, table, copies).await?;
    }
    for table in EVENT_TABLES.into_iter().chain([&AE_CASES as &dyn Schema]) {
        db.sql("OPTIMIZE TABLE {t} FINAL")
            .table("t", table)
            .execute()
            .await
            .with_context(|| format!("merging {}", table.name()))?;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let events = final_events(&db).await?;
    anyhow::ensure!(
        events == base_events * (copies + 1),
        "multiplying rows gave {events} events, want {} (event ids must be new in every copy)",
        base_events * (copies + 1)
    );
    Ok(Loaded { events, base_events, load_secs })
}

/// Loads a database to scale ([`load_at_scale`]) and times `runs` signals runs over it.
pub async fn signals_at_scale(
    env: &BenchEnv,
    clinics: u32,
    patients: u32,
    target_events: u64,
    runs: usize,
) -> anyhow::Result<SignalsBenchReport> {
    let Loaded { events, base_events, load_secs } =
        load_at_scale(env, clinics, patients, target_events).await?;
    let cfg = SignalsConfig { topic: env.topic("signals"), ..SignalsConfig::default() };
    let service = SignalsService::new(cfg, &env.clickhouse, &env.kafka)?;
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let report = service.run_once(None).await?;
        times.push([
            started.elapsed().as_secs_f64(),
            report.read.as_secs_f64(),
            report.compute.as_secs_f64(),
            report.write.as_secs_f64(),
        ]);
        last = Some(report);
    }
    let last = last.context("no signals run (runs = 0)")?;
    Ok(SignalsBenchReport {
        events,
        base_events,
        load_secs,
        runs: times,
        results: last.results.len(),
        signals: last.signals().count(),
    })
}

/// Distinct events in the event tables.
async fn final_events(db: &Db) -> anyhow::Result<u64> {
    let mut total = 0;
    for table in EVENT_TABLES {
        total += db.count(table, true).await?;
    }
    Ok(total)
}

/// Appends `copies` copies of `table`'s current rows, each with a new event id and its own
/// clinics and patients (`~<copy>` appended), so that no copy deduplicates against another.
async fn multiply(db: &Db, table: &'static dyn Schema, copies: u64) -> anyhow::Result<()> {
    let columns: Vec<String> =
        table.columns().into_iter().filter(|c| c.materialized.is_none()).map(|c| c.name).collect();
    let select: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "event_id" => "generateUUIDv4()".to_string(),
            "clinic_id" | "patient_key" => format!("concat({c}, '~', toString(copy))"),
            other => other.to_string(),
        })
        .collect();
    let sql = format!(
        "INSERT INTO {{t}} ({}) SELECT {} FROM {{t}} FINAL
         ARRAY JOIN arrayMap(i -> i + {{first}}, range(toUInt32({{n}}))) AS copy
         WHERE position(patient_key, '~') = 0",
        columns.join(", "),
        select.join(", ")
    );
    // ARRAY JOIN multiplies each block by the copies in one statement: a few at a time keeps
    // ClickHouse's blocks (and memory) small. Each statement copies the original rows only.
    let mut first = 0;
    while first < copies {
        let n = (copies - first).min(COPIES_PER_INSERT);
        db.sql(&sql)
            .table("t", table)
            .bind("first", first)
            .bind("n", n)
            .execute()
            .await
            .with_context(|| format!("multiplying {}", table.name()))?;
        first += n;
    }
    Ok(())
}
