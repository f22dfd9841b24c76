//! A new partition count for the raw topic (`pv repartition`): the topic grows, and every
//! patient's state moves to the changelog partition their key now maps to, with the group's
//! positions recorded for the new count, in one transaction.
//!
//! A patient's raw events and state share a partition number. Adding raw partitions moves some
//! patients' keys to other partitions, whose state does not hold them, so the enricher refuses to
//! run on a count its state was not laid out for. This is the way forward: with producers and
//! enrichers stopped and everything consumed, the raw topic's keys (the patient references) are
//! read to learn each pseudonymised patient's new partition; each moved patient's latest state
//! record is written there and a tombstone where it was; and the positions (every partition's
//! end) are committed with the new count. Running it again is harmless.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use pv_runtime::KafkaConfig;
use pv_runtime::kafka::PartitionReader;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::EnrichConfig;
use crate::pseudonym::{Pseudonymiser, key_hex};

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading a partition may go without a message or its end.
const PATIENCE: Duration = Duration::from_secs(300);

/// Why the state could not be re-laid out.
#[derive(Debug, thiserror::Error)]
pub enum RelayoutError {
    /// The topics or the group are not in a state where moving is safe; says what to do.
    #[error("{0}")]
    Refused(String),
    /// Talking to Kafka failed (nothing was committed unless the message says otherwise).
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// What a re-layout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayoutReport {
    /// The raw topic's partitions before.
    pub partitions_before: usize,
    /// And after.
    pub partitions_after: usize,
    /// Patients with state.
    pub patients: usize,
    /// Patients whose state moved to another partition.
    pub moved: usize,
}

/// The partition librdkafka's default partitioner (`consistent_random`) gives a keyed message:
/// the CRC-32 of the key modulo the partition count. The gateway and `pv import` produce with it.
pub fn partition_for(key: &[u8], partitions: usize) -> i32 {
    let n = u32::try_from(partitions.max(1)).unwrap_or(u32::MAX);
    i32::try_from(crc32fast::hash(key) % n).unwrap_or(0)
}

/// Grows the raw topic (and the changelog) to `partitions` and moves the state to match. The
/// topics are read with blocking calls: run it from a command, not beside a service.
pub async fn relayout(
    cfg: &EnrichConfig,
    kafka: &KafkaConfig,
    pseudonymiser: &Pseudonymiser,
    partitions: usize,
) -> Result<RelayoutReport, RelayoutError> {
    let consumer: BaseConsumer = pv_runtime::kafka::consumer_config(kafka, &cfg.group_id).create()?;
    refuse_running_enrichers(&consumer, &cfg.group_id)?;
    let before = partition_count(&consumer, &cfg.input_topic)?;
    if partitions < before {
        return Err(RelayoutError::Refused(format!(
            "{} has {before} partitions: Kafka cannot take partitions away",
            cfg.input_topic
        )));
    }
    refuse_unconsumed(&consumer, &cfg.input_topic, before)?;
    grow(kafka, &consumer, &cfg.input_topic, partitions).await?;
    grow(kafka, &consumer, &cfg.changelog_topic, partitions).await?;
    // A new client: the first one's metadata predates the new partitions.
    let consumer: BaseConsumer = pv_runtime::kafka::consumer_config(kafka, &cfg.group_id).create()?;
    let targets = patient_partitions(kafka, &cfg.input_topic, before, pseudonymiser, partitions)?;
    let states =
        latest_states(kafka, &cfg.changelog_topic, partition_count(&consumer, &cfg.changelog_topic)?)?;
    let mut moves = Vec::new();
    for (key, (at, payload)) in &states {
        let Some(&target) = targets.get(key) else {
            return Err(RelayoutError::Refused(format!(
                "patient {key} has state but no raw event: the raw topic must keep every event (retention.ms=-1)"
            )));
        };
        if target != *at {
            moves.push((key.as_str(), *at, target, payload.as_slice()));
        }
    }
    let patients = states.len();
    commit_moves(cfg, kafka, &consumer, &moves, partitions)?;
    Ok(RelayoutReport {
        partitions_before: before,
        partitions_after: partitions,
        patients,
        moved: moves.len(),
    })
}

fn partition_count(consumer: &BaseConsumer, topic: &str) -> Result<usize, KafkaError> {
    Ok(pv_runtime::kafka::topics::partitions(consumer.client(), topic, TIMEOUT)?.len())
}

/// No enricher may run: it would consume by the old layout while the state moves.
fn refuse_running_enrichers(consumer: &BaseConsumer, group: &str) -> Result<(), RelayoutError> {
    let groups = consumer.fetch_group_list(Some(group), TIMEOUT)?;
    let members = groups.groups().iter().map(|g| g.members().len()).sum::<usize>();
    if members > 0 {
        return Err(RelayoutError::Refused(format!(
            "{members} enricher(s) of group {group} are running: stop them (and the gateway and imports) first"
        )));
    }
    Ok(())
}

/// Every raw event must be consumed: one enriched under the old layout after the move would
/// miss its patient's state.
fn refuse_unconsumed(consumer: &BaseConsumer, topic: &str, partitions: usize) -> Result<(), RelayoutError> {
    let mut all = TopicPartitionList::new();
    for p in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
        all.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(all, TIMEOUT)?;
    for e in committed.elements() {
        let (_, high) = consumer.fetch_watermarks(topic, e.partition(), TIMEOUT)?;
        let at = match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        if at < high {
            return Err(RelayoutError::Refused(format!(
                "{topic} partition {} is consumed to {at} of {high}: stop the gateway and imports, let the enricher \
                 finish, stop it, then run this again",
                e.partition()
            )));
        }
    }
    Ok(())
}

/// Grows `topic` to `partitions` unless it has as many already.
async fn grow(
    kafka: &KafkaConfig,
    consumer: &BaseConsumer,
    topic: &str,
    partitions: usize,
) -> Result<(), KafkaError> {
    if partition_count(consumer, topic)? >= partitions {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = pv_runtime::kafka::admin_config(kafka).create()?;
    let grow = [NewPartitions::new(topic, partitions)];
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for result in admin.create_partitions(&grow, &opts).await? {
        result.map_err(|(_, code)| KafkaError::AdminOp(code))?;
    }
    tracing::info!(topic, partitions, "partitions added");
    Ok(())
}

/// Each patient's partition under the new count, by the raw keys (`clinic/patient`) read from
/// the old partitions; keyed by the pseudonym the state is stored under.
fn patient_partitions(
    kafka: &KafkaConfig,
    topic: &str,
    old: usize,
    pseudonymiser: &Pseudonymiser,
    partitions: usize,
) -> Result<HashMap<String, i32>, KafkaError> {
    let reader = PartitionReader::new(kafka, "pv-repartition-keys")?;
    let starts: Vec<(i32, Offset)> =
        (0..i32::try_from(old).unwrap_or(i32::MAX)).map(|p| (p, Offset::Beginning)).collect();
    let mut targets = HashMap::new();
    reader.read(topic, &starts, PATIENCE, |m| {
        if let Some(raw_key) = m.key() {
            let text = String::from_utf8_lossy(raw_key);
            let (clinic, patient) = text.split_once('/').unwrap_or((&text, ""));
            let key = key_hex(&pseudonymiser.key(clinic, patient));
            targets.entry(key).or_insert_with(|| partition_for(raw_key, partitions));
        }
        ControlFlow::Continue(())
    })?;
    Ok(targets)
}

/// Every patient's live state: the partition whose latest record for them is not a tombstone,
/// and that record.
type LatestStates = HashMap<String, (i32, Vec<u8>)>;

fn latest_states(
    kafka: &KafkaConfig,
    changelog: &str,
    partitions: usize,
) -> Result<LatestStates, RelayoutError> {
    let reader = PartitionReader::new(kafka, "pv-repartition-state")?;
    let starts: Vec<(i32, Offset)> =
        (0..i32::try_from(partitions).unwrap_or(i32::MAX)).map(|p| (p, Offset::Beginning)).collect();
    // Per partition and key, the last record (partitions are read side by side, so the order
    // across partitions means nothing).
    let mut last: HashMap<(i32, String), Option<Vec<u8>>> = HashMap::new();
    reader.read(changelog, &starts, PATIENCE, |m| {
        if let Some(key) = m.key() {
            let key = String::from_utf8_lossy(key).into_owned();
            last.insert((m.partition(), key), m.payload().map(<[u8]>::to_vec));
        }
        ControlFlow::Continue(())
    })?;
    let mut live = HashMap::new();
    for ((partition, key), payload) in last {
        let Some(payload) = payload else { continue };
        if let Some((other, _)) = live.insert(key.clone(), (partition, payload)) {
            return Err(RelayoutError::Refused(format!(
                "patient {key} has state in changelog partitions {other} and {partition}: the changelog is inconsistent"
            )));
        }
    }
    Ok(live)
}

/// Moves the states (record at the new partition, tombstone at the old) and commits every raw
/// partition's end as the group's position with the new count, in one transaction.
fn commit_moves(
    cfg: &EnrichConfig,
    kafka: &KafkaConfig,
    consumer: &BaseConsumer,
    moves: &[(&str, i32, i32, &[u8])],
    partitions: usize,
) -> Result<(), RelayoutError> {
    let mut pc = pv_runtime::kafka::producer_config(kafka, TIMEOUT);
    pc.set("transactional.id", format!("{}-repartition", cfg.group_id));
    let producer: ThreadedProducer<DefaultProducerContext> = pc.create()?;
    producer.init_transactions(TIMEOUT)?;
    producer.begin_transaction()?;
    let send = |record: BaseRecord<'_, str, [u8]>| producer.send(record).map_err(|(e, _)| e);
    for &(key, from, to, payload) in moves {
        send(BaseRecord::to(&cfg.changelog_topic).partition(to).key(key).payload(payload))?;
        send(BaseRecord::to(&cfg.changelog_topic).partition(from).key(key))?;
    }
    let mut offsets = TopicPartitionList::new();
    for p in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
        let high = high_watermark(consumer, &cfg.input_topic, p)?;
        let mut position = offsets.add_partition(&cfg.input_topic, p);
        position.set_offset(Offset::Offset(high))?;
        position.set_metadata(crate::session::layout(partitions));
    }
    let group = consumer.group_metadata().ok_or_else(|| {
        RelayoutError::Refused(format!("no group metadata for {}: is the group id set?", cfg.group_id))
    })?;
    producer.send_offsets_to_transaction(&offsets, &group, TIMEOUT)?;
    producer.commit_transaction(TIMEOUT)?;
    Ok(())
}

/// A partition's end, waiting (up to [`TIMEOUT`]) for a partition just created to have a leader.
fn high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32) -> Result<i64, KafkaError> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        match consumer.fetch_watermarks(topic, partition, TIMEOUT) {
            Ok((_, high)) => return Ok(high),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(topic, partition, error = %e, "waiting for the new partition");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_by_crc32_modulo_the_count() {
        // CRC-32's check value: "123456789" -> 0xCBF43926 = 3,421,780,262. The integration test
        // checks the partitions librdkafka chose for real messages.
        assert_eq!(partition_for(b"123456789", 1_000_000), 780_262);
        let spread: std::collections::BTreeSet<i32> =
            (0..100).map(|i| partition_for(format!("clinic-01/p-{i}").as_bytes(), 5)).collect();
        assert_eq!(spread.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(partition_for(b"anything", 1), 0);
    }
}
