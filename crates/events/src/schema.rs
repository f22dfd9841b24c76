//! The Avro schemas of `schemas/`, compiled in, with their single-object fingerprints.
//!
//! Every version ever published stays in `schemas/` as `<kind>.v<N>.avsc`, so a consumer can
//! decode a message written by any earlier producer. [`SchemaRegistry::global`] parses them once.

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use crate::model::EventKind;

/// The schema files, embedded at compile time: (kind, version, JSON text).
const SCHEMA_FILES: &[(EventKind, u32, &str)] = &[
    (
        EventKind::DoseAdministered,
        1,
        include_str!("../../../schemas/dose_administered.v1.avsc"),
    ),
    (
        EventKind::DoseAdministered,
        2,
        include_str!("../../../schemas/dose_administered.v2.avsc"),
    ),
    (
        EventKind::SessionMonitoring,
        1,
        include_str!("../../../schemas/session_monitoring.v1.avsc"),
    ),
    (
        EventKind::AdverseEventReport,
        1,
        include_str!("../../../schemas/adverse_event_report.v1.avsc"),
    ),
];

/// One published version of one event schema.
#[derive(Debug)]
pub struct SchemaVersion {
    /// The event kind the schema describes.
    pub kind: EventKind,
    /// Its version number (1, 2, ...).
    pub version: u32,
    /// The parsed schema.
    pub schema: Schema,
    /// CRC-64-AVRO (Rabin) fingerprint of the schema's canonical form, as in single-object encoding.
    pub fingerprint: [u8; 8],
}

/// All published schema versions, indexed by fingerprint and by kind.
#[derive(Debug)]
pub struct SchemaRegistry {
    versions: Vec<SchemaVersion>,
    by_fingerprint: HashMap<[u8; 8], usize>,
    current: HashMap<EventKind, usize>,
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

    /// Builds a registry from (kind, version, schema JSON) triples.
    pub fn from_sources(sources: &[(EventKind, u32, &str)]) -> Result<Self, String> {
        let mut versions = Vec::with_capacity(sources.len());
        let mut by_fingerprint = HashMap::new();
        let mut current: HashMap<EventKind, usize> = HashMap::new();
        for &(kind, version, text) in sources {
            let schema = Schema::parse_str(text)
                .map_err(|e| format!("{} v{version}: invalid schema: {e}", kind.as_str()))?;
            if schema.name().map(|n| n.fullname(None)) != Some(kind.avro_name().to_string()) {
                return Err(format!(
                    "{} v{version}: record name must be {}",
                    kind.as_str(),
                    kind.avro_name()
                ));
            }
            let bytes = schema.fingerprint::<Rabin>().bytes;
            let fingerprint: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| "Rabin fingerprints are 8 bytes".to_string())?;
            let index = versions.len();
            if by_fingerprint.insert(fingerprint, index).is_some() {
                return Err(format!(
                    "{} v{version}: same canonical form as another version",
                    kind.as_str()
                ));
            }
            let newer = current.get(&kind).is_none_or(|&i: &usize| {
                let known: &SchemaVersion = &versions[i];
                known.version < version
            });
            if newer {
                current.insert(kind, index);
            }
            versions.push(SchemaVersion {
                kind,
                version,
                schema,
                fingerprint,
            });
        }
        for kind in EventKind::ALL {
            if !current.contains_key(&kind) {
                return Err(format!("no schema for {}", kind.as_str()));
            }
        }
        Ok(Self {
            versions,
            by_fingerprint,
            current,
        })
    }

    /// The schema version a single-object fingerprint names, if known.
    pub fn by_fingerprint(&self, fingerprint: &[u8; 8]) -> Option<&SchemaVersion> {
        self.by_fingerprint
            .get(fingerprint)
            .map(|&i| &self.versions[i])
    }

    /// The newest version of a kind's schema: what producers write and consumers read into.
    pub fn current(&self, kind: EventKind) -> &SchemaVersion {
        // Every kind has a current version: `from_sources` refuses a registry without one.
        &self.versions[self.current[&kind]]
    }

    /// Every published version, in file order.
    pub fn versions(&self) -> &[SchemaVersion] {
        &self.versions
    }

    /// Checks that, for every kind, each version can read data written by every earlier version
    /// (Avro schema resolution, fully). Returns one message per incompatible pair.
    pub fn check_backward_compatibility(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for newer in &self.versions {
            for older in self
                .versions
                .iter()
                .filter(|o| o.kind == newer.kind && o.version < newer.version)
            {
                let name = newer.kind.as_str();
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

    #[test]
    fn embedded_schemas_parse_and_every_kind_has_a_current_version() {
        let reg = SchemaRegistry::global();
        assert_eq!(reg.versions().len(), SCHEMA_FILES.len());
        assert_eq!(reg.current(EventKind::DoseAdministered).version, 2);
        assert_eq!(reg.current(EventKind::SessionMonitoring).version, 1);
        assert_eq!(reg.current(EventKind::AdverseEventReport).version, 1);
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
        let other = |k: EventKind| -> (EventKind, u32, &'static str) {
            let text = SCHEMA_FILES
                .iter()
                .find(|f| f.0 == k)
                .map(|f| f.2)
                .unwrap_or_default();
            (k, 1, text)
        };
        let reg = SchemaRegistry::from_sources(&[
            (EventKind::DoseAdministered, 1, v1),
            (EventKind::DoseAdministered, 2, v2),
            other(EventKind::SessionMonitoring),
            other(EventKind::AdverseEventReport),
        ])
        .expect("registry");
        let problems = reg.check_backward_compatibility();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("dose_administered v2 cannot read data written with v1"),
            "{problems:?}"
        );
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
