//! Exact (Garwood 1936) confidence intervals for Poisson counts and rates.
//!
//! For x events, the 1−α interval for the mean is [χ²(α/2; 2x)/2, χ²(1−α/2; 2x+2)/2], computed
//! as gamma quantiles: lower = Gamma(x, 1) quantile α/2 (0 for x = 0), upper = Gamma(x+1, 1)
//! quantile 1−α/2.

use crate::special::gamma_quantile;

/// An observed rate with its exact interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Events observed.
    pub count: u64,
    /// Events per `per` units of exposure.
    pub estimate: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// The exact `confidence` interval for the mean of a Poisson count.
pub fn exact_interval(count: u64, confidence: f64) -> (f64, f64) {
    let alpha = (1.0 - confidence).clamp(1e-12, 1.0);
    let x = count as f64;
    let lower = if count == 0 { 0.0 } else { gamma_quantile(x, 1.0, alpha / 2.0) };
    let upper = gamma_quantile(x + 1.0, 1.0, 1.0 - alpha / 2.0);
    (lower, upper)
}

/// `count` events over `exposure` units, as a rate per `per` units with an exact interval
/// (e.g. per 1,000 administrations: exposure = administrations, per = 1000). Zero exposure
/// gives a zero estimate with an infinite upper bound.
pub fn rate(count: u64, exposure: f64, per: f64, confidence: f64) -> Rate {
    let (lo, hi) = exact_interval(count, confidence);
    if exposure <= 0.0 || !exposure.is_finite() {
        return Rate { count, estimate: 0.0, lower: 0.0, upper: f64::INFINITY };
    }
    let scale = per / exposure;
    Rate { count, estimate: count as f64 * scale, lower: lo * scale, upper: hi * scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() < 5e-4 * y.max(1.0)
    }

    #[test]
    fn garwood_table_values() {
        // Published exact 95% limits (Garwood 1936; e.g. Ulm 1990's table).
        let (lo, hi) = exact_interval(0, 0.95);
        assert!(lo == 0.0 && close(hi, 3.6889));
        let (lo, hi) = exact_interval(1, 0.95);
        assert!(close(lo, 0.0253) && close(hi, 5.5716), "{lo} {hi}");
        let (lo, hi) = exact_interval(10, 0.95);
        assert!(close(lo, 4.7954) && close(hi, 18.3904), "{lo} {hi}");
        let (lo, hi) = exact_interval(50, 0.95);
        assert!(close(lo, 37.1112) && close(hi, 65.9193), "{lo} {hi}");
    }

    #[test]
    fn rates_scale_the_interval() {
        let r = rate(10, 5000.0, 1000.0, 0.95);
        assert!(close(r.estimate, 2.0) && close(r.lower, 0.95908) && close(r.upper, 3.67808), "{r:?}");
        let none = rate(3, 0.0, 1000.0, 0.95);
        assert_eq!((none.estimate, none.upper), (0.0, f64::INFINITY));
    }
}
