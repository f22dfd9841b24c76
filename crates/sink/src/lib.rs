//! Kafka enriched topics -> ClickHouse.
//!
//! Decodes Avro single-object enriched events into one row per event, buffers the rows per table
//! and partition (so that an insert writes one part), inserts with retries, and stores offsets
//! only once every row before them is acknowledged by ClickHouse. Messages that cannot become
//! rows go to the dead-letter topic with the reason.
//!
//! - [`sink`]: the service (migrate, then consume or replay).
//! - [`consume`]: the loop's steps (receive, start inserts, durable, back-pressure, drain).
//! - [`feed`]: where messages come from (the consumer group, or a replay) and what becomes of
//!   their offsets; pause per partition across rebalances.
//! - [`batch`]: the buffers and the positions safe to commit (no I/O); [`rate`]: the input
//!   rate that lengthens the buffers' wait under load (no I/O); [`writer`]: making a unit
//!   durable; [`failure`]: retryable vs refused ClickHouse errors.

pub mod batch;
pub mod config;
mod consume;
pub mod failure;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod feed;
pub mod metrics;
pub mod rate;
pub mod sink;
mod writer;

pub use config::SinkConfig;
pub use sink::{ReplayReport, Sink};
