//! Sink configuration (the `[sink]` table of the pv config file).

use std::net::SocketAddr;

use serde::Deserialize;

/// Settings of the Kafka -> ClickHouse sink; every field has a named default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Enriched topics to consume (read committed: only what the enricher's transactions committed).
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// Consumer group; every sink instance of one deployment shares it.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Dead-letter topic for messages that cannot become rows.
    #[serde(default = "default_dlq_topic")]
    pub dlq_topic: String,
    /// Flush when this many messages are buffered.
    #[serde(default = "default_batch_max_messages")]
    pub batch_max_messages: usize,
    /// Flush at the latest this long after the first buffered message, in milliseconds.
    #[serde(default = "default_batch_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// First retry delay after a failed insert, in milliseconds (doubles up to `retry_max_ms`).
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// On SIGTERM, how long to wait for the last batches to become durable before committing
    /// what is and exiting, in milliseconds (what is not durable by then is re-read on restart).
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: u64,
    /// Where to serve `/metrics` (`None` = not served).
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// How long one insert may go unanswered before it counts as failed and is retried (a hung
    /// server is then seen in the metrics and the log, not waited on silently).
    #[serde(default = "default_insert_timeout_ms")]
    pub insert_timeout_ms: u64,
}

fn default_insert_timeout_ms() -> u64 {
    30_000
}

fn default_topics() -> Vec<String> {
    vec!["pv.enriched.events".into()]
}
fn default_group_id() -> String {
    "pv-sink".into()
}
fn default_dlq_topic() -> String {
    "pv.enriched.dlq".into()
}
fn default_batch_max_messages() -> usize {
    50_000
}
fn default_batch_max_wait_ms() -> u64 {
    500
}
fn default_retry_initial_ms() -> u64 {
    200
}
fn default_retry_max_ms() -> u64 {
    10_000
}
fn default_shutdown_timeout_ms() -> u64 {
    20_000
}
fn default_metrics_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            topics: default_topics(),
            group_id: default_group_id(),
            dlq_topic: default_dlq_topic(),
            batch_max_messages: default_batch_max_messages(),
            batch_max_wait_ms: default_batch_max_wait_ms(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
            shutdown_timeout_ms: default_shutdown_timeout_ms(),
            metrics_listen: default_metrics_listen(),
            insert_timeout_ms: default_insert_timeout_ms(),
        }
    }
}
