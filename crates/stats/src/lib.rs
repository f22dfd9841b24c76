//! Pharmacovigilance statistics. Pure functions, no I/O.
//!
//! - [`table`]: 2x2 tables from report-level rows (N and margins count distinct reports).
//! - [`disproportionality`]: PRR with its 95% CI and Yates chi-square (Evans et al. 2001), ROR
//!   with its 95% CI, IC with the IC025/IC975 credibility interval from the gamma posterior
//!   (Norén et al. 2006; 2013).
//! - [`mgps`]: DuMouchel's multi-item gamma Poisson shrinker: maximum-likelihood fit of the
//!   two-gamma-mixture prior over all pairs, EBGM, EB05 and EB95 (DuMouchel 1999; as openEBGM).
//! - [`multiplicity`]: Benjamini-Hochberg false-discovery-rate adjusted p-values.
//! - [`poisson`]: exact (Garwood) Poisson confidence intervals for counts and rates.
//! - [`proportion`]: the Wilson score interval for a proportion.
//! - [`trend`]: the score test for a trend in Poisson rates across ordered levels.
//! - [`quantile`]: sample quantiles (R's type 7).
//! - [`regression`]: Poisson regression on person-time (log link, offset, IRLS) with
//!   cluster-robust errors: rate ratios, contrasts, joint Wald tests.
//! - [`cmaxsprt`]: the conditional MaxSPRT (Li and Kulldorff 2010) for a null rate estimated
//!   from historical data, with exact critical values over the estimate's uncertainty.
//! - [`maxsprt`]: the Poisson maximized sequential probability ratio test (Kulldorff et al.
//!   2011): log-likelihood ratio, exact critical value, power.
//!
//! Zero and tiny counts give defined numbers and flags, never NaN or a panic.

pub mod cmaxsprt;
pub mod disproportionality;
pub mod maxsprt;
pub mod mgps;
pub mod multiplicity;
pub mod poisson;
pub mod proportion;
pub mod quantile;
pub mod regression;
pub mod special;
pub mod table;
pub mod trend;

pub use disproportionality::{Disproportionality, Flags, disproportionality};
pub use mgps::{Hyper, MgpsFit, Posterior};
pub use table::{PairCounts, TwoByTwo};
