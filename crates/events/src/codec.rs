//! Avro single-object encoding of clinic events.
//!
//! A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer's schema
//! (of its Parsing Canonical Form as the specification defines it: [`crate::canonical`]; the legacy
//! fingerprints of earlier builds are read too),
//! then the Avro binary body. Any consumer can tell from the fingerprint which schema (kind and
//! version) wrote it. Messages written with the current schema decode on the fast serde path;
//! messages written with an older version are resolved into the current schema first (fields
//! added since take their defaults).

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::enriched::{
    EnrichedAdverseEvent, EnrichedDose, EnrichedEnrolment, EnrichedEvent, EnrichedMonitoring,
};
use crate::model::{
    AdverseEventReport, ClinicEvent, DoseAdministered, EventKind, PatientEnrolment, SessionMonitoring,
};
use crate::schema::{AvroRecord, SchemaRegistry, SchemaVersion};

/// The two magic bytes that open every single-object encoded message.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Length of the single-object header: magic plus fingerprint.
pub const HEADER_LEN: usize = 10;

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The message is shorter than the header or lacks the `C3 01` magic.
    #[error("not an Avro single-object message (missing C3 01 header)")]
    NotSingleObject,
    /// The fingerprint names no schema this build knows.
    #[error("unknown writer schema fingerprint {0}")]
    UnknownSchema(String),
    /// The message holds another record type than the one asked for.
    #[error("expected a {expected} message, found {found}")]
    WrongRecord {
        /// The record type asked for.
        expected: &'static str,
        /// The record type the header names.
        found: String,
    },
    /// The body does not decode with the schema the header names.
    #[error("{record} v{version} body does not decode: {source}")]
    Body {
        /// Record named by the header.
        record: String,
        /// Version named by the header.
        version: u32,
        /// The Avro error.
        #[source]
        source: apache_avro::Error,
    },
    /// The value does not serialise with its schema (a bug, or a value the schema cannot hold).
    #[error("{record} does not encode with its schema: {source}")]
    Encode {
        /// Record being encoded.
        record: &'static str,
        /// The Avro error.
        #[source]
        source: apache_avro::Error,
    },
    /// No schema is published for the record type.
    #[error("no schema for {0} in schemas/")]
    NoSchema(&'static str),
    /// Bytes left over after the body.
    #[error("{0} trailing bytes after the Avro body")]
    TrailingBytes(usize),
}

/// Encodes and decodes records with the schemas of a [`SchemaRegistry`], keeping a prepared
/// reader per published version and a prepared writer per record type.
pub struct EventCodec {
    registry: &'static SchemaRegistry,
    /// Per version (same index as `registry.versions()`): reads into the current version.
    readers: Vec<GenericDatumReader<'static>>,
    /// Per record name: writes the current version.
    writers: HashMap<&'static str, (GenericDatumWriter<'static>, &'static SchemaVersion)>,
}

impl std::fmt::Debug for EventCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCodec").field("versions", &self.readers.len()).finish_non_exhaustive()
    }
}

static GLOBAL: LazyLock<EventCodec> = LazyLock::new(|| {
    // The embedded schemas are checked by this crate's tests; a failure here is a build defect.
    EventCodec::new(SchemaRegistry::global()).expect("the embedded schemas resolve")
});

impl EventCodec {
    /// The codec of the schemas compiled into this binary.
    pub fn global() -> &'static EventCodec {
        &GLOBAL
    }

    /// A codec over `registry`.
    pub fn new(registry: &'static SchemaRegistry) -> Result<Self, apache_avro::Error> {
        let mut readers = Vec::with_capacity(registry.versions().len());
        let mut writers = HashMap::new();
        for sv in registry.versions() {
            let current = registry.current(&sv.avro_name).unwrap_or(sv);
            let reader = if std::ptr::eq(sv, current) {
                GenericDatumReader::builder(&sv.schema).build()?
            } else {
                GenericDatumReader::builder(&sv.schema).reader_schema(&current.schema).build()?
            };
            readers.push(reader);
            if std::ptr::eq(sv, current) {
                writers.insert(sv.avro_name.as_str(), (GenericDatumWriter::builder(&sv.schema).build()?, sv));
            }
        }
        Ok(Self { registry, readers, writers })
    }

    /// The registry this codec uses.
    pub fn registry(&self) -> &'static SchemaRegistry {
        self.registry
    }

    /// Encodes a clinic event with the current schema of its kind.
    pub fn encode(&self, event: &ClinicEvent) -> Result<Vec<u8>, CodecError> {
        match event {
            ClinicEvent::DoseAdministered(e) => self.encode_record(e),
            ClinicEvent::SessionMonitoring(e) => self.encode_record(e),
            ClinicEvent::AdverseEventReport(e) => self.encode_record(e),
            ClinicEvent::PatientEnrolment(e) => self.encode_record(e),
        }
    }

    /// Encodes any record with the current version of its schema, as a single-object message.
    pub fn encode_record<T: AvroRecord>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(256);
        self.encode_record_into(value, &mut out)?;
        Ok(out)
    }

    /// Like [`Self::encode_record`], appending to `out`.
    pub fn encode_record_into<T: AvroRecord>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let (writer, sv) = self.writers.get(T::AVRO_NAME).ok_or(CodecError::NoSchema(T::AVRO_NAME))?;
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&sv.fingerprint);
        writer.write_ser(out, value).map_err(|source| CodecError::Encode { record: T::AVRO_NAME, source })?;
        Ok(())
    }

    /// Decodes a clinic event of any kind.
    pub fn decode(&self, bytes: &[u8]) -> Result<ClinicEvent, CodecError> {
        let (index, body) = self.writer_index(bytes)?;
        let sv = &self.registry.versions()[index];
        Ok(match sv.avro_name.as_str() {
            n if n == EventKind::DoseAdministered.avro_name() => {
                ClinicEvent::DoseAdministered(self.decode_body::<DoseAdministered>(index, body)?)
            }
            n if n == EventKind::SessionMonitoring.avro_name() => {
                ClinicEvent::SessionMonitoring(self.decode_body::<SessionMonitoring>(index, body)?)
            }
            n if n == EventKind::AdverseEventReport.avro_name() => {
                ClinicEvent::AdverseEventReport(self.decode_body::<AdverseEventReport>(index, body)?)
            }
            n if n == EventKind::PatientEnrolment.avro_name() => {
                ClinicEvent::PatientEnrolment(self.decode_body::<PatientEnrolment>(index, body)?)
            }
            other => {
                return Err(CodecError::WrongRecord { expected: "clinic event", found: other.to_owned() });
            }
        })
    }

    /// Encodes an enriched event.
    pub fn encode_enriched(&self, event: &EnrichedEvent) -> Result<Vec<u8>, CodecError> {
        match event {
            EnrichedEvent::Dose(e) => self.encode_record(e),
            EnrichedEvent::Monitoring(e) => self.encode_record(e),
            EnrichedEvent::AdverseEvent(e) => self.encode_record(e),
            EnrichedEvent::Enrolment(e) => self.encode_record(e),
        }
    }

    /// Decodes an enriched event of any kind.
    pub fn decode_enriched(&self, bytes: &[u8]) -> Result<EnrichedEvent, CodecError> {
        let (index, body) = self.writer_index(bytes)?;
        let sv = &self.registry.versions()[index];
        Ok(match sv.avro_name.as_str() {
            EnrichedDose::AVRO_NAME => EnrichedEvent::Dose(self.decode_body(index, body)?),
            EnrichedMonitoring::AVRO_NAME => EnrichedEvent::Monitoring(self.decode_body(index, body)?),
            EnrichedAdverseEvent::AVRO_NAME => EnrichedEvent::AdverseEvent(self.decode_body(index, body)?),
            EnrichedEnrolment::AVRO_NAME => EnrichedEvent::Enrolment(self.decode_body(index, body)?),
            other => {
                return Err(CodecError::WrongRecord { expected: "enriched event", found: other.to_owned() });
            }
        })
    }

    /// Decodes a message that must hold a `T`.
    pub fn decode_record<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (index, body) = self.writer_index(bytes)?;
        let found = &self.registry.versions()[index].avro_name;
        if found != T::AVRO_NAME {
            return Err(CodecError::WrongRecord { expected: T::AVRO_NAME, found: found.clone() });
        }
        self.decode_body(index, body)
    }

    /// The schema version that wrote a single-object message.
    pub fn writer_schema(&self, bytes: &[u8]) -> Result<&'static SchemaVersion, CodecError> {
        self.writer_index(bytes).map(|(i, _)| &self.registry.versions()[i])
    }

    fn writer_index<'b>(&self, bytes: &'b [u8]) -> Result<(usize, &'b [u8]), CodecError> {
        if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
            return Err(CodecError::NotSingleObject);
        }
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&bytes[2..HEADER_LEN]);
        let index = self.registry.fingerprint_index(&fingerprint).ok_or_else(|| {
            CodecError::UnknownSchema(fingerprint.iter().map(|b| format!("{b:02x}")).collect())
        })?;
        Ok((index, &bytes[HEADER_LEN..]))
    }

    fn decode_body<T: DeserializeOwned>(&self, index: usize, body: &[u8]) -> Result<T, CodecError> {
        let sv = &self.registry.versions()[index];
        let err = |source| CodecError::Body { record: sv.avro_name.clone(), version: sv.version, source };
        let reader = &self.readers[index];
        let mut cursor = body;
        let current = self.registry.current(&sv.avro_name).is_some_and(|c| std::ptr::eq(c, sv));
        let value = if current {
            // Fast path: writer == reader, straight from bytes into the struct.
            reader.read_deser::<T>(&mut cursor).map_err(err)?
        } else {
            // An older writer: resolve into the current schema (new fields take defaults).
            let value = reader.read_value(&mut cursor).map_err(err)?;
            apache_avro::from_value::<T>(&value).map_err(err)?
        };
        if !cursor.is_empty() {
            return Err(CodecError::TrailingBytes(cursor.len()));
        }
        Ok(value)
    }
}

/// Encodes `value` as a single-object message with an explicit schema version (tests, tools).
pub fn encode_with<T: Serialize>(sv: &SchemaVersion, value: &T) -> Result<Vec<u8>, apache_avro::Error> {
    let writer = GenericDatumWriter::builder(&sv.schema).build()?;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&sv.fingerprint);
    writer.write_ser(&mut out, value)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use crate::time::Timestamp;

    fn at() -> Timestamp {
        Timestamp::parse_rfc3339("2026-05-04T09:30:15.123Z").expect("valid")
    }

    fn all_kinds() -> Vec<ClinicEvent> {
        let mut dose = sample::dose("clinic-a", "p-1", 3, at());
        dose.received_at = Timestamp::from_millis(at().millis() + 5);
        vec![
            dose.into(),
            sample::monitoring("clinic-a", "p-1", 3, at()).into(),
            sample::adverse_event("clinic-a", "p-1", "CASE-1", at()).into(),
            sample::enrolment("clinic-a", "p-1", at()).into(),
        ]
    }

    #[test]
    fn every_kind_round_trips_field_for_field() {
        let codec = EventCodec::global();
        for event in all_kinds() {
            let bytes = codec.encode(&event).expect("encode");
            assert_eq!(bytes[..2], MAGIC);
            let sv = SchemaRegistry::global().current(event.kind().avro_name()).expect("schema");
            assert_eq!(bytes[2..10], sv.fingerprint, "header names the current schema");
            assert_eq!(codec.decode(&bytes).expect("decode"), event);
        }
    }

    #[test]
    fn messages_written_with_the_legacy_fingerprints_still_decode() {
        // Builds before the specification's canonical form wrote apache-avro's fingerprints;
        // those messages stay in the topics and must still be read.
        let codec = EventCodec::global();
        for event in all_kinds() {
            let mut bytes = codec.encode(&event).expect("encode");
            let sv = SchemaRegistry::global().current(event.kind().avro_name()).expect("schema");
            bytes[2..10].copy_from_slice(&sv.legacy_fingerprint);
            assert_eq!(codec.decode(&bytes).expect("legacy header decodes"), event);
        }
    }

    #[test]
    fn empty_options_and_arrays_round_trip() {
        let codec = EventCodec::global();
        let mut dose = sample::dose("c", "p", 1, at());
        dose.weight_kg = None;
        dose.protocol = None;
        dose.lot_number = None;
        let mut report = sample::adverse_event("c", "p", "R", at());
        report.reactions.clear();
        report.drugs.clear();
        report.narrative = None;
        report.nullification = true;
        report.nullification_reason = Some("duplicate".into());
        let mut enrolment = sample::enrolment("c", "p", at());
        enrolment.baseline_urinary_score = None;
        enrolment.prior_substance_use_disorder = None;
        for event in [ClinicEvent::from(dose), report.into(), enrolment.into()] {
            let bytes = codec.encode(&event).expect("encode");
            assert_eq!(codec.decode(&bytes).expect("decode"), event);
        }
    }

    #[test]
    fn a_message_written_with_an_older_schema_decodes_with_defaults() {
        let registry = SchemaRegistry::global();
        let v1 = registry
            .versions()
            .iter()
            .find(|v| v.family == "dose_administered" && v.version == 1)
            .expect("dose v1 kept");
        // A v1 producer knows nothing of lot_number: serialise a struct shaped like v1.
        #[derive(Serialize)]
        struct DoseV1<'a> {
            event_id: crate::EventId,
            clinic_id: &'a str,
            patient_ref: &'a str,
            administered_at: Timestamp,
            product: crate::Product,
            formulation: &'a str,
            route: crate::Route,
            dose_mg: f64,
            weight_kg: Option<f64>,
            indication: &'a str,
            session_number: i32,
            protocol: Option<&'a str>,
            received_at: Timestamp,
        }
        let want = sample::dose("clinic-b", "p-9", 2, at());
        let old = DoseV1 {
            event_id: want.event_id,
            clinic_id: &want.clinic_id,
            patient_ref: &want.patient_ref,
            administered_at: want.administered_at,
            product: want.product,
            formulation: &want.formulation,
            route: want.route,
            dose_mg: want.dose_mg,
            weight_kg: want.weight_kg,
            indication: &want.indication,
            session_number: want.session_number,
            protocol: want.protocol.as_deref(),
            received_at: want.received_at,
        };
        let bytes = encode_with(v1, &old).expect("encode v1");
        assert_eq!(bytes[2..10], v1.fingerprint);
        let ClinicEvent::DoseAdministered(got) = EventCodec::global().decode(&bytes).expect("decode") else {
            panic!("wrong kind");
        };
        assert_eq!(got, crate::DoseAdministered { lot_number: None, ..want });
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        let codec = EventCodec::global();
        assert!(matches!(codec.decode(b""), Err(CodecError::NotSingleObject)));
        assert!(matches!(codec.decode(b"{\"json\": true}"), Err(CodecError::NotSingleObject)));
        let unknown = [0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0];
        assert!(matches!(codec.decode(&unknown), Err(CodecError::UnknownSchema(_))));
        let good = codec.encode(&all_kinds()[2]).expect("encode");
        for cut in [HEADER_LEN, HEADER_LEN + 5, good.len() - 1] {
            assert!(matches!(codec.decode(&good[..cut]), Err(CodecError::Body { .. })), "truncated at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(codec.decode(&long), Err(CodecError::TrailingBytes(1))));
    }
}

#[cfg(test)]
mod enriched_tests {
    use super::*;
    use crate::sample;

    #[test]
    fn every_enriched_kind_round_trips() {
        let codec = EventCodec::global();
        for event in [
            EnrichedEvent::Dose(sample::enriched_dose()),
            EnrichedEvent::Monitoring(sample::enriched_monitoring()),
            EnrichedEvent::AdverseEvent(sample::enriched_adverse_event()),
            EnrichedEvent::Enrolment(sample::enriched_enrolment()),
        ] {
            let bytes = codec.encode_enriched(&event).expect("encode");
            assert_eq!(codec.decode_enriched(&bytes).expect("decode"), event);
            assert!(
                matches!(codec.decode(&bytes), Err(CodecError::WrongRecord { .. })),
                "not a clinic event"
            );
        }
    }
}
