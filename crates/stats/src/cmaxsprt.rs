//! The conditional maximized sequential probability ratio test (CMaxSPRT; Li and Kulldorff
//! 2010), for when the null rate is not known but estimated from historical data: `c` events in
//! `V` person-time. With `k` events in the surveillance person-time `P` and τ = P/V,
//!
//! LLR = c ln(c(1 + τ)/(c + k)) + k ln(k(1 + τ)/(τ(c + k)))  when k/c > τ, else 0,
//!
//! and a signal is raised the first time LLR >= CV (with at least `M` events). The critical
//! value accounts for the uncertainty of the historical estimate: under H0 both periods share
//! one rate λ, and given the `c` historical events, λV is distributed as the c-th arrival of a
//! unit Poisson process plus a uniform share of the next gap (Gamma(c, 1) + s·Exp(1), s uniform
//! on (0, 1); the law whose Laplace transform, (1 + θ)^-c ln(1 + θ)/θ, R's
//! `Sequential::CV.CondPoisson(Inference = "exact")` integrates). The type I error is the
//! known-rate crossing probability of the surveillance process averaged over that law, by a
//! midpoint rule on its quantiles.
//!
//! Surveillance ends at a planned length: a number of surveillance events `K`
//! ([`Length::Events`]) or a ratio P/V ([`Length::Ratio`]).

use crate::maxsprt::crossing_probability;
use crate::special::{gamma_cdf, gamma_quantile};

/// The planned end of surveillance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// After this many events in the surveillance population.
    Events(u64),
    /// When surveillance person-time reaches this multiple of the historical person-time.
    Ratio(f64),
}

/// Quadrature points over the law of λV.
const NODES: usize = 400;
/// Grid points per factor of the uniform share of the next gap, s·E.
const SHARE_NODES: usize = 24;
/// Points of the grid λV's distribution function is tabulated on.
const GRID: usize = 4000;

/// The midpoint quantiles of λV given `c` historical events: its distribution function on a
/// grid (the gamma's averaged over a product grid of the uniform share of an exponential gap),
/// inverted by linear interpolation.
fn mixing_nodes(c: u64) -> Vec<f64> {
    let n = SHARE_NODES as f64;
    let share: Vec<f64> = (0..SHARE_NODES)
        .flat_map(|i| {
            (0..SHARE_NODES).map(move |j| ((i as f64 + 0.5) / n) * -(1.0 - (j as f64 + 0.5) / n).ln())
        })
        .collect();
    let cdf =
        |u: f64| share.iter().map(|&w| gamma_cdf(c as f64, 1.0, u - w)).sum::<f64>() / share.len() as f64;
    let top = gamma_quantile(c as f64 + 1.0, 1.0, 1.0 - 1e-10) + 8.0;
    let grid: Vec<(f64, f64)> =
        (0..=GRID).map(|i| top * i as f64 / GRID as f64).map(|u| (u, cdf(u))).collect();
    (0..NODES)
        .map(|i| {
            let p = (i as f64 + 0.5) / NODES as f64;
            let k = grid.partition_point(|g| g.1 < p).clamp(1, GRID);
            let ((u0, f0), (u1, f1)) = (grid[k - 1], grid[k]);
            if f1 > f0 { u0 + (p - f0) / (f1 - f0) * (u1 - u0) } else { u1 }
        })
        .collect()
}

/// The CMaxSPRT log-likelihood ratio for `k` surveillance events at person-time ratio `tau` = P/V,
/// with `c` historical events.
pub fn llr(k: u64, c: u64, tau: f64) -> f64 {
    let (k, c) = (k as f64, c as f64);
    if k == 0.0 || c == 0.0 || tau <= 0.0 || k / c <= tau {
        return 0.0;
    }
    c * (c * (1.0 + tau) / (c + k)).ln() + k * (k * (1.0 + tau) / (tau * (c + k))).ln()
}

/// τ_k: the largest ratio P/V at which the k-th event still gives LLR >= `cv` (LLR falls in τ on
/// (0, k/c)).
fn boundary(k: u64, c: u64, cv: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, k as f64 / c as f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if llr(k, c, mid) >= cv {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 * hi.max(1e-300) {
            break;
        }
    }
    lo
}

/// Probability of a signal when the surveillance rate is `rr` times the historical one (rr = 1:
/// the type I error).
pub fn signal_probability(c: u64, length: Length, cv: f64, min_events: u64, rr: f64) -> f64 {
    if c == 0 {
        return 0.0;
    }
    signal_probability_over(&mixing_nodes(c), c, length, cv, min_events, rr)
}

fn signal_probability_over(nodes: &[f64], c: u64, length: Length, cv: f64, min_events: u64, rr: f64) -> f64 {
    let (max_events, ratio) = match length {
        Length::Events(k) => (k, f64::INFINITY),
        Length::Ratio(t) => (u64::MAX, t),
    };
    let taus: Vec<f64> =
        (0..=max_events.min(100_000)).map(|k| if k == 0 { 0.0 } else { boundary(k, c, cv) }).collect();
    let tau = |k: u64| taus.get(k as usize).copied().unwrap_or_else(|| boundary(k, c, cv));
    // At λV = u, surveillance events arrive at rate rr·u per unit of τ.
    let total: f64 =
        nodes.iter().map(|&u| crossing_probability(tau, min_events, max_events, ratio, rr * u)).sum();
    total / nodes.len() as f64
}

/// The critical value giving type I error `alpha`. The error falls as the critical value rises;
/// the root is bracketed by doubling, then found by the Illinois variant of regula falsi (a
/// handful of evaluations, each a crossing recursion per quadrature node).
pub fn critical_value(c: u64, length: Length, alpha: f64, min_events: u64) -> f64 {
    let nodes = mixing_nodes(c.max(1));
    let excess = |cv: f64| signal_probability_over(&nodes, c, length, cv, min_events, 1.0) - alpha;
    let (mut lo, mut hi) = (1e-6, 1.0);
    let mut f_lo = excess(lo);
    let mut f_hi = excess(hi);
    while f_hi > 0.0 && hi < 1e3 {
        (lo, f_lo) = (hi, f_hi);
        hi *= 2.0;
        f_hi = excess(hi);
    }
    if f_lo <= 0.0 {
        return lo;
    }
    let mut side = 0i8;
    for _ in 0..60 {
        let mid = (lo * f_hi - hi * f_lo) / (f_hi - f_lo);
        let f_mid = excess(mid);
        if f_mid.abs() < 1e-9 || hi - lo < 1e-7 {
            return mid;
        }
        if f_mid > 0.0 {
            (lo, f_lo) = (mid, f_mid);
            if side == -1 {
                f_hi /= 2.0;
            }
            side = -1;
        } else {
            (hi, f_hi) = (mid, f_mid);
            if side == 1 {
                f_lo /= 2.0;
            }
            side = 1;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llr_by_hand() {
        // c = 20, k = 10 at τ = 0.25: 20 ln(20·1.25/30) + 10 ln(10·1.25/(0.25·30)).
        let want = 20.0 * (25.0f64 / 30.0).ln() + 10.0 * (12.5f64 / 7.5).ln();
        assert!((llr(10, 20, 0.25) - want).abs() < 1e-12);
        assert_eq!(llr(5, 20, 0.25), 0.0, "k/c = τ: no excess");
        assert_eq!(llr(0, 20, 0.1), 0.0);
    }

    #[test]
    fn critical_value_matches_the_r_sequential_package() {
        // Sequential::CV.CondPoisson(Inference = "exact", StopType = "Cases", K = 20, cc = 20,
        // M = 2, alpha = 0.05) = 3.149115 (package documentation); 3.14796 here (the midpoint
        // rule over 400 quantiles of λV).
        let cv = critical_value(20, Length::Events(20), 0.05, 2);
        assert!((cv - 3.149115).abs() < 2e-3, "{cv}");
        let alpha = signal_probability(20, Length::Events(20), cv, 2, 1.0);
        assert!((alpha - 0.05).abs() < 1e-4, "{alpha}");
        // More risk, more signals.
        assert!(signal_probability(20, Length::Events(20), cv, 2, 2.0) > 0.3);
    }

    #[test]
    fn a_longer_surveillance_needs_a_higher_boundary() {
        let short = critical_value(20, Length::Ratio(0.3), 0.05, 3);
        let long = critical_value(20, Length::Ratio(1.0), 0.05, 3);
        assert!(long > short && short > 1.0, "{short} {long}");
    }
}
