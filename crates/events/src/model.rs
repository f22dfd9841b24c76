//! The clinic events: the source of truth, immutable and append-only.
//!
//! Each struct mirrors the current version of its schema in `schemas/` field for field (a test
//! checks that every struct round-trips through its schema). The same types are the JSON body of
//! the gateway's `POST /v1/events`, with `"type"` naming the event kind.

use serde::{Deserialize, Serialize};

use crate::id::EventId;
use crate::schema::AvroRecord;
use crate::time::{Date, Timestamp};

/// Active substance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// Racemic ketamine.
    Ketamine,
    /// Esketamine (S-ketamine), e.g. the intranasal spray.
    Esketamine,
}

/// Route of administration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Intravenous.
    Iv,
    /// Intramuscular.
    Im,
    /// Intranasal.
    Intranasal,
    /// Oral.
    Oral,
    /// Sublingual.
    Sublingual,
    /// Subcutaneous.
    Sc,
}

/// One administration of ketamine or esketamine (schema `pv.clinic.DoseAdministered`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoseAdministered {
    /// Clinic-generated event UUID.
    pub event_id: EventId,
    /// The submitting clinic.
    pub clinic_id: String,
    /// Clinic-local patient reference.
    pub patient_ref: String,
    /// When the dose was given.
    pub administered_at: Timestamp,
    /// Active substance.
    pub product: Product,
    /// Formulation as labelled.
    pub formulation: String,
    /// Route of administration.
    pub route: Route,
    /// Total dose in mg.
    pub dose_mg: f64,
    /// Patient weight in kg, if known.
    #[serde(default)]
    pub weight_kg: Option<f64>,
    /// Indication.
    pub indication: String,
    /// 1-based session number.
    pub session_number: i32,
    /// Treatment protocol, if given.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Batch/lot number, if recorded (schema v2).
    #[serde(default)]
    pub lot_number: Option<String>,
    /// Set by the gateway on acceptance.
    #[serde(default)]
    pub received_at: Timestamp,
}

/// Observations around one dosing session (schema `pv.clinic.SessionMonitoring`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionMonitoring {
    /// Clinic-generated event UUID.
    pub event_id: EventId,
    /// The submitting clinic.
    pub clinic_id: String,
    /// Clinic-local patient reference.
    pub patient_ref: String,
    /// The session observed.
    pub session_number: i32,
    /// Start of the observation period.
    pub monitored_at: Timestamp,
    /// Systolic BP before dosing, mmHg.
    #[serde(default)]
    pub bp_systolic_pre: Option<i32>,
    /// Diastolic BP before dosing, mmHg.
    #[serde(default)]
    pub bp_diastolic_pre: Option<i32>,
    /// Highest systolic BP after dosing, mmHg.
    #[serde(default)]
    pub bp_systolic_post: Option<i32>,
    /// Highest diastolic BP after dosing, mmHg.
    #[serde(default)]
    pub bp_diastolic_post: Option<i32>,
    /// Deepest sedation, MOAA/S 0-5.
    #[serde(default)]
    pub sedation_moaas: Option<i32>,
    /// Peak dissociation, CADSS 0-92.
    #[serde(default)]
    pub dissociation_cadss: Option<i32>,
    /// Lowest SpO2, percent.
    #[serde(default)]
    pub spo2_min_pct: Option<i32>,
    /// Minutes observed after dosing.
    pub observation_minutes: i32,
    /// Ready for discharge at the end of observation.
    pub discharge_ready: bool,
    /// Set by the gateway on acceptance.
    #[serde(default)]
    pub received_at: Timestamp,
}

/// Age at enrolment, in bands of completed years (adults only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeBand {
    /// 18 to 24 years.
    #[serde(rename = "age_18_24")]
    Age18To24,
    /// 25 to 34 years.
    #[serde(rename = "age_25_34")]
    Age25To34,
    /// 35 to 44 years.
    #[serde(rename = "age_35_44")]
    Age35To44,
    /// 45 to 54 years.
    #[serde(rename = "age_45_54")]
    Age45To54,
    /// 55 to 64 years.
    #[serde(rename = "age_55_64")]
    Age55To64,
    /// 65 to 74 years.
    #[serde(rename = "age_65_74")]
    Age65To74,
    /// 75 years or older.
    #[serde(rename = "age_75_plus")]
    Age75Plus,
}

impl AgeBand {
    /// Every band, youngest first.
    pub const ALL: [AgeBand; 7] = [
        AgeBand::Age18To24,
        AgeBand::Age25To34,
        AgeBand::Age35To44,
        AgeBand::Age45To54,
        AgeBand::Age55To64,
        AgeBand::Age65To74,
        AgeBand::Age75Plus,
    ];

    /// The band's wire name: its Avro symbol and JSON value, e.g. `age_18_24`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgeBand::Age18To24 => "age_18_24",
            AgeBand::Age25To34 => "age_25_34",
            AgeBand::Age35To44 => "age_35_44",
            AgeBand::Age45To54 => "age_45_54",
            AgeBand::Age55To64 => "age_55_64",
            AgeBand::Age65To74 => "age_65_74",
            AgeBand::Age75Plus => "age_75_plus",
        }
    }

    /// The band as people write it, e.g. `18-24` or `75+`.
    pub const fn label(self) -> &'static str {
        match self {
            AgeBand::Age18To24 => "18-24",
            AgeBand::Age25To34 => "25-34",
            AgeBand::Age35To44 => "35-44",
            AgeBand::Age45To54 => "45-54",
            AgeBand::Age55To64 => "55-64",
            AgeBand::Age65To74 => "65-74",
            AgeBand::Age75Plus => "75+",
        }
    }
}

/// Sex as recorded by the clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Not known or not recorded.
    Unknown,
}

impl Sex {
    /// Every value, in schema order.
    pub const ALL: [Sex; 4] = [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown];

    /// The wire name: the Avro symbol and JSON value, e.g. `female`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
}

/// A patient's enrolment into treatment at a clinic, with the baseline recorded before the first
/// dose (schema `pv.clinic.PatientEnrolment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientEnrolment {
    /// Clinic-generated event UUID.
    pub event_id: EventId,
    /// The submitting clinic.
    pub clinic_id: String,
    /// Clinic-local patient reference.
    pub patient_ref: String,
    /// When the patient was enrolled into ketamine/esketamine treatment at the clinic.
    pub enrolled_at: Timestamp,
    /// Age band at enrolment.
    pub age_band: AgeBand,
    /// Sex.
    pub sex: Sex,
    /// IPSS (0-35) at enrolment, before the first dose; `None` when not assessed.
    #[serde(default)]
    pub baseline_urinary_score: Option<i32>,
    /// A documented history of substance-use disorder before enrolment; `None` when not recorded.
    #[serde(default)]
    pub prior_substance_use_disorder: Option<bool>,
    /// Indication.
    pub indication: String,
    /// Identifier of the treatment protocol the patient is enrolled on, e.g. `esketamine_label`.
    pub protocol: String,
    /// Set by the gateway on acceptance.
    #[serde(default)]
    pub received_at: Timestamp,
}

/// Qualification of the primary reporter (E2B C.2.r.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReporterQualification {
    /// Physician.
    Physician,
    /// Pharmacist.
    Pharmacist,
    /// Other health professional.
    OtherHealthProfessional,
    /// Lawyer.
    Lawyer,
    /// Consumer or other non health professional.
    Consumer,
}

/// Outcome of a reaction (E2B E.i.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Recovered/resolved.
    Recovered,
    /// Recovering/resolving.
    Recovering,
    /// Not recovered/not resolved/ongoing.
    NotRecovered,
    /// Recovered/resolved with sequelae.
    RecoveredWithSequelae,
    /// Fatal.
    Fatal,
    /// Unknown.
    Unknown,
}

/// ICH E2A seriousness criteria; all `false` means non-serious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seriousness {
    /// Results in death.
    pub death: bool,
    /// Is life-threatening.
    pub life_threatening: bool,
    /// Requires or prolongs hospitalisation.
    pub hospitalisation: bool,
    /// Persistent or significant disability/incapacity.
    pub disability: bool,
    /// Congenital anomaly/birth defect.
    pub congenital_anomaly: bool,
    /// Other medically important condition.
    pub other_medically_important: bool,
}

impl Seriousness {
    /// Whether any criterion is met.
    pub fn is_serious(&self) -> bool {
        self.death
            || self.life_threatening
            || self.hospitalisation
            || self.disability
            || self.congenital_anomaly
            || self.other_medically_important
    }
}

/// One reaction of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reaction {
    /// As reported, in the reporter's words.
    pub verbatim: String,
    /// A MedDRA term name or code if the clinic coded it.
    #[serde(default)]
    pub coded_term: Option<String>,
    /// Onset date, if known.
    #[serde(default)]
    pub onset_date: Option<Date>,
    /// Outcome at the time of this report version.
    pub outcome: Outcome,
    /// Seriousness criteria met.
    pub seriousness: Seriousness,
}

/// Role of a drug in a case (E2B G.k.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrugRole {
    /// Suspect.
    Suspect,
    /// Concomitant.
    Concomitant,
    /// Interacting.
    Interacting,
}

/// WHO-UMC causality category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Causality {
    /// Certain.
    Certain,
    /// Probable/likely.
    Probable,
    /// Possible.
    Possible,
    /// Unlikely.
    Unlikely,
    /// Conditional/unclassified.
    Conditional,
    /// Unassessable/unclassifiable.
    Unassessable,
}

/// Result of a dechallenge or rechallenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeResult {
    /// The reaction abated (dechallenge) or recurred (rechallenge).
    Positive,
    /// It did not.
    Negative,
    /// Not applicable (e.g. the drug was not stopped).
    NotApplicable,
    /// Unknown.
    Unknown,
}

/// A drug involved in a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drug {
    /// Suspect, concomitant or interacting.
    pub role: DrugRole,
    /// Product name as reported.
    pub name: String,
    /// Set when the drug is one of the monitored products.
    #[serde(default)]
    pub product: Option<Product>,
    /// Route, when a controlled one.
    #[serde(default)]
    pub route: Option<Route>,
    /// Reporter's causality assessment.
    #[serde(default)]
    pub causality: Option<Causality>,
    /// Dechallenge result.
    #[serde(default)]
    pub dechallenge: Option<ChallengeResult>,
    /// Rechallenge result.
    #[serde(default)]
    pub rechallenge: Option<ChallengeResult>,
}

/// One version of an individual case safety report (schema `pv.clinic.AdverseEventReport`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdverseEventReport {
    /// Clinic-generated UUID of this report version.
    pub event_id: EventId,
    /// The submitting clinic.
    pub clinic_id: String,
    /// Clinic-local patient reference.
    pub patient_ref: String,
    /// The clinic's case id, stable across versions.
    pub report_id: String,
    /// 1 for the initial report, then 2, 3, ... for follow-ups.
    pub version: i32,
    /// This version withdraws the report.
    #[serde(default)]
    pub nullification: bool,
    /// Why the report is withdrawn.
    #[serde(default)]
    pub nullification_reason: Option<String>,
    /// When the clinic received the information in this version.
    pub reported_at: Timestamp,
    /// Primary reporter's qualification.
    pub reporter_qualification: ReporterQualification,
    /// The reactions of the case.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    /// Suspect, concomitant and interacting drugs.
    #[serde(default)]
    pub drugs: Vec<Drug>,
    /// Case narrative (free text).
    #[serde(default)]
    pub narrative: Option<String>,
    /// Set by the gateway on acceptance.
    #[serde(default)]
    pub received_at: Timestamp,
}

/// The kinds of clinic event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// [`DoseAdministered`].
    DoseAdministered,
    /// [`SessionMonitoring`].
    SessionMonitoring,
    /// [`AdverseEventReport`].
    AdverseEventReport,
    /// [`PatientEnrolment`].
    PatientEnrolment,
}

impl EventKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EventKind; 4] = [
        EventKind::DoseAdministered,
        EventKind::SessionMonitoring,
        EventKind::AdverseEventReport,
        EventKind::PatientEnrolment,
    ];

    /// The `"type"` value of the JSON API and the stem of the schema file names.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::DoseAdministered => "dose_administered",
            EventKind::SessionMonitoring => "session_monitoring",
            EventKind::AdverseEventReport => "adverse_event_report",
            EventKind::PatientEnrolment => "patient_enrolment",
        }
    }

    /// The kind named by a JSON `"type"` value.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The full Avro record name of the kind's schema.
    pub const fn avro_name(self) -> &'static str {
        match self {
            EventKind::DoseAdministered => "pv.clinic.DoseAdministered",
            EventKind::SessionMonitoring => "pv.clinic.SessionMonitoring",
            EventKind::AdverseEventReport => "pv.clinic.AdverseEventReport",
            EventKind::PatientEnrolment => "pv.clinic.PatientEnrolment",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Any clinic event.
#[derive(Debug, Clone, PartialEq)]
pub enum ClinicEvent {
    /// A dose was administered.
    DoseAdministered(DoseAdministered),
    /// A session was monitored.
    SessionMonitoring(SessionMonitoring),
    /// An adverse-event report version.
    AdverseEventReport(AdverseEventReport),
    /// A patient was enrolled.
    PatientEnrolment(PatientEnrolment),
}

impl ClinicEvent {
    /// Which kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            ClinicEvent::DoseAdministered(_) => EventKind::DoseAdministered,
            ClinicEvent::SessionMonitoring(_) => EventKind::SessionMonitoring,
            ClinicEvent::AdverseEventReport(_) => EventKind::AdverseEventReport,
            ClinicEvent::PatientEnrolment(_) => EventKind::PatientEnrolment,
        }
    }

    /// The event's UUID.
    pub fn event_id(&self) -> EventId {
        match self {
            ClinicEvent::DoseAdministered(e) => e.event_id,
            ClinicEvent::SessionMonitoring(e) => e.event_id,
            ClinicEvent::AdverseEventReport(e) => e.event_id,
            ClinicEvent::PatientEnrolment(e) => e.event_id,
        }
    }

    /// The clinic that submitted the event.
    pub fn clinic_id(&self) -> &str {
        match self {
            ClinicEvent::DoseAdministered(e) => &e.clinic_id,
            ClinicEvent::SessionMonitoring(e) => &e.clinic_id,
            ClinicEvent::AdverseEventReport(e) => &e.clinic_id,
            ClinicEvent::PatientEnrolment(e) => &e.clinic_id,
        }
    }

    /// The clinic-local patient reference.
    pub fn patient_ref(&self) -> &str {
        match self {
            ClinicEvent::DoseAdministered(e) => &e.patient_ref,
            ClinicEvent::SessionMonitoring(e) => &e.patient_ref,
            ClinicEvent::AdverseEventReport(e) => &e.patient_ref,
            ClinicEvent::PatientEnrolment(e) => &e.patient_ref,
        }
    }

    /// When the gateway accepted the event.
    pub fn received_at(&self) -> Timestamp {
        match self {
            ClinicEvent::DoseAdministered(e) => e.received_at,
            ClinicEvent::SessionMonitoring(e) => e.received_at,
            ClinicEvent::AdverseEventReport(e) => e.received_at,
            ClinicEvent::PatientEnrolment(e) => e.received_at,
        }
    }

    /// Replaces the event's id (examples and tests that need fixed ids).
    pub fn set_event_id(&mut self, id: EventId) {
        match self {
            ClinicEvent::DoseAdministered(e) => e.event_id = id,
            ClinicEvent::SessionMonitoring(e) => e.event_id = id,
            ClinicEvent::AdverseEventReport(e) => e.event_id = id,
            ClinicEvent::PatientEnrolment(e) => e.event_id = id,
        }
    }

    /// Stamps the gateway's acceptance time.
    pub fn set_received_at(&mut self, at: Timestamp) {
        match self {
            ClinicEvent::DoseAdministered(e) => e.received_at = at,
            ClinicEvent::SessionMonitoring(e) => e.received_at = at,
            ClinicEvent::AdverseEventReport(e) => e.received_at = at,
            ClinicEvent::PatientEnrolment(e) => e.received_at = at,
        }
    }

    /// The Kafka message key: `clinic_id` + `/` + `patient_ref`, so one patient's events share a
    /// partition and stay in order. Clinic ids cannot contain `/`, so the key is unambiguous.
    pub fn partition_key(&self) -> String {
        format!("{}/{}", self.clinic_id(), self.patient_ref())
    }
}

impl AvroRecord for DoseAdministered {
    const AVRO_NAME: &'static str = "pv.clinic.DoseAdministered";
}

impl AvroRecord for SessionMonitoring {
    const AVRO_NAME: &'static str = "pv.clinic.SessionMonitoring";
}

impl AvroRecord for AdverseEventReport {
    const AVRO_NAME: &'static str = "pv.clinic.AdverseEventReport";
}

impl AvroRecord for PatientEnrolment {
    const AVRO_NAME: &'static str = "pv.clinic.PatientEnrolment";
}

impl From<DoseAdministered> for ClinicEvent {
    fn from(e: DoseAdministered) -> Self {
        ClinicEvent::DoseAdministered(e)
    }
}

impl From<SessionMonitoring> for ClinicEvent {
    fn from(e: SessionMonitoring) -> Self {
        ClinicEvent::SessionMonitoring(e)
    }
}

impl From<AdverseEventReport> for ClinicEvent {
    fn from(e: AdverseEventReport) -> Self {
        ClinicEvent::AdverseEventReport(e)
    }
}

impl From<PatientEnrolment> for ClinicEvent {
    fn from(e: PatientEnrolment) -> Self {
        ClinicEvent::PatientEnrolment(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolment_enums_name_themselves_as_serde_does() {
        for band in AgeBand::ALL {
            assert_eq!(serde_json::to_value(band).expect("serialises"), band.as_str());
        }
        for sex in Sex::ALL {
            assert_eq!(serde_json::to_value(sex).expect("serialises"), sex.as_str());
        }
        let labels: Vec<&str> = AgeBand::ALL.into_iter().map(AgeBand::label).collect();
        assert_eq!(labels, ["18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"]);
    }

    #[test]
    fn every_kind_is_named_by_its_own_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::from_name("patient_enrolment"), Some(EventKind::PatientEnrolment));
    }
}
