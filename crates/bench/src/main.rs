//! `pv-bench`: the benchmark harness on the local servers (see BENCHMARKS.md). A binary of its
//! own, so the services' `pv` binary carries none of it; it runs the `pv` binary built beside it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use pv_bench::{Servers, median};
use pv_runtime::{ClickHouseConfig, KafkaConfig};
use pv_simulate::Harms;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Everything below.
    All,
    /// Gateway ingest, batched and single-event requests.
    Gateway,
    /// Raw topic -> rows in ClickHouse (enricher + sink) on a preloaded backlog.
    Pipeline,
    /// End-to-end latency at a steady rate, and peak memory per service.
    Latency,
    /// Detection performance of the signals service over many simulated worlds: sensitivity,
    /// false harm signals and days to detection by scenario, cohort size and effect size (not
    /// part of `all`: it runs for most of an hour).
    Detection,
    /// The scheduled signals run over `--signals-events` events (a base stream through the
    /// pipeline, multiplied inside ClickHouse).
    Signals,
    /// Every workbench page and API call over `--signals-events` events (the signals
    /// scenario's database), as a safety officer and a clinic user.
    Workbench,
    /// A sustained feed straight to the raw topic at a fixed rate while enricher and sink run
    /// (not part of `all`: it runs for `--sustained-secs`).
    Sustained,
    /// `--soak-events` offered at `--soak-rate` to private servers while the sink, the
    /// enricher, ClickHouse and the broker are killed or restarted on a schedule; counts every
    /// event in ClickHouse (not part of `all`; run from the repository root).
    Soak,
}

/// The benchmark harness: runs the pipeline's services (the `pv` binary beside this one) on the
/// local servers, each run in its own topics and database, and prints figures for BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "pv-bench", version, about)]
struct BenchArgs {
    /// The pv configuration file (only `[kafka]` and `[clickhouse]` are read).
    #[arg(long, env = "PV_CONFIG")]
    config: Option<PathBuf>,
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Simulated patients per clinic for the pipeline backlog (10 clinics; ~28 events each).
    #[arg(long, default_value_t = 1000)]
    pipeline_patients: u32,
    /// Steady rate for the latency run, events/s.
    #[arg(long, default_value_t = 10_000.0)]
    latency_rate: f64,
    /// Length of the latency run, seconds.
    #[arg(long, default_value_t = 60)]
    latency_secs: u64,
    /// Feed rate of the sustained run, events/s.
    #[arg(long, default_value_t = 15_000.0)]
    sustained_rate: f64,
    /// Length of the sustained run, seconds.
    #[arg(long, default_value_t = 600)]
    sustained_secs: u64,
    /// Events in the database the signals runs read.
    #[arg(long, default_value_t = 10_000_000)]
    signals_events: u64,
    /// Patients per clinic of the signals base stream (10 clinics; ~28 events each).
    #[arg(long, default_value_t = 400)]
    signals_patients: u32,
    /// Keep the workbench scenario's database (to time queries on it by hand).
    #[arg(long)]
    keep: bool,
    /// Requests per route of the workbench scenario (the median and the slowest are reported).
    #[arg(long, default_value_t = 9)]
    workbench_requests: usize,
    /// Events the soak run offers.
    #[arg(long, default_value_t = 1_000_000)]
    soak_events: u64,
    /// Offered rate of the soak run, events/s.
    #[arg(long, default_value_t = 50_000.0)]
    soak_rate: f64,
    /// Worlds (seeds) per cell of the detection grid.
    #[arg(long, default_value_t = 20)]
    detection_seeds: u64,
    /// Cohort sizes (patients) of the detection grid.
    #[arg(long, value_delimiter = ',', default_value = "100,500,2000,5000")]
    detection_sizes: Vec<u32>,
    /// Where the detection power curve (SVG) is written.
    #[arg(long, default_value = "docs/detection-power.svg")]
    detection_svg: PathBuf,
    /// Port of the bench gateway (kept apart from the main job's 8080).
    #[arg(long, default_value_t = 18080)]
    gateway_port: u16,
}

fn mib(b: u64) -> f64 {
    b as f64 / 1_048_576.0
}

/// The servers to run on: the `[kafka]` and `[clickhouse]` tables of the pv configuration.
#[derive(Debug, Default, Deserialize)]
struct ServersConfig {
    #[serde(default)]
    kafka: KafkaConfig,
    #[serde(default)]
    clickhouse: ClickHouseConfig,
}

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    pv_runtime::telemetry::init_logging();
    let run = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(args.run()));
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pv-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl BenchArgs {
    async fn run(self) -> anyhow::Result<()> {
        let cfg: ServersConfig = pv_runtime::load_toml(self.config.as_deref())?;
        let pv = std::env::current_exe().context("locating pv-bench")?.with_file_name("pv");
        anyhow::ensure!(
            pv.exists(),
            "{} not found: build it beside pv-bench (cargo build --release)",
            pv.display()
        );
        let servers = Servers {
            kafka: cfg.kafka.clone(),
            clickhouse_url: cfg.clickhouse.url.clone(),
            pv,
            gateway_port: self.gateway_port,
        };
        let all = self.scenario == Scenario::All;
        if all || self.scenario == Scenario::Gateway {
            let env = servers.env().await?;
            let gateway = env.start("gateway").await?;
            for (label, batch, clinics, patients) in
                [("batches of 1,000", 1000, 8, 300), ("single events", 1, 32, 15)]
            {
                let mut rates = Vec::new();
                for run in 0..self.runs {
                    rates.push(
                        pv_bench::gateway_ingest(&env, 100 + run as u64, batch, clinics, patients).await?,
                    );
                }
                println!(
                    "gateway ingest, {label}, {clinics} concurrent clinics: median {:.0} events/s accepted and durable (runs: {})",
                    median(&rates),
                    rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / ")
                );
            }
            println!("gateway peak RSS: {:.0} MiB", mib(gateway.peak_rss().unwrap_or(0)));
            gateway.stop().await?;
            env.cleanup().await;
        }
        if all || self.scenario == Scenario::Pipeline {
            let mut rates = Vec::new();
            let mut peaks = (0, 0);
            for run in 0..self.runs {
                let env = servers.env().await?;
                let (events, _) =
                    pv_bench::stream(200 + run as u64, 10, self.pipeline_patients, Harms::default());
                let n = events.len();
                let r = pv_bench::pipeline_throughput(&env, events).await?;
                println!(
                    "  pipeline run {}: {n} events, enriched at {:.0} events/s, stored at {:.0} events/s",
                    run + 1,
                    r.enriched_per_s,
                    r.stored_per_s
                );
                println!("    {}", r.usage.line());
                rates.push(r.stored_per_s);
                peaks = (peaks.0.max(r.peak_rss.0), peaks.1.max(r.peak_rss.1));
                // Dropped first: its merges would run on while the stages are measured.
                env.cleanup().await;
                let env2 = servers.env().await?;
                let (events, _) =
                    pv_bench::stream(200 + run as u64, 10, self.pipeline_patients, Harms::default());
                let [(e, eu), (s, su)] = pv_bench::stage_throughput(&env2, events).await?;
                println!("  stages alone, run {}: enricher {e:.0} events/s, sink {s:.0} events/s", run + 1);
                println!("    enricher alone: {}", eu.line());
                println!("    sink alone: {}", su.line());
                env2.cleanup().await;
            }
            println!(
                "raw topic -> rows in ClickHouse (enrich + sink, backlog): median {:.0} events/s (runs: {}); peak RSS enrich {:.0} MiB, sink {:.0} MiB",
                median(&rates),
                rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" / "),
                mib(peaks.0),
                mib(peaks.1)
            );
        }
        if all || self.scenario == Scenario::Latency {
            let mut p50s = Vec::new();
            let mut p99s = Vec::new();
            for run in 0..self.runs {
                let env = servers.env().await?;
                let r = pv_bench::latency_at_rate(&env, self.latency_rate, self.latency_secs).await?;
                println!(
                    "  latency run {}: {} events at {:.0} events/s offered: p50 {:.3} s, p99 {:.3} s; peak RSS gateway {:.0} / enrich {:.0} / sink {:.0} MiB",
                    run + 1,
                    r.events,
                    r.achieved,
                    r.p50,
                    r.p99,
                    mib(r.peak_rss[0]),
                    mib(r.peak_rss[1]),
                    mib(r.peak_rss[2])
                );
                println!("    {}", r.usage.line());
                p50s.push(r.p50);
                p99s.push(r.p99);
                env.cleanup().await;
            }
            println!(
                "end-to-end latency at {:.0} events/s (gateway accept -> row visible): median p50 {:.3} s, median p99 {:.3} s",
                self.latency_rate,
                median(&p50s),
                median(&p99s)
            );
        }
        if self.scenario == Scenario::Detection {
            let env = servers.env().await?;
            let grid = pv_bench::detection::grid(&self.detection_sizes);
            let started = std::time::Instant::now();
            let summaries = pv_bench::detection::run_grid(&env, &grid, self.detection_seeds, |o| {
                println!(
                    "detection world: {} x{} {} patients seed {} ({} events): detected {:?}, false harm signal {}, signals {:?}, tests {:?}",
                    o.world.scenario.name(),
                    o.world.effect,
                    o.world.patients,
                    o.world.seed,
                    o.events,
                    o.detected,
                    o.false_signal,
                    o.signals.iter().map(|s| format!("{}/{}", s.group, s.product)).collect::<Vec<_>>(),
                    o.tests.iter().map(|t| format!("{}/{} {} vs {:.1}", t.0, t.1, t.2, t.3)).collect::<Vec<_>>()
                );
            })
            .await?;
            println!("detection: {} cells in {:.0} s", summaries.len(), started.elapsed().as_secs_f64());
            println!("{}", pv_bench::detection::markdown(&summaries));
            std::fs::write(&self.detection_svg, pv_bench::detection::power_svg(&summaries))
                .with_context(|| format!("writing {}", self.detection_svg.display()))?;
            println!("power curve: {}", self.detection_svg.display());
            env.cleanup().await;
        }
        if all || self.scenario == Scenario::Signals {
            let env = servers.env().await?;
            let r = pv_bench::signals::signals_at_scale(
                &env,
                10,
                self.signals_patients,
                self.signals_events,
                self.runs,
            )
            .await?;
            let runs: Vec<String> = r.runs.iter().map(|t| format!("{:.2}", t[0])).collect();
            println!(
                "signals run over {} events ({} through the pipeline, multiplied in ClickHouse in {:.0} s): median {:.2} s (read {:.2} s, compute {:.2} s, write {:.2} s; runs: {} s); {} results, {} signals",
                r.events,
                r.base_events,
                r.load_secs,
                r.median(0),
                r.median(1),
                r.median(2),
                r.median(3),
                runs.join(" / "),
                r.results,
                r.signals
            );
            env.cleanup().await;
        }
        if all || self.scenario == Scenario::Workbench {
            let env = servers.env().await?;
            let r = pv_bench::workbench::workbench_at_scale(
                &env,
                10,
                self.signals_patients,
                self.signals_events,
                self.workbench_requests,
            )
            .await?;
            println!(
                "workbench over {} events ({} through the pipeline, multiplied in ClickHouse in {:.0} s); {} requests per route after one warm-up:",
                r.loaded.events, r.loaded.base_events, r.loaded.load_secs, self.workbench_requests
            );
            for t in &r.routes {
                println!(
                    "  {:8} {:50} median {:7.1} ms  max {:7.1} ms  {:>9} bytes",
                    t.role, t.route, t.median_ms, t.max_ms, t.bytes
                );
            }
            if self.keep {
                println!("kept for inspection: database `{}` (drop it when done)", env.clickhouse.database);
            } else {
                env.cleanup().await;
            }
        }
        if self.scenario == Scenario::Sustained {
            let env = servers.env().await?;
            let r = pv_bench::sustained(&env, self.sustained_rate, self.sustained_secs).await?;
            println!(
                "sustained: {} events fed at {:.0} events/s for {} s; largest backlog {} messages; drained {:.1} s after the feed stopped; {:.0} events/s stored overall; peak RSS enrich {:.0} MiB, sink {:.0} MiB",
                r.events,
                r.offered_per_s,
                self.sustained_secs,
                r.max_backlog,
                r.drain_after_feed.as_secs_f64(),
                r.stored_per_s,
                mib(r.peak_rss.0),
                mib(r.peak_rss.1)
            );
            println!("  {}", r.usage.line());
            env.cleanup().await;
        }
        if self.scenario == Scenario::Soak {
            let repo = std::env::current_dir()?;
            anyhow::ensure!(
                repo.join("deploy/local/start.sh").exists(),
                "run the soak from the repository root (it starts private servers with deploy/local/start.sh)"
            );
            let r = pv_bench::soak::soak(&repo, servers.pv.clone(), self.soak_events, self.soak_rate).await?;
            println!(
                "soak: {} events sent ({} distinct) offered at {:.0} events/s; found {}, missing {}, counted twice {}; {} copies absorbed by dedup; {} dead letters; all stored {:.1} s after the first was sent ({:.0} events/s through every fault)",
                r.sent,
                r.distinct,
                r.offered_per_s,
                r.found,
                r.missing(),
                r.counted_twice,
                r.absorbed_copies,
                r.dead_letters,
                r.total.as_secs_f64(),
                r.throughput()
            );
            println!(
                "  peak RSS after the restarts: enricher {:.0} MiB, sink {:.0} MiB",
                mib(r.peak_rss.0),
                mib(r.peak_rss.1)
            );
            for f in &r.faults {
                println!(
                    "  {:<42} back at {:>5.1} s, backlog {:>8} messages: progress again {:.1} s later",
                    f.fault,
                    f.at.as_secs_f64(),
                    f.backlog,
                    f.recovery.as_secs_f64()
                );
            }
        }
        Ok(())
    }
}
