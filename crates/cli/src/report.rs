//! `pv report`: the regulators' outputs (periodic safety report, E2B(R3) case exports).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use pv_reports::periodic::{self, Spec};
use pv_reports::sections::HumanSections;
use pv_reports::source::{self, Sources};

use crate::PvConfig;

/// `pv report ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// The periodic safety report for an interval at a data-lock point: PDF, one CSV per table,
    /// charts and a manifest, the same bytes whenever it is regenerated for the same lock.
    Periodic(PeriodicArgs),
}

/// Arguments of `pv report periodic`.
#[derive(Debug, Args)]
pub(crate) struct PeriodicArgs {
    /// First day of the reporting interval (YYYY-MM-DD, UTC).
    #[arg(long)]
    from: NaiveDate,
    /// Last day of the reporting interval (YYYY-MM-DD, UTC, included).
    #[arg(long)]
    to: NaiveDate,
    /// The data-lock point (RFC 3339, e.g. 2026-11-30T18:00:00Z): only what the gateway had
    /// accepted by then is reported. Never in the future.
    #[arg(long)]
    lock: String,
    /// Output folder (created; the report's own files in it are replaced).
    #[arg(long)]
    out: PathBuf,
    /// The human-written sections (Markdown); default `[reports] sections_file`.
    #[arg(long)]
    sections: Option<PathBuf>,
}

impl ReportCommand {
    /// Runs the command.
    pub(crate) async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        match self {
            ReportCommand::Periodic(args) => args.run(cfg).await,
        }
    }
}

/// Parses a data-lock point: RFC 3339, not in the future.
fn parse_lock(text: &str) -> anyhow::Result<i64> {
    let lock = pv_events::Timestamp::parse_rfc3339(text)
        .map_err(|e| anyhow::anyhow!("--lock {text:?}: {e}"))?
        .millis();
    let now = chrono::Utc::now().timestamp_millis();
    anyhow::ensure!(
        lock <= now,
        "--lock {text:?} is in the future: events up to it may still arrive, so the report could not be reproduced"
    );
    Ok(lock)
}

impl PeriodicArgs {
    async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        anyhow::ensure!(self.from <= self.to, "--from {} is after --to {}", self.from, self.to);
        let lock_ms = parse_lock(&self.lock)?;
        let spec = Spec {
            from: self.from,
            to: self.to,
            lock_ms,
            title: cfg.reports.title.clone(),
            organisation: cfg.reports.organisation.clone(),
        };
        let sections_file = self.sections.unwrap_or_else(|| PathBuf::from(&cfg.reports.sections_file));
        let human = match std::fs::read_to_string(&sections_file) {
            Ok(text) => HumanSections::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "pv report: no sections file at {}: the human-written sections say so",
                    sections_file.display()
                );
                HumanSections::default()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", sections_file.display())),
        };
        let sources = Sources {
            clickhouse: &cfg.clickhouse,
            kafka: &cfg.kafka,
            raw_topic: &cfg.enrich.input_topic,
            signals: &cfg.signals,
        };
        let input = source::periodic_input(&sources, &spec).await?;
        let report = periodic::build(&spec, &input, &human);
        let outputs = periodic::render(&report, &input)?;
        write_files(&self.out, &outputs.files)?;
        println!("periodic report {} to {}, data-lock point {}:", spec.from, spec.to, self.lock);
        println!(
            "  {} cases at the lock, {} tables, {} files",
            input.cases.len(),
            report.tables().count(),
            outputs.files.len()
        );
        println!("  PDF:      {}", self.out.join(periodic::output::PDF).display());
        println!("  manifest: {}", self.out.join(periodic::output::MANIFEST).display());
        println!("  tables:   {}", self.out.join("tables").display());
        Ok(())
    }
}

/// Writes `files` under `out`, replacing the report's own folders so no stale table stays.
fn write_files(out: &Path, files: &std::collections::BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    for dir in ["tables", "charts"] {
        let path = out.join(dir);
        if path.exists() {
            std::fs::remove_dir_all(&path).with_context(|| format!("clearing {}", path.display()))?;
        }
    }
    for (name, bytes) in files {
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
