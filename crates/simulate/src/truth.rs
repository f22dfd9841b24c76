//! The ground truth of a simulation: which effects were planted, in whom, and since when, so
//! that detection can be scored (sensitivity, false alarms, days from onset to signal).

use serde::{Deserialize, Serialize};

/// Whether an effect is a real harm the system should flag, or noise it should not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    /// A real, planted harm: a signal should be raised.
    Signal,
    /// An artefact (e.g. stimulated reporting): no signal should be raised.
    Noise,
}

/// A patient affected by a planted effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedPatient {
    /// Clinic id.
    pub clinic_id: String,
    /// The clinic's patient reference (pseudonymise with the enricher's secret to match keys).
    pub patient_ref: String,
    /// When the effect began in this patient (RFC 3339).
    pub onset_at: String,
}

/// One planted effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlantedEffect {
    /// Short name, e.g. `urological-dose-response`.
    pub name: String,
    /// Signal or noise.
    pub kind: EffectKind,
    /// What was planted, in words, with its parameters.
    pub description: String,
    /// The event group a detector should flag (`urological`, `dependence`), if any.
    pub group: Option<String>,
    /// Products affected (JSON names).
    pub products: Vec<String>,
    /// Routes affected (JSON names).
    pub routes: Vec<String>,
    /// The clinic concerned, for clinic-level effects.
    pub clinic_id: Option<String>,
    /// First time the effect produced an event (RFC 3339), if it did.
    pub onset_at: Option<String>,
    /// Window of a time-limited effect (RFC 3339 start, end).
    pub window: Option<(String, String)>,
    /// Adverse-event reports the effect caused (beyond background).
    pub reports_caused: u64,
    /// Patients affected.
    pub patients: Vec<AffectedPatient>,
}

/// How the stream is submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submissions {
    /// Messages in the stream, duplicates included.
    pub messages: u64,
    /// Distinct events.
    pub events: u64,
    /// Events submitted a second time (same event id, as a client retry would).
    pub duplicates: u64,
    /// Events submitted out of time order, 1-14 days late.
    pub late: u64,
}

/// Everything planted in one simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The seed.
    pub seed: u64,
    /// Clinics simulated.
    pub clinics: u32,
    /// Patients per clinic.
    pub patients_per_clinic: u32,
    /// First day (YYYY-MM-DD).
    pub start: String,
    /// Days simulated.
    pub days: u32,
    /// The planted effects.
    pub effects: Vec<PlantedEffect>,
    /// Submission statistics.
    pub submissions: Submissions,
}

impl GroundTruth {
    /// The effect named `name`.
    pub fn effect(&self, name: &str) -> Option<&PlantedEffect> {
        self.effects.iter().find(|e| e.name == name)
    }
}
