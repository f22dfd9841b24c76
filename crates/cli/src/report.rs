//! `pv report`: the regulators' outputs (periodic safety report, E2B(R3) case exports).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use pv_reports::icsr::{Batch, batch_xml, check};
use pv_reports::periodic::{self, Spec};
use pv_reports::sections::HumanSections;
use pv_reports::source::{self, IcsrSelection, Sources};

use crate::PvConfig;

/// `pv report ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// The periodic safety report for an interval at a data-lock point: PDF, one CSV per table,
    /// charts and a manifest, the same bytes whenever it is regenerated for the same lock, sections
    /// file and configuration.
    Periodic(PeriodicArgs),
    /// ICH E2B(R3) XML: one message per case version in one batch, for a case (`--case`, at a
    /// `--version`) or every version of the cases first received in an interval (`--from --to`,
    /// `--serious`), as received by `--lock`; checked against FDA's business rules on the way out.
    Icsr(IcsrArgs),
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
            ReportCommand::Icsr(args) => args.run(cfg).await,
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
        let end_ms = self.to.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis()) + 86_400_000;
        anyhow::ensure!(
            lock_ms >= end_ms,
            "--lock {} is before the end of --to {}: the interval's data cannot all have been received",
            self.lock,
            self.to
        );
        let spec = Spec {
            from: self.from,
            to: self.to,
            lock_ms,
            title: cfg.reports.title.clone(),
            organisation: cfg.reports.organisation.clone(),
        };
        let sections_file = self.sections.unwrap_or_else(|| PathBuf::from(&cfg.reports.sections_file));
        let human = match std::fs::read_to_string(&sections_file) {
            Ok(text) => {
                let human = HumanSections::parse(&text);
                for n in human.unused() {
                    eprintln!(
                        "pv report: {}: section {n} is not one people write; it is left out",
                        sections_file.display()
                    );
                }
                human
            }
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
            enrich_group: &cfg.enrich.group_id,
            enriched_topic: &cfg.enrich.output_topic,
            sink_group: &cfg.sink.group_id,
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

/// Arguments of `pv report icsr`.
#[derive(Debug, Args)]
pub(crate) struct IcsrArgs {
    /// One case, as `CLINIC/REPORT` (e.g. `clinic-01/s42-01-0003-AE-00003`).
    #[arg(long, conflicts_with_all = ["from", "to", "serious"])]
    case: Option<String>,
    /// With `--case`: the version (default: the latest received by the lock).
    #[arg(long, requires = "case")]
    version: Option<i32>,
    /// Every version of the cases first received from this day (YYYY-MM-DD) ...
    #[arg(long, requires = "to")]
    from: Option<NaiveDate>,
    /// ... to this day, included.
    #[arg(long, requires = "from")]
    to: Option<NaiveDate>,
    /// With `--from/--to`: serious cases only (with every version, a nullification included).
    #[arg(long)]
    serious: bool,
    /// What had been received by this instant (RFC 3339; default now). The batch is dated at it,
    /// so an export for a given lock is the same bytes whenever it is made.
    #[arg(long)]
    lock: Option<String>,
    /// The XML file to write (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl IcsrArgs {
    fn selection(&self) -> anyhow::Result<IcsrSelection> {
        match (&self.case, self.from, self.to) {
            (Some(case), None, None) => {
                let (clinic_id, report_id) = case
                    .split_once('/')
                    .ok_or_else(|| anyhow::anyhow!("--case {case:?}: expected CLINIC/REPORT"))?;
                Ok(IcsrSelection::Case {
                    clinic_id: clinic_id.to_owned(),
                    report_id: report_id.to_owned(),
                    version: self.version,
                })
            }
            (None, Some(from), Some(to)) => {
                anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
                Ok(IcsrSelection::Interval { from, to, serious: self.serious })
            }
            _ => anyhow::bail!("give --case CLINIC/REPORT, or --from DATE --to DATE"),
        }
    }

    async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        let selection = self.selection()?;
        let lock_ms = match &self.lock {
            Some(text) => parse_lock(text)?,
            None => chrono::Utc::now().timestamp_millis(),
        };
        let cases = source::icsr_cases(&cfg.clickhouse, &selection, lock_ms).await?;
        anyhow::ensure!(!cases.is_empty(), "no case version matches {selection:?} as received by the lock");
        let batch =
            Batch { batch_id: batch_id(&cfg.reports.sender_id, lock_ms), created_at_ms: lock_ms, cases };
        let xml = batch_xml(&batch, &cfg.reports.sender(), cfg.reports.meddra().as_ref())?;
        match &self.out {
            Some(path) => {
                std::fs::write(path, &xml).with_context(|| format!("writing {}", path.display()))?
            }
            None => print!("{xml}"),
        }
        let violations = check(&xml);
        eprintln!(
            "pv report icsr: {} case versions in batch {} ({} business-rule findings)",
            batch.cases.len(),
            batch.batch_id,
            violations.len()
        );
        let mut by_rule: std::collections::BTreeMap<(&str, &str), (usize, &str)> =
            std::collections::BTreeMap::new();
        for v in &violations {
            by_rule.entry((v.rule, v.element)).or_insert((0, v.message.as_str())).0 += 1;
        }
        for ((rule, element), (n, example)) in by_rule {
            eprintln!("  {rule} {element}: {n} x, e.g. {example}");
        }
        if cfg.reports.meddra_version.is_none() {
            eprintln!(
                "  without a licensed MedDRA release (no [reports] meddra_version) reactions carry no MedDRA \
                 code (E.i.2.1a/b): for review only, not for submission"
            );
        }
        Ok(())
    }
}

/// A batch number (N.1.2) fixed by the sender and the lock: `{sender}-{lock as YYYYMMDDhhmmss}`.
fn batch_id(sender: &str, lock_ms: i64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(lock_ms)
        .map_or_else(String::new, |t| t.format("%Y%m%d%H%M%S").to_string());
    format!("{sender}-{at}")
}
