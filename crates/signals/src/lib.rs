//! The signals service: on a schedule, reads aggregates of the stored events from ClickHouse,
//! runs every analysis ([`compute`]) for the period and cumulatively, stores the results, and
//! emits an Avro [`SignalEvent`] on the signals topic for every signal that is new, updated
//! (more cases) or closed.
//!
//! - [`config`]: schedule and thresholds.
//! - [`model`]: what is read (aggregates) and written (results).
//! - [`compute`]: the analyses, pure.
//! - [`artefacts`]: clinics' reporting surges, recognised and kept out of harm decisions (pure).
//! - [`sequential`]: MaxSPRT / CMaxSPRT of each monitored harm per product on person-time (pure).
//! - [`markers`]: dependence markers as dated deviations from the patient's protocol (pure).
//! - [`cohort`]: the treated cohort split into person-time at risk, per harm (pure).
//! - [`cohort_query`]: the cohort's doses, enrolments and cases as received by the as-of time.
//! - [`person_time`]: incidence and Poisson rate ratios on that person-time (pure).
//! - [`queries`]: the aggregates, in SQL that runs on ClickHouse 18.16 and current releases.
//! - [`contributions`]: which cases and patients each result counts.
//! - [`status`]: which results changed state since the last run (pure).
//! - [`service`]: one run and the scheduled loop.

pub mod artefacts;
pub mod cohort;
pub mod cohort_query;
pub mod compute;
pub mod config;
pub mod contributions;
pub mod event;
pub mod markers;
pub mod metrics;
pub mod model;
pub mod person_time;
pub mod queries;
pub mod sequential;
pub mod service;
pub mod status;

pub use compute::Analyser;
pub use config::SignalsConfig;
pub use event::{Change, SignalEvent};
pub use model::{Analysis, SignalResult, Stratum, Window};
pub use service::{Evaluation, RunReport, SignalsError, SignalsService};

/// The value behind a mutex, even if a holder panicked (the data are plain caches).
pub(crate) fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
