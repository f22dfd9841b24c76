//! The multi-item gamma Poisson shrinker (DuMouchel 1999), as implemented in openEBGM.
//!
//! Model: for each product-event pair, N ~ Poisson(λE) and
//! λ ~ P·Gamma(α1, β1) + (1−P)·Gamma(α2, β2) (shape, rate). Marginally N is a mixture of
//! negative binomials; pairs with N = 0 are not in the data, so each component is truncated
//! at zero (openEBGM's `negLL` with `N_star = 1`). The five hyperparameters maximise the
//! likelihood over all pairs: quasi-Newton (L-BFGS with a backtracking Armijo line search,
//! argmin) with the analytic gradient, on logit P and on α, β mapped smoothly into the bounds
//! [`PARAM_MIN`], [`PARAM_MAX`] (a bounded fit, as openEBGM's `nlminb`), from three starting points; the
//! best converged solution is kept and the others are reported for agreement. Each start has a
//! budget of likelihood evaluations, so degenerate data (a non-finite gradient, a line search
//! that cannot make progress) ends in [`FitError::NoConvergence`], never in a hang.
//!
//! Posterior per pair: Qn = P f1(n) / (P f1(n) + (1−P) f2(n)) with the untruncated densities
//! (DuMouchel 1999, eq. 6); λ | N=n ~ Qn·Gamma(α1+n, β1+E) + (1−Qn)·Gamma(α2+n, β2+E);
//! EBGM = exp(E[ln λ]); EB05 and EB95 are its 5% and 95% quantiles.
//!
//! Component labels are arbitrary in a mixture: results are reported with component 1 the one
//! with the larger prior mean α/β, as in openEBGM's published CAERS estimates.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient, State};
use argmin::solver::linesearch::BacktrackingLineSearch;
use argmin::solver::linesearch::condition::ArmijoCondition;
use argmin::solver::quasinewton::LBFGS;
use serde::Serialize;
use statrs::function::gamma::{digamma, ln_gamma};

use crate::special::{gamma_cdf, gamma_pdf, quantile_by_newton};

/// The prior's five hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hyper {
    /// Shape of component 1.
    pub alpha1: f64,
    /// Rate of component 1.
    pub beta1: f64,
    /// Shape of component 2.
    pub alpha2: f64,
    /// Rate of component 2.
    pub beta2: f64,
    /// Weight of component 1.
    pub p: f64,
}

impl Hyper {
    /// Starting points of the fit (openEBGM's vignette choices, DuMouchel's first).
    pub const STARTS: [Hyper; 3] = [
        Hyper { alpha1: 0.2, beta1: 0.1, alpha2: 2.0, beta2: 4.0, p: 1.0 / 3.0 },
        Hyper { alpha1: 0.1, beta1: 0.2, alpha2: 10.0, beta2: 10.0, p: 0.2 },
        Hyper { alpha1: 0.3, beta1: 0.5, alpha2: 6.0, beta2: 6.0, p: 0.5 },
    ];

    fn to_free(self) -> Vec<f64> {
        vec![
            shape_to_free(self.alpha1),
            shape_to_free(self.beta1),
            shape_to_free(self.alpha2),
            shape_to_free(self.beta2),
            (self.p / (1.0 - self.p)).ln(),
        ]
    }

    fn from_free(x: &[f64]) -> Self {
        Self {
            alpha1: shape_from_free(x[0]),
            beta1: shape_from_free(x[1]),
            alpha2: shape_from_free(x[2]),
            beta2: shape_from_free(x[3]),
            p: sigmoid(x[4]),
        }
    }

    /// Whether a shape or rate lies at (within 1% in log terms of) one of its bounds: the data
    /// pushed the prior to a limit, typically a component with no spread (all λ alike, as in a
    /// stream without disproportionality) or a component of zero weight.
    pub fn at_bound(&self) -> bool {
        let span = PARAM_MAX.ln() - PARAM_MIN.ln();
        [self.alpha1, self.beta1, self.alpha2, self.beta2]
            .iter()
            .any(|v| (v.ln() - PARAM_MIN.ln()) < 0.01 * span || (PARAM_MAX.ln() - v.ln()) < 0.01 * span)
    }

    /// The same mixture with component 1 the one with the larger prior mean.
    pub fn canonical(self) -> Self {
        if self.alpha1 / self.beta1 >= self.alpha2 / self.beta2 {
            self
        } else {
            Self {
                alpha1: self.alpha2,
                beta1: self.beta2,
                alpha2: self.alpha1,
                beta2: self.beta1,
                p: 1.0 - self.p,
            }
        }
    }
}

/// The fitted prior.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MgpsFit {
    /// The maximum-likelihood hyperparameters.
    pub hyper: Hyper,
    /// Negative log-likelihood at the optimum (with the ln N! terms, as openEBGM reports it).
    pub neg_log_likelihood: f64,
    /// Pairs fitted.
    pub pairs: usize,
    /// Distinct (N, E) values the likelihood ran over (identical pairs are weighted, exactly).
    pub distinct_points: usize,
    /// Starting points tried.
    pub starts: usize,
    /// Starts that converged.
    pub converged: usize,
    /// Converged starts within 1e-3 of the best likelihood.
    pub agreeing: usize,
}

/// Smallest shape or rate the fit considers.
pub const PARAM_MIN: f64 = 1e-5;
/// Largest shape or rate the fit considers. Homogeneous data (every λ alike) have their
/// likelihood maximum at infinite α = β; the bound stops there (prior sd of λ 1%), where
/// unbounded quasi-Newton would walk off and never converge.
pub const PARAM_MAX: f64 = 1e4;

fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

/// Shape or rate from its free parameter: ln θ = ln min + (ln max − ln min)·σ(u), so every
/// real u is a valid θ within the bounds and the optimiser needs no constraints.
fn shape_from_free(u: f64) -> f64 {
    (PARAM_MIN.ln() + (PARAM_MAX.ln() - PARAM_MIN.ln()) * sigmoid(u)).exp()
}

/// dθ/du of [`shape_from_free`].
fn shape_jacobian(u: f64, theta: f64) -> f64 {
    let s = sigmoid(u);
    theta * (PARAM_MAX.ln() - PARAM_MIN.ln()) * s * (1.0 - s)
}

/// Inverse of [`shape_from_free`] (values are clamped into the bounds first).
fn shape_to_free(theta: f64) -> f64 {
    let t = (theta.clamp(PARAM_MIN, PARAM_MAX).ln() - PARAM_MIN.ln()) / (PARAM_MAX.ln() - PARAM_MIN.ln());
    let t = t.clamp(1e-12, 1.0 - 1e-12);
    (t / (1.0 - t)).ln()
}

/// Why no fit is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FitError {
    /// No pair with N >= 1 and E > 0.
    NoData,
    /// No start converged to a finite likelihood.
    NoConvergence,
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitError::NoData => f.write_str("no pair with N >= 1 and E > 0 to fit"),
            FitError::NoConvergence => f.write_str("the MGPS likelihood did not converge from any start"),
        }
    }
}

impl std::error::Error for FitError {}

/// The last likelihood evaluation: (free parameters, cost, gradient).
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// The fitting data: distinct (N, E) points with their multiplicity.
struct Data {
    n: Vec<f64>,
    ln_e: Vec<f64>,
    e: Vec<f64>,
    w: Vec<f64>,
    /// Index of each point's N in `distinct_n`.
    n_index: Vec<usize>,
    distinct_n: Vec<f64>,
    /// Sum over points of w · ln N!.
    ln_fact_total: f64,
    /// Last evaluation, (free params, cost, gradient): argmin asks for cost and gradient apart.
    cache: Mutex<Option<Evaluation>>,
    /// Likelihood evaluations so far (bounded by [`MAX_EVALUATIONS`]).
    evaluations: AtomicUsize,
}

/// Likelihood evaluations allowed per start: a healthy fit needs a few hundred.
const MAX_EVALUATIONS: usize = 20_000;

impl Data {
    fn new(pairs: &[(u64, f64)]) -> Self {
        let mut grouped: HashMap<(u64, u64), f64> = HashMap::new();
        for &(n, e) in pairs.iter().filter(|(n, e)| *n >= 1 && *e > 0.0 && e.is_finite()) {
            *grouped.entry((n, e.to_bits())).or_insert(0.0) += 1.0;
        }
        let mut points: Vec<((u64, u64), f64)> = grouped.into_iter().collect();
        points.sort_by_key(|p| p.0);
        let mut distinct: Vec<u64> = points.iter().map(|p| p.0.0).collect();
        distinct.dedup();
        let index: HashMap<u64, usize> = distinct.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut d = Data {
            n: Vec::with_capacity(points.len()),
            ln_e: Vec::with_capacity(points.len()),
            e: Vec::with_capacity(points.len()),
            w: Vec::with_capacity(points.len()),
            n_index: Vec::with_capacity(points.len()),
            distinct_n: distinct.iter().map(|&n| n as f64).collect(),
            ln_fact_total: 0.0,
            cache: Mutex::new(None),
            evaluations: AtomicUsize::new(0),
        };
        for ((n, e_bits), w) in points {
            let e = f64::from_bits(e_bits);
            d.n.push(n as f64);
            d.e.push(e);
            d.ln_e.push(e.ln());
            d.w.push(w);
            d.n_index.push(index[&n]);
            d.ln_fact_total += w * ln_gamma(n as f64 + 1.0);
        }
        d
    }

    /// Negative log-likelihood (without the constant ln N! terms) and its gradient in the free
    /// parameters (see [`shape_from_free`] for α and β; logit P).
    fn eval(&self, free: &[f64]) -> (f64, Vec<f64>) {
        if let Ok(cache) = self.cache.lock()
            && let Some((x, c, g)) = cache.as_ref()
            && x.as_slice() == free
        {
            return (*c, g.clone());
        }
        let h = Hyper::from_free(free);
        let comps = [(h.alpha1, h.beta1), (h.alpha2, h.beta2)];
        // Per distinct N: lnΓ(α+n) − lnΓ(α) and ψ(α+n) − ψ(α).
        let per_n: Vec<[(f64, f64); 2]> = self
            .distinct_n
            .iter()
            .map(|&n| comps.map(|(a, _)| (ln_gamma(a + n) - ln_gamma(a), digamma(a + n) - digamma(a))))
            .collect();
        let mut nll = 0.0;
        let mut g = [0.0f64; 5];
        for i in 0..self.n.len() {
            let (n, e, ln_e, w) = (self.n[i], self.e[i], self.ln_e[i], self.w[i]);
            let pn = &per_n[self.n_index[i]];
            let mut lg = [0.0f64; 2];
            let mut da = [0.0f64; 2];
            let mut db = [0.0f64; 2];
            for k in 0..2 {
                let (a, b) = comps[k];
                let lr = -(e / b).ln_1p(); // ln(β/(β+E))
                let ln_b_e = (b + e).ln();
                let lf = pn[k].0 + a * lr + n * (ln_e - ln_b_e);
                let lp0 = a * lr; // ln f(0)
                let p0 = lp0.exp();
                let trunc = -lp0.exp_m1(); // 1 − f(0)
                lg[k] = lf - trunc.ln();
                da[k] = pn[k].1 + lr + p0 * lr / trunc;
                db[k] = a / b - (a + n) / (b + e) + p0 * a * e / (b * (b + e)) / trunc;
            }
            let m = lg[0].max(lg[1]);
            let s1 = h.p * (lg[0] - m).exp();
            let s2 = (1.0 - h.p) * (lg[1] - m).exp();
            let ll = m + (s1 + s2).ln();
            nll -= w * ll;
            let (r1, r2) = (s1 / (s1 + s2), s2 / (s1 + s2));
            g[0] -= w * r1 * da[0];
            g[1] -= w * r1 * db[0];
            g[2] -= w * r2 * da[1];
            g[3] -= w * r2 * db[1];
            // ∂ln L/∂P = (g1 − g2)/L = r1/P − r2/(1−P).
            g[4] -= w * (r1 / h.p - r2 / (1.0 - h.p));
        }
        // Chain rule to the free parameters.
        let grad = vec![
            g[0] * shape_jacobian(free[0], h.alpha1),
            g[1] * shape_jacobian(free[1], h.beta1),
            g[2] * shape_jacobian(free[2], h.alpha2),
            g[3] * shape_jacobian(free[3], h.beta2),
            g[4] * h.p * (1.0 - h.p),
        ];
        let nll = if nll.is_finite() { nll } else { f64::INFINITY };
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((free.to_vec(), nll, grad.clone()));
        }
        (nll, grad)
    }
}

impl Data {
    /// [`Data::eval`] within the evaluation budget, at finite parameters (a non-finite
    /// gradient at an accepted point makes the next trial point NaN, where a backtracking line
    /// search would otherwise halve its step forever).
    fn checked_eval(&self, p: &[f64]) -> Result<(f64, Vec<f64>), ArgminError> {
        if self.evaluations.fetch_add(1, Ordering::Relaxed) >= MAX_EVALUATIONS {
            return Err(ArgminError::msg("MGPS fit: evaluation budget exhausted"));
        }
        if p.iter().any(|v| !v.is_finite()) {
            return Err(ArgminError::msg("MGPS fit: non-finite parameters"));
        }
        Ok(self.eval(p))
    }
}

impl CostFunction for Data {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, ArgminError> {
        Ok(self.checked_eval(p)?.0)
    }
}

impl Gradient for Data {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> Result<Vec<f64>, ArgminError> {
        Ok(self.checked_eval(p)?.1)
    }
}

/// Negative log-likelihood of `h` on `pairs` (N, E), ln N! included (comparable with openEBGM).
pub fn neg_log_likelihood(h: &Hyper, pairs: &[(u64, f64)]) -> f64 {
    let data = Data::new(pairs);
    data.eval(&h.to_free()).0 + data.ln_fact_total
}

/// Fits the prior to all pairs (N, E) by maximum likelihood; pairs with N = 0 or E <= 0 are
/// left out.
pub fn fit(pairs: &[(u64, f64)]) -> Result<MgpsFit, FitError> {
    fit_from(pairs, &Hyper::STARTS)
}

/// [`fit`] from the given starting points.
pub fn fit_from(pairs: &[(u64, f64)], starts: &[Hyper]) -> Result<MgpsFit, FitError> {
    let n_pairs = pairs.iter().filter(|(n, e)| *n >= 1 && *e > 0.0).count();
    if n_pairs == 0 {
        return Err(FitError::NoData);
    }
    let mut results: Vec<(f64, Hyper)> = Vec::new();
    let mut distinct_points = 0;
    for start in starts {
        let data = Data::new(pairs);
        distinct_points = data.n.len();
        let ln_fact = data.ln_fact_total;
        // Backtracking (Armijo) copes with a trial step whose likelihood overflows: it halves
        // the step, where More-Thuente gives up on the first non-finite value.
        let Ok(armijo) = ArmijoCondition::new(1e-4) else { continue };
        let Ok(linesearch) = BacktrackingLineSearch::new(armijo).rho(0.5) else { continue };
        let Ok(solver) = LBFGS::new(linesearch, 7).with_tolerance_grad(1e-7) else { continue };
        let Ok(solver) = solver.with_tolerance_cost(1e-12) else { continue };
        let run = Executor::new(data, solver).configure(|s| s.param(start.to_free()).max_iters(1000)).run();
        let Ok(res) = run else { continue };
        let state = res.state();
        let (Some(best), cost) = (state.get_best_param(), state.get_best_cost()) else { continue };
        // Converged: the gradient (in ln α, ln β, logit P) has vanished, whatever stopped the
        // solver (a line search that cannot improve further also ends it at the optimum).
        let grad_norm = Data::new(pairs).eval(best).1.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        if cost.is_finite() && grad_norm < 1e-2 {
            results.push((cost + ln_fact, Hyper::from_free(best).canonical()));
        }
    }
    let converged = results.len();
    let (best_nll, best) =
        results.iter().copied().min_by(|a, b| a.0.total_cmp(&b.0)).ok_or(FitError::NoConvergence)?;
    let agreeing = results.iter().filter(|r| (r.0 - best_nll).abs() < 1e-3).count();
    Ok(MgpsFit {
        hyper: best,
        neg_log_likelihood: best_nll,
        pairs: n_pairs,
        distinct_points,
        starts: starts.len(),
        converged,
        agreeing,
    })
}

/// Posterior summaries of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Posterior {
    /// Probability that λ comes from component 1.
    pub qn: f64,
    /// Empirical Bayes geometric mean.
    pub ebgm: f64,
    /// 5% quantile of the posterior.
    pub eb05: f64,
    /// 95% quantile of the posterior.
    pub eb95: f64,
}

/// ln of the untruncated negative-binomial probability of `n` for one component.
fn ln_nb(a: f64, b: f64, n: f64, e: f64) -> f64 {
    ln_gamma(a + n) - ln_gamma(a) - ln_gamma(n + 1.0) + a * (b / (b + e)).ln() + n * (e / (b + e)).ln()
}

/// The posterior of λ for a pair with `n` reports and expected count `e`.
pub fn posterior(h: &Hyper, n: u64, e: f64) -> Posterior {
    let nf = n as f64;
    let e = if e > 0.0 && e.is_finite() { e } else { f64::MIN_POSITIVE };
    let (l1, l2) = (ln_nb(h.alpha1, h.beta1, nf, e), ln_nb(h.alpha2, h.beta2, nf, e));
    let m = l1.max(l2);
    let (s1, s2) = (h.p * (l1 - m).exp(), (1.0 - h.p) * (l2 - m).exp());
    let qn = if s1 + s2 > 0.0 { s1 / (s1 + s2) } else { 0.5 };
    let (a1, b1, a2, b2) = (h.alpha1 + nf, h.beta1 + e, h.alpha2 + nf, h.beta2 + e);
    let e_ln = qn * (digamma(a1) - b1.ln()) + (1.0 - qn) * (digamma(a2) - b2.ln());
    let ebgm = e_ln.exp();
    let cdf = |x: f64| qn * gamma_cdf(a1, b1, x) + (1.0 - qn) * gamma_cdf(a2, b2, x);
    let pdf = |x: f64| qn * gamma_pdf(a1, b1, x) + (1.0 - qn) * gamma_pdf(a2, b2, x);
    Posterior {
        qn,
        ebgm,
        eb05: quantile_by_newton(0.05, ebgm, cdf, pdf),
        eb95: quantile_by_newton(0.95, ebgm, cdf, pdf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_matches_finite_differences() {
        let pairs: Vec<(u64, f64)> = (0..300)
            .map(|i| ((i % 7 + 1) as u64 * if i % 29 == 0 { 9 } else { 1 }, 0.01 + (i % 13) as f64 * 0.3))
            .collect();
        let data = Data::new(&pairs);
        let x = Hyper { alpha1: 1.7, beta1: 0.6, alpha2: 0.8, beta2: 1.3, p: 0.3 }.to_free();
        let (_, g) = data.eval(&x);
        for k in 0..5 {
            let h = 1e-6;
            let (mut up, mut dn) = (x.clone(), x.clone());
            up[k] += h;
            dn[k] -= h;
            let fd = (data.eval(&up).0 - data.eval(&dn).0) / (2.0 * h);
            assert!((g[k] - fd).abs() < 1e-4 * fd.abs().max(1.0), "param {k}: {} vs {fd}", g[k]);
        }
    }

    /// A small deterministic generator for test data (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            ((self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            (-2.0 * self.uniform().ln()).sqrt() * (std::f64::consts::TAU * self.uniform()).cos()
        }

        /// Gamma(shape, rate) by Marsaglia and Tsang (shape >= 1 here).
        fn gamma(&mut self, shape: f64, rate: f64) -> f64 {
            let d = shape - 1.0 / 3.0;
            let c = 1.0 / (9.0 * d).sqrt();
            loop {
                let x = self.normal();
                let v = (1.0 + c * x).powi(3);
                if v > 0.0 && self.uniform().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                    return d * v / rate;
                }
            }
        }

        /// Poisson(mean) by inversion (small means here).
        fn poisson(&mut self, mean: f64) -> u64 {
            let (mut k, mut p, mut cdf) = (0u64, (-mean).exp(), (-mean).exp());
            let u = self.uniform();
            while u > cdf && k < 10_000 {
                k += 1;
                p *= mean / k as f64;
                cdf += p;
            }
            k
        }
    }

    #[test]
    fn a_fit_on_data_drawn_from_a_known_prior_recovers_it() {
        let truth = Hyper { alpha1: 3.0, beta1: 0.5, alpha2: 2.0, beta2: 2.0, p: 0.1 };
        let mut rng = Rng(0x9E3779B97F4A7C15);
        // The model's own data: pick a component with probability P, then draw N from that
        // component's negative binomial given N >= 1 (each component truncated at zero).
        let mut pairs = Vec::new();
        while pairs.len() < 20_000 {
            let e = 0.02 + 2.0 * rng.uniform();
            let (a, b) = if rng.uniform() < truth.p {
                (truth.alpha1, truth.beta1)
            } else {
                (truth.alpha2, truth.beta2)
            };
            let n = loop {
                let lam = rng.gamma(a, b);
                let n = rng.poisson(lam * e);
                if n >= 1 {
                    break n;
                }
            };
            pairs.push((n, e));
        }
        let fit = fit(&pairs).expect("fits");
        assert!(fit.neg_log_likelihood <= neg_log_likelihood(&truth, &pairs) + 1e-6, "{fit:?}");
        assert!(fit.converged >= 2 && fit.agreeing >= 2, "{fit:?}");
        let h = fit.hyper;
        // Prior means α/β (6 and 1) and the weight are what 20,000 pairs pin down well.
        assert!((h.alpha1 / h.beta1 - 6.0).abs() < 1.0, "{h:?}");
        assert!((h.alpha2 / h.beta2 - 1.0).abs() < 0.15, "{h:?}");
        assert!((h.p - 0.1).abs() < 0.05, "{h:?}");
    }

    #[test]
    fn homogeneous_data_fit_at_the_bound_and_shrink_to_one() {
        // Every pair's λ is 1 (no disproportionality anywhere): the likelihood rises towards
        // α = β = ∞. Unbounded, no start converged (the signals service saw exactly this on a
        // null stream); bounded, the fit stops at the bound and says so.
        let mut rng = Rng(0xD1B54A32D192ED03);
        let pairs: Vec<(u64, f64)> = (0..200)
            .map(|_| {
                let e = 5.0 + 45.0 * rng.uniform();
                let n = loop {
                    let n = rng.poisson(e);
                    if n >= 1 {
                        break n;
                    }
                };
                (n, e)
            })
            .collect();
        let fit = fit(&pairs).expect("a bounded fit converges");
        assert!(fit.hyper.at_bound(), "{fit:?}");
        // The dominant component is centred on λ = 1 with almost no spread.
        let h = fit.hyper;
        let (a, b) = if h.p >= 0.5 { (h.alpha1, h.beta1) } else { (h.alpha2, h.beta2) };
        assert!((a / b - 1.0).abs() < 0.05 && a > 100.0, "{h:?}");
        // A pair with twice its expected count is not believed to be disproportionate.
        let p = posterior(&fit.hyper, 40, 20.0);
        assert!(p.ebgm < 1.2 && p.eb05 < 1.1, "{p:?}");
        assert!(Hyper::STARTS.iter().all(|s| !s.at_bound()));
    }

    #[test]
    fn posterior_is_defined_for_edge_inputs() {
        let h = Hyper { alpha1: 3.25, beta1: 0.4, alpha2: 2.02, beta2: 1.91, p: 0.065 };
        for (n, e) in [(1u64, 1e-9), (1, 0.0), (0, 0.5), (500, 0.01), (1, 1e6)] {
            let p = posterior(&h, n, e);
            for v in [p.qn, p.ebgm, p.eb05, p.eb95] {
                assert!(v.is_finite() && v >= 0.0, "n={n} e={e}: {p:?}");
            }
            assert!(p.eb05 <= p.ebgm && p.ebgm <= p.eb95, "n={n} e={e}: {p:?}");
        }
        assert_eq!(fit(&[(0, 1.0), (3, 0.0)]), Err(FitError::NoData));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn posterior_summaries_are_ordered(n in 0u64..2_000, e in 1e-6f64..1e4) {
            let h = Hyper { alpha1: 3.26, beta1: 0.4, alpha2: 2.02, beta2: 1.91, p: 0.065 };
            let p = posterior(&h, n, e);
            prop_assert!(p.qn >= 0.0 && p.qn <= 1.0);
            prop_assert!(p.eb05 <= p.ebgm * (1.0 + 1e-9) && p.ebgm <= p.eb95 * (1.0 + 1e-9), "{:?}", p);
            prop_assert!(p.eb05 > 0.0 && p.eb95.is_finite());
        }
    }
}
