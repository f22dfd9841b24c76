//! `pv simulate`: generate a clinic stream and send it through the gateway.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{Duration, Utc};
use clap::Args;
use pv_events::EventKind;
use pv_simulate::{SendConfig, SimConfig, generate, load_tokens, send_through_gateway};

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Seed: the same seed and settings give the same events.
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
    /// Gateway base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Plaintext clinic tokens (from `pv clinics init`).
    #[arg(long, default_value = ".state/clinic-tokens.toml")]
    tokens_file: PathBuf,
    /// Events per request.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
}

impl SimulateArgs {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let end = self.end.unwrap_or_else(|| Utc::now().date_naive());
        let sim = SimConfig {
            seed: self.seed,
            clinics: self.clinics,
            patients_per_clinic: self.patients,
            start: end - Duration::days(i64::from(self.days)),
            days: self.days,
        };
        let events = generate(&sim);
        let count = |k: EventKind| events.iter().filter(|e| e.kind() == k).count();
        println!(
            "simulated {} clinics x {} patients over {} days from {}: {} doses, {} monitoring forms, {} adverse-event report versions",
            sim.clinics,
            sim.patients_per_clinic,
            sim.days,
            sim.start,
            count(EventKind::DoseAdministered),
            count(EventKind::SessionMonitoring),
            count(EventKind::AdverseEventReport)
        );
        let tokens = load_tokens(&self.tokens_file).context("clinic tokens (run `pv clinics init`)")?;
        let cfg = SendConfig { gateway_url: self.gateway, tokens, batch_size: self.batch_size };
        let report = send_through_gateway(&cfg, events).await?;
        let secs = report.elapsed.as_secs_f64();
        println!(
            "sent through the gateway: {} events accepted and durable in {:.2} s ({:.0} events/s, {} retries after 503)",
            report.accepted,
            secs,
            report.accepted as f64 / secs.max(1e-9),
            report.retries
        );
        Ok(())
    }
}
