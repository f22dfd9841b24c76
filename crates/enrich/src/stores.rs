//! The patients of every assigned input partition, each partition's loaded from its changelog
//! partition (same number) the first time a message of it arrives, after start-up or a
//! rebalance: a restart reads the compacted state, not the history.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use pv_events::EventCodec;
use pv_runtime::KafkaConfig;
use pv_runtime::kafka::PartitionReader;
use rdkafka::Offset;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use crate::metrics::EnrichMetrics;
use crate::pseudonym::PatientKey;
use crate::state::{PatientState, PatientStateRecord, PatientStore};

/// How long loading one changelog partition may go without a record or its end.
const LOAD_PATIENCE: Duration = Duration::from_secs(300);

/// Why a partition's state could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading the changelog failed (or did not reach its end in time).
    #[error("reading changelog partition {partition}: {source}")]
    Kafka {
        /// The partition.
        partition: i32,
        /// What failed.
        #[source]
        source: KafkaError,
    },
    /// A record does not decode, or holds an impossible state.
    #[error("changelog partition {partition} offset {offset}: {reason}")]
    Record {
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Per input partition, its patients.
#[derive(Debug)]
pub(crate) struct StateStores {
    reader: PartitionReader,
    changelog: String,
    stores: rustc_hash::FxHashMap<i32, PatientStore>,
    metrics: EnrichMetrics,
}

impl StateStores {
    /// No partition loaded yet; state comes from `changelog`.
    pub(crate) fn new(
        kafka: &KafkaConfig,
        group_id: &str,
        changelog: &str,
        metrics: EnrichMetrics,
    ) -> Result<Self, KafkaError> {
        let reader = PartitionReader::new(kafka, &format!("{group_id}-state-loader"))?;
        Ok(Self { reader, changelog: changelog.into(), stores: rustc_hash::FxHashMap::default(), metrics })
    }

    /// The patients of `partition`, loaded first if they are not in memory.
    pub(crate) fn partition(&mut self, partition: i32) -> Result<&mut PatientStore, LoadError> {
        if !self.stores.contains_key(&partition) {
            let store = self.load(partition)?;
            self.stores.insert(partition, store);
        }
        Ok(self.stores.entry(partition).or_default())
    }

    /// The state of `key` in `partition`, if loaded.
    pub(crate) fn state(&self, partition: i32, key: &PatientKey) -> Option<&PatientState> {
        self.stores.get(&partition)?.get(key)
    }

    /// Forgets `partitions` (revoked: another instance owns them now).
    pub(crate) fn forget(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.stores.remove(p);
        }
    }

    /// Forgets everything (after an abort: what was committed is reloaded when needed).
    pub(crate) fn clear(&mut self) {
        self.stores.clear();
    }

    /// Patients in memory.
    pub(crate) fn patients(&self) -> usize {
        self.stores.values().map(PatientStore::len).sum()
    }

    /// Reads one changelog partition to its end (committed records only).
    fn load(&self, partition: i32) -> Result<PatientStore, LoadError> {
        let started = Instant::now();
        let codec = EventCodec::global();
        let mut store = PatientStore::default();
        let mut bad = None;
        self.reader
            .read(&self.changelog, &[(partition, Offset::Beginning)], LOAD_PATIENCE, |m| {
                // A tombstone: the patient moved to another partition (`pv repartition`).
                let Some(payload) = m.payload() else {
                    let key =
                        m.key().and_then(|k| hex::decode(k).ok()).and_then(|k| PatientKey::try_from(k).ok());
                    if let Some(key) = key {
                        store.remove(&key);
                    }
                    return ControlFlow::Continue(());
                };
                let record = codec.decode_record::<PatientStateRecord>(payload);
                match record.map(|r| PatientState::from_record(&r)) {
                    Ok(Some((key, state))) => {
                        store.insert(key, state);
                        ControlFlow::Continue(())
                    }
                    outcome => {
                        let reason = outcome.map_or_else(|e| e.to_string(), |_| "malformed state".into());
                        bad = Some(LoadError::Record { partition, offset: m.offset(), reason });
                        ControlFlow::Break(())
                    }
                }
            })
            .map_err(|source| LoadError::Kafka { partition, source })?;
        if let Some(e) = bad {
            return Err(e);
        }
        self.metrics.state_load_seconds.observe(started.elapsed().as_secs_f64());
        tracing::info!(
            partition,
            patients = store.len(),
            ms = started.elapsed().as_millis() as u64,
            "state loaded"
        );
        Ok(store)
    }
}
