//! `pv signals`: the scheduled signals service, or one run with a printed report.

use anyhow::Context as _;
use clap::Args;
use pv_runtime::Shutdown;
use pv_signals::{RunReport, SignalResult, SignalsService};

use crate::PvConfig;

/// Arguments of `pv signals`.
#[derive(Debug, Args)]
pub(crate) struct SignalsArgs {
    /// Run once, print the signals and the changes, and exit (otherwise run every
    /// `signals.interval_secs` until stopped).
    #[arg(long)]
    once: bool,
    /// Analyse the data up to this time (RFC 3339) instead of now: for replaying history.
    #[arg(long)]
    as_of: Option<String>,
}

impl SignalsArgs {
    /// Runs the command.
    pub(crate) async fn run(self, cfg: &PvConfig) -> anyhow::Result<()> {
        let as_of = match &self.as_of {
            Some(s) => Some(
                pv_events::Timestamp::parse_rfc3339(s)
                    .map_err(|e| anyhow::anyhow!("--as-of {s:?}: {e}"))?
                    .millis(),
            ),
            None => None,
        };
        pv_store::migrate(&cfg.clickhouse).await.context("applying ClickHouse migrations")?;
        let service = SignalsService::new(cfg.signals.clone(), &cfg.clickhouse, &cfg.kafka)?;
        service.ensure_topic(&cfg.kafka).await.context("creating the signals topic")?;
        if self.once {
            let report = service.run_once(as_of).await?;
            print_report(&report, service.config().topic.as_str());
            return Ok(());
        }
        anyhow::ensure!(as_of.is_none(), "--as-of needs --once");
        let shutdown = Shutdown::new();
        shutdown.on_signals();
        service.run(shutdown).await;
        Ok(())
    }
}

fn stratum(r: &SignalResult) -> String {
    let mut s = r.product.clone();
    for part in [&r.route, &r.formulation] {
        if part != "*" {
            s.push(' ');
            s.push_str(part);
        }
    }
    if r.dose_band != "*" {
        s.push_str(&format!(" [{}]", r.dose_band));
    }
    s
}

fn measure(r: &SignalResult) -> String {
    let ci = format!("({:.3}-{:.3})", r.lower, r.upper);
    match r.analysis.as_str() {
        "disproportionality" => format!(
            "PRR {:.2} {ci}, chi2 {:.1}, IC025 {:.2}, EB05 {}",
            r.estimate,
            r.chi2.unwrap_or(0.0),
            r.ic025.unwrap_or(0.0),
            r.eb05.map_or("-".into(), |v| format!("{v:.2}"))
        ),
        "incidence_per_1000_administrations" => {
            format!("{:.2} per 1,000 administrations {ci} of {}", r.estimate, r.denominator)
        }
        "dose_response" => format!(
            "trend z {:.2}, top/bottom band rate ratio {:.2} {ci}",
            r.trend_z.unwrap_or(0.0),
            r.estimate
        ),
        "dependence_marker" => format!("{:.1}% of {} patients {ci}", 100.0 * r.estimate, r.denominator),
        "maxsprt" => format!(
            "LLR {:.2} >= CV {:.2}; observed/expected {:.2} ({} of {:.1})",
            r.llr.unwrap_or(0.0),
            r.cv.unwrap_or(0.0),
            r.estimate,
            r.n,
            r.denominator
        ),
        _ => format!("{:.3} {ci}", r.estimate),
    }
}

/// Prints the signals of a run and its changes.
pub(crate) fn print_report(report: &RunReport, topic: &str) {
    let signals: Vec<&SignalResult> = report.signals().collect();
    println!(
        "signals run as of {}: {} results, {} signals (read {:.2} s, compute {:.2} s, store {:.2} s)",
        pv_events::Timestamp::from_millis(report.as_of_ms),
        report.results.len(),
        signals.len(),
        report.read.as_secs_f64(),
        report.compute.as_secs_f64(),
        report.write.as_secs_f64()
    );
    let mut last = String::new();
    for r in &signals {
        let head = format!("{} ({})", r.analysis, r.time_window);
        if head != last {
            println!("\n  {head}");
            last = head;
        }
        println!("    {:<54} {:<22} n={:<5} {}", stratum(r), r.event, r.n, measure(r));
    }
    let count = |c: &str| report.changes.iter().filter(|e| e.change == c).count();
    println!(
        "\nchanges emitted on {topic} and recorded in signal_changes: {} new, {} updated, {} closed",
        count("new"),
        count("updated"),
        count("closed")
    );
}
