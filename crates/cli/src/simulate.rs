//! `pv simulate`: generate a clinic stream with planted harms and send it in, through the
//! gateway (as clinics do) or straight to the raw topic.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use clap::{Args, ValueEnum};
use pv_events::{ClinicEvent, EventKind, Timestamp};
use pv_gateway::produce::{SendError, send_events};
use pv_runtime::kafka::{DurableProducer, ProduceError};
use pv_simulate::{
    BatchFuture, Harms, Pacing, Scenario, SendReport, SimConfig, Simulation, generate, load_tokens,
    send_by_clinic,
};

use crate::PvConfig;

/// Where the stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Target {
    /// POST to the gateway with each clinic's token (auth, validation, 202 after the ack).
    Gateway,
    /// Produce straight to the raw topic (as the gateway would), bypassing HTTP.
    Kafka,
    /// Write each clinic's history as the CSV files `pv import` reads, under `--csv-dir`.
    Csv,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Seed: the same seed and settings give the same events, byte for byte.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of clinics.
    #[arg(long, default_value_t = 5)]
    clinics: u32,
    /// Patients starting treatment per clinic.
    #[arg(long, default_value_t = 40)]
    patients: u32,
    /// Days simulated, ending at the start of `--end`.
    #[arg(long, default_value_t = 180)]
    days: u32,
    /// Last day (exclusive), YYYY-MM-DD; default today (UTC).
    #[arg(long)]
    end: Option<chrono::NaiveDate>,
    /// Plant nothing: background rates only (a null stream).
    #[arg(long)]
    no_harms: bool,
    /// Added per-session urological hazard per gram of cumulative dose.
    #[arg(long, default_value_t = 0.004)]
    urological_per_gram: f64,
    /// Share of ketamine patients who develop dependence.
    #[arg(long, default_value_t = 0.08)]
    dependence_share: f64,
    /// A named preset of what is planted: null, surge-only, default, esketamine-only,
    /// late-onset, switching, older-28mg (instead of --no-harms, --urological-per-gram and
    /// --dependence-share).
    #[arg(long, conflicts_with_all = ["no_harms", "urological_per_gram", "dependence_share"])]
    scenario: Option<Scenario>,
    /// Scales the scenario's planted effect sizes: 1 = the defaults, 0 = nothing planted.
    #[arg(long, default_value_t = 1.0, requires = "scenario")]
    effect: f64,
    /// Share of events submitted twice (client retries).
    #[arg(long, default_value_t = 0.01)]
    duplicate_rate: f64,
    /// Share of events submitted 1-14 days late.
    #[arg(long, default_value_t = 0.02)]
    late_rate: f64,
    /// Where to write the ground truth (JSON).
    #[arg(long, default_value = ".state/ground-truth.json")]
    truth_file: PathBuf,
    /// Where to send.
    #[arg(long, value_enum, default_value_t = Target::Gateway)]
    to: Target,
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Plaintext clinic tokens (from `pv clinics init`).
    #[arg(long, default_value = ".state/clinic-tokens.toml")]
    tokens_file: PathBuf,
    /// Where `--to csv` writes: one directory per clinic.
    #[arg(long, default_value = ".state/history")]
    csv_dir: PathBuf,
    /// Events per request (or produce batch).
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Target events per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Generate and write the truth file only; send nothing.
    #[arg(long)]
    dry_run: bool,
}

impl SimulateArgs {
    /// The simulation these arguments describe.
    pub(crate) fn config(&self) -> SimConfig {
        let end = self.end.unwrap_or_else(|| Utc::now().date_naive());
        let mut harms = Harms {
            urological_per_gram: self.urological_per_gram,
            dependence_share: self.dependence_share,
            ..Harms::default()
        };
        if self.no_harms {
            harms = Harms::none();
        }
        let mut sim = SimConfig {
            seed: self.seed,
            clinics: self.clinics,
            patients_per_clinic: self.patients,
            start: end - chrono::Duration::days(i64::from(self.days)),
            days: self.days,
            harms,
            duplicate_rate: self.duplicate_rate,
            late_rate: self.late_rate,
            ..SimConfig::default()
        };
        if let Some(scenario) = self.scenario {
            scenario.apply(&mut sim, self.effect);
        }
        sim
    }

    pub(crate) async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        let sim = self.config();
        let Simulation { events, truth } = generate(&sim);
        let count = |k: EventKind| events.iter().filter(|e| e.kind() == k).count();
        println!(
            "simulated {} clinics x {} patients over {} days from {}: {} enrolments, {} doses, {} monitoring forms, {} adverse-event report versions ({} submitted twice, {} late)",
            sim.clinics,
            sim.patients_per_clinic,
            sim.days,
            sim.start,
            count(EventKind::PatientEnrolment),
            count(EventKind::DoseAdministered),
            count(EventKind::SessionMonitoring),
            count(EventKind::AdverseEventReport),
            truth.submissions.duplicates,
            truth.submissions.late,
        );
        if let Some(scenario) = self.scenario {
            println!("  scenario {scenario}, effect x{}", self.effect);
        }
        for e in &truth.effects {
            println!(
                "  planted {:<26} {:?}: {} patients, {} reports caused",
                e.name,
                e.kind,
                e.patients.len(),
                e.reports_caused
            );
        }
        if let Some(dir) = self.truth_file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&self.truth_file, serde_json::to_vec_pretty(&truth)?)
            .with_context(|| format!("writing {}", self.truth_file.display()))?;
        println!("ground truth: {}", self.truth_file.display());
        if self.dry_run {
            return Ok(());
        }
        let pacing = Pacing {
            batch_size: self.batch_size,
            rate: (self.rate > 0.0).then_some(self.rate),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let report = match self.to {
            Target::Csv => return write_csv(&self.csv_dir, &events),
            Target::Gateway => {
                let tokens =
                    load_tokens(&self.tokens_file).context("clinic tokens (run `pv clinics init`)")?;
                send_by_clinic(events, pacing, pv_simulate::gateway_sender(&self.gateway, tokens)?).await?
            }
            Target::Kafka => {
                let producer = Arc::new(DurableProducer::new(
                    &cfg.kafka,
                    &cfg.gateway.topic,
                    Duration::from_millis(cfg.gateway.delivery_timeout_ms),
                )?);
                send_by_clinic(events, pacing, kafka_sender(producer)).await?
            }
        };
        print_report(&report, self.to);
        Ok(())
    }
}

/// Produces a batch to the raw topic as the gateway would (stamped `received_at` = now),
/// retrying while the broker is unavailable.
fn kafka_sender(
    producer: Arc<DurableProducer>,
) -> impl Fn(String, Vec<ClinicEvent>) -> BatchFuture + Clone + Send + Sync {
    move |_clinic: String, mut chunk: Vec<ClinicEvent>| {
        let producer = producer.clone();
        Box::pin(async move {
            let now = Timestamp::now();
            for e in &mut chunk {
                e.set_received_at(now);
            }
            let mut retries = 0u64;
            loop {
                match send_events(&producer, &chunk, None).await {
                    Ok(()) => return Ok(retries),
                    Err(SendError::Produce(ProduceError::Unavailable(e))) => {
                        tracing::warn!(error = %e, "broker unavailable; retrying the batch");
                        retries += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }) as BatchFuture
    }
}

/// Writes each clinic's events (each id once: re-submitted copies are one event in a history)
/// as the import layout's files under `dir/{clinic}/`.
fn write_csv(dir: &std::path::Path, events: &[ClinicEvent]) -> anyhow::Result<()> {
    let mut by_clinic: std::collections::BTreeMap<&str, Vec<ClinicEvent>> = std::collections::BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for e in events.iter().filter(|e| seen.insert(e.event_id())) {
        by_clinic.entry(e.clinic_id()).or_default().push(e.clone());
    }
    for (clinic, events) in &by_clinic {
        let clinic_dir = dir.join(clinic);
        std::fs::create_dir_all(&clinic_dir).with_context(|| format!("creating {}", clinic_dir.display()))?;
        pv_import::write_history(events, |name| {
            std::fs::File::create(clinic_dir.join(name)).map(std::io::BufWriter::new)
        })
        .with_context(|| format!("writing {}", clinic_dir.display()))?;
        println!(
            "{}: {} events of {clinic} (import with `pv import --clinic {clinic} {}`)",
            clinic_dir.display(),
            events.len(),
            clinic_dir.display()
        );
    }
    Ok(())
}

fn print_report(report: &SendReport, to: Target) {
    let secs = report.elapsed.as_secs_f64();
    let mut l = report.batch_latencies.clone();
    l.sort_by(f64::total_cmp);
    let pct = |q: f64| l.get(((l.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0) * 1000.0;
    println!(
        "sent via {to:?}: {} events accepted and durable in {secs:.2} s ({:.0} events/s, {} retries after 503 or 429; batch ack p50 {:.1} ms, p99 {:.1} ms)",
        report.accepted,
        report.accepted as f64 / secs.max(1e-9),
        report.retries,
        pct(0.5),
        pct(0.99),
    );
}
