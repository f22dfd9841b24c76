//! Regulators' outputs.
//!
//! - [`periodic`]: the periodic safety report for a reporting interval and a data-lock point
//!   (PDF, one CSV per table, charts, manifest), built purely from what had been received by the
//!   lock, so that regenerating it later gives the same bytes.
//! - [`icsr`]: ICH E2B(R3) individual case safety reports (XML), written, read back and checked
//!   against FDA's business rules.
//! - [`source`]: the reads behind both, from ClickHouse and Kafka, as of a data-lock point.

pub mod config;
pub mod icsr;
pub mod periodic;
pub mod sections;
pub mod source;
pub mod table;

pub use config::ReportsConfig;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A read from ClickHouse failed.
    #[error("reading ClickHouse: {0}")]
    Store(#[from] pv_store::StoreError),
    /// The signals service's analyses failed.
    #[error("the signals service's analyses: {0}")]
    Signals(#[from] pv_signals::SignalsError),
    /// Kafka could not say where the log stood at the lock.
    #[error("reading the event log's positions from Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A stored case version cannot be read back (its reaction or drug arrays disagree).
    #[error("case version {0} is stored with arrays of different lengths")]
    Corrupt(String),
    /// The case or version asked for was not received by the lock.
    #[error("no case {0} received by the lock")]
    NoSuchCase(String),
    /// Not everything accepted by the lock is stored yet.
    #[error("--lock: {0}; try again when the pipeline has caught up")]
    NotStored(String),
    /// The lock is not a representable instant.
    #[error("lock: {0} ms is not a representable instant")]
    Lock(i64),
    /// Typesetting failed.
    #[error(transparent)]
    Typeset(#[from] pv_typeset::TypesetError),
    /// A CSV could not be written.
    #[error("writing a CSV table: {0}")]
    Csv(#[from] csv::Error),
    /// The manifest could not be written.
    #[error("writing the manifest: {0}")]
    Json(#[from] serde_json::Error),
    /// An E2B export failed.
    #[error(transparent)]
    Icsr(#[from] icsr::IcsrError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}
