//! Producing: handing records to librdkafka with back-pressure ([`enqueue`] on a thread of its
//! own, [`enqueue_async`] in a task), and the durable producer that returns only once the broker
//! has acknowledged every message of a request.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    DeliveryFuture, FutureProducer, FutureRecord, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::util::Timeout;

use crate::config::KafkaConfig;

/// Hands `record` to `send` until librdkafka's queue has room for it, calling `wait` between
/// tries (the queue drains as the broker acknowledges), or until `deadline` passes: then the
/// `QueueFull` error is returned. Any other error is returned at once. Blocking: for a thread.
pub fn enqueue<R, T>(
    mut record: R,
    deadline: Instant,
    mut send: impl FnMut(R) -> Result<T, (KafkaError, R)>,
    mut wait: impl FnMut(),
) -> Result<T, KafkaError> {
    loop {
        match retry_if_full(send(record), deadline) {
            ControlFlow::Break(outcome) => return outcome,
            ControlFlow::Continue(back) => record = back,
        }
        wait();
    }
}

/// [`enqueue`] in a task: waits `pause` on a timer between tries, so other tasks run meanwhile.
pub async fn enqueue_async<R, T>(
    mut record: R,
    deadline: Instant,
    mut send: impl FnMut(R) -> Result<T, (KafkaError, R)>,
    pause: Duration,
) -> Result<T, KafkaError> {
    loop {
        match retry_if_full(send(record), deadline) {
            ControlFlow::Break(outcome) => return outcome,
            ControlFlow::Continue(back) => record = back,
        }
        tokio::time::sleep(pause).await;
    }
}

/// The outcome of a send, or (the queue is full, time is left) the record back to try again.
fn retry_if_full<R, T>(
    sent: Result<T, (KafkaError, R)>,
    deadline: Instant,
) -> ControlFlow<Result<T, KafkaError>, R> {
    match sent {
        Ok(sent) => ControlFlow::Break(Ok(sent)),
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
            if Instant::now() < deadline =>
        {
            ControlFlow::Continue(back)
        }
        Err((e, _)) => ControlFlow::Break(Err(e)),
    }
}

/// Commits `producer`'s open transaction without rust-rdkafka's 100 ms stall: its
/// `commit_transaction` first flushes, and that flush polls in steps that always run their full
/// 100 ms while anything is in flight. The producer's own thread serves the delivery reports, so
/// waiting here until nothing is in flight (in 1 ms naps, up to `timeout`) leaves the flush
/// nothing to wait for. The commit then has `timeout` of its own.
pub fn commit_transaction<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.commit_transaction(timeout)
}

/// Why a request's messages are not all durable.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The broker is unreachable or overloaded: retry later (the gateway answers 503).
    #[error("broker unavailable: {0}")]
    Unavailable(KafkaError),
    /// The broker refused a message for a reason a retry will not fix.
    #[error("broker rejected the message: {0}")]
    Rejected(KafkaError),
}

impl From<KafkaError> for ProduceError {
    fn from(e: KafkaError) -> Self {
        if is_transient(&e) { ProduceError::Unavailable(e) } else { ProduceError::Rejected(e) }
    }
}

/// Whether a Kafka failure is transient (broker down, slow, or electing a leader or a
/// coordinator).
pub fn is_transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    if let KafkaError::Transaction(t) = e
        && t.is_retriable()
    {
        return true;
    }
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
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::CoordinatorLoadInProgress
                | C::PurgeQueue
                | C::PurgeInflight
        ),
        // Canceled deliveries (producer dropped) are transient from the client's point of view.
        None => matches!(e, KafkaError::Canceled),
    }
}

/// One message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Key (decides the partition).
    pub key: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Message timestamp (ms since the epoch); the producer's clock when `None`.
    pub timestamp_ms: Option<i64>,
    /// Headers (name, value).
    pub headers: Vec<(&'static str, String)>,
}

impl Outgoing {
    /// The headers as librdkafka takes them (`None` when there are none).
    pub fn owned_headers(&self) -> Option<rdkafka::message::OwnedHeaders> {
        (!self.headers.is_empty()).then(|| {
            self.headers.iter().fold(rdkafka::message::OwnedHeaders::new(), |h, (key, value)| {
                h.insert(rdkafka::message::Header { key, value: Some(value.as_str()) })
            })
        })
    }
}

/// An idempotent, `acks=all` producer to one topic.
pub struct DurableProducer {
    producer: FutureProducer,
    topic: String,
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
        let producer: FutureProducer = super::producer_config(kafka, delivery_timeout).create()?;
        Ok(Self { producer, topic: topic.to_owned(), enqueue_timeout: delivery_timeout })
    }

    /// Produces every message, in order, and returns once all are acknowledged. On error some
    /// may have been written: a retry is safe where the consumers deduplicate (every table does,
    /// on `event_id`).
    #[allow(clippy::result_large_err)] // the closure returns librdkafka's own (error, record)
    pub async fn send_all(&self, messages: &[Outgoing]) -> Result<(), ProduceError> {
        let deadline = Instant::now() + self.enqueue_timeout;
        let mut pending: Vec<DeliveryFuture> = Vec::with_capacity(messages.len());
        for m in messages {
            let mut record = FutureRecord::to(&self.topic).key(&m.key).payload(&m.payload);
            if let Some(t) = m.timestamp_ms {
                record = record.timestamp(t);
            }
            if let Some(h) = m.owned_headers() {
                record = record.headers(h);
            }
            // The producer's own thread serves the deliveries meanwhile: the queue drains.
            let pause = Duration::from_millis(5);
            pending.push(enqueue_async(record, deadline, |r| self.producer.send_result(r), pause).await?);
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
            Some(e) => Err(e.into()),
        }
    }

    /// Whether the broker answers a metadata request for the topic within `timeout`.
    pub fn is_ready(&self, timeout: Duration) -> bool {
        super::topics::partitions(self.producer.client(), &self.topic, timeout).is_ok_and(|p| !p.is_empty())
    }

    /// Waits up to `timeout` for queued messages to be delivered (on shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete at shutdown");
        }
    }
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
        assert!(matches!(ProduceError::from(timed_out), ProduceError::Unavailable(_)));
        assert!(matches!(ProduceError::from(too_large), ProduceError::Rejected(_)));
    }

    const FULL: KafkaError = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);

    #[test]
    fn a_full_queue_is_waited_out_until_the_deadline() {
        let mut tries = 0;
        let mut waits = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        let sent = enqueue(
            "r",
            deadline,
            |r| {
                if tries < 3 {
                    tries += 1;
                    Err((FULL, r))
                } else {
                    Ok(r)
                }
            },
            || waits += 1,
        );
        assert_eq!((sent, waits), (Ok("r"), 3));

        let past = Instant::now();
        let full: Result<(), _> = enqueue((), past, |r| Err((FULL, r)), || panic!("no time to wait"));
        assert_eq!(full, Err(FULL));
        let tries = std::cell::Cell::new(0);
        let send = |r| if tries.replace(tries.get() + 1) < 2 { Err((FULL, r)) } else { Ok(r) };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        let waited = runtime.block_on(enqueue_async("r", deadline, send, Duration::from_millis(1)));
        assert_eq!((waited, tries.get()), (Ok("r"), 3));
        let refused = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let e: Result<(), _> = enqueue((), deadline, |r| Err((refused.clone(), r)), || panic!("not retried"));
        assert_eq!(e, Err(refused));
    }
}
