//! Special functions the measures need, on top of statrs: gamma quantiles and the log of the
//! negative-binomial probability mass used by MGPS.

use statrs::function::erf::erf_inv;
use statrs::function::gamma::{gamma_lr, ln_gamma};

/// Density of Gamma(shape `a`, rate `b`) at `x`.
pub fn gamma_pdf(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    (a * b.ln() + (a - 1.0) * x.ln() - b * x - ln_gamma(a)).exp()
}

/// Distribution function of Gamma(shape `a`, rate `b`) at `x`.
pub fn gamma_cdf(a: f64, b: f64, x: f64) -> f64 {
    regularized_lower_gamma(a, b * x)
}

/// P(a, x), the regularized lower incomplete gamma function. statrs returns 0 for x below
/// ~1e-11 whatever `a`, which is wrong for small shapes (P(0.05, 1e-15) is 0.18): tiny `x` use
/// the power series x^a e^-x / Γ(a+1) · Σ x^k / ((a+1)...(a+k)) here.
pub fn regularized_lower_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 || x.is_nan() || !(a > 0.0 && a.is_finite()) {
        return 0.0;
    }
    if x.is_infinite() {
        return 1.0;
    }
    if x >= 1e-6 {
        return gamma_lr(a, x);
    }
    lower_gamma_series(a, x)
}

fn lower_gamma_series(a: f64, x: f64) -> f64 {
    let (mut term, mut sum, mut k) = (1.0, 1.0, 0.0);
    while term > 1e-17 * sum && k < 100.0 {
        k += 1.0;
        term *= x / (a + k);
        sum += term;
    }
    (a * x.ln() - x - ln_gamma(a + 1.0)).exp() * sum
}

/// The standard normal quantile.
pub fn normal_quantile(p: f64) -> f64 {
    std::f64::consts::SQRT_2 * erf_inv(2.0 * p - 1.0)
}

/// The `p` quantile of a distribution given by its CDF and density on (0, inf), found by
/// safeguarded Newton steps on ln x inside a bracket that bisection keeps valid. `start` is a
/// positive first guess. Returns 0 for p <= 0 and infinity for p >= 1.
pub fn quantile_by_newton(p: f64, start: f64, cdf: impl Fn(f64) -> f64, pdf: impl Fn(f64) -> f64) -> f64 {
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    // Bracket in t = ln x.
    let mut t = start.max(1e-300).ln();
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..200 {
        let x = t.exp();
        let f = cdf(x) - p;
        if f.abs() < 1e-13 {
            return x;
        }
        if f < 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let slope = pdf(x) * x; // dF/dt
        let mut next = if slope > 0.0 && slope.is_finite() { t - f / slope } else { f64::NAN };
        if !(next > lo && next < hi) {
            // Newton left the bracket: bisect, or expand while one side is still open.
            next = match (lo.is_finite(), hi.is_finite()) {
                (true, true) => 0.5 * (lo + hi),
                (true, false) => lo + 2.0_f64.max((lo.abs()) * 0.5),
                (false, true) => hi - 2.0_f64.max((hi.abs()) * 0.5),
                (false, false) => t,
            };
        }
        if (next - t).abs() < 1e-12 * t.abs().max(1.0) {
            return next.exp();
        }
        t = next;
    }
    t.exp()
}

/// The `p` quantile of Gamma(shape `a`, rate `b`).
pub fn gamma_quantile(a: f64, b: f64, p: f64) -> f64 {
    // Wilson-Hilferty start (good for a >~ 1; the safeguard handles the rest).
    let z = normal_quantile(p.clamp(1e-12, 1.0 - 1e-12));
    let c = 1.0 / (9.0 * a);
    let wh = a * (1.0 - c + z * c.sqrt()).powi(3);
    let start = if wh > 0.0 { wh / b } else { a / b };
    quantile_by_newton(p, start, |x| gamma_cdf(a, b, x), |x| gamma_pdf(a, b, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_quantiles_invert_the_cdf() {
        for &(a, b) in &[(0.05, 1.0), (0.5, 0.5), (1.0, 1.0), (3.5, 0.2), (50.0, 10.0), (1e4, 1.0)] {
            for &p in &[1e-6, 0.025, 0.05, 0.5, 0.95, 0.975, 1.0 - 1e-6] {
                let x = gamma_quantile(a, b, p);
                assert!((gamma_cdf(a, b, x) - p).abs() < 1e-9, "a={a} b={b} p={p}: x={x}");
            }
        }
    }

    #[test]
    fn the_lower_gamma_is_right_for_tiny_arguments() {
        // P(a, x) ~ x^a / Γ(a+1) as x -> 0.
        let want = (0.05 * (1e-15f64).ln() - ln_gamma(1.05)).exp();
        assert!((regularized_lower_gamma(0.05, 1e-15) - want).abs() < 1e-12 * want.max(1e-300) + 1e-15);
        // The series agrees with statrs where both apply.
        for (a, x) in [(0.7, 1e-6), (0.05, 1e-3), (3.0, 0.5)] {
            let (series, statrs) = (lower_gamma_series(a, x), gamma_lr(a, x));
            assert!((series - statrs).abs() < 1e-12 * statrs, "a={a} x={x}: {series} {statrs}");
        }
        assert_eq!(
            (regularized_lower_gamma(2.0, f64::INFINITY), regularized_lower_gamma(2.0, 0.0)),
            (1.0, 0.0)
        );
    }

    #[test]
    fn known_values() {
        // Exponential(1): median ln 2. Chi-square(2) = Gamma(1, 1/2): 95% quantile 5.991465.
        assert!((gamma_quantile(1.0, 1.0, 0.5) - std::f64::consts::LN_2).abs() < 1e-12);
        assert!((gamma_quantile(1.0, 0.5, 0.95) - 5.991464547107979).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-12);
        assert_eq!(gamma_quantile(2.0, 1.0, 0.0), 0.0);
    }
}
