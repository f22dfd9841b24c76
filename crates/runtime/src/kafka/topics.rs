//! Topics: create what is missing, delete, and read a topic's partitions.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;

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

impl TopicSpec {
    /// A one-partition compacted topic: a ledger kept forever, one record per key.
    pub fn ledger(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            partitions: 1,
            configs: vec![("cleanup.policy".into(), "compact".into())],
        }
    }
}

/// Creates the topics that do not exist yet (existing ones are left as they are).
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = super::base(kafka).create()?;
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
    let admin: AdminClient<DefaultClientContext> = super::base(kafka).create()?;
    admin.delete_topics(names, &AdminOptions::new()).await?;
    Ok(())
}

/// The partition ids of `topic` (an error if the broker does not know it).
pub fn partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = client.fetch_metadata(Some(topic), timeout)?;
    let t = metadata.topics().first().ok_or(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopic))?;
    if let Some(e) = t.error() {
        return Err(KafkaError::MetadataFetch(e.into()));
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}
