//! The `pv` command line: one subcommand per service, plus operator tools.
//!
//! Every service reads one TOML file (`--config`, or `PV_CONFIG`); absent tables and fields take
//! their defaults, which run the whole pipeline against the local servers of `deploy/local/`.

mod clinics;
mod config;
mod dashboard;
mod disproportionality;
mod dlq;
mod import;
mod repartition;
mod replay;
mod report;
mod signals;
mod simulate;
mod summary;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pv_runtime::Shutdown;

pub use config::PvConfig;

/// Ketamine/esketamine pharmacovigilance pipeline.
#[derive(Debug, Parser)]
#[command(name = "pv", version, about)]
struct Cli {
    /// Configuration file (TOML). Without one, local defaults apply.
    #[arg(long, global = true, env = "PV_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the clinic-facing HTTP ingest service.
    Gateway,
    /// Run the enricher: raw clinic events -> coded, pseudonymised, exposure-aware events.
    Enrich,
    /// Run the Kafka -> ClickHouse sink (applies migrations first).
    Sink,
    /// Apply ClickHouse migrations and exit.
    Migrate,
    /// Rebuild the ClickHouse tables from the Kafka topics (from the earliest retained offsets)
    /// into a database, and compare it with the live one.
    Replay(replay::ReplayArgs),
    /// Grow the raw topic to a new partition count and move the enricher's state to match (with
    /// producers and enrichers stopped and everything consumed; README: "Changing the raw
    /// topic's partition count").
    Repartition(repartition::RepartitionArgs),
    /// Print a new random clinic token and its clinics-file entry.
    Token {
        /// The clinic the token is for.
        #[arg(long)]
        clinic: String,
    },
    /// Manage the local clinics file.
    #[command(subcommand)]
    Clinics(clinics::ClinicsCommand),
    /// Print the effective configuration (defaults filled in).
    Config,
    /// Generate a realistic clinic stream with planted harms (deterministic from a seed), write
    /// its ground truth, and send it through the gateway or straight to Kafka.
    Simulate(simulate::SimulateArgs),
    /// Every disproportionality measure (PRR, ROR, IC, MGPS EBGM) for every product-event pair
    /// of a report-level CSV.
    Disproportionality(disproportionality::DisproportionalityArgs),
    /// Run the signals service: every analysis on a schedule, results to ClickHouse, changes
    /// to the signals topic (`--once`: one run, printed).
    Signals(signals::SignalsArgs),
    /// Score the latest signals run's harm signals against what the last `pv simulate` planted.
    Score {
        /// The ground-truth file `pv simulate` wrote.
        #[arg(long, default_value = ".state/ground-truth.json")]
        truth_file: PathBuf,
    },
    /// Run the safety officers' workbench (web pages and JSON API).
    Dashboard,
    /// Manage the workbench's users.
    #[command(subcommand)]
    Users(dashboard::UsersCommand),
    /// Load a clinic's history from CSV files (one per event kind; see the README) through the
    /// gateway's validation: rejects by file, line and column; re-running sends nothing twice.
    Import(import::ImportArgs),
    /// The pipeline's Kafka topics: create what is missing, report what differs (drift).
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Dead letters: re-send chosen ones to their source topic, once.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Regulators' outputs: the periodic safety report and E2B(R3) case exports.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Print what is stored in ClickHouse: exposure, monitoring, adverse-event reports.
    Summary {
        /// First wait until every accepted event is enriched and stored (enricher and sink lag 0).
        #[arg(long)]
        wait: bool,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 300)]
        wait_secs: u64,
    },
}

/// Entry point of the `pv` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    pv_runtime::telemetry::init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pv: error: {e:#}");
            // `pv import` that imported what it could but refused rows: 2, apart from failures.
            if e.downcast_ref::<import::RowsRejected>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg: PvConfig = pv_runtime::load_toml(cli.config.as_deref())?;
    match cli.command {
        Command::Token { clinic } => {
            let token = clinics::new_token()?;
            println!("token (give to the clinic, store nowhere else): {token}");
            println!("clinics-file entry:\n{}", pv_gateway::auth::clinic_entry_toml(&clinic, &token));
            Ok(())
        }
        Command::Clinics(cmd) => cmd.run(&cfg),
        Command::Users(cmd) => cmd.run(&cfg),
        Command::Dashboard => runtime()?.block_on(dashboard::run(cfg)),
        Command::Config => {
            println!("{cfg:#?}");
            Ok(())
        }
        Command::Gateway => runtime()?.block_on(gateway(cfg)),
        Command::Sink => runtime()?.block_on(sink(cfg)),
        Command::Enrich => runtime()?.block_on(enrich(cfg)),
        Command::Simulate(args) => runtime()?.block_on(args.run(&cfg)),
        Command::Signals(args) => runtime()?.block_on(args.run(&cfg)),
        Command::Replay(args) => runtime()?.block_on(args.run(&cfg)),
        Command::Repartition(args) => runtime()?.block_on(args.run(&cfg)),
        Command::Report(cmd) => runtime()?.block_on(cmd.run(&cfg)),
        Command::Dlq(cmd) => runtime()?.block_on(cmd.run(&cfg)),
        Command::Import(args) => runtime()?.block_on(args.run(&cfg)),
        Command::Topics(cmd) => runtime()?.block_on(cmd.run(&cfg)),
        Command::Disproportionality(args) => args.run(),
        Command::Score { truth_file } => runtime()?.block_on(async {
            let text = std::fs::read_to_string(&truth_file)
                .with_context(|| format!("reading {} (run `pv simulate` first)", truth_file.display()))?;
            let truth: pv_simulate::GroundTruth = serde_json::from_str(&text)?;
            let signals = pv_score::latest_harm_signals(&pv_store::Db::new(&cfg.clickhouse)).await?;
            for line in pv_score::score(&truth, signals).lines(&truth) {
                println!("{line}");
            }
            Ok(())
        }),
        Command::Summary { wait, wait_secs } => runtime()?.block_on(async {
            if wait {
                let waited = summary::wait_caught_up(&cfg, std::time::Duration::from_secs(wait_secs)).await?;
                println!(
                    "every accepted event is enriched and stored ({:.2} s of waiting)\n",
                    waited.as_secs_f64()
                );
            }
            summary::print(&cfg.clickhouse).await
        }),
        Command::Migrate => runtime()?.block_on(async {
            let applied = pv_store::migrate(&cfg.clickhouse).await?;
            println!("database `{}`: applied migrations {applied:?}", cfg.clickhouse.database);
            Ok(())
        }),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

async fn gateway(cfg: PvConfig) -> anyhow::Result<()> {
    let gateway = Arc::new(pv_gateway::Gateway::new(cfg.gateway.clone(), &cfg.kafka)?);
    let listener = tokio::net::TcpListener::bind(cfg.gateway.listen)
        .await
        .with_context(|| format!("binding {}", cfg.gateway.listen))?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    pv_gateway::serve(gateway, listener, shutdown).await?;
    Ok(())
}

async fn enrich(cfg: PvConfig) -> anyhow::Result<()> {
    let secret_file = cfg.enrich.secret_file.as_deref();
    let pseudonymiser = pv_enrich::Pseudonymiser::from_file_or_env(secret_file, &cfg.enrich.secret_env)?;
    let coder = cfg.enrich.coder().context("loading the coding dictionary and event groups")?;
    tracing::info!(
        dictionary = coder.dictionary.source(),
        terms = coder.dictionary.text_count(),
        "coding dictionary loaded"
    );
    let enricher = pv_enrich::Enricher::new(pseudonymiser, coder, cfg.gateway.limits());
    let service = Arc::new(pv_enrich::EnrichService::new(cfg.enrich.clone(), cfg.kafka.clone(), enricher)?);
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    if let Some(addr) = cfg.enrich.metrics_listen {
        let halted = service.metrics().halted_partitions.clone();
        let ready: pv_runtime::telemetry::Readiness = Arc::new(move || match halted.get() {
            0 => Ok(()),
            n => Err(format!(
                "{n} input partition(s) halted at a message of a schema this build does not know (see the log)"
            )),
        });
        let registry = service.metrics().registry.clone();
        let bound = pv_runtime::telemetry::serve_admin(addr, registry, ready, shutdown.clone()).await?;
        tracing::info!(%bound, "enricher metrics at /metrics, readiness at /readyz");
    }
    let s = shutdown.clone();
    let result = tokio::task::spawn_blocking(move || service.run(&s)).await?;
    shutdown.trigger();
    Ok(result?)
}

async fn sink(cfg: PvConfig) -> anyhow::Result<()> {
    let sink = pv_sink::Sink::new(cfg.sink, cfg.kafka, cfg.clickhouse)?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    sink.run(shutdown).await
}
