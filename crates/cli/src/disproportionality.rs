//! `pv disproportionality`: every disproportionality measure for every product-event pair of a
//! report-level CSV (the shape of FAERS or CAERS extracts).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use pv_stats::table::count_pairs;
use pv_stats::{disproportionality, mgps};

#[derive(Debug, Args)]
pub(crate) struct DisproportionalityArgs {
    /// Input CSV with a header row: one row per (report, product, event).
    #[arg(long)]
    input: PathBuf,
    /// Output CSV, one row per product-event pair (the MGPS fit goes to `<output>.hyper.json`).
    #[arg(long)]
    output: PathBuf,
    /// Column holding the report id.
    #[arg(long, default_value = "id")]
    report_col: String,
    /// Column holding the product.
    #[arg(long, default_value = "var1")]
    product_col: String,
    /// Column holding the event.
    #[arg(long, default_value = "var2")]
    event_col: String,
}

const HEADER: [&str; 24] = [
    "product",
    "event",
    "N",
    "E",
    "a",
    "b",
    "c",
    "d",
    "PRR",
    "PRR_lo95",
    "PRR_hi95",
    "chi2_yates",
    "PRR_signal",
    "ROR",
    "ROR_lo95",
    "ROR_hi95",
    "IC",
    "IC025",
    "IC975",
    "EBGM",
    "EB05",
    "EB95",
    "small_count",
    "zero_cell_corrected",
];

impl DisproportionalityArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut reader = csv::Reader::from_path(&self.input)
            .with_context(|| format!("opening {}", self.input.display()))?;
        let headers =
            reader.headers().with_context(|| format!("reading the header of {}", self.input.display()))?;
        let col = |name: &str| -> anyhow::Result<usize> {
            headers.iter().position(|h| h == name).with_context(|| {
                format!(
                    "{}: no column `{name}` (columns: {})",
                    self.input.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
        };
        let (r, p, e) = (col(&self.report_col)?, col(&self.product_col)?, col(&self.event_col)?);
        let mut rows: Vec<(String, String, String)> = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.with_context(|| format!("{} row {}", self.input.display(), i + 2))?;
            let field = |k: usize, name: &str| -> anyhow::Result<String> {
                let v = record.get(k).unwrap_or_default().trim();
                if v.is_empty() {
                    bail!("{} row {}: `{name}` is empty", self.input.display(), i + 2);
                }
                Ok(v.to_owned())
            };
            rows.push((
                field(r, &self.report_col)?,
                field(p, &self.product_col)?,
                field(e, &self.event_col)?,
            ));
        }
        let pairs = count_pairs(rows.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())));
        let data: Vec<(u64, f64)> = pairs.iter().map(|p| (p.table.a, p.table.expected())).collect();
        let fit = mgps::fit(&data).map_err(anyhow::Error::msg)?;
        let mut out = csv::Writer::from_path(&self.output)
            .with_context(|| format!("creating {}", self.output.display()))?;
        out.write_record(HEADER)?;
        let f = |x: f64| format!("{x:.6}");
        let mut signals = (0, 0, 0, 0);
        for pc in &pairs {
            let d = disproportionality(&pc.table);
            let post = mgps::posterior(&fit.hyper, pc.table.a, pc.table.expected());
            signals.0 += usize::from(d.prr_signal);
            signals.1 += usize::from(d.ror_signal);
            signals.2 += usize::from(d.ic_signal);
            signals.3 += usize::from(post.eb05 >= 2.0);
            let t = pc.table;
            out.write_record([
                pc.product.clone(),
                pc.event.clone(),
                t.a.to_string(),
                format!("{:.10}", d.expected),
                t.a.to_string(),
                t.b.to_string(),
                t.c.to_string(),
                t.d.to_string(),
                f(d.prr),
                f(d.prr_ci.0),
                f(d.prr_ci.1),
                f(d.chi2_yates),
                d.prr_signal.to_string(),
                f(d.ror),
                f(d.ror_ci.0),
                f(d.ror_ci.1),
                f(d.ic),
                f(d.ic025),
                f(d.ic975),
                f(post.ebgm),
                f(post.eb05),
                f(post.eb95),
                d.flags.small_count.to_string(),
                d.flags.zero_cell_corrected.to_string(),
            ])?;
        }
        out.flush()?;
        let hyper_path = PathBuf::from(format!("{}.hyper.json", self.output.display()));
        std::fs::write(&hyper_path, serde_json::to_vec_pretty(&fit)?)
            .with_context(|| format!("writing {}", hyper_path.display()))?;
        let reports: std::collections::HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        println!(
            "{} rows, {} reports, {} product-event pairs -> {} ({:.2} s)",
            rows.len(),
            reports.len(),
            pairs.len(),
            self.output.display(),
            started.elapsed().as_secs_f64()
        );
        let h = fit.hyper;
        println!(
            "MGPS prior (maximum likelihood over all pairs): alpha1 {:.6} beta1 {:.6} alpha2 {:.6} beta2 {:.6} P {:.6}; -logL {:.4}; {}/{} starts agree -> {}",
            h.alpha1,
            h.beta1,
            h.alpha2,
            h.beta2,
            h.p,
            fit.neg_log_likelihood,
            fit.agreeing,
            fit.starts,
            hyper_path.display()
        );
        println!(
            "pairs signalling: PRR (Evans) {}, ROR {}, IC025 > 0 {}, EB05 >= 2 {}",
            signals.0, signals.1, signals.2, signals.3
        );
        Ok(())
    }
}
