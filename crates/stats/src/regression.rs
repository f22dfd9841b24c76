//! Poisson regression on person-time: log link, offset log(person-time), fitted by iteratively
//! reweighted least squares (IRLS), with model-based and cluster-robust (sandwich) covariances.
//!
//! For rows i with covariates x_i, events y_i and exposure t_i, the model is
//! log E[y_i] = log t_i + x_i'β. IRLS solves (X'WX) β = X'W z with W = diag(μ), working response
//! z = η + (y − μ)/μ, until the deviance changes by less than 1e-10 (relative).
//!
//! - Model-based covariance: (X'WX)⁻¹ (McCullagh and Nelder 1989).
//! - Cluster-robust covariance: B⁻¹ M B⁻¹ with B = X'WX and M = G/(G−1) Σ_g u_g u_g',
//!   u_g = Σ_{i in g} x_i (y_i − μ_i): the sandwich of Liang and Zeger (1986) with the usual
//!   small-sample factor for G clusters (as Stata's `vce(cluster)`, R's `sandwich::vcovCL` with
//!   `type = "HC0", cadjust = TRUE`, statsmodels' `cov_type="cluster"` with `use_correction=False`
//!   times G/(G−1)). It stays valid when the counts are over-dispersed or rows of one patient or
//!   clinic are correlated.
//!
//! A column with no events in the rows where it is non-zero (an indicator of a level without
//! events) has a maximum-likelihood estimate of −∞: [`fit`] refuses it by name rather than
//! reporting a meaningless large negative number; callers merge or drop such levels first.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// One row of the design: covariates, events, exposure and cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Covariate values, one per column (the intercept is a column of ones, if wanted).
    pub x: Vec<f64>,
    /// Events observed.
    pub events: f64,
    /// Person-time (or other exposure) the events occurred in; must be positive.
    pub exposure: f64,
    /// Cluster the row belongs to (patient or clinic), for the robust covariance.
    pub cluster: u64,
}

/// Why a model cannot be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// No rows, or rows of different widths.
    #[error("the design is empty or ragged")]
    Shape,
    /// A row has a non-positive or non-finite exposure, or negative events.
    #[error("row {0}: exposure must be positive and events non-negative")]
    BadRow(usize),
    /// A column is all zero where events occurred: its estimate would be −∞.
    #[error("column `{0}` has no events where it is non-zero")]
    NoEvents(String),
    /// The columns are linearly dependent (or a column is all zero).
    #[error("the columns are collinear (column `{0}`)")]
    Collinear(String),
    /// IRLS did not converge.
    #[error("IRLS did not converge in {0} iterations")]
    NotConverged(usize),
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Column names, as given.
    pub names: Vec<String>,
    /// Coefficients (log rate ratios).
    pub coef: Vec<f64>,
    /// Model-based covariance (X'WX)⁻¹, row-major p×p.
    pub cov_model: Vec<f64>,
    /// Cluster-robust covariance, row-major p×p.
    pub cov_robust: Vec<f64>,
    /// Clusters seen.
    pub clusters: usize,
    /// Residual deviance.
    pub deviance: f64,
    /// Pearson chi-square / residual degrees of freedom (1 when the Poisson model fits).
    pub dispersion: f64,
    /// Rows and residual degrees of freedom.
    pub rows: usize,
    /// IRLS iterations used.
    pub iterations: usize,
}

/// A coefficient or linear combination with its robust interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The log-scale estimate.
    pub log: f64,
    /// Its robust standard error.
    pub se: f64,
    /// exp(log): a rate ratio.
    pub ratio: f64,
    /// Lower 95% bound of the ratio.
    pub lower: f64,
    /// Upper 95% bound of the ratio.
    pub upper: f64,
    /// Wald z.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// A row of a sparse design: its non-zero covariates as (column, value), e.g. one indicator per
/// factor. Large person-time designs (hundreds of thousands of patients, factors with many
/// levels) fit in memory only this way.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRow {
    /// Non-zero covariates: (column, value).
    pub cols: Vec<(u32, f64)>,
    /// Events observed.
    pub events: f64,
    /// Person-time (or other exposure); must be positive.
    pub exposure: f64,
    /// Cluster the row belongs to, for the robust covariance.
    pub cluster: u64,
}

const MAX_ITERATIONS: usize = 50;
const Z95: f64 = 1.959_963_984_540_054;

/// Fits the Poisson model to `rows` with columns named `names`.
pub fn fit(names: &[&str], rows: &[Row]) -> Result<Fit, FitError> {
    let p = names.len();
    if p == 0 || rows.is_empty() || rows.iter().any(|r| r.x.len() != p) {
        return Err(FitError::Shape);
    }
    let sparse: Vec<SparseRow> = rows
        .iter()
        .map(|r| SparseRow {
            cols: r.x.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(j, v)| (j as u32, *v)).collect(),
            events: r.events,
            exposure: r.exposure,
            cluster: r.cluster,
        })
        .collect();
    fit_sparse(names, &sparse)
}

/// Fits the Poisson model to a sparse design.
pub fn fit_sparse(names: &[&str], rows: &[SparseRow]) -> Result<Fit, FitError> {
    let p = names.len();
    if p == 0 || rows.is_empty() || rows.iter().any(|r| r.cols.iter().any(|&(j, _)| j as usize >= p)) {
        return Err(FitError::Shape);
    }
    if let Some(i) =
        rows.iter().position(|r| !(r.exposure > 0.0 && r.exposure.is_finite() && r.events >= 0.0))
    {
        return Err(FitError::BadRow(i));
    }
    let (mut present, mut events_there) = (vec![false; p], vec![0.0; p]);
    for r in rows {
        for &(j, v) in &r.cols {
            if v != 0.0 {
                present[j as usize] = true;
                events_there[j as usize] += r.events;
            }
        }
    }
    if let Some(j) = (0..p).find(|&j| present[j] && events_there[j] == 0.0) {
        return Err(FitError::NoEvents(names[j].into()));
    }
    // Rows with the same covariates add up (μ = t exp(x'β) is linear in t), so IRLS runs on the
    // distinct covariate patterns; the robust covariance still sees every row's cluster.
    let cells = aggregate(rows);
    let total_events: f64 = cells.iter().map(|r| r.events).sum();
    let total_exposure: f64 = cells.iter().map(|r| r.exposure).sum();
    // Start from the crude rate in η for every row (μ = t × overall rate).
    let crude = (total_events.max(0.5) / total_exposure).ln();
    let mut eta: Vec<f64> = vec![crude; cells.len()];
    let mut coef = vec![0.0; p];
    let mut deviance = f64::INFINITY;
    let mut iterations = 0;
    let mut converged = false;
    while iterations < MAX_ITERATIONS {
        iterations += 1;
        // Weighted normal equations with W = μ, z = η − log t + (y − μ)/μ (offset removed).
        let mut xtwx = vec![0.0; p * p];
        let mut xtwz = vec![0.0; p];
        for (r, &e) in cells.iter().zip(&eta) {
            let mu = (e + r.exposure.ln()).exp();
            let z = e + (r.events - mu) / mu;
            accumulate(&mut xtwx, &mut xtwz, p, &r.cols, mu, z);
        }
        let chol = cholesky(&xtwx, p).map_err(|j| FitError::Collinear(names[j].into()))?;
        coef = chol_solve(&chol, p, &xtwz);
        for (r, e) in cells.iter().zip(eta.iter_mut()) {
            *e = dot(&r.cols, &coef);
        }
        // Convergence on the deviance of the patterns (the rows' differs by a constant).
        let new_deviance = poisson_deviance(&cells, &eta);
        if (deviance - new_deviance).abs() <= 1e-10 * (new_deviance.abs() + 0.1) {
            converged = true;
            break;
        }
        deviance = new_deviance;
    }
    if !converged {
        return Err(FitError::NotConverged(iterations));
    }
    Ok(covariances(names, rows, &cells, coef, iterations))
}

/// The rows' distinct covariate patterns with their events and exposure summed.
fn aggregate(rows: &[SparseRow]) -> Vec<SparseRow> {
    let mut index: std::collections::HashMap<Vec<(u32, u64)>, usize> = std::collections::HashMap::new();
    let mut cells: Vec<SparseRow> = Vec::new();
    for r in rows {
        let key: Vec<(u32, u64)> = r.cols.iter().map(|&(j, v)| (j, v.to_bits())).collect();
        match index.get(&key) {
            Some(&i) => {
                cells[i].events += r.events;
                cells[i].exposure += r.exposure;
            }
            None => {
                index.insert(key, cells.len());
                cells.push(SparseRow {
                    cols: r.cols.clone(),
                    events: r.events,
                    exposure: r.exposure,
                    cluster: 0,
                });
            }
        }
    }
    cells
}

/// The covariances (X'WX over the covariate patterns `cells`, the clusters' scores over `rows`),
/// deviance and dispersion (over `rows`) at the converged coefficients.
fn covariances(
    names: &[&str],
    rows: &[SparseRow],
    cells: &[SparseRow],
    coef: Vec<f64>,
    iterations: usize,
) -> Fit {
    let p = coef.len();
    let mut xtwx = vec![0.0; p * p];
    let mut unused = vec![0.0; p];
    for r in cells {
        let mu = (dot(&r.cols, &coef) + r.exposure.ln()).exp();
        accumulate(&mut xtwx, &mut unused, p, &r.cols, mu, 0.0);
    }
    // Scores per cluster, one cluster at a time (rows in cluster order), into the meat.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].cluster);
    let mut meat = vec![0.0; p * p];
    let mut u = vec![0.0; p];
    let mut touched: Vec<usize> = Vec::new();
    let (mut pearson, mut deviance, mut clusters) = (0.0, 0.0, 0usize);
    let flush = |u: &mut Vec<f64>, touched: &mut Vec<usize>, meat: &mut Vec<f64>| {
        touched.sort_unstable();
        touched.dedup();
        for &a in touched.iter() {
            for &b in touched.iter() {
                meat[a * p + b] += u[a] * u[b];
            }
        }
        for &a in touched.iter() {
            u[a] = 0.0;
        }
        touched.clear();
    };
    for (k, &i) in order.iter().enumerate() {
        let r = &rows[i];
        if k > 0 && rows[order[k - 1]].cluster != r.cluster {
            flush(&mut u, &mut touched, &mut meat);
        }
        if k == 0 || rows[order[k - 1]].cluster != r.cluster {
            clusters += 1;
        }
        let mu = (dot(&r.cols, &coef) + r.exposure.ln()).exp();
        let y = r.events;
        deviance += 2.0 * (if y > 0.0 { y * (y / mu).ln() } else { 0.0 } - (y - mu));
        pearson += (y - mu).powi(2) / mu;
        for &(j, v) in &r.cols {
            u[j as usize] += v * (y - mu);
            touched.push(j as usize);
        }
    }
    flush(&mut u, &mut touched, &mut meat);
    // The fit converged on this matrix, so it is positive definite.
    let chol = cholesky(&xtwx, p).unwrap_or_else(|_| vec![0.0; p * p]);
    let cov_model = chol_inverse(&chol, p);
    let factor = if clusters > 1 { clusters as f64 / (clusters as f64 - 1.0) } else { 1.0 };
    let cov_robust = sandwich(&cov_model, &meat, p, factor);
    let df = rows.len().saturating_sub(p).max(1);
    Fit {
        names: names.iter().map(|s| (*s).to_string()).collect(),
        coef,
        cov_model,
        cov_robust,
        clusters,
        deviance,
        dispersion: pearson / df as f64,
        rows: rows.len(),
        iterations,
    }
}

impl Fit {
    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Robust standard error of coefficient `j`.
    pub fn se_robust(&self, j: usize) -> f64 {
        self.cov_robust[j * self.coef.len() + j].max(0.0).sqrt()
    }

    /// Model-based standard error of coefficient `j`.
    pub fn se_model(&self, j: usize) -> f64 {
        self.cov_model[j * self.coef.len() + j].max(0.0).sqrt()
    }

    /// Coefficient `j` as a rate ratio with its robust 95% interval and Wald test.
    pub fn rate_ratio(&self, j: usize) -> Estimate {
        let mut c = vec![0.0; self.coef.len()];
        c[j] = 1.0;
        self.contrast(&c)
    }

    /// The linear combination c'β (e.g. the difference of two levels' coefficients) with its
    /// robust 95% interval and Wald test.
    pub fn contrast(&self, c: &[f64]) -> Estimate {
        let p = self.coef.len();
        let log: f64 = c.iter().zip(&self.coef).map(|(a, b)| a * b).sum();
        let mut var = 0.0;
        for a in 0..p {
            for b in 0..p {
                var += c[a] * self.cov_robust[a * p + b] * c[b];
            }
        }
        estimate(log, var.max(0.0).sqrt())
    }

    /// The robust Wald chi-square that the coefficients `columns` are all zero, with its
    /// degrees of freedom and p-value (a global test across the levels of a factor).
    pub fn wald_joint(&self, columns: &[usize]) -> (f64, usize, f64) {
        let p = self.coef.len();
        let k = columns.len();
        let sub: Vec<f64> = columns
            .iter()
            .flat_map(|&a| columns.iter().map(move |&b| (a, b)))
            .map(|(a, b)| self.cov_robust[a * p + b])
            .collect();
        let b: Vec<f64> = columns.iter().map(|&j| self.coef[j]).collect();
        let Ok(chol) = cholesky(&sub, k) else {
            return (0.0, k, 1.0);
        };
        let w: f64 = b.iter().zip(chol_solve(&chol, k, &b)).map(|(x, y)| x * y).sum();
        let p_value = ChiSquared::new(k as f64).map_or(1.0, |d| d.sf(w));
        (w, k, p_value)
    }
}

fn estimate(log: f64, se: f64) -> Estimate {
    let z = if se > 0.0 { log / se } else { 0.0 };
    let p = Normal::standard().sf(z.abs()) * 2.0;
    Estimate { log, se, ratio: log.exp(), lower: (log - Z95 * se).exp(), upper: (log + Z95 * se).exp(), z, p }
}

/// Adds w·x x' to `xtwx` and w·z·x to `xtwz`, over the non-zero entries of x.
fn accumulate(xtwx: &mut [f64], xtwz: &mut [f64], p: usize, x: &[(u32, f64)], w: f64, z: f64) {
    for &(a, xa) in x {
        let a = a as usize;
        let wa = w * xa;
        xtwz[a] += wa * z;
        for &(b, xb) in x {
            xtwx[a * p + b as usize] += wa * xb;
        }
    }
}

/// x'β over the non-zero entries of x.
fn dot(x: &[(u32, f64)], beta: &[f64]) -> f64 {
    x.iter().map(|&(j, v)| v * beta[j as usize]).sum()
}

/// Poisson deviance 2 Σ [y log(y/μ) − (y − μ)].
fn poisson_deviance(rows: &[SparseRow], eta: &[f64]) -> f64 {
    rows.iter()
        .zip(eta)
        .map(|(r, e)| {
            let mu = (e + r.exposure.ln()).exp();
            let y = r.events;
            2.0 * (if y > 0.0 { y * (y / mu).ln() } else { 0.0 } - (y - mu))
        })
        .sum()
}

/// Lower-triangular L with A = LL' (row-major); `Err(j)` names the column where A stops being
/// positive definite.
fn cholesky(a: &[f64], p: usize) -> Result<Vec<f64>, usize> {
    let mut l = vec![0.0; p * p];
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= l[j * p + k] * l[j * p + k];
        }
        if d.is_nan() || d <= 1e-12 * a[j * p + j].abs().max(1e-300) {
            return Err(j);
        }
        let d = d.sqrt();
        l[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            l[i * p + j] = s / d;
        }
    }
    Ok(l)
}

/// Solves LL'x = b.
fn chol_solve(l: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; p];
    for i in 0..p {
        let s: f64 = (0..i).map(|k| l[i * p + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * p + i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|k| l[k * p + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * p + i];
    }
    x
}

/// (LL')⁻¹, column by column.
fn chol_inverse(l: &[f64], p: usize) -> Vec<f64> {
    let mut inv = vec![0.0; p * p];
    for j in 0..p {
        let mut e = vec![0.0; p];
        e[j] = 1.0;
        for (i, v) in chol_solve(l, p, &e).into_iter().enumerate() {
            inv[i * p + j] = v;
        }
    }
    inv
}

/// factor · A M A for symmetric A.
fn sandwich(a: &[f64], m: &[f64], p: usize, factor: f64) -> Vec<f64> {
    let mut am = vec![0.0; p * p];
    for i in 0..p {
        for k in 0..p {
            let aik = a[i * p + k];
            for j in 0..p {
                am[i * p + j] += aik * m[k * p + j];
            }
        }
    }
    let mut out = vec![0.0; p * p];
    for i in 0..p {
        for k in 0..p {
            let v = am[i * p + k];
            for j in 0..p {
                out[i * p + j] += v * a[k * p + j];
            }
        }
    }
    out.iter_mut().for_each(|v| *v *= factor);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (cluster, dose band, male, age group, person-years, events): 18 clusters, 63 rows, drawn
    /// once (numpy, seed 20261130) from rates rising with band, gamma-distributed between
    /// clusters (over-dispersed, so robust and model errors differ).
    const DATA: &[(u64, usize, u8, u8, f64, u32)] = &[
        (0, 0, 0, 0, 1.104, 0),
        (0, 1, 0, 0, 1.620, 4),
        (0, 2, 0, 0, 2.239, 0),
        (0, 3, 0, 0, 0.369, 0),
        (1, 0, 1, 1, 0.657, 1),
        (1, 1, 1, 1, 2.561, 0),
        (1, 2, 1, 1, 0.762, 1),
        (1, 3, 1, 1, 2.776, 4),
        (2, 0, 0, 2, 2.386, 3),
        (2, 1, 0, 2, 2.540, 0),
        (2, 2, 0, 2, 0.819, 2),
        (3, 0, 1, 0, 1.777, 0),
        (3, 2, 1, 0, 2.791, 4),
        (3, 3, 1, 0, 2.895, 2),
        (4, 0, 0, 1, 0.253, 0),
        (4, 1, 0, 1, 1.632, 0),
        (4, 2, 0, 1, 0.386, 1),
        (5, 0, 1, 2, 0.892, 0),
        (5, 1, 1, 2, 1.845, 5),
        (5, 3, 1, 2, 1.108, 4),
        (6, 0, 0, 0, 1.233, 0),
        (6, 1, 0, 0, 1.896, 0),
        (6, 2, 0, 0, 0.761, 4),
        (6, 3, 0, 0, 0.698, 0),
        (7, 0, 1, 1, 1.619, 0),
        (7, 2, 1, 1, 2.035, 5),
        (7, 3, 1, 1, 0.601, 1),
        (8, 0, 0, 2, 1.034, 0),
        (8, 2, 0, 2, 1.092, 0),
        (8, 3, 0, 2, 0.914, 2),
        (9, 0, 1, 0, 1.170, 0),
        (9, 1, 1, 0, 1.572, 1),
        (9, 2, 1, 0, 0.787, 1),
        (9, 3, 1, 0, 1.845, 4),
        (10, 0, 0, 1, 0.669, 0),
        (10, 1, 0, 1, 2.489, 0),
        (10, 3, 0, 1, 0.688, 2),
        (11, 0, 1, 2, 2.446, 1),
        (11, 1, 1, 2, 1.417, 3),
        (11, 2, 1, 2, 2.636, 6),
        (11, 3, 1, 2, 2.152, 5),
        (12, 0, 0, 0, 2.184, 0),
        (12, 1, 0, 0, 2.528, 0),
        (12, 2, 0, 0, 2.244, 4),
        (12, 3, 0, 0, 2.732, 9),
        (13, 0, 1, 1, 0.436, 0),
        (13, 1, 1, 1, 1.594, 0),
        (13, 2, 1, 1, 1.715, 1),
        (14, 0, 0, 2, 1.649, 0),
        (14, 1, 0, 2, 2.386, 2),
        (14, 2, 0, 2, 0.337, 3),
        (14, 3, 0, 2, 2.635, 9),
        (15, 0, 1, 0, 2.561, 5),
        (15, 1, 1, 0, 0.864, 0),
        (15, 2, 1, 0, 1.927, 4),
        (15, 3, 1, 0, 2.591, 6),
        (16, 0, 0, 1, 1.904, 0),
        (16, 1, 0, 1, 2.637, 3),
        (16, 2, 0, 1, 2.798, 3),
        (16, 3, 0, 1, 0.294, 0),
        (17, 0, 1, 2, 0.526, 0),
        (17, 1, 1, 2, 1.334, 1),
        (17, 2, 1, 2, 1.350, 4),
    ];

    fn design(trend: bool) -> (Vec<&'static str>, Vec<Row>) {
        let names = if trend {
            vec!["intercept", "band_score", "male", "age_1", "age_2"]
        } else {
            vec!["intercept", "band_1", "band_2", "band_3", "male", "age_1", "age_2"]
        };
        let rows = DATA
            .iter()
            .map(|&(cluster, band, male, age, t, y)| {
                let mut x = vec![1.0];
                if trend {
                    x.push(band as f64);
                } else {
                    x.extend((1..=3).map(|b| f64::from(u8::from(band == b))));
                }
                x.extend([f64::from(male), f64::from(u8::from(age == 1)), f64::from(u8::from(age == 2))]);
                Row { x, events: f64::from(y), exposure: t, cluster }
            })
            .collect();
        (names, rows)
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{what}: got {got:?}, want {want:?}");
        }
    }

    /// statsmodels 0.14 `GLM(y, X, family=Poisson(), offset=log(t)).fit(tol=1e-12)`; robust:
    /// `cov_type="cluster", cov_kwds={"groups": g, "use_correction": False}`, times sqrt(G/(G−1)).
    /// Tolerance 1e-7: statsmodels takes the model covariance from the weights of its last
    /// iteration, these from the converged coefficients (they differ in the 8th digit).
    #[test]
    fn matches_statsmodels_with_dose_bands_as_levels() {
        let (names, rows) = design(false);
        let f = fit(&names, &rows).expect("fits");
        let coef = [
            -1.0786180318,
            0.5381653319,
            1.5177944075,
            1.6720328443,
            0.1067013894,
            -0.3075892887,
            0.434129554,
        ];
        let se_model =
            [0.3514462257, 0.3919816714, 0.352257836, 0.3486653364, 0.1867613885, 0.260314307, 0.2032078283];
        let se_robust =
            [0.5387801611, 0.6740891586, 0.5281994981, 0.5248929951, 0.18773383, 0.2051767276, 0.2051371284];
        assert_close(&f.coef, &coef, 1e-8, "coefficients");
        assert_close(&(0..7).map(|j| f.se_model(j)).collect::<Vec<_>>(), &se_model, 1e-7, "model se");
        assert_close(&(0..7).map(|j| f.se_robust(j)).collect::<Vec<_>>(), &se_robust, 1e-8, "robust se");
        assert!((f.deviance - 91.6963592549).abs() < 1e-7, "{}", f.deviance);
        assert!((f.dispersion - 92.2220572846 / 56.0).abs() < 1e-8);
        assert_eq!((f.clusters, f.rows), (18, 63));
        // Band 3 against band 0: exp(1.672) with the robust interval.
        let rr = f.rate_ratio(3);
        assert!((rr.ratio - 1.6720328443f64.exp()).abs() < 1e-7);
        assert!((rr.lower - (1.6720328443f64 - Z95 * 0.5248929951).exp()).abs() < 1e-7);
        // Band 3 against band 2: a contrast of two coefficients.
        let c = f.contrast(&[0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0]);
        assert!((c.log - (1.6720328443 - 1.5177944075)).abs() < 1e-8);
        // The three band coefficients together: a 3-df robust Wald test.
        let (w, df, p) = f.wald_joint(&[1, 2, 3]);
        assert_eq!(df, 3);
        assert!(w > 10.0 && p < 0.02, "{w} {p}");
    }

    #[test]
    fn matches_statsmodels_with_a_trend_across_bands() {
        let (names, rows) = design(true);
        let f = fit(&names, &rows).expect("fits");
        assert_close(
            &f.coef,
            &[-0.9445531735, 0.5500212812, 0.1233752574, -0.2907056018, 0.4141876489],
            1e-8,
            "coef",
        );
        let se: Vec<f64> = (0..5).map(|j| f.se_robust(j)).collect();
        assert_close(
            &se,
            &[0.2539733503, 0.1121274838, 0.167183653, 0.2352821538, 0.1875131804],
            1e-8,
            "robust",
        );
        let se: Vec<f64> = (0..5).map(|j| f.se_model(j)).collect();
        assert_close(
            &se,
            &[0.2626846011, 0.0922242015, 0.1864114134, 0.2590415049, 0.2029881757],
            1e-7,
            "model",
        );
        let trend = f.rate_ratio(1);
        assert!((trend.z - 0.5500212812 / 0.1121274838).abs() < 1e-6 && trend.p < 1e-5, "{trend:?}");
    }

    /// One binary covariate: the MLE is the crude rate ratio, its model variance 1/y0 + 1/y1.
    #[test]
    fn two_groups_give_the_crude_rate_ratio() {
        let rows = vec![
            Row { x: vec![1.0, 0.0], events: 10.0, exposure: 200.0, cluster: 1 },
            Row { x: vec![1.0, 1.0], events: 30.0, exposure: 150.0, cluster: 2 },
        ];
        let f = fit(&["intercept", "exposed"], &rows).expect("fits");
        let rr = (30.0 / 150.0) / (10.0 / 200.0);
        assert!((f.rate_ratio(1).ratio - rr).abs() < 1e-9);
        assert!((f.se_model(1) - (1.0f64 / 10.0 + 1.0 / 30.0).sqrt()).abs() < 1e-9);
        assert!((f.coef[0] - (10.0f64 / 200.0).ln()).abs() < 1e-9);
        assert!(f.deviance.abs() < 1e-9, "saturated");
    }

    #[test]
    fn unusable_designs_are_named() {
        let row = |x: Vec<f64>, events: f64, exposure: f64| Row { x, events, exposure, cluster: 0 };
        let none_there = vec![row(vec![1.0, 0.0], 3.0, 1.0), row(vec![1.0, 1.0], 0.0, 2.0)];
        assert_eq!(fit(&["i", "band_3"], &none_there), Err(FitError::NoEvents("band_3".into())));
        let collinear = vec![row(vec![1.0, 2.0], 3.0, 1.0), row(vec![1.0, 2.0], 1.0, 2.0)];
        assert_eq!(fit(&["i", "twice"], &collinear), Err(FitError::Collinear("twice".into())));
        assert_eq!(fit(&["i"], &[row(vec![1.0], 1.0, 0.0)]), Err(FitError::BadRow(0)));
        assert_eq!(fit(&["i", "j"], &[row(vec![1.0], 1.0, 1.0)]), Err(FitError::Shape));
    }
}
