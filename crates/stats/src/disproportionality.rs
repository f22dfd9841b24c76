//! Disproportionality measures on a 2x2 table of reports.
//!
//! - PRR = [a/(a+b)] / [c/(c+d)], 95% CI exp(ln PRR ± 1.96 s), s = sqrt(1/a − 1/(a+b) + 1/c −
//!   1/(c+d)); Yates chi-square; signal (Evans et al. 2001): PRR >= 2, chi-square >= 4, a >= 3.
//! - ROR = ad/bc, s = sqrt(1/a + 1/b + 1/c + 1/d); signal: lower 95% bound > 1 and a >= 3.
//! - IC (BCPNN shrinkage, Norén et al. 2006) = log2((a + 0.5)/(E + 0.5)), E = (a+b)(a+c)/N; the
//!   95% credibility interval IC025..IC975 is log2 of the 2.5% and 97.5% quantiles of the
//!   Gamma(a + 0.5, rate E + 0.5) posterior of the observed-to-expected ratio (Norén et al. 2013);
//!   signal: IC025 > 0.
//!
//! Zero cells: PRR and its interval need a > 0 and c > 0, ROR needs all four cells > 0. Where a
//! measure would be infinite or undefined, its four cells get +0.5 (Haldane-Anscombe) and the
//! result says so; otherwise the raw counts are used (so PRR with b = 0 is the plain ratio).

use crate::special::gamma_quantile;
use crate::table::TwoByTwo;

/// The 1.96 of the published interval formulas (Evans et al. 2001; Rothman).
const Z95: f64 = 1.96;

/// Caveats attached to a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// Fewer than 3 reports of the pair: no signal is raised, whatever the ratio.
    pub small_count: bool,
    /// A zero cell made PRR (a or c zero) or ROR (any cell zero) use cells + 0.5.
    pub zero_cell_corrected: bool,
}

/// Every measure for one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disproportionality {
    /// Reports of the pair (a).
    pub n: u64,
    /// Expected a under independence.
    pub expected: f64,
    /// Proportional reporting ratio.
    pub prr: f64,
    /// Its 95% confidence interval.
    pub prr_ci: (f64, f64),
    /// Yates-corrected chi-square (1 df) of the table.
    pub chi2_yates: f64,
    /// Evans criteria met.
    pub prr_signal: bool,
    /// Reporting odds ratio.
    pub ror: f64,
    /// Its 95% confidence interval.
    pub ror_ci: (f64, f64),
    /// Lower bound above 1 with a >= 3.
    pub ror_signal: bool,
    /// Information component (log2).
    pub ic: f64,
    /// 2.5% credibility bound.
    pub ic025: f64,
    /// 97.5% credibility bound.
    pub ic975: f64,
    /// IC025 > 0.
    pub ic_signal: bool,
    /// Caveats.
    pub flags: Flags,
}

/// PRR, ROR and IC of a table.
pub fn disproportionality(t: &TwoByTwo) -> Disproportionality {
    let cells = |k: f64| (t.a as f64 + k, t.b as f64 + k, t.c as f64 + k, t.d as f64 + k);
    let prr_fix = t.a == 0 || t.c == 0;
    let ror_fix = t.a == 0 || t.b == 0 || t.c == 0 || t.d == 0;
    let (a, b, c, d) = cells(if prr_fix { 0.5 } else { 0.0 });
    let prr = (a / (a + b)) / (c / (c + d));
    let s_prr = (1.0 / a - 1.0 / (a + b) + 1.0 / c - 1.0 / (c + d)).max(0.0).sqrt();
    let (a, b, c, d) = cells(if ror_fix { 0.5 } else { 0.0 });
    let ror = (a * d) / (b * c);
    let s_ror = (1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d).sqrt();
    let ci = |x: f64, s: f64| ((x.ln() - Z95 * s).exp(), (x.ln() + Z95 * s).exp());
    let prr_ci = ci(prr, s_prr);
    let ror_ci = ci(ror, s_ror);
    let chi2_yates = chi2_yates(t);
    let expected = t.expected();
    let shape = t.a as f64 + 0.5;
    let rate = expected + 0.5;
    let ic = (shape / rate).log2();
    let ic025 = gamma_quantile(shape, rate, 0.025).log2();
    let ic975 = gamma_quantile(shape, rate, 0.975).log2();
    let enough = t.a >= 3;
    Disproportionality {
        n: t.a,
        expected,
        prr,
        prr_ci,
        chi2_yates,
        prr_signal: enough && prr >= 2.0 && chi2_yates >= 4.0,
        ror,
        ror_ci,
        ror_signal: enough && ror_ci.0 > 1.0,
        ic,
        ic025,
        ic975,
        ic_signal: ic025 > 0.0,
        flags: Flags { small_count: !enough, zero_cell_corrected: prr_fix || ror_fix },
    }
}

/// Pearson chi-square with Yates' continuity correction; 0 when a margin is empty.
pub fn chi2_yates(t: &TwoByTwo) -> f64 {
    let (a, b, c, d) = (t.a as f64, t.b as f64, t.c as f64, t.d as f64);
    let n = a + b + c + d;
    let denom = (a + b) * (c + d) * (a + c) * (b + d);
    if denom == 0.0 {
        return 0.0;
    }
    let diff = ((a * d - b * c).abs() - n / 2.0).max(0.0);
    n * diff * diff / denom
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, y: f64, tol: f64) -> bool {
        (x - y).abs() <= tol * y.abs().max(1.0)
    }

    #[test]
    fn hand_computed_table() {
        // a=20, b=80, c=100, d=9800; values computed by hand from the formulas above.
        let r = disproportionality(&TwoByTwo { a: 20, b: 80, c: 100, d: 9800 });
        assert!(close(r.prr, 19.8, 1e-12));
        assert!(close(r.prr_ci.0, 12.779668813884825, 1e-9) && close(r.prr_ci.1, 30.67685131042343, 1e-9));
        assert!(close(r.ror, 24.5, 1e-12));
        assert!(close(r.ror_ci.0, 14.44799580557242, 1e-9) && close(r.ror_ci.1, 41.54555469683144, 1e-9));
        assert!(close(r.chi2_yates, 285.3177524230156, 1e-9));
        assert!(close(r.expected, 1.2, 1e-12));
        assert!(close(r.ic, 3.5920172582551064, 1e-12));
        assert!(r.prr_signal && r.ror_signal && r.ic_signal);
        assert_eq!(r.flags, Flags::default());
    }

    #[test]
    fn ic_interval_is_the_gamma_posterior_quantile() {
        let t = TwoByTwo { a: 200, b: 1800, c: 1800, d: 96200 };
        let r = disproportionality(&t);
        // Gamma(200.5, rate E + 0.5) quantiles by the Wilson-Hilferty formula (accurate to ~1e-5
        // at this shape), an independent route to the same numbers.
        let (shape, rate) = (200.5_f64, t.expected() + 0.5);
        let wh =
            |z: f64| shape * (1.0 - 1.0 / (9.0 * shape) + z * (1.0 / (9.0 * shape)).sqrt()).powi(3) / rate;
        assert!((r.ic025 - wh(-1.959963984540054).log2()).abs() < 1e-3, "{}", r.ic025);
        assert!((r.ic975 - wh(1.959963984540054).log2()).abs() < 1e-3, "{}", r.ic975);
        // Norén et al. (2013) give IC025 ~ IC − 3.3 (n+0.5)^−1/2 − 2 (n+0.5)^−3/2 as a
        // conservative shortcut: the exact bound lies within 0.05 above it here.
        let approx = r.ic - 3.3 / shape.sqrt() - 2.0 / shape.powf(1.5);
        assert!(r.ic025 >= approx && r.ic025 - approx < 0.05, "{} vs {approx}", r.ic025);
        assert!(r.ic025 < r.ic && r.ic < r.ic975);
    }

    #[test]
    fn zeros_and_tiny_counts_are_defined_and_flagged() {
        for t in [
            TwoByTwo { a: 0, b: 0, c: 0, d: 0 },
            TwoByTwo { a: 0, b: 10, c: 5, d: 100 },
            TwoByTwo { a: 2, b: 0, c: 0, d: 0 },
            TwoByTwo { a: 1, b: 0, c: 5, d: 100 },
            TwoByTwo { a: 5, b: 5, c: 0, d: 100 },
        ] {
            let r = disproportionality(&t);
            for x in [
                r.prr,
                r.prr_ci.0,
                r.prr_ci.1,
                r.ror,
                r.ror_ci.0,
                r.ror_ci.1,
                r.chi2_yates,
                r.ic,
                r.ic025,
                r.ic975,
            ] {
                assert!(!x.is_nan(), "{t:?}: {r:?}");
            }
            assert!(r.flags.small_count || r.flags.zero_cell_corrected, "{t:?}");
        }
        let r = disproportionality(&TwoByTwo { a: 2, b: 1, c: 1, d: 1000 });
        assert!(r.flags.small_count && !r.prr_signal && !r.ror_signal, "a < 3 never signals");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn every_table_gives_ordered_defined_numbers(a in 0u64..100_000, b in 0u64..100_000, c in 0u64..100_000, d in 0u64..10_000_000) {
            let r = disproportionality(&TwoByTwo { a, b, c, d });
            for x in [r.prr, r.prr_ci.0, r.prr_ci.1, r.ror, r.ror_ci.0, r.ror_ci.1, r.chi2_yates, r.ic, r.ic025, r.ic975, r.expected] {
                prop_assert!(!x.is_nan());
            }
            prop_assert!(r.prr_ci.0 <= r.prr * (1.0 + 1e-12) && r.prr <= r.prr_ci.1 * (1.0 + 1e-12));
            prop_assert!(r.ror_ci.0 <= r.ror * (1.0 + 1e-12) && r.ror <= r.ror_ci.1 * (1.0 + 1e-12));
            prop_assert!(r.ic025 <= r.ic975);
            prop_assert!(!(r.prr_signal || r.ror_signal) || a >= 3);
        }
    }
}
