//! The raw topic's messages, as the gateway (and every other writer of clinic events: the
//! simulator, the benchmarks) produces them with a [`DurableProducer`].

use pv_events::{ClinicEvent, CodecError, EventCodec, Limits};
use pv_runtime::kafka::{DurableProducer, Outgoing, ProduceError};

/// Why a request's events are not all durable on the raw topic.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The broker did not acknowledge them ([`ProduceError::Unavailable`]: retry later).
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// An event could not be encoded (a bug); nothing was produced.
    #[error("cannot encode event: {0}")]
    Encode(#[from] CodecError),
}

/// The raw-topic message of each event: its Avro single-object encoding, keyed by clinic and
/// patient (one patient's events stay in order on one partition), stamped with its acceptance,
/// and, when the events were validated, with the limits they passed ([`Limits::HEADER`]).
pub fn raw_messages(
    events: &[ClinicEvent],
    accepted_under: Option<&Limits>,
) -> Result<Vec<Outgoing>, CodecError> {
    let codec = EventCodec::global();
    let headers: Vec<(&'static str, String)> =
        accepted_under.map(|l| vec![(Limits::HEADER, l.to_header())]).unwrap_or_default();
    events
        .iter()
        .map(|e| {
            Ok(Outgoing {
                key: e.partition_key().into_bytes(),
                payload: codec.encode(e)?,
                timestamp_ms: Some(e.received_at().millis()),
                headers: headers.clone(),
            })
        })
        .collect()
}

/// Produces `events` to the producer's topic and returns once all are acknowledged. All are
/// encoded first, so an event that cannot be encoded sends none. `accepted_under`: the limits
/// the events were validated with (`None`: not validated; the enricher applies its own).
pub async fn send_events(
    producer: &DurableProducer,
    events: &[ClinicEvent],
    accepted_under: Option<&Limits>,
) -> Result<(), SendError> {
    Ok(producer.send_all(&raw_messages(events, accepted_under)?).await?)
}

#[cfg(test)]
mod tests {
    use pv_events::{Timestamp, sample};

    use super::*;

    #[test]
    fn messages_are_keyed_by_patient_and_stamped_with_their_acceptance() {
        let mut e = ClinicEvent::from(sample::adverse_event("c1", "p1", "R1", Timestamp::from_millis(0)));
        e.set_received_at(Timestamp::from_millis(42_000));
        let m = raw_messages(std::slice::from_ref(&e), None).expect("encodes");
        assert_eq!(m[0].key, e.partition_key().into_bytes());
        assert_eq!(m[0].timestamp_ms, Some(42_000));
        assert!(m[0].headers.is_empty(), "not validated: no limits recorded");
        let limits = Limits { max_dose_mg: 300.0, ..Limits::default() };
        let m = raw_messages(std::slice::from_ref(&e), Some(&limits)).expect("encodes");
        assert_eq!(m[0].headers, [(Limits::HEADER, limits.to_header())]);
        assert_eq!(EventCodec::global().decode(&m[0].payload).expect("decodes"), e);
    }
}
