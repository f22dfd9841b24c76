//! The signal workflow log: actions are produced to the workflow topic and acknowledged by the
//! broker before the workbench answers, then landed in `signal_workflow`; the status of a signal
//! is the projection of its actions. At start-up the workbench lands whatever the topic holds
//! and the table lacks (an action acknowledged just before a crash), so the table is always
//! rebuilt from the log.
//!
//! One workbench instance writes the log: a lock makes check-and-append atomic per instance.
//! An action the broker acknowledged but the table refused is kept in memory until it lands,
//! so the status (and the stale check) never goes behind the log.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::Duration;

use pv_events::EventCodec;
use pv_runtime::KafkaConfig;
use pv_runtime::kafka::{DurableProducer, Outgoing, PartitionReader, ProduceError, TopicSpec};
use pv_store::workflow::{SIGNAL_WORKFLOW, WorkflowAction};
use pv_store::{Db, StoreError};
use pv_workflow::{Context, Refusal, Request, Status, decide, project};
use rdkafka::error::KafkaError;

/// The largest workflow action message: 16 MiB, about 400,000 evidence case ids.
pub const MAX_ACTION_BYTES: usize = 16 * 1024 * 1024;

/// Why an action was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The workflow refused it (stale, not allowed, missing rationale).
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// The broker did not acknowledge it: nothing was recorded.
    #[error("the workflow log did not acknowledge the action, nothing was recorded: {0}")]
    Produce(#[from] ProduceError),
    /// Encoding failed.
    #[error("encoding the action: {0}")]
    Encode(#[from] pv_events::CodecError),
    /// Reading the status or landing the action failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Reading the topic failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// The workflow log of one workbench.
pub struct WorkflowLog {
    kafka: KafkaConfig,
    topic: String,
    producer: DurableProducer,
    db: Db,
    codec: &'static EventCodec,
    write: tokio::sync::Mutex<()>,
    unlanded: std::sync::Mutex<Vec<WorkflowAction>>,
}

impl std::fmt::Debug for WorkflowLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowLog").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl WorkflowLog {
    /// A log on `topic`, landing in `db`.
    pub fn new(
        kafka: &KafkaConfig,
        topic: &str,
        db: Db,
        delivery_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        // An action carries every case its result counted: allow large messages (the topic
        // allows them too, see `ensure_topic`); a setting of the operator's wins.
        let mut producing = kafka.clone();
        producing
            .properties
            .entry("message.max.bytes".into())
            .or_insert_with(|| MAX_ACTION_BYTES.to_string());
        Ok(Self {
            kafka: kafka.clone(),
            topic: topic.into(),
            producer: DurableProducer::new(&producing, topic, delivery_timeout)?,
            db,
            codec: EventCodec::global(),
            write: tokio::sync::Mutex::new(()),
            unlanded: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Creates the topic if needed ([`topic_spec`]).
    pub async fn ensure_topic(&self) -> Result<(), KafkaError> {
        pv_runtime::kafka::ensure_topics(&self.kafka, &[topic_spec(&self.topic)]).await
    }

    /// The status of `key`: the actions landed, and those on the log not landed yet.
    pub async fn status(&self, key: &str) -> Result<Status, StoreError> {
        let mut actions = crate::reads::workflow(&self.db, Some(key)).await?;
        actions.extend(self.unlanded().into_iter().filter(|a| a.signal_key == key));
        Ok(project(&actions).remove(key).unwrap_or_else(|| Status::detected(key)))
    }

    /// Actions the broker acknowledged that the table does not have yet.
    pub fn unlanded(&self) -> Vec<WorkflowAction> {
        crate::locked(&self.unlanded).clone()
    }

    /// Carries out `req`: decides against the current status, produces the action and waits for
    /// the broker, then lands it. Refused requests produce nothing. Once the broker has it, the
    /// action is recorded (the topic is the record): if landing it fails, it is kept here, the
    /// status and the stale check still see it, and the next landing (an action, or
    /// [`WorkflowLog::catch_up`]) retries.
    pub async fn act(&self, req: &Request, ctx: &Context) -> Result<WorkflowAction, ActError> {
        let _one_at_a_time = self.write.lock().await;
        let current = self.status(&req.signal_key).await?;
        let action = decide(&current, req, ctx)?;
        let payload = self.codec.encode_record(&action)?;
        let message = Outgoing {
            key: action.signal_key.clone().into_bytes(),
            payload,
            timestamp_ms: Some(action.at_ms),
            headers: Vec::new(),
        };
        self.producer.send_all(std::slice::from_ref(&message)).await?;
        crate::locked(&self.unlanded).push(action.clone());
        if let Err(e) = self.land_unlanded().await {
            tracing::error!(error = %e, key = %action.signal_key, "workflow action on the log, not yet in the table; retried with the next action");
        }
        tracing::info!(key = %action.signal_key, action = %action.action, to = %action.to_state, actor = %action.actor, "workflow action recorded");
        Ok(action)
    }

    /// Lands the acknowledged actions the table lacks.
    async fn land_unlanded(&self) -> Result<(), StoreError> {
        let pending = self.unlanded();
        if pending.is_empty() {
            return Ok(());
        }
        land_missing(&self.db, pending.clone()).await?;
        let landed: HashSet<String> = pending.into_iter().map(|a| a.event_id).collect();
        crate::locked(&self.unlanded).retain(|a| !landed.contains(&a.event_id));
        Ok(())
    }

    /// Every action on the topic, in log order.
    pub fn read_topic(&self) -> Result<Vec<WorkflowAction>, KafkaError> {
        read_topic(&self.kafka, &self.topic)
    }

    /// Lands every action of the topic that the table lacks; returns how many.
    pub async fn catch_up(&self) -> Result<usize, ActError> {
        let _one_at_a_time = self.write.lock().await;
        let (kafka, topic) = (self.kafka.clone(), self.topic.clone());
        let logged = tokio::task::spawn_blocking(move || read_topic(&kafka, &topic))
            .await
            .map_err(|e| KafkaError::Subscription(e.to_string()))??;
        let landed = land_missing(&self.db, logged).await?;
        crate::locked(&self.unlanded).clear();
        if landed > 0 {
            tracing::warn!(actions = landed, "landed workflow actions the table lacked");
        }
        Ok(landed)
    }
}

/// Lands the actions of `logged` that `db` lacks (by event id); returns how many.
pub async fn land_missing(db: &Db, logged: Vec<WorkflowAction>) -> Result<usize, StoreError> {
    let landed: HashSet<String> =
        crate::reads::workflow(db, None).await?.into_iter().map(|a| a.event_id).collect();
    let missing: Vec<WorkflowAction> = logged.into_iter().filter(|a| !landed.contains(&a.event_id)).collect();
    if !missing.is_empty() {
        db.insert(&SIGNAL_WORKFLOW, &missing).await.map_err(StoreError::from)?;
    }
    Ok(missing.len())
}

/// Every action on `topic` (all partitions, from the start), in log order. Messages that do not
/// decode are skipped with a warning (they cannot be actions of this build).
pub fn read_topic(kafka: &KafkaConfig, topic: &str) -> Result<Vec<WorkflowAction>, KafkaError> {
    let reader = PartitionReader::new(kafka, "pv-dashboard-workflow")?;
    let codec = EventCodec::global();
    let mut out = Vec::new();
    reader.read_all(topic, Duration::from_secs(10), |m| {
        match rdkafka::Message::payload(m).map(|p| codec.decode_record::<WorkflowAction>(p)) {
            Some(Ok(a)) => out.push(a),
            other => tracing::warn!(offset = rdkafka::Message::offset(m), error = ?other.map(|r| r.err()), "skipping an undecodable workflow message"),
        }
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// The workflow topic: one partition (actions stay in order), kept forever (the record of every
/// decision for the life of the product).
pub fn topic_spec(name: &str) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        partitions: 1,
        configs: vec![
            ("retention.ms".into(), "-1".into()),
            ("max.message.bytes".into(), MAX_ACTION_BYTES.to_string()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_round_trips_through_its_avro_schema() {
        let a = WorkflowAction {
            event_id: "e".into(),
            signal_key: "k".into(),
            sequence: 3,
            action: "schedule".into(),
            from_state: "analysis".into(),
            to_state: "analysis".into(),
            assignee: "alice".into(),
            priority: "high".into(),
            due_date: Some("2027-01-15".into()),
            rationale: "why".into(),
            actor: "bob".into(),
            actor_role: "safety_officer".into(),
            at_ms: 1_700_000_000_000,
            evidence_run_at_ms: 1_699_000_000_000,
            evidence_n: 9,
            evidence_estimate: 2.5,
            evidence_lower: 1.0,
            evidence_upper: 4.0,
            evidence_cases: vec!["clinic-01/r-1/v2".into(), "clinic-02/patient/abc".into()],
        };
        let codec = EventCodec::global();
        let bytes = codec.encode_record(&a).expect("encodes");
        assert_eq!(codec.writer_schema(&bytes).expect("known").avro_name, "pv.workflow.WorkflowAction");
        let back: WorkflowAction = codec.decode_record(&bytes).expect("decodes");
        assert_eq!(back, a);
    }
}
