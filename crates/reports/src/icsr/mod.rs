//! ICH E2B(R3) individual case safety reports: one HL7 v3 `MCCI_IN200100UV01` batch holding one
//! `PORR_IN049016UV` message per case version ([`write::batch_xml`]), read back field by field
//! ([`read::read_batch`]) and checked against the FDA business rules that apply to what we write
//! ([`rules::check`]). Element shapes, OIDs and code lists follow FDA's example messages and data-element
//! table (`tests/e2b-r3-fda/`).
//!
//! # Without a licensed MedDRA release
//!
//! ICH requires the MedDRA version (E.i.2.1a) and the MedDRA code (E.i.2.1b) of every reaction. They are
//! written only when the caller passes the licensed release (`meddra: Some(..)`) *and* the reaction has a
//! PT code; the demo dictionary's terms have no codes and are never written as if they were MedDRA.
//! Without them the reaction is written as reported only (E.i.1.1a with its language, E.i.1.1b, in the
//! MedDRA-coded value's `originalText`, with no `code` and no `codeSystemVersion`, the way FDA's
//! Scenario 1 writes an uncoded indication). Such a batch is well-formed, deterministic and reads back,
//! but it is **not submittable**: [`rules::check`] reports `GEN-REQUIRED` for E.i.2.1a and E.i.2.1b of
//! every such reaction, as a receiver would reject it. Use it for review, never for transmission.
//!
//! # Identifiers and versions
//!
//! C.1.1 and C.1.8.1 are both `{case_id_prefix}{clinic_id}-{report_id}` (country-sender-report number, as
//! the data-element table asks and as FDA's examples do when the sender is the first sender), the same
//! for every version of a case: FDA's guidance is to keep C.1.1 for all follow-ups, and E2B has no version
//! element; a follow-up is a new message with the same C.1.8.1 and a later C.1.5, not an amendment
//! (C.1.11 is written only for a nullification). The message identifier N.2.r.1 is
//! `{C.1.1}-v{version}`, so a reader recovers the version ([`read::ReadCase::version`]).
//!
//! Every date is written in UTC: timestamps as `CCYYMMDDhhmmss+0000` (milliseconds are dropped: E2B's
//! precision stops at the second), dates (E.i.4) as `CCYYMMDD`.

pub mod model;
pub mod read;
pub mod rules;
pub mod write;

pub use model::{Batch, Dosing, IcsrCase, IcsrDrug, IcsrReaction, MeddraRelease, Sender, SenderContact};
pub use read::{
    Coded, ReadAssessment, ReadBatch, ReadCase, ReadDrug, ReadPatient, ReadReaction, ReadRecurrence,
    ReadReporter, ReadSender, ReadSeriousness, read, read_batch,
};
pub use rules::{RULES_COVERED, RuleViolation, check};
pub use write::batch_xml;

/// Why a batch could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum IcsrError {
    /// A value is longer than its data element allows (FDA's data-element table); nothing is truncated.
    #[error("{element}: {len} characters, more than the {max} the data element allows")]
    TooLong {
        /// The data element, e.g. `C.1.1`.
        element: &'static str,
        /// Its maximum length in characters.
        max: usize,
        /// The value's length in characters.
        len: usize,
    },
    /// A value cannot be written as its data element: not representable (a character XML 1.0 cannot
    /// carry, an instant outside years 1-9999, a negative dose, a code of the wrong shape) or missing
    /// where the element is required (the reason of a nullification).
    #[error("{element}: {reason}")]
    Invalid {
        /// The data element, e.g. `C.1.11.2`.
        element: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Writing the XML failed.
    #[error("writing the XML: {0}")]
    Write(#[from] std::io::Error),
    /// The XML written is not UTF-8 (cannot happen: every input is a `&str`).
    #[error("the XML written is not UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
    /// The text is not well-formed XML.
    #[error("parsing the XML: {0}")]
    Parse(#[from] roxmltree::Error),
    /// The document is well-formed but not an E2B(R3) batch.
    #[error("not an ICH E2B(R3) batch: {0}")]
    NotABatch(String),
}

/// The HL7 v3 namespace of every element.
pub(crate) const HL7_NS: &str = "urn:hl7-org:v3";
/// The XML Schema instance namespace (`xsi:type`, `xsi:schemaLocation`).
pub(crate) const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// `xsi:schemaLocation` exactly as FDA's example messages write it.
pub(crate) const SCHEMA_LOCATION: &str = "urn:hl7-org:v3 \
    https://www.accessdata.fda.gov/icsr/schema/cvm/schemas/vich/multicacheschemas/MCCI_IN200100UV01.xsd";
/// N.1.4 of a batch sent to FDA's postmarket route (FAERS).
pub(crate) const FDA_POSTMARKET: &str = "ZZFDA";
/// N.1.4 of a batch sent to FDA's premarket route.
pub(crate) const FDA_PREMARKET: &str = "ZZFDA_PREMKT";

/// The OIDs of identifier roots and code systems, as FDA's data-element table and examples write them.
pub(crate) mod oid {
    /// N.1.1 type of messages in batch.
    pub(crate) const BATCH_TYPE: &str = "2.16.840.1.113883.3.989.2.1.1.1";
    /// N.1.2 batch number.
    pub(crate) const BATCH_NUMBER: &str = "2.16.840.1.113883.3.989.2.1.3.22";
    /// N.1.3 batch sender.
    pub(crate) const BATCH_SENDER: &str = "2.16.840.1.113883.3.989.2.1.3.13";
    /// N.1.4 batch receiver.
    pub(crate) const BATCH_RECEIVER: &str = "2.16.840.1.113883.3.989.2.1.3.14";
    /// N.2.r.1 message identifier, and C.1.1 sender's safety report unique identifier.
    pub(crate) const REPORT_ID: &str = "2.16.840.1.113883.3.989.2.1.3.1";
    /// C.1.8.1 worldwide unique case identification.
    pub(crate) const WORLDWIDE_ID: &str = "2.16.840.1.113883.3.989.2.1.3.2";
    /// N.2.r.2 message sender.
    pub(crate) const MESSAGE_SENDER: &str = "2.16.840.1.113883.3.989.2.1.3.11";
    /// N.2.r.3 message receiver.
    pub(crate) const MESSAGE_RECEIVER: &str = "2.16.840.1.113883.3.989.2.1.3.12";
    /// HL7 interaction identifiers.
    pub(crate) const INTERACTION: &str = "2.16.840.1.113883.1.6";
    /// HL7 trigger events (`PORR_TE049016UV`).
    pub(crate) const TRIGGER_EVENT: &str = "2.16.840.1.113883.1.18";
    /// HL7 act codes (`PAT_ADV_EVNT`).
    pub(crate) const ACT_CODE: &str = "2.16.840.1.113883.5.4";
    /// ICH observation codes (reaction, seriousness criteria, outcome, causality, ...).
    pub(crate) const OBSERVATION: &str = "2.16.840.1.113883.3.989.2.1.1.19";
    /// C.1.3 type of report.
    pub(crate) const REPORT_TYPE: &str = "2.16.840.1.113883.3.989.2.1.1.2";
    /// C.1.8.2 first sender of this case.
    pub(crate) const FIRST_SENDER: &str = "2.16.840.1.113883.3.989.2.1.1.3";
    /// C.1.11.1 nullification / amendment.
    pub(crate) const NULLIFICATION: &str = "2.16.840.1.113883.3.989.2.1.1.5";
    /// C.2.r.4 qualification.
    pub(crate) const QUALIFICATION: &str = "2.16.840.1.113883.3.989.2.1.1.6";
    /// C.3.1 sender type.
    pub(crate) const SENDER_TYPE: &str = "2.16.840.1.113883.3.989.2.1.1.7";
    /// D.2.3 patient age group.
    pub(crate) const AGE_GROUP: &str = "2.16.840.1.113883.3.989.2.1.1.9";
    /// E.i.7 outcome.
    pub(crate) const OUTCOME: &str = "2.16.840.1.113883.3.989.2.1.1.11";
    /// G.k.1 characterisation of drug role.
    pub(crate) const DRUG_ROLE: &str = "2.16.840.1.113883.3.989.2.1.1.13";
    /// G.k.9.i.4 did reaction recur on re-administration.
    pub(crate) const RECURRENCE: &str = "2.16.840.1.113883.3.989.2.1.1.16";
    /// Organizer codes (drug information).
    pub(crate) const ORGANIZER: &str = "2.16.840.1.113883.3.989.2.1.1.20";
    /// Related investigation codes (initial report, source report).
    pub(crate) const REPORT_RELATION: &str = "2.16.840.1.113883.3.989.2.1.1.22";
    /// Investigation characteristic codes (report type, other case ids, nullification).
    pub(crate) const CHARACTERISTIC: &str = "2.16.840.1.113883.3.989.2.1.1.23";
    /// D.5 sex (ISO 5218).
    pub(crate) const SEX: &str = "1.0.5218";
    /// Country codes (ISO 3166-1 alpha-2).
    pub(crate) const COUNTRY: &str = "1.0.3166.1.2.2";
    /// MedDRA.
    pub(crate) const MEDDRA: &str = "2.16.840.1.113883.6.163";
    /// NCI Thesaurus, FDA's SPL terminology (race, ethnicity, FDA regional observations, routes).
    pub(crate) const NCI: &str = "2.16.840.1.113883.3.26.1.1";
    /// FDA.C.1.7.1 local criteria report type.
    pub(crate) const FDA_LOCAL_CRITERIA: &str = "2.16.840.1.113883.3.989.5.1.2.2.1.1.1";
    /// FDA regional observation codes (FDA.E.i.3.2h required intervention).
    pub(crate) const FDA_OBSERVATION: &str = "2.16.840.1.113883.3.989.5.1.2.2.1.3";
}

/// Maximum lengths, in characters, of the free-text and identifier elements we write, from the
/// MAX LENGTH column of FDA's data-element table (a test compares every entry with the table).
pub(crate) const MAX_LENGTHS: &[(&str, usize)] = &[
    ("N.1.2", 100),
    ("N.1.3", 60),
    ("N.1.4", 60),
    ("N.2.r.1", 100),
    ("N.2.r.2", 60),
    ("N.2.r.3", 60),
    ("C.1.1", 100),
    ("C.1.8.1", 100),
    ("C.1.11.2", 2000),
    ("C.2.r.3", 2),
    ("FDA.C.2.r.2.8", 100),
    ("C.3.2", 100),
    ("C.3.3.1", 60),
    ("C.3.3.2", 50),
    ("C.3.3.3", 60),
    ("C.3.3.5", 60),
    ("C.3.4.1", 100),
    ("C.3.4.2", 35),
    ("C.3.4.3", 40),
    ("C.3.4.4", 15),
    ("C.3.4.5", 2),
    ("C.3.4.6", 33),
    ("C.3.4.7", 33),
    ("C.3.4.8", 100),
    ("D.1", 60),
    ("E.i.1.1a", 250),
    ("E.i.1.1b", 3),
    ("E.i.2.1a", 4),
    ("E.i.2.1b", 8),
    ("G.k.2.2", 250),
    ("G.k.4.r.1a", 8),
    ("G.k.4.r.1b", 50),
    ("G.k.4.r.10.1", 60),
    ("G.k.4.r.10.2b", 15),
    ("G.k.5a", 10),
    ("G.k.5b", 50),
    ("G.k.9.i.2.r.1", 60),
    ("G.k.9.i.2.r.2", 60),
    ("G.k.9.i.2.r.3", 60),
    ("H.1", 100_000),
];

/// The maximum length of a data element we write, when it has one.
pub(crate) fn max_len(element: &str) -> Option<usize> {
    MAX_LENGTHS.iter().find(|(e, _)| *e == element).map(|&(_, max)| max)
}

/// Sample inputs and FDA's reference files, shared by the tests of `write`, `read` and `rules`.
#[cfg(test)]
pub(crate) mod sample {
    use pv_events::{
        AgeBand, Causality, ChallengeResult, DrugRole, Outcome, Product, ReporterQualification, Route,
        Seriousness, Sex,
    };

    use super::model::{
        Batch, Dosing, IcsrCase, IcsrDrug, IcsrReaction, MeddraRelease, Sender, SenderContact,
    };

    /// 2026-01-10T12:00:00Z: the batch's creation (N.1.5, C.1.2, N.2.r.4).
    pub(crate) const CREATED_MS: i64 = 1_768_046_400_000;
    /// 2026-01-03T14:00:00Z: C.1.4.
    pub(crate) const FIRST_RECEIVED_MS: i64 = 1_767_448_800_000;
    /// 2026-01-08T08:15:00Z: C.1.5.
    pub(crate) const MOST_RECENT_MS: i64 = 1_767_860_100_000;
    /// 2025-12-01T10:00:00Z: the first dose (G.k.4.r.4).
    pub(crate) const FIRST_DOSE_MS: i64 = 1_764_583_200_000;
    /// 2026-01-02T09:30:00Z: the last dose (G.k.4.r.5).
    pub(crate) const LAST_DOSE_MS: i64 = 1_767_346_200_000;
    /// 2026-01-02 in days since the epoch: the first reaction's onset (E.i.4).
    pub(crate) const ONSET_DAY: i32 = 20_455;

    /// The path of one of FDA's reference files copied into the crate.
    pub(crate) fn reference(name: &str) -> String {
        format!("{}/tests/e2b-r3-fda/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// FDA's Scenario 1 example message.
    pub(crate) fn scenario1() -> String {
        std::fs::read_to_string(reference("FAERS2022Scenario1.xml"))
            .expect("FAERS2022Scenario1.xml is readable")
    }

    /// Every row of a reference CSV, headers included.
    pub(crate) fn csv_rows(name: &str) -> Vec<csv::StringRecord> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(reference(name))
            .expect("the CSV opens");
        reader.records().map(|r| r.expect("a CSV row")).collect()
    }

    /// The sender, with the contact details FDA requires.
    pub(crate) fn sender() -> Sender {
        Sender {
            sender_id: "PVDEMO".into(),
            receiver_id: "ZZFDA".into(),
            organisation: "pv demo safety database".into(),
            country: "US".into(),
            case_id_prefix: "US-PVDEMO-".into(),
            contact: Some(SenderContact {
                department: "Drug Safety".into(),
                title: "Dr".into(),
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                street: "1 Main Street".into(),
                city: "Springfield".into(),
                state: "IL".into(),
                postcode: "62701".into(),
                telephone: "2175550100".into(),
                fax: "2175550101".into(),
                email: "safety@example.org".into(),
            }),
        }
    }

    /// A licensed MedDRA release.
    pub(crate) fn meddra() -> MeddraRelease {
        MeddraRelease { version: "27.1".into() }
    }

    /// Version 2 of a case: two reactions (the first serious with hospitalisation and an onset, the
    /// second not serious, without onset), a suspect ketamine with dosing, causality, dechallenge and
    /// rechallenge, and a concomitant drug with nothing else.
    pub(crate) fn case() -> IcsrCase {
        IcsrCase {
            clinic_id: "clinic-01".into(),
            report_id: "R-0042".into(),
            version: 2,
            nullification: false,
            nullification_reason: None,
            first_received_ms: FIRST_RECEIVED_MS,
            most_recent_ms: MOST_RECENT_MS,
            accepted_at_ms: MOST_RECENT_MS + 60_000,
            reporter: ReporterQualification::Physician,
            patient_key: "PK-3f9a1c".into(),
            age_band: Some(AgeBand::Age35To44),
            sex: Some(Sex::Female),
            reactions: vec![
                IcsrReaction {
                    verbatim: "Severe hypertension after the infusion".into(),
                    pt: Some("Hypertension".into()),
                    pt_code: Some(10_020_772),
                    onset_day: Some(ONSET_DAY),
                    seriousness: Seriousness { hospitalisation: true, ..Seriousness::default() },
                    outcome: Outcome::Recovered,
                },
                IcsrReaction {
                    verbatim: "Dissociation".into(),
                    pt: Some("Dissociation".into()),
                    pt_code: Some(10_013_457),
                    onset_day: None,
                    seriousness: Seriousness::default(),
                    outcome: Outcome::Recovering,
                },
            ],
            drugs: vec![
                IcsrDrug {
                    role: DrugRole::Suspect,
                    name: "Ketamine hydrochloride".into(),
                    product: Some(Product::Ketamine),
                    route: Some(Route::Iv),
                    causality: Some(Causality::Probable),
                    dechallenge: Some(ChallengeResult::Positive),
                    rechallenge: Some(ChallengeResult::Negative),
                    dosing: Some(Dosing {
                        last_dose_mg: 35.5,
                        administrations: 6,
                        cumulative_mg: 210.0,
                        first_dose_ms: FIRST_DOSE_MS,
                        last_dose_ms: LAST_DOSE_MS,
                    }),
                },
                IcsrDrug {
                    role: DrugRole::Concomitant,
                    name: "Sertraline".into(),
                    product: None,
                    route: None,
                    causality: None,
                    dechallenge: None,
                    rechallenge: None,
                    dosing: None,
                },
            ],
            narrative: Some(
                "Blood pressure rose to 190/110 mmHg 20 minutes after the fifth infusion.".into(),
            ),
        }
    }

    /// A batch of the given cases created at [`CREATED_MS`].
    pub(crate) fn batch(cases: Vec<IcsrCase>) -> Batch {
        Batch { batch_id: "PVDEMO-20260110-001".into(), created_at_ms: CREATED_MS, cases }
    }
}

#[cfg(test)]
mod tests {
    use super::sample::csv_rows;
    use super::{MAX_LENGTHS, max_len};

    /// Every maximum length the writer and the rules use is the one in FDA's data-element table.
    #[test]
    fn max_lengths_are_the_data_element_tables() {
        let rows = csv_rows("icsr_data_elements.csv");
        let header = &rows[1];
        let number = header.iter().position(|c| c.trim() == "DATA ELEMENT NUMBER").expect("a number column");
        let length = header.iter().position(|c| c.trim() == "MAX LENGTH").expect("a max length column");
        for &(element, max) in MAX_LENGTHS {
            let row = rows
                .iter()
                .skip(2)
                .find(|r| r.get(number).map(str::trim) == Some(element))
                .unwrap_or_else(|| panic!("{element} is in the data-element table"));
            let table: usize = row.get(length).map(str::trim).unwrap_or_default().parse().expect("a number");
            assert_eq!(max, table, "maximum length of {element}");
        }
        assert_eq!(max_len("H.1"), Some(100_000));
        assert_eq!(max_len("C.1.3"), None, "coded elements are checked against their code list instead");
    }
}
