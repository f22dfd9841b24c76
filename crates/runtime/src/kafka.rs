//! Kafka client setup: the producer and consumer settings every service shares.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;

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
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "300000");
    apply_overrides(&mut c, kafka);
    c
}

fn base(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", "pv")
        .set("socket.keepalive.enable", "true");
    c
}

fn apply_overrides(c: &mut ClientConfig, kafka: &KafkaConfig) {
    for (k, v) in &kafka.properties {
        c.set(k, v);
    }
}

/// A topic the pipeline needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Topic configs, e.g. `retention.ms=-1`.
    pub configs: Vec<(String, String)>,
}

/// Creates the topics that do not exist yet (existing ones are left as they are).
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base(kafka).create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.configs
                .iter()
                .fold(NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)), |nt, (k, v)| {
                    nt.set(k, v)
                })
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::error!(topic = %name, %code, "topic creation failed");
                });
            }
        }
    }
    Ok(())
}

/// Deletes topics (used by tests to clean up after themselves).
pub async fn delete_topics(kafka: &KafkaConfig, names: &[&str]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base(kafka).create()?;
    admin.delete_topics(names, &AdminOptions::new()).await?;
    Ok(())
}

/// Messages on `topics` not yet committed by consumer group `group` (sum over partitions of
/// high watermark minus committed offset; a partition the group never committed counts whole).
pub fn group_lag(
    kafka: &KafkaConfig,
    group: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<i64, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = consumer_config(kafka, group).create()?;
    let mut tpl = TopicPartitionList::new();
    let mut highs = Vec::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in md.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
                tpl.add_partition(topic, p.id());
                highs.push((topic.to_string(), p.id(), low, high));
            }
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    let mut lag = 0;
    for (topic, partition, low, high) in highs {
        let done = match committed.find_partition(&topic, partition).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => low,
        };
        lag += (high - done).max(0);
    }
    Ok(lag)
}
