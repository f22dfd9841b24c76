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
pub mod metrics;
pub mod pseudonym;
pub mod run;
pub mod state;

pub use config::EnrichConfig;
pub use enrich::{Enriched, Enricher};
pub use pseudonym::{PatientKey, Pseudonymiser};
pub use run::EnrichService;
pub use state::{PatientState, PatientStore};
