//! Avro single-object encoding of clinic events.
//!
//! A message is `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer's schema,
//! then the Avro binary body. Any consumer can tell from the fingerprint which schema (kind and
//! version) wrote it. Messages written with the current schema decode on the fast serde path;
//! messages written with an older version are resolved into the current schema first (fields
//! added since take their defaults).

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{ClinicEvent, EventKind};
use crate::schema::{SchemaRegistry, SchemaVersion};

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
    /// The body does not decode with the schema the header names.
    #[error("{kind} v{version} body does not decode: {source}")]
    Body {
        /// Kind named by the header.
        kind: EventKind,
        /// Version named by the header.
        version: u32,
        /// The Avro error.
        #[source]
        source: apache_avro::Error,
    },
    /// The event does not serialise with its schema (a bug, or a value the schema cannot hold).
    #[error("{kind} does not encode with its schema: {source}")]
    Encode {
        /// Kind being encoded.
        kind: EventKind,
        /// The Avro error.
        #[source]
        source: apache_avro::Error,
    },
    /// Bytes left over after the body.
    #[error("{0} trailing bytes after the Avro body")]
    TrailingBytes(usize),
}

/// Encodes and decodes clinic events with the schemas of a [`SchemaRegistry`].
#[derive(Debug, Clone, Copy)]
pub struct EventCodec {
    registry: &'static SchemaRegistry,
}

impl Default for EventCodec {
    fn default() -> Self {
        Self::new(SchemaRegistry::global())
    }
}

impl EventCodec {
    /// A codec over `registry`.
    pub fn new(registry: &'static SchemaRegistry) -> Self {
        Self { registry }
    }

    /// Encodes `event` with the current schema of its kind, as a single-object message.
    pub fn encode(&self, event: &ClinicEvent) -> Result<Vec<u8>, CodecError> {
        let kind = event.kind();
        match event {
            ClinicEvent::DoseAdministered(e) => self.encode_as(kind, e),
            ClinicEvent::SessionMonitoring(e) => self.encode_as(kind, e),
            ClinicEvent::AdverseEventReport(e) => self.encode_as(kind, e),
        }
    }

    /// Encodes any serialisable value with the current schema of `kind`.
    fn encode_as<T: Serialize>(&self, kind: EventKind, value: &T) -> Result<Vec<u8>, CodecError> {
        let sv = self.registry.current(kind);
        encode_with(sv, value)
    }

    /// Decodes a single-object message into the current version of its event type.
    pub fn decode(&self, bytes: &[u8]) -> Result<ClinicEvent, CodecError> {
        let (sv, body) = self.writer_schema(bytes)?;
        Ok(match sv.kind {
            EventKind::DoseAdministered => {
                ClinicEvent::DoseAdministered(self.decode_body(sv, body)?)
            }
            EventKind::SessionMonitoring => {
                ClinicEvent::SessionMonitoring(self.decode_body(sv, body)?)
            }
            EventKind::AdverseEventReport => {
                ClinicEvent::AdverseEventReport(self.decode_body(sv, body)?)
            }
        })
    }

    /// Reads the header of a single-object message: the writer schema and the body after it.
    pub fn writer_schema<'b>(
        &self,
        bytes: &'b [u8],
    ) -> Result<(&'static SchemaVersion, &'b [u8]), CodecError> {
        if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
            return Err(CodecError::NotSingleObject);
        }
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&bytes[2..HEADER_LEN]);
        let sv = self
            .registry
            .by_fingerprint(&fingerprint)
            .ok_or_else(|| CodecError::UnknownSchema(hex_le(&fingerprint)))?;
        Ok((sv, &bytes[HEADER_LEN..]))
    }

    fn decode_body<T: DeserializeOwned>(
        &self,
        writer: &SchemaVersion,
        body: &[u8],
    ) -> Result<T, CodecError> {
        let current = self.registry.current(writer.kind);
        let err = |source| CodecError::Body {
            kind: writer.kind,
            version: writer.version,
            source,
        };
        let mut cursor = body;
        let value = if std::ptr::eq(writer, current) {
            // Fast path: writer == reader, straight from bytes into the struct.
            let reader = GenericDatumReader::builder(&writer.schema)
                .build()
                .map_err(err)?;
            reader.read_deser::<T>(&mut cursor).map_err(err)?
        } else {
            // An older writer: resolve into the current schema (new fields take defaults).
            let reader = GenericDatumReader::builder(&writer.schema)
                .reader_schema(&current.schema)
                .build()
                .map_err(err)?;
            let value = reader.read_value(&mut cursor).map_err(err)?;
            apache_avro::from_value::<T>(&value).map_err(err)?
        };
        if !cursor.is_empty() {
            return Err(CodecError::TrailingBytes(cursor.len()));
        }
        Ok(value)
    }
}

/// Encodes `value` as a single-object message with the given schema version.
pub fn encode_with<T: Serialize>(sv: &SchemaVersion, value: &T) -> Result<Vec<u8>, CodecError> {
    let writer = GenericDatumWriter::builder(&sv.schema)
        .build()
        .map_err(|source| CodecError::Encode {
            kind: sv.kind,
            source,
        })?;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&sv.fingerprint);
    writer
        .write_ser(&mut out, value)
        .map_err(|source| CodecError::Encode {
            kind: sv.kind,
            source,
        })?;
    Ok(out)
}

fn hex_le(bytes: &[u8; 8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        ]
    }

    #[test]
    fn every_kind_round_trips_field_for_field() {
        let codec = EventCodec::default();
        for event in all_kinds() {
            let bytes = codec.encode(&event).expect("encode");
            assert_eq!(bytes[..2], MAGIC);
            let sv = SchemaRegistry::global().current(event.kind());
            assert_eq!(
                bytes[2..10],
                sv.fingerprint,
                "header names the current schema"
            );
            assert_eq!(codec.decode(&bytes).expect("decode"), event);
        }
    }

    #[test]
    fn empty_options_and_arrays_round_trip() {
        let codec = EventCodec::default();
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
        for event in [ClinicEvent::from(dose), report.into()] {
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
            .find(|v| v.kind == EventKind::DoseAdministered && v.version == 1)
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
        let ClinicEvent::DoseAdministered(got) =
            EventCodec::default().decode(&bytes).expect("decode")
        else {
            panic!("wrong kind");
        };
        assert_eq!(
            got,
            crate::DoseAdministered {
                lot_number: None,
                ..want
            }
        );
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        let codec = EventCodec::default();
        assert!(matches!(
            codec.decode(b""),
            Err(CodecError::NotSingleObject)
        ));
        assert!(matches!(
            codec.decode(b"{\"json\": true}"),
            Err(CodecError::NotSingleObject)
        ));
        let unknown = [0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0];
        assert!(matches!(
            codec.decode(&unknown),
            Err(CodecError::UnknownSchema(_))
        ));
        let good = codec.encode(&all_kinds()[2]).expect("encode");
        for cut in [HEADER_LEN, HEADER_LEN + 5, good.len() - 1] {
            assert!(
                matches!(codec.decode(&good[..cut]), Err(CodecError::Body { .. })),
                "truncated at {cut}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            codec.decode(&long),
            Err(CodecError::TrailingBytes(1))
        ));
    }
}
