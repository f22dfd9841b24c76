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
    /// Analyse the data received by this time (RFC 3339) instead of now: reproduces a past run.
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
        if let Some(addr) = service.config().metrics_listen {
            let registry = service.metrics().registry.clone();
            let bound = pv_runtime::telemetry::serve_metrics(addr, registry, shutdown.clone())
                .await
                .with_context(|| format!("serving the signals metrics on {addr}"))?;
            tracing::info!(%bound, "signals metrics");
        }
        service.run(shutdown).await;
        Ok(())
    }
}

/// The first result matching `f`.
fn find(report: &RunReport, f: impl Fn(&SignalResult) -> bool) -> Option<&SignalResult> {
    report.results.iter().find(|r| f(r))
}

fn ci(r: &SignalResult) -> String {
    format!("95% CI {:.2}-{:.2}", r.lower, r.upper)
}

/// The value of `name=` in a result's flags.
fn flag<'a>(r: &'a SignalResult, name: &str) -> Option<&'a str> {
    r.flags.split(',').find_map(|f| f.strip_prefix(name))
}

fn harm_name(group: &str) -> String {
    match group {
        "urological" => "urological harm".into(),
        "dependence" => "dependence/misuse".into(),
        g => g.replace('_', " "),
    }
}

/// Where a band label (`< 5 mg/kg`, `5-10 mg/kg`, `>= 20 mg/kg`, `unknown weight`) sorts.
fn band_order(label: &str) -> f64 {
    let number = |s: &str| s.trim().split([' ', '-']).next().and_then(|n| n.parse::<f64>().ok());
    if let Some(rest) = label.strip_prefix("< ") {
        return number(rest).map_or(0.0, |n| n - 0.5);
    }
    if let Some(rest) = label.strip_prefix(">= ") {
        return number(rest).unwrap_or(f64::MAX / 2.0);
    }
    number(label).unwrap_or(f64::MAX)
}

/// One monitored harm in one product, as a safety scientist would write it: which harm, in
/// whom, how much more than expected, how sure, since when.
fn print_harm(report: &RunReport, test: &SignalResult) {
    let (group, product) = (test.event.as_str(), test.product.as_str());
    let verdict = match flag(test, "rejected_on=") {
        Some(when) => format!("SIGNAL since {when}"),
        None => "no signal".into(),
    };
    println!("\n  {} in {product}: {verdict}", harm_name(group).to_uppercase());
    let method = flag(test, "method=").unwrap_or("maxsprt").to_uppercase();
    println!(
        "    {} incident cases where {:.1} were expected under the background: {:.1}x ({}); {method} LLR {:.2} against a critical value of {:.2}{}",
        test.n,
        test.denominator,
        test.estimate,
        ci(test),
        test.llr.unwrap_or(0.0),
        test.cv.unwrap_or(0.0),
        if test.flags.contains("demo_background") { " (DEMO background)" } else { "" }
    );
    let is = |r: &SignalResult, analysis: &str, band: &str, subgroup: &str| {
        r.analysis == analysis
            && r.event == group
            && r.product == product
            && r.route == "*"
            && r.dose_band == band
            && r.subgroup == subgroup
    };
    if let Some(r) = find(report, |r| is(r, "incidence_per_100_patient_years", "*", "*")) {
        println!(
            "    incidence {:.2} per 100 patient-years ({}; {} cases in {:.1} patient-years at risk)",
            r.estimate,
            ci(r),
            r.n,
            r.denominator
        );
    }
    let mut bands: Vec<&SignalResult> = report
        .results
        .iter()
        .filter(|r| {
            r.analysis == "incidence_per_100_patient_years"
                && r.event == group
                && r.product == product
                && r.dose_band != "*"
                && r.subgroup == "*"
        })
        .collect();
    bands.sort_by(|a, b| band_order(&a.dose_band).total_cmp(&band_order(&b.dose_band)));
    let bands: Vec<String> =
        bands.iter().map(|r| format!("{}: {:.1} (n={})", r.dose_band, r.estimate, r.n)).collect();
    if !bands.is_empty() {
        println!("    by lagged cumulative dose (per 100 patient-years): {}", bands.join("; "));
    }
    if let Some(r) = find(report, |r| is(r, "rate_ratio", "*", "trend per band")) {
        println!(
            "    adjusted rate ratio per dose band {:.2} ({}), z {:.1}",
            r.estimate,
            ci(r),
            r.trend_z.unwrap_or(0.0)
        );
    }
    let highest = report
        .results
        .iter()
        .filter(|r| {
            r.analysis == "incidence_per_100_patient_years" && r.event == group && r.product == product
        })
        .filter(|r| {
            r.subgroup.starts_with("age_band=")
                || r.subgroup.starts_with("sex=")
                || r.subgroup.starts_with("clinic=")
        })
        .filter(|r| r.n >= 3)
        .max_by(|a, b| a.estimate.total_cmp(&b.estimate));
    if let Some(r) = highest {
        println!(
            "    highest subgroup: {} at {:.1} per 100 patient-years (n={}, {})",
            r.subgroup,
            r.estimate,
            r.n,
            ci(r)
        );
    }
    if let Some(r) =
        find(report, |r| r.analysis == "time_to_onset" && r.event == group && r.product == product)
    {
        println!(
            "    time to onset from the first dose: median {:.0} days (quartiles {:.0}-{:.0}, n={})",
            r.estimate, r.lower, r.upper, r.n
        );
    }
    if let Some(left_out) = flag(test, "cases_in_reporting_surges_left_out=") {
        println!("    {left_out} cases in flagged reporting surges left out of the test");
    }
}

/// Prints the run as a signals report.
pub(crate) fn print_report(report: &RunReport, topic: &str) {
    println!(
        "signals report: data received by {}, follow-up to {} (the latest administration received); {} results (read {:.2} s, compute {:.2} s, store {:.2} s)",
        pv_events::Timestamp::from_millis(report.as_of_ms),
        pv_events::Timestamp::from_millis(report.data_end_ms),
        report.results.len(),
        report.read.as_secs_f64(),
        report.compute.as_secs_f64(),
        report.write.as_secs_f64()
    );
    if let Some(all) = find(report, |r| {
        r.analysis == "incidence_per_100_patient_years" && r.product == "*" && r.event == "urological"
    }) {
        println!("cohort: {:.1} patient-years at risk of urological harm", all.denominator);
    }
    println!("\nMONITORED HARMS (sequential tests per product; alpha shared by every product x harm):");
    let mut tests: Vec<&SignalResult> =
        report.results.iter().filter(|r| r.analysis == "sequential_test").collect();
    tests.sort_by_key(|r| (!r.signal, r.event.clone(), r.product.clone()));
    for t in tests {
        print_harm(report, t);
    }
    println!("\nDEPENDENCE MARKERS (first deviation from the label protocol, per 100 patient-years):");
    for r in report.results.iter().filter(|r| {
        r.analysis == "incidence_per_100_patient_years"
            && r.event == "protocol_deviation"
            && r.product != "*"
            && r.route == "*"
            && r.dose_band == "*"
            && r.subgroup == "*"
    }) {
        println!("    {}: {:.1} ({}; {} patients)", r.product, r.estimate, ci(r), r.n);
    }
    println!("\nREPORTING ARTEFACTS (a clinic's reports per administration against its history and peers):");
    let surges: Vec<&SignalResult> = report.signals().filter(|r| r.analysis == "reporting_rate").collect();
    if surges.is_empty() {
        println!("    none");
    }
    for r in surges {
        println!(
            "    {} reported {:.1}x its peers' rate in {} ({} reports; {}): its cases in that window are left out of the harm tests",
            r.subgroup.trim_start_matches("clinic="),
            r.estimate,
            r.dose_band,
            r.n,
            ci(r)
        );
    }
    println!(
        "\nSCREEN FOR UNEXPECTED TERMS (disproportionality, FDR-controlled; never decides a monitored harm):"
    );
    let screen: Vec<&SignalResult> =
        report.signals().filter(|r| r.analysis == "disproportionality").collect();
    if screen.is_empty() {
        println!("    no term stands out");
    }
    for r in screen {
        println!(
            "    {} {} in {}: {} reports, PRR {:.2} ({}), EB05 {}, q {:.3}",
            r.time_window,
            r.event,
            [r.product.as_str(), r.route.as_str()].join(" "),
            r.n,
            r.estimate,
            ci(r),
            r.eb05.map_or("-".into(), |v| format!("{v:.2}")),
            r.q_value.unwrap_or(1.0)
        );
    }
    let count = |c: &str| report.changes.iter().filter(|e| e.change == c).count();
    println!(
        "\nchanges emitted on {topic} and recorded in signal_changes: {} new, {} updated, {} closed",
        count("new"),
        count("updated"),
        count("closed")
    );
}

#[cfg(test)]
mod tests {
    use super::band_order;

    #[test]
    fn bands_sort_by_dose_with_unknown_weight_last() {
        let mut labels = ["10-20 mg/kg", "unknown weight", ">= 20 mg/kg", "< 5 mg/kg", "5-10 mg/kg"];
        labels.sort_by(|a, b| band_order(a).total_cmp(&band_order(b)));
        assert_eq!(labels, ["< 5 mg/kg", "5-10 mg/kg", "10-20 mg/kg", ">= 20 mg/kg", "unknown weight"]);
    }
}
