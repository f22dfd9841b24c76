//! MGPS on openEBGM's CAERS data (17,189 pairs): the exact (unsquashed) maximum-likelihood fit
//! from three starts, then EBGM, EB05 and EB95 for every pair. Median of 7 runs.
//!
//! `cargo bench -p pv-stats --bench mgps` (reads `../shared/data/caers/caers.csv`, or
//! `PV_CAERS_CSV`). openEBGM needs ~20 s for the same unsquashed fit (its vignette, 20.43 s user).

use std::path::PathBuf;
use std::time::Instant;

use pv_stats::mgps;
use pv_stats::table::count_pairs;

fn main() {
    let path = std::env::var_os("PV_CAERS_CSV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/caers/caers.csv")
    });
    let mut reader = csv::Reader::from_path(&path).expect("the CAERS extract (set PV_CAERS_CSV)");
    let rows: Vec<(String, String, String)> = reader
        .records()
        .map(|r| r.expect("record"))
        .map(|r| (r[0].to_owned(), r[1].to_owned(), r[2].to_owned()))
        .collect();
    let started = Instant::now();
    let pairs = count_pairs(rows.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())));
    println!(
        "counting {} rows into {} pairs: {:.1} ms",
        rows.len(),
        pairs.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let data: Vec<(u64, f64)> = pairs.iter().map(|p| (p.table.a, p.table.expected())).collect();
    let mut fits = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let fit = mgps::fit(&data).expect("fits");
        let fitted = started.elapsed().as_secs_f64();
        let mut above = 0;
        for &(n, e) in &data {
            let p = mgps::posterior(&fit.hyper, n, e);
            above += usize::from(p.eb05 >= 2.0);
        }
        let total = started.elapsed().as_secs_f64();
        fits.push(fitted);
        totals.push(total);
        std::hint::black_box((fit, above));
    }
    fits.sort_by(f64::total_cmp);
    totals.sort_by(f64::total_cmp);
    let fit = mgps::fit(&data).expect("fits");
    println!(
        "hyperparameters {:?}, -logL {:.4}, {} distinct (N, E) points, {}/{} starts agree",
        fit.hyper, fit.neg_log_likelihood, fit.distinct_points, fit.agreeing, fit.starts
    );
    println!(
        "MGPS fit: median {:.0} ms; fit + EBGM/EB05/EB95 for {} pairs: median {:.0} ms (runs {:?} ms; target < 500 ms)",
        fits[3] * 1e3,
        data.len(),
        totals[3] * 1e3,
        totals.iter().map(|t| (t * 1e3).round()).collect::<Vec<_>>()
    );
}
