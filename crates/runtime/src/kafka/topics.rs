//! Topics: create what is missing, compare what exists with what is configured, delete, and
//! read a topic's partitions.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
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

/// Creates the topics that do not exist yet (existing ones are left as they are), with the
/// cluster's replication factor and `min.insync.replicas` from `kafka` (unless a spec sets it).
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = super::admin_config(kafka).create()?;
    let configs: Vec<Vec<(String, String)>> = topics.iter().map(|t| effective_configs(t, kafka)).collect();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&configs)
        .map(|(t, configs)| {
            let replication = TopicReplication::Fixed(kafka.replication_factor);
            configs.iter().fold(NewTopic::new(&t.name, t.partitions, replication), |nt, (k, v)| nt.set(k, v))
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

/// The configs a topic is created with: its spec's, plus the cluster's `min.insync.replicas`.
pub fn effective_configs(spec: &TopicSpec, kafka: &KafkaConfig) -> Vec<(String, String)> {
    let mut configs = spec.configs.clone();
    if !configs.iter().any(|(k, _)| k == "min.insync.replicas") {
        configs.push(("min.insync.replicas".into(), kafka.min_insync_replicas.to_string()));
    }
    configs
}

/// What a topic is on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    /// Its partitions.
    pub partitions: usize,
    /// The fewest replicas any of its partitions has.
    pub replication: usize,
    /// Its config values (every entry the broker reports).
    pub configs: BTreeMap<String, String>,
}

/// The topic `name` as the broker has it, or `None` when it does not exist.
pub async fn describe_topic(kafka: &KafkaConfig, name: &str) -> Result<Option<TopicState>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = super::admin_config(kafka).create()?;
    // Every topic's metadata, not just this one's: asking for a missing topic by name would
    // create it on a broker that auto-creates topics.
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(30))?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else { return Ok(None) };
    match topic.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => return Ok(None),
        Some(code) => return Err(KafkaError::MetadataFetch(code)),
    }
    let partitions = topic.partitions().len();
    let replication = topic.partitions().iter().map(|p| p.replicas().len()).min().unwrap_or(0);
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let mut configs = BTreeMap::new();
    for resource in admin.describe_configs(&[ResourceSpecifier::Topic(name)], &opts).await? {
        let resource = resource.map_err(KafkaError::AdminOp)?;
        for entry in resource.entries {
            if let Some(value) = entry.value {
                configs.insert(entry.name, value);
            }
        }
    }
    Ok(Some(TopicState { partitions, replication, configs }))
}

/// How `state` differs from what `spec` and the cluster settings in `kafka` ask for, one line
/// per difference (empty: as configured). Partitions and replicas are reported, never changed:
/// adding raw partitions moves patients (see the README).
pub fn drift(spec: &TopicSpec, kafka: &KafkaConfig, state: &TopicState) -> Vec<String> {
    let mut out = Vec::new();
    let want_partitions = usize::try_from(spec.partitions).unwrap_or(0);
    if state.partitions != want_partitions {
        out.push(format!("partitions {} (configured {want_partitions})", state.partitions));
    }
    let want_replicas = usize::try_from(kafka.replication_factor).unwrap_or(0);
    if state.replication != want_replicas {
        out.push(format!("replication factor {} (configured {want_replicas})", state.replication));
    }
    for (key, want) in effective_configs(spec, kafka) {
        match state.configs.get(&key) {
            Some(have) if *have == want => {}
            have => out.push(format!("{key} {} (configured {want})", have.map_or("unset", String::as_str))),
        }
    }
    out
}

/// Deletes topics (used by tests to clean up after themselves).
pub async fn delete_topics(kafka: &KafkaConfig, names: &[&str]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = super::admin_config(kafka).create()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(partitions: usize, replication: usize, configs: &[(&str, &str)]) -> TopicState {
        let configs = configs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        TopicState { partitions, replication, configs }
    }

    #[test]
    fn drift_names_each_difference_with_the_configured_value() {
        let spec = TopicSpec {
            name: "t".into(),
            partitions: 6,
            configs: vec![("retention.ms".into(), "-1".into())],
        };
        let cluster = KafkaConfig { replication_factor: 3, min_insync_replicas: 2, ..KafkaConfig::default() };
        let good = state(6, 3, &[("retention.ms", "-1"), ("min.insync.replicas", "2"), ("segment.ms", "1")]);
        assert!(drift(&spec, &cluster, &good).is_empty());
        let local = state(4, 1, &[("retention.ms", "604800000"), ("min.insync.replicas", "1")]);
        assert_eq!(
            drift(&spec, &cluster, &local),
            [
                "partitions 4 (configured 6)",
                "replication factor 1 (configured 3)",
                "retention.ms 604800000 (configured -1)",
                "min.insync.replicas 1 (configured 2)",
            ]
        );
        let mut own = spec.clone();
        own.configs.push(("min.insync.replicas".into(), "1".into()));
        assert_eq!(effective_configs(&own, &cluster).len(), 2, "a spec's own value wins");
    }
}
