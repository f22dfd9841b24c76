//! The Poisson maximized sequential probability ratio test (Kulldorff et al. 2011), as used in
//! near-real-time vaccine and drug safety surveillance.
//!
//! With `c` events observed where `μ` are expected under H0, LLR = (μ − c) + c ln(c/μ) when
//! c > μ, else 0. A signal is raised the first time LLR >= CV. Surveillance ends when μ reaches
//! the planned length T (in expected events). CV is set so that the probability of any signal
//! before T under H0 is α, computed exactly: for fixed c, LLR falls as μ grows, so a signal
//! happens iff the k-th event arrives before μ_k, the smaller root of LLR(k, μ) = CV; the
//! probability of "fewer than k events by μ_k for every k >= M" follows from a recursion over
//! the Poisson increments between the μ_k (M = minimum events before a signal may be raised).

/// The log-likelihood ratio for `observed` events when `expected` are expected under H0.
pub fn llr(observed: u64, expected: f64) -> f64 {
    let c = observed as f64;
    if expected <= 0.0 {
        return if observed > 0 { f64::INFINITY } else { 0.0 };
    }
    if c <= expected { 0.0 } else { (expected - c) + c * (c / expected).ln() }
}

/// μ_k: the expected count by which the k-th event must arrive to reach `cv`.
fn threshold(k: u64, cv: f64) -> f64 {
    let kf = k as f64;
    // g(μ) = μ − k + k ln(k/μ) − cv decreases on (0, k), g(k) = −cv < 0, g(0+) = +inf.
    let g = |m: f64| m - kf + kf * (kf / m).ln() - cv;
    let (mut lo, mut hi) = (kf * 1e-300_f64.max(f64::MIN_POSITIVE), kf);
    let (mut llo, mut lhi) = (lo.ln(), hi.ln());
    for _ in 0..200 {
        let mid = 0.5 * (llo + lhi);
        if g(mid.exp()) > 0.0 {
            llo = mid;
        } else {
            lhi = mid;
        }
        if lhi - llo < 1e-14 {
            break;
        }
    }
    lo = llo.exp();
    hi = lhi.exp();
    0.5 * (lo + hi)
}

/// Probability that surveillance up to `length` expected events signals, with critical value
/// `cv`, at least `min_events` events, when the true relative risk is `rr` (rr = 1: the
/// type I error; rr > 1: the power).
pub fn signal_probability(length: f64, cv: f64, min_events: u64, rr: f64) -> f64 {
    crossing_probability(|k| threshold(k, cv), min_events, u64::MAX, length, rr)
}

/// For a Poisson process of rate `rate` on the boundary's time scale: the probability that for
/// some k in `min_events..=max_events` the k-th event arrives by `boundary(k)` (increasing in
/// k), with time ending at `length`. The recursion of Kulldorff et al. (2011) over the Poisson
/// increments between consecutive boundaries; exact up to the truncation of negligible terms.
pub fn crossing_probability(
    boundary: impl Fn(u64) -> f64,
    min_events: u64,
    max_events: u64,
    length: f64,
    rate: f64,
) -> f64 {
    let m = min_events.max(1);
    let mut p: Vec<f64> = vec![1.0]; // P(count = j, no signal yet)
    let mut t_prev = 0.0;
    let mut k = m;
    loop {
        let mu = boundary(k);
        let t = mu.min(length);
        let lam = rate * (t - t_prev).max(0.0);
        // Poisson(λ) pmf, truncated where it no longer matters.
        let mut pmf = vec![(-lam).exp()];
        while pmf.len() < k as usize {
            let j = pmf.len() as f64;
            let next = pmf[pmf.len() - 1] * lam / j;
            if next < 1e-18 && j > lam {
                break;
            }
            pmf.push(next);
        }
        let len = k as usize; // counts 0..=k-1 survive
        let mut next = vec![0.0; len];
        for (i, &pi) in p.iter().enumerate() {
            if pi == 0.0 {
                continue;
            }
            for (d, &q) in pmf.iter().enumerate() {
                let j = i + d;
                if j >= len {
                    break;
                }
                next[j] += pi * q;
            }
        }
        p = next;
        t_prev = t;
        if mu >= length || k >= max_events {
            break;
        }
        k += 1;
    }
    (1.0 - p.iter().sum::<f64>()).clamp(0.0, 1.0)
}

/// The critical value giving type I error `alpha` over a surveillance of `length` expected
/// events, requiring at least `min_events` events to signal. Where no value gives `alpha`
/// exactly (the error is a step function for some settings), the smallest value with error <=
/// `alpha` is returned.
pub fn critical_value(length: f64, alpha: f64, min_events: u64) -> f64 {
    let (mut lo, mut hi) = (1e-9, 1.0);
    while signal_probability(length, hi, min_events, 1.0) > alpha && hi < 1e4 {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if signal_probability(length, mid, min_events, 1.0) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-10 {
            break;
        }
    }
    hi
}

/// The state of one monitored product-event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    /// Events observed so far.
    pub observed: u64,
    /// Events expected so far under H0.
    pub expected: f64,
    /// The log-likelihood ratio.
    pub llr: f64,
    /// The critical value in force.
    pub cv: f64,
    /// LLR >= CV with at least the minimum number of events.
    pub signal: bool,
}

/// The MaxSPRT status for `observed` events against `expected`, with critical value `cv`.
pub fn status(observed: u64, expected: f64, cv: f64, min_events: u64) -> Status {
    let l = llr(observed, expected);
    Status { observed, expected, llr: l, cv, signal: observed >= min_events.max(1) && l >= cv }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llr_is_the_one_sided_poisson_log_likelihood_ratio() {
        assert_eq!(llr(3, 5.0), 0.0);
        // 10 observed, 4 expected: (4 − 10) + 10 ln(2.5) = 3.16290731874155.
        assert!((llr(10, 4.0) - 3.16290731874155).abs() < 1e-12);
        assert_eq!(llr(0, 0.0), 0.0);
        assert_eq!(llr(2, 0.0), f64::INFINITY);
    }

    #[test]
    fn critical_value_matches_the_r_sequential_package() {
        // Sequential::CV.Poisson(SampleSize = 10, alpha = 0.05) = 3.467952 (package docs).
        let cv = critical_value(10.0, 0.05, 1);
        assert!((cv - 3.467952).abs() < 1e-4, "{cv}");
        assert!((signal_probability(10.0, cv, 1, 1.0) - 0.05).abs() < 1e-6);
        // Performance.Poisson(SampleSize = 10, cv, RR = 2): power 0.6850634.
        let power = signal_probability(10.0, cv, 1, 2.0);
        assert!((power - 0.6850634).abs() < 1e-4, "{power}");
    }

    #[test]
    fn minimum_events_changes_the_boundary_as_published() {
        // With M = 3: Performance.Poisson(SampleSize = 10, M = 3, cv = CV.Poisson(10, M = 3),
        // RR = 2) power 0.7329625 (package docs).
        let cv = critical_value(10.0, 0.05, 3);
        let power = signal_probability(10.0, cv, 3, 2.0);
        assert!((power - 0.7329625).abs() < 1e-3, "cv {cv}, power {power}");
        assert!(signal_probability(10.0, cv, 3, 1.0) <= 0.05 + 1e-9);
    }

    #[test]
    fn status_signals_only_past_the_boundary() {
        let cv = 3.467952;
        assert!(!status(3, 1.0, cv, 1).signal);
        assert!(status(6, 1.0, cv, 1).signal);
        assert!(!status(6, 1.0, cv, 7).signal, "below the minimum number of events");
    }
}
