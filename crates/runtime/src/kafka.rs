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
        // Transactional topics (the enricher's output and state): never see aborted records.
        .set("isolation.level", "read_committed")
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

/// Messages on `topics` not yet committed by consumer group `group`.
///
/// On transactional topics the high watermark also counts commit markers, so a gap of up to
/// 10,000 offsets is verified by reading it (committed records only); a larger gap is returned
/// as is (an upper bound). A partition the group never committed counts from its start.
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
    let mut probe = Vec::new();
    for (topic, partition, low, high) in highs {
        let done = match committed.find_partition(&topic, partition).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        let gap = (high - done).max(0);
        if gap == 0 || gap > 10_000 {
            lag += gap;
        } else {
            probe.push((topic, partition, done));
        }
    }
    if !probe.is_empty() {
        lag += committed_records(kafka, &probe, timeout)?;
    }
    Ok(lag)
}

/// Committed records from the given (topic, partition, offset) positions to the ends, read in
/// one pass (transactional topics: commit markers are not records).
fn committed_records(
    kafka: &KafkaConfig,
    from: &[(String, i32, i64)],
    timeout: Duration,
) -> Result<i64, KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let mut cfg = consumer_config(kafka, "pv-lag-probe");
    cfg.set("enable.partition.eof", "true").set("enable.auto.commit", "false").set("fetch.wait.max.ms", "10");
    let reader: BaseConsumer = cfg.create()?;
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in from {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    reader.assign(&tpl)?;
    let deadline = std::time::Instant::now() + timeout;
    let (mut n, mut ended) = (0, 0);
    while ended < from.len() {
        if std::time::Instant::now() >= deadline {
            return Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut));
        }
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => n += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => ended += 1,
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(n)
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
