//! Binomial proportions: the Wilson score interval.
//!
//! For k successes in n trials and normal quantile z, with p = k/n (Wilson 1927; Newcombe 1998,
//! method 3):
//! centre = (p + z²/2n) / (1 + z²/n), half-width = z sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n).
//! It stays inside [0, 1] and behaves at k = 0 and k = n, unlike the Wald interval.

/// A proportion with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportion {
    /// k / n (0 when n = 0).
    pub estimate: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// The Wilson score interval for `k` of `n` at normal quantile `z` (1.96 for 95%). `n = 0`
/// gives the uninformative [0, 1]; `k > n` is read as `k = n`.
pub fn wilson(k: u64, n: u64, z: f64) -> Proportion {
    if n == 0 {
        return Proportion { estimate: 0.0, lower: 0.0, upper: 1.0 };
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    let lower = if k == 0.0 { 0.0 } else { (centre - half).max(0.0) };
    let upper = if k == n { 1.0 } else { (centre + half).min(1.0) };
    Proportion { estimate: p, lower, upper }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newcombe_1998_worked_examples() {
        // Newcombe (1998), Stat Med 17:857-872, Table I, method 3 (score, no continuity
        // correction): 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605;
        // 0/20 -> 0 to 0.1611; 1/29 -> 0.0061 to 0.1718.
        for (k, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let p = wilson(k, n, 1.959964);
            assert!((p.lower - lo).abs() < 1e-4 && (p.upper - hi).abs() < 1e-4, "{k}/{n}: {p:?}");
        }
    }

    #[test]
    fn edges_are_defined() {
        assert_eq!(wilson(0, 0, 1.96), Proportion { estimate: 0.0, lower: 0.0, upper: 1.0 });
        let all = wilson(10, 10, 1.96);
        assert_eq!((all.estimate, all.upper), (1.0, 1.0));
        assert!(all.lower > 0.69 && all.lower < 0.73, "{all:?}");
        assert_eq!(wilson(12, 10, 1.96), all);
    }
}
