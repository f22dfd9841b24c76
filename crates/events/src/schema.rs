//! The Avro schemas of `schemas/`, compiled in, with their single-object fingerprints.
//!
//! Every version ever published stays in `schemas/` as `<kind>.v<N>.avsc`, so a consumer can
//! decode a message written by any earlier producer. [`SchemaRegistry::global`] parses them once.

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A record type whose schema family is published in `schemas/`.
pub trait AvroRecord: Serialize + DeserializeOwned {
    /// The full Avro name of the record, e.g. `pv.clinic.DoseAdministered`.
    const AVRO_NAME: &'static str;
}

/// The schema files, embedded at compile time: (file stem, version, JSON text).
const SCHEMA_FILES: &[(&str, u32, &str)] = &[
    ("dose_administered", 1, include_str!("../../../schemas/dose_administered.v1.avsc")),
    ("dose_administered", 2, include_str!("../../../schemas/dose_administered.v2.avsc")),
    ("session_monitoring", 1, include_str!("../../../schemas/session_monitoring.v1.avsc")),
    ("adverse_event_report", 1, include_str!("../../../schemas/adverse_event_report.v1.avsc")),
    ("patient_enrolment", 1, include_str!("../../../schemas/patient_enrolment.v1.avsc")),
    ("enriched_dose", 1, include_str!("../../../schemas/enriched_dose.v1.avsc")),
    ("enriched_monitoring", 1, include_str!("../../../schemas/enriched_monitoring.v1.avsc")),
    ("enriched_adverse_event", 1, include_str!("../../../schemas/enriched_adverse_event.v1.avsc")),
    ("enriched_enrolment", 1, include_str!("../../../schemas/enriched_enrolment.v1.avsc")),
    ("patient_state", 1, include_str!("../../../schemas/patient_state.v1.avsc")),
    ("signal_event", 1, include_str!("../../../schemas/signal_event.v1.avsc")),
    ("signal_event", 2, include_str!("../../../schemas/signal_event.v2.avsc")),
    ("signal_workflow", 1, include_str!("../../../schemas/signal_workflow.v1.avsc")),
];

/// One published version of one schema.
#[derive(Debug)]
pub struct SchemaVersion {
    /// File stem of the family, e.g. `dose_administered`.
    pub family: &'static str,
    /// Full Avro name of the record.
    pub avro_name: String,
    /// Version number (1, 2, ...).
    pub version: u32,
    /// The parsed schema.
    pub schema: Schema,
    /// CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form as the Avro specification
    /// defines it ([`crate::canonical`]): what single-object headers carry, as every conforming
    /// client computes it.
    pub fingerprint: [u8; 8],
    /// The fingerprint apache-avro 0.22 computes (its canonical form keeps `{"type":"string"}`
    /// for a logical type): written by builds before the specification's, still read.
    pub legacy_fingerprint: [u8; 8],
}

/// All published schema versions, indexed by fingerprint and by record name.
#[derive(Debug)]
pub struct SchemaRegistry {
    versions: Vec<SchemaVersion>,
    by_fingerprint: HashMap<[u8; 8], usize>,
    current: HashMap<String, usize>,
}

static GLOBAL: LazyLock<SchemaRegistry> = LazyLock::new(|| {
    // The files are compiled in and checked by this crate's tests, so failing here is a build defect.
    SchemaRegistry::from_sources(SCHEMA_FILES).expect("the embedded schemas in schemas/ are valid")
});

impl SchemaRegistry {
    /// The registry of the schemas compiled into this binary.
    pub fn global() -> &'static SchemaRegistry {
        &GLOBAL
    }

    /// Builds a registry from (family, version, schema JSON) triples. Every version of a family
    /// must describe the same record name.
    pub fn from_sources(sources: &[(&'static str, u32, &str)]) -> Result<Self, String> {
        let mut versions: Vec<SchemaVersion> = Vec::with_capacity(sources.len());
        let mut by_fingerprint = HashMap::new();
        let mut current: HashMap<String, usize> = HashMap::new();
        for &(family, version, text) in sources {
            let schema =
                Schema::parse_str(text).map_err(|e| format!("{family} v{version}: invalid schema: {e}"))?;
            let avro_name = schema
                .name()
                .map(|n| n.fullname(None))
                .ok_or_else(|| format!("{family} v{version}: not a named record"))?;
            if let Some(other) = versions.iter().find(|v| v.family == family && v.avro_name != avro_name) {
                return Err(format!(
                    "{family} v{version}: record {avro_name} but v{} is {}",
                    other.version, other.avro_name
                ));
            }
            let bytes = schema.fingerprint::<Rabin>().bytes;
            let legacy_fingerprint: [u8; 8] =
                bytes.as_slice().try_into().map_err(|_| "Rabin fingerprints are 8 bytes".to_string())?;
            let fingerprint = crate::canonical::single_object_fingerprint(text)
                .map_err(|e| format!("{family} v{version}: {e}"))?;
            let index = versions.len();
            for fp in [fingerprint, legacy_fingerprint] {
                if by_fingerprint.insert(fp, index).is_some_and(|other| other != index) {
                    return Err(format!("{family} v{version}: same canonical form as another version"));
                }
            }
            let newer = current.get(&avro_name).is_none_or(|&i| versions[i].version < version);
            if newer {
                current.insert(avro_name.clone(), index);
            }
            versions.push(SchemaVersion {
                family,
                avro_name,
                version,
                schema,
                fingerprint,
                legacy_fingerprint,
            });
        }
        Ok(Self { versions, by_fingerprint, current })
    }

    /// The schema version a single-object fingerprint names, if known: the specification's
    /// fingerprint or the legacy one.
    pub fn by_fingerprint(&self, fingerprint: &[u8; 8]) -> Option<&SchemaVersion> {
        self.fingerprint_index(fingerprint).map(|i| &self.versions[i])
    }

    /// Index in [`Self::versions`] of the version a fingerprint names, if known.
    pub fn fingerprint_index(&self, fingerprint: &[u8; 8]) -> Option<usize> {
        self.by_fingerprint.get(fingerprint).copied()
    }

    /// The newest version of the record named `avro_name`: what producers write and consumers
    /// read into.
    pub fn current(&self, avro_name: &str) -> Option<&SchemaVersion> {
        self.current.get(avro_name).map(|&i| &self.versions[i])
    }

    /// Every published version, in file order.
    pub fn versions(&self) -> &[SchemaVersion] {
        &self.versions
    }

    /// Checks that each version can read data written by every earlier version of its family
    /// (Avro schema resolution, fully). Returns one message per incompatible pair.
    pub fn check_backward_compatibility(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for newer in &self.versions {
            for older in
                self.versions.iter().filter(|o| o.family == newer.family && o.version < newer.version)
            {
                let name = newer.family;
                match SchemaCompatibility::can_read(&older.schema, &newer.schema) {
                    Ok(Compatibility::Full) => {}
                    Ok(Compatibility::Partial) => problems.push(format!(
                        "{name} v{} reads v{} only partially (enum symbols or union branches differ)",
                        newer.version, older.version
                    )),
                    Err(e) => problems.push(format!(
                        "{name} v{} cannot read data written with v{}: {e}",
                        newer.version, older.version
                    )),
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventKind;

    #[test]
    fn embedded_schemas_parse_and_every_kind_has_a_current_version() {
        let reg = SchemaRegistry::global();
        assert_eq!(reg.versions().len(), SCHEMA_FILES.len());
        let current = |k: EventKind| reg.current(k.avro_name()).map(|v| v.version);
        assert_eq!(current(EventKind::DoseAdministered), Some(2));
        assert_eq!(current(EventKind::SessionMonitoring), Some(1));
        assert_eq!(current(EventKind::AdverseEventReport), Some(1));
        assert_eq!(current(EventKind::PatientEnrolment), Some(1));
        assert!(EventKind::ALL.iter().all(|&k| current(k).is_some()), "a schema for every kind");
        let family = |name: &str| reg.current(name).map(|v| v.family);
        assert_eq!(family("pv.enriched.EnrichedEnrolment"), Some("enriched_enrolment"));
    }

    #[test]
    fn every_schema_reads_every_earlier_version() {
        let problems = SchemaRegistry::global().check_backward_compatibility();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn the_check_catches_an_incompatible_change() {
        // v2 adds a required field without a default: v1 data cannot be read with it.
        let v1 = r#"{"type":"record","name":"DoseAdministered","namespace":"pv.clinic",
                     "fields":[{"name":"a","type":"string"}]}"#;
        let v2 = r#"{"type":"record","name":"DoseAdministered","namespace":"pv.clinic",
                     "fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;
        let reg = SchemaRegistry::from_sources(&[("dose_administered", 1, v1), ("dose_administered", 2, v2)])
            .expect("registry");
        let problems = reg.check_backward_compatibility();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("dose_administered v2 cannot read data written with v1"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_family_cannot_change_its_record_name() {
        let a = r#"{"type":"record","name":"A","fields":[]}"#;
        let b = r#"{"type":"record","name":"B","fields":[]}"#;
        assert!(SchemaRegistry::from_sources(&[("f", 1, a), ("f", 2, b)]).is_err());
    }

    /// Single-object fingerprints of every published schema as fastavro 1.13.1 computes them
    /// (`fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")`, header byte order), an
    /// implementation independent of ours.
    const FASTAVRO: &[(&str, u32, &str)] = &[
        ("adverse_event_report", 1, "5d74bf3f48de4d62"),
        ("dose_administered", 1, "02d2db5fc745229f"),
        ("dose_administered", 2, "d3d2fb286c23a92b"),
        ("enriched_adverse_event", 1, "50998ac523f881e6"),
        ("enriched_dose", 1, "59bd41929c981bb3"),
        ("enriched_enrolment", 1, "b3c81067e83a2308"),
        ("enriched_monitoring", 1, "aefdd2c9863f28d2"),
        ("patient_enrolment", 1, "ce8dffe14978c1f2"),
        ("patient_state", 1, "02ea13d69b2cea0b"),
        ("session_monitoring", 1, "b5a36791f19c6e17"),
        ("signal_event", 1, "3cf318cc2db4c5d9"),
        ("signal_event", 2, "8c4742f5e145acf4"),
        ("signal_workflow", 1, "8571b519af000ec7"),
    ];

    #[test]
    fn our_fingerprints_are_fastavros_and_the_legacy_ones_still_resolve() {
        let registry = SchemaRegistry::global();
        assert_eq!(registry.versions().len(), FASTAVRO.len(), "every published schema is listed here");
        for (family, version, hex) in FASTAVRO {
            let sv = registry
                .versions()
                .iter()
                .find(|v| v.family == *family && v.version == *version)
                .unwrap_or_else(|| panic!("{family} v{version}"));
            let ours: String = sv.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(&ours, hex, "{family} v{version}");
            assert_eq!(registry.by_fingerprint(&sv.legacy_fingerprint).map(|v| v.version), Some(*version));
        }
        // The schemas with logical types are the ones whose legacy fingerprint differs.
        let dose = registry.current("pv.clinic.DoseAdministered").expect("dose");
        assert_ne!(dose.fingerprint, dose.legacy_fingerprint);
    }

    #[test]
    fn fingerprints_follow_the_avro_spec() {
        // Spec test vector: the canonical form "null" has CRC-64-AVRO 0x63dd24e7cc258f8a,
        // written little-endian in single-object headers.
        let null = Schema::parse_str(r#""null""#).expect("null schema");
        let fp = null.fingerprint::<Rabin>().bytes;
        assert_eq!(fp, 0x63dd_24e7_cc25_8f8a_u64.to_le_bytes().to_vec());
    }
}
