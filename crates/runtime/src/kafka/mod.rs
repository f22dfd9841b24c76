//! Kafka: the client settings every service shares, and the helpers every caller uses.
//!
//! - [`producer_config`], [`consumer_config`]: durable producers, at-least-once consumers.
//! - [`read`]: read partitions to their end ([`read::PartitionReader`]).
//! - [`produce`]: back-pressured sends ([`produce::enqueue`]) and the [`produce::DurableProducer`].
//! - [`topics`]: create, list and delete topics.
//! - [`lag`]: what a consumer group has yet to commit.
//! - [`connect`]: a connection check that names why the brokers cannot be reached.

pub mod connect;
pub mod lag;
pub mod produce;
pub mod read;
pub mod topics;

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

pub use connect::{ConnectError, check_connection};
pub use lag::{LagWatch, group_lag, watch_lag};
pub use produce::{DurableProducer, Outgoing, ProduceError, is_transient};
pub use read::PartitionReader;
pub use topics::{TopicSpec, TopicState, delete_topics, describe_topic, drift, ensure_topics};

/// Settings for a durable producer: idempotent, `acks=all`, bounded delivery time.
///
/// `delivery_timeout` bounds how long a message may wait for the broker before its delivery
/// fails (librdkafka `message.timeout.ms`); callers turn that failure into back-pressure.
pub fn producer_config(kafka: &KafkaConfig, delivery_timeout: Duration) -> ClientConfig {
    let mut c = base(kafka);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", delivery_timeout.as_millis().to_string());
    apply_overrides(&mut c, kafka);
    c
}

/// Settings for an at-least-once consumer in `group_id`: nothing is committed until the caller
/// stores an offset (`enable.auto.offset.store=false`), and stored offsets are committed in the
/// background and on close.
pub fn consumer_config(kafka: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut c = base(kafka);
    c.set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Transactional topics (the enricher's output and state): never see aborted records.
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "300000");
    apply_overrides(&mut c, kafka);
    c
}

/// Settings for an admin client (topics, offsets): never creates a topic by asking about it.
pub fn admin_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("allow.auto.create.topics", "false");
    apply_overrides(&mut c, kafka);
    c
}

/// Bootstrap servers, client id and the connection's security (TLS, SASL).
fn base(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", "pv")
        .set("socket.keepalive.enable", "true")
        .set("security.protocol", kafka.security_protocol());
    if let Some(tls) = &kafka.tls {
        let path = |p: &std::path::Path| p.display().to_string();
        if let Some(ca) = &tls.ca_file {
            c.set("ssl.ca.location", path(ca));
        }
        if let Some(cert) = &tls.cert_file {
            c.set("ssl.certificate.location", path(cert));
        }
        if let Some(key) = &tls.key_file {
            c.set("ssl.key.location", path(key));
        }
        if tls.key_password.is_set() {
            c.set("ssl.key.password", tls.key_password.expose());
        }
    }
    if let Some(sasl) = &kafka.sasl {
        c.set("sasl.mechanism", sasl.mechanism.as_str())
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose());
    }
    c
}

fn apply_overrides(c: &mut ClientConfig, kafka: &KafkaConfig) {
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
}

/// The headers every dead letter carries: why, where it came from, and which stage refused it.
pub fn dead_letter_headers(
    reason: &str,
    source_topic: &str,
    partition: i32,
    offset: i64,
    stage: &str,
) -> rdkafka::message::OwnedHeaders {
    use rdkafka::message::{Header, OwnedHeaders};
    let (partition, offset) = (partition.to_string(), offset.to_string());
    OwnedHeaders::new()
        .insert(Header { key: "pv-error", value: Some(reason) })
        .insert(Header { key: "pv-source-topic", value: Some(source_topic) })
        .insert(Header { key: "pv-source-partition", value: Some(partition.as_str()) })
        .insert(Header { key: "pv-source-offset", value: Some(offset.as_str()) })
        .insert(Header { key: "pv-stage", value: Some(stage) })
}
