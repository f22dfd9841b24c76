//! Durable produce: enqueue every message of a request, then wait for every broker ack.

use std::time::{Duration, Instant};

use pv_events::{ClinicEvent, EventCodec};
use pv_runtime::KafkaConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

/// Why a request's events are not all durable.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The broker is unreachable or overloaded: the client should retry later (HTTP 503).
    #[error("broker unavailable: {0}")]
    Unavailable(KafkaError),
    /// The broker refused the message for a reason a retry will not fix (HTTP 500).
    #[error("broker rejected the event: {0}")]
    Rejected(KafkaError),
    /// An event could not be encoded (HTTP 500; a bug).
    #[error("cannot encode event: {0}")]
    Encode(#[from] pv_events::CodecError),
}

/// Whether a produce failure is transient (broker down, slow, or electing a leader).
pub fn is_transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(code) => matches!(
            code,
            C::MessageTimedOut
                | C::QueueFull
                | C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::RequestTimedOut
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::UnknownTopicOrPartition
                | C::UnknownPartition
                | C::UnknownTopic
                | C::OperationTimedOut
                | C::PurgeQueue
                | C::PurgeInflight
        ),
        // Canceled deliveries (producer dropped) are transient from the client's point of view.
        None => matches!(e, KafkaError::Canceled),
    }
}

/// An idempotent, `acks=all` producer to one topic.
pub struct DurableProducer {
    producer: FutureProducer,
    topic: String,
    codec: &'static EventCodec,
    enqueue_timeout: Duration,
}

impl std::fmt::Debug for DurableProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableProducer").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl DurableProducer {
    /// A producer to `topic`; deliveries that take longer than `delivery_timeout` fail.
    pub fn new(kafka: &KafkaConfig, topic: &str, delivery_timeout: Duration) -> Result<Self, KafkaError> {
        let producer: FutureProducer =
            pv_runtime::kafka::producer_config(kafka, delivery_timeout).create()?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            codec: EventCodec::global(),
            enqueue_timeout: delivery_timeout,
        })
    }

    /// Produces every event (keyed by clinic + patient) and returns once all are acknowledged.
    /// On error some events may have been written: retrying is safe because every downstream
    /// table deduplicates on `event_id`.
    pub async fn send_all(&self, events: &[ClinicEvent]) -> Result<(), ProduceError> {
        let mut pending: Vec<DeliveryFuture> = Vec::with_capacity(events.len());
        let deadline = Instant::now() + self.enqueue_timeout;
        for event in events {
            let payload = self.codec.encode(event)?;
            let key = event.partition_key();
            let mut record = FutureRecord::to(&self.topic)
                .key(key.as_bytes())
                .payload(&payload)
                .timestamp(event.received_at().millis());
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if Instant::now() >= deadline {
                            return Err(ProduceError::Unavailable(KafkaError::MessageProduction(
                                RDKafkaErrorCode::QueueFull,
                            )));
                        }
                        record = back;
                        // Let librdkafka drain its queue to the broker.
                        self.producer.poll(Timeout::After(Duration::from_millis(5)));
                        tokio::task::yield_now().await;
                    }
                    Err((e, _)) => return Err(classify(e)),
                }
            }
        }
        let mut first_error = None;
        for delivery in pending {
            let outcome = match delivery.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => e,
                Err(_) => KafkaError::Canceled,
            };
            first_error.get_or_insert(outcome);
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(classify(e)),
        }
    }

    /// Whether the broker answers a metadata request for the topic within `timeout`.
    pub fn is_ready(&self, timeout: Duration) -> bool {
        self.producer
            .client()
            .fetch_metadata(Some(&self.topic), Timeout::After(timeout))
            .map(|m| m.topics().iter().any(|t| t.error().is_none() && !t.partitions().is_empty()))
            .unwrap_or(false)
    }

    /// Waits up to `timeout` for queued messages to be delivered (on shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete at shutdown");
        }
    }
}

fn classify(e: KafkaError) -> ProduceError {
    if is_transient(&e) { ProduceError::Unavailable(e) } else { ProduceError::Rejected(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_outages_are_transient_and_bad_messages_are_not() {
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(is_transient(&timed_out));
        assert!(is_transient(&KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown)));
        assert!(!is_transient(&too_large));
        assert!(matches!(classify(timed_out), ProduceError::Unavailable(_)));
        assert!(matches!(classify(too_large), ProduceError::Rejected(_)));
    }
}
