//! The enricher: raw clinic events -> enriched events.
//!
//! Codes reaction verbatims (MedDRA or the demo dictionary), replaces the clinic's patient
//! reference with an HMAC key, normalises doses to mg and mg/kg, and attaches each patient's
//! exposure as of every event's own time. The per-patient state lives in memory and in a
//! compacted changelog topic; outputs, changelog records and consumer offsets are committed in
//! one Kafka transaction, so a crash or rebalance never counts an event twice or loses one.

pub mod cases;
pub mod config;
pub mod enrich;
pub mod exposure;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod metrics;
pub mod pseudonym;
pub mod relayout;
pub mod service;
pub mod session;
pub mod state;
pub mod stores;
pub mod transaction;

pub use config::EnrichConfig;
pub use enrich::{Enriched, Enricher};
pub use pseudonym::{PatientKey, Pseudonymiser};
pub use service::EnrichService;
pub use session::SessionError;
pub use state::{PatientState, PatientStore};
