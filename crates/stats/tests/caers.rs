//! MGPS and the 2x2 counts on openEBGM's own example data (FDA CAERS, 2012), checked against
//! the results openEBGM 0.9.1 publishes in its vignettes:
//! - "Hyperparameter Estimation with openEBGM": autoHyper on the full (unsquashed) data gives
//!   α1 = 3.25596685, β1 = 0.39998994, α2 = 2.02376139, β2 = 1.90614108, P = 0.06530755 with a
//!   minimum negative log-likelihood of 4162.456;
//! - "Posterior Calculation": with θ = (3.25379356, 0.39988854, 2.02612692, 1.90807970,
//!   0.06534557) (squashed-data estimates), 1-PHENYLALANINE / HEART RATE INCREASED (N = 1,
//!   E = 0.0360548272) has EBGM 2.23, QUANT_05 0.49, QUANT_95 13.85; REUMOFAN PLUS / WEIGHT
//!   INCREASED (N = 16, E = 0.40643623) has 15.68 / 23.26 / 33.48; and 131 of the 17,189 pairs
//!   have QUANT_05 >= 2.
//!
//! The data file is the workplace's copy (`../shared/data/caers/caers.csv`, or `PV_CAERS_CSV`).

use std::path::PathBuf;

use pv_stats::mgps::{self, Hyper};
use pv_stats::table::{PairCounts, count_pairs};

fn caers() -> Option<Vec<PairCounts>> {
    let path = std::env::var_os("PV_CAERS_CSV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/caers/caers.csv")
    });
    let Ok(mut reader) = csv::Reader::from_path(&path) else {
        // The extract lives outside the repository; without it there is nothing to compare.
        eprintln!("SKIPPED: no CAERS extract at {} (set PV_CAERS_CSV)", path.display());
        return None;
    };
    let rows: Vec<(String, String, String)> = reader
        .records()
        .map(|r| {
            let r = r.expect("csv record");
            (r[0].to_owned(), r[1].to_owned(), r[2].to_owned())
        })
        .collect();
    assert_eq!(rows.len(), 20_156);
    Some(count_pairs(rows.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))))
}

fn pair<'a>(pairs: &'a [PairCounts], product: &str, event: &str) -> &'a PairCounts {
    pairs.iter().find(|p| p.product == product && p.event == event).expect("pair present")
}

#[test]
fn counts_and_expected_values_match_openebgm() {
    let Some(pairs) = caers() else { return };
    assert_eq!(pairs.len(), 17_189);
    let p = pair(&pairs, "1-PHENYLALANINE", "HEART RATE INCREASED");
    assert_eq!(p.table.a, 1);
    assert!((p.table.expected() - 0.0360548272).abs() < 1e-9, "{}", p.table.expected());
    let p = pair(&pairs, "REUMOFAN PLUS", "WEIGHT INCREASED");
    assert_eq!(p.table.a, 16);
    assert!((p.table.expected() - 0.40643623).abs() < 1e-7);
    // PRR as processRaw prints it: 27.96 for the first pair (N/N_v1 over (N_v2−N)/(N_tot−N_v1)).
    let d = pv_stats::disproportionality(&pair(&pairs, "1-PHENYLALANINE", "HEART RATE INCREASED").table);
    assert!((d.prr - 27.96).abs() < 0.005, "{}", d.prr);
    assert!(d.flags.zero_cell_corrected, "b = 0: ROR is corrected, PRR is not");
    let d = pv_stats::disproportionality(&pair(&pairs, "11 UNSPECIFIED VITAMINS", "ASTHMA").table);
    assert!((d.prr - 279.58).abs() < 0.005, "{}", d.prr);
}

#[test]
fn the_exact_fit_matches_openebgm_and_is_at_least_as_likely() {
    let Some(pairs) = caers() else { return };
    let data: Vec<(u64, f64)> = pairs.iter().map(|p| (p.table.a, p.table.expected())).collect();
    let fit = mgps::fit(&data).expect("fits");
    let h = fit.hyper;
    let published =
        Hyper { alpha1: 3.25596685, beta1: 0.39998994, alpha2: 2.02376139, beta2: 1.90614108, p: 0.06530755 };
    // openEBGM's own likelihood at its published optimum, through our likelihood.
    let theirs = mgps::neg_log_likelihood(&published, &data);
    assert!((theirs - 4162.456).abs() < 1e-3, "our likelihood at their optimum: {theirs}");
    assert!(fit.neg_log_likelihood <= theirs + 1e-6, "ours {} vs theirs {theirs}", fit.neg_log_likelihood);
    for (ours, theirs, name) in [
        (h.alpha1, published.alpha1, "alpha1"),
        (h.beta1, published.beta1, "beta1"),
        (h.alpha2, published.alpha2, "alpha2"),
        (h.beta2, published.beta2, "beta2"),
        (h.p, published.p, "P"),
    ] {
        assert!((ours - theirs).abs() < 2e-3 * theirs, "{name}: ours {ours} vs openEBGM {theirs}");
    }
    assert!(fit.agreeing >= 2, "at least two starts agree: {fit:?}");
}

#[test]
fn posterior_scores_match_the_published_table() {
    let Some(pairs) = caers() else { return };
    let theta =
        Hyper { alpha1: 3.25379356, beta1: 0.39988854, alpha2: 2.02612692, beta2: 1.90807970, p: 0.06534557 };
    let round = |x: f64| (x * 100.0).round() / 100.0;
    for (product, event, want) in [
        ("1-PHENYLALANINE", "HEART RATE INCREASED", [2.23, 0.49, 13.85]),
        ("11 UNSPECIFIED VITAMINS", "ASTHMA", [2.58, 0.52, 15.78]),
        ("REUMOFAN PLUS", "WEIGHT INCREASED", [23.26, 15.68, 33.48]),
        ("HYDROXYCUT REGULAR RAPID RELEASE CAPLETS", "EMOTIONAL DISTRESS", [16.78, 11.65, 23.55]),
        ("REUMOFAN PLUS", "IMMOBILE", [18.28, 10.16, 30.83]),
    ] {
        let t = pair(&pairs, product, event).table;
        let p = mgps::posterior(&theta, t.a, t.expected());
        // openEBGM rounds EBGM to 2 decimals and finds quantiles by bisection to a half-width of
        // 0.005 before rounding: its printed values are within 0.01 of the exact ones.
        for (ours, theirs) in [p.ebgm, p.eb05, p.eb95].into_iter().zip(want) {
            assert!((ours - theirs).abs() <= 0.0100001, "{product} / {event}: {p:?} vs {want:?}");
        }
    }
    let eb05: Vec<f64> =
        pairs.iter().map(|p| mgps::posterior(&theta, p.table.a, p.table.expected()).eb05).collect();
    let flagged = eb05.iter().filter(|&&q| round(q) >= 2.0).count();
    let borderline = eb05.iter().filter(|&&q| (q - 1.995).abs() <= 0.01).count();
    assert!(flagged.abs_diff(131) <= borderline, "{flagged} flagged, {borderline} within 0.01 of the cut");
}
