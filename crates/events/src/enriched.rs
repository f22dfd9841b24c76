//! Enriched events: what the enricher produces from clinic events, and what every downstream
//! stage reads. Pseudonymised (no clinic patient reference), coded, and carrying the patient's
//! exposure as of each event's own time. Schemas: `schemas/enriched_*.avsc`.

use serde::{Deserialize, Serialize};

use crate::id::EventId;
use crate::model::{AgeBand, Drug, Outcome, Product, ReporterQualification, Route, Seriousness, Sex};
use crate::schema::AvroRecord;
use crate::time::{Date, Timestamp};

/// A patient's exposure as of a point in time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Exposure {
    /// Doses up to and including the as-of time.
    pub administrations: i32,
    /// Their sum, mg.
    pub cumulative_mg: f64,
    /// Sum of mg/kg over the doses with a known weight.
    pub cumulative_mg_per_kg: f64,
    /// Doses contributing to `cumulative_mg_per_kg`.
    pub doses_with_weight: i32,
    /// First dose.
    pub first_dose_at: Option<Timestamp>,
    /// Latest dose at or before the as-of time.
    pub last_dose_at: Option<Timestamp>,
    /// (last - first) / (n - 1), days.
    pub mean_interval_days: Option<f64>,
    /// Mean of the last (up to 4) intervals, days.
    pub recent_interval_days: Option<f64>,
    /// Slope of the last (up to 6) intervals against their order, days per session.
    pub interval_trend_days_per_session: Option<f64>,
    /// Mean of the first (up to 3) doses, mg.
    pub baseline_dose_mg: Option<f64>,
    /// Latest dose, mg.
    pub last_dose_mg: Option<f64>,
    /// `last_dose_mg / baseline_dose_mg`.
    pub escalation_ratio: Option<f64>,
}

/// A dose, enriched (schema `pv.enriched.EnrichedDose`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EnrichedDose {
    pub event_id: EventId,
    pub clinic_id: String,
    pub patient_key: String,
    pub administered_at: Timestamp,
    pub product: Product,
    pub formulation: String,
    pub route: Route,
    pub dose_mg: f64,
    pub weight_kg: Option<f64>,
    pub dose_mg_per_kg: Option<f64>,
    pub indication: String,
    pub session_number: i32,
    pub protocol: Option<String>,
    pub lot_number: Option<String>,
    pub received_at: Timestamp,
    /// Exposure including this dose.
    pub exposure: Exposure,
}

/// A monitoring form, enriched (schema `pv.enriched.EnrichedMonitoring`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EnrichedMonitoring {
    pub event_id: EventId,
    pub clinic_id: String,
    pub patient_key: String,
    pub session_number: i32,
    pub monitored_at: Timestamp,
    pub bp_systolic_pre: Option<i32>,
    pub bp_diastolic_pre: Option<i32>,
    pub bp_systolic_post: Option<i32>,
    pub bp_diastolic_post: Option<i32>,
    pub sedation_moaas: Option<i32>,
    pub dissociation_cadss: Option<i32>,
    pub spo2_min_pct: Option<i32>,
    pub observation_minutes: i32,
    pub discharge_ready: bool,
    pub received_at: Timestamp,
    /// Exposure as of `monitored_at`.
    pub exposure: Exposure,
}

/// A patient enrolment, enriched (schema `pv.enriched.EnrichedEnrolment`). Baseline
/// characteristics only: no exposure (it precedes the first dose).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EnrichedEnrolment {
    pub event_id: EventId,
    pub clinic_id: String,
    pub patient_key: String,
    pub enrolled_at: Timestamp,
    pub age_band: AgeBand,
    pub sex: Sex,
    pub baseline_urinary_score: Option<i32>,
    pub prior_substance_use_disorder: Option<bool>,
    pub indication: String,
    pub protocol: String,
    pub received_at: Timestamp,
}

/// What a reaction's coding rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodedFrom {
    /// The term or code the clinic sent.
    ClinicTerm,
    /// The verbatim text.
    Verbatim,
    /// Nothing matched: the verbatim is kept and flagged.
    Uncoded,
}

/// A reaction with its coding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EnrichedReaction {
    pub verbatim: String,
    pub coded_term: Option<String>,
    pub onset_date: Option<Date>,
    pub outcome: Outcome,
    pub seriousness: Seriousness,
    /// Preferred term.
    pub pt: Option<String>,
    /// MedDRA PT code (none with the demo dictionary).
    pub pt_code: Option<i64>,
    /// Primary SOC of the PT.
    pub soc: Option<String>,
    /// MedDRA SOC code (none with the demo dictionary).
    pub soc_code: Option<i64>,
    /// What the coding rests on.
    pub coded_from: CodedFrom,
    /// Event groups of interest the PT belongs to.
    pub groups: Vec<String>,
}

/// An adverse-event report version, enriched (schema `pv.enriched.EnrichedAdverseEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EnrichedAdverseEvent {
    pub event_id: EventId,
    pub clinic_id: String,
    pub patient_key: String,
    pub report_id: String,
    pub version: i32,
    pub nullification: bool,
    pub nullification_reason: Option<String>,
    pub reported_at: Timestamp,
    pub reporter_qualification: ReporterQualification,
    pub reactions: Vec<EnrichedReaction>,
    pub drugs: Vec<Drug>,
    pub narrative: Option<String>,
    pub received_at: Timestamp,
    /// Highest version of the report seen when this one was processed.
    pub latest_version_seen: i32,
    /// The time the exposure snapshot is taken at.
    pub exposure_as_of: Timestamp,
    /// Days from the first dose to `exposure_as_of`.
    pub days_since_first_dose: Option<f64>,
    /// Days from the last dose before `exposure_as_of` to it.
    pub days_since_last_dose: Option<f64>,
    /// Exposure as of `exposure_as_of`.
    pub exposure: Exposure,
}

impl AvroRecord for EnrichedDose {
    const AVRO_NAME: &'static str = "pv.enriched.EnrichedDose";
}

impl AvroRecord for EnrichedMonitoring {
    const AVRO_NAME: &'static str = "pv.enriched.EnrichedMonitoring";
}

impl AvroRecord for EnrichedAdverseEvent {
    const AVRO_NAME: &'static str = "pv.enriched.EnrichedAdverseEvent";
}

impl AvroRecord for EnrichedEnrolment {
    const AVRO_NAME: &'static str = "pv.enriched.EnrichedEnrolment";
}

/// Any enriched event.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived: decoded, then moved into a batch
pub enum EnrichedEvent {
    /// A dose.
    Dose(EnrichedDose),
    /// A monitoring form.
    Monitoring(EnrichedMonitoring),
    /// An adverse-event report version.
    AdverseEvent(EnrichedAdverseEvent),
    /// A patient enrolment.
    Enrolment(EnrichedEnrolment),
}

impl EnrichedEvent {
    /// The event's UUID.
    pub fn event_id(&self) -> EventId {
        match self {
            EnrichedEvent::Dose(e) => e.event_id,
            EnrichedEvent::Monitoring(e) => e.event_id,
            EnrichedEvent::AdverseEvent(e) => e.event_id,
            EnrichedEvent::Enrolment(e) => e.event_id,
        }
    }

    /// The pseudonymous patient key (also the Kafka message key).
    pub fn patient_key(&self) -> &str {
        match self {
            EnrichedEvent::Dose(e) => &e.patient_key,
            EnrichedEvent::Monitoring(e) => &e.patient_key,
            EnrichedEvent::AdverseEvent(e) => &e.patient_key,
            EnrichedEvent::Enrolment(e) => &e.patient_key,
        }
    }
}
