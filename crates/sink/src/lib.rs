//! Kafka enriched topics -> ClickHouse.
//!
//! Decodes Avro single-object enriched events, batches them into one row per event per table,
//! inserts with retries, and stores offsets only after ClickHouse acknowledged the rows.
//! Messages that cannot become rows go to the dead-letter topic with the reason.

pub mod batch;
pub mod columns;
pub mod config;
pub mod digest;
pub mod failure;
pub mod metrics;
pub mod migrations;
pub mod rows;
pub mod run;

pub use config::SinkConfig;
pub use migrations::migrate;
pub use run::{ReplayReport, Sink};
