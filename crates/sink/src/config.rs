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
    /// Rows are buffered per table and partition (month), so that one insert writes one part;
    /// a buffer holding this many messages is inserted as soon as an insert may start.
    /// ClickHouse wants 100,000-200,000 rows per insert: every part costs a few milliseconds
    /// and the merges that follow, whatever its size.
    #[serde(default = "default_batch_max_messages")]
    pub batch_max_messages: usize,
    /// A buffer holding this many bytes (of message payloads) is due as well.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// A buffer is due at the latest this long after its first message, in milliseconds (the
    /// sink's share of the end-to-end latency).
    #[serde(default = "default_batch_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// While the sink reads a backlog (a backfill, a replay, catching up after an outage:
    /// messages are waiting the whole `batch_max_wait_ms`), a buffer is due by age only after
    /// this long, so a month's rows go in few parts; buffers due by size come first anyway.
    /// Also bounds how far the committed positions trail what was read.
    #[serde(default = "default_backlog_max_wait_ms")]
    pub backlog_max_wait_ms: u64,
    /// Above this input rate (messages per second, measured over a second), a buffer stays
    /// open longer than `batch_max_wait_ms` in proportion to the rate (twice the rate, twice
    /// the wait), up to `busy_max_wait_ms`. A part costs ClickHouse about the same whatever its
    /// size, so under load the parts written per second stay flat and the latency grows
    /// instead. 0 turns this off.
    #[serde(default = "default_busy_rate")]
    pub busy_rate: u64,
    /// The longest a buffer stays open under load (see `busy_rate`), in milliseconds.
    #[serde(default = "default_busy_max_wait_ms")]
    pub busy_max_wait_ms: u64,
    /// While the open buffers hold this many messages together, the fullest is due, and
    /// reading pauses until inserts make room (with one insert per slot in flight, this bounds
    /// the sink's memory). At least `batch_max_messages`.
    #[serde(default = "default_buffer_max_messages")]
    pub buffer_max_messages: usize,
    /// Inserts (or dead-letter deliveries) running at once. Offsets are committed only up to
    /// the lowest message any of them, or any open buffer, still holds.
    #[serde(default = "default_inserts_in_flight")]
    pub inserts_in_flight: usize,
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
    100_000
}
fn default_batch_max_bytes() -> usize {
    64 << 20
}
fn default_backlog_max_wait_ms() -> u64 {
    5_000
}
fn default_busy_rate() -> u64 {
    10_000
}
fn default_busy_max_wait_ms() -> u64 {
    2_000
}
fn default_buffer_max_messages() -> usize {
    300_000
}
fn default_inserts_in_flight() -> usize {
    2
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
            batch_max_bytes: default_batch_max_bytes(),
            batch_max_wait_ms: default_batch_max_wait_ms(),
            backlog_max_wait_ms: default_backlog_max_wait_ms(),
            busy_rate: default_busy_rate(),
            busy_max_wait_ms: default_busy_max_wait_ms(),
            buffer_max_messages: default_buffer_max_messages(),
            inserts_in_flight: default_inserts_in_flight(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
            shutdown_timeout_ms: default_shutdown_timeout_ms(),
            metrics_listen: default_metrics_listen(),
            insert_timeout_ms: default_insert_timeout_ms(),
        }
    }
}

impl SinkConfig {
    /// Refuses settings that cannot work together, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_max_messages == 0 {
            return Err("sink.batch_max_messages: must be at least 1".into());
        }
        if self.buffer_max_messages < self.batch_max_messages {
            return Err(format!(
                "sink.buffer_max_messages: {} is below batch_max_messages ({}); a buffer could never fill",
                self.buffer_max_messages, self.batch_max_messages
            ));
        }
        if self.inserts_in_flight == 0 {
            return Err("sink.inserts_in_flight: must be at least 1".into());
        }
        Ok(())
    }

    /// When buffers are due.
    pub(crate) fn limits(&self) -> crate::batch::Limits {
        crate::batch::Limits {
            max_messages: self.batch_max_messages,
            max_bytes: self.batch_max_bytes,
            max_wait: std::time::Duration::from_millis(self.batch_max_wait_ms),
            backlog_max_wait: std::time::Duration::from_millis(
                self.backlog_max_wait_ms.max(self.batch_max_wait_ms),
            ),
            busy_rate: self.busy_rate,
            busy_max_wait: std::time::Duration::from_millis(self.busy_max_wait_ms),
            max_buffered: self.buffer_max_messages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_together_are_refused_by_name() {
        assert_eq!(SinkConfig::default().validate(), Ok(()));
        let small_buffer =
            SinkConfig { buffer_max_messages: 10, batch_max_messages: 20, ..SinkConfig::default() };
        assert!(small_buffer.validate().is_err_and(|e| e.starts_with("sink.buffer_max_messages:")));
        let no_inserts = SinkConfig { inserts_in_flight: 0, ..SinkConfig::default() };
        assert!(no_inserts.validate().is_err_and(|e| e.starts_with("sink.inserts_in_flight:")));
        let empty = SinkConfig { batch_max_messages: 0, ..SinkConfig::default() };
        assert!(empty.validate().is_err_and(|e| e.starts_with("sink.batch_max_messages:")));
    }
}
