//! The signals service: on a schedule, reads aggregates of the stored events from ClickHouse,
//! runs every analysis ([`compute`]) for the period and cumulatively, stores the results, and
//! emits an Avro [`SignalEvent`] on the signals topic for every signal that is new, updated
//! (more cases) or closed.
//!
//! - [`config`]: schedule and thresholds.
//! - [`model`]: what is read (aggregates) and written (results).
//! - [`compute`]: the analyses, pure.
//! - [`cohort`]: the treated cohort split into person-time at risk, per harm (pure).
//! - [`cohort_query`]: the cohort's doses, enrolments and cases as received by the as-of time.
//! - [`person_time`]: incidence and Poisson rate ratios on that person-time (pure).
//! - [`queries`]: the aggregates, in SQL that runs on ClickHouse 18.16 and current releases.
//! - [`contributions`]: which cases and patients each result counts.
//! - [`status`]: which results changed state since the last run (pure).
//! - [`service`]: one run and the scheduled loop.

pub mod cohort;
pub mod cohort_query;
pub mod compute;
pub mod config;
pub mod contributions;
pub mod event;
pub mod model;
pub mod person_time;
pub mod queries;
pub mod service;
pub mod status;

pub use compute::Analyser;
pub use config::SignalsConfig;
pub use event::{Change, SignalEvent};
pub use model::{Analysis, SignalResult, Stratum, Window};
pub use service::{RunReport, SignalsError, SignalsService};
