//! Shared service plumbing: configuration loading, logging, Prometheus metrics endpoint, Kafka
//! and ClickHouse client setup, and graceful shutdown.

pub mod clickhouse;
pub mod config;
pub mod kafka;
pub mod secret;
pub mod shutdown;
pub mod telemetry;

pub use config::{ClickHouseConfig, KafkaConfig, load_toml};
pub use secret::Secret;
pub use shutdown::Shutdown;
