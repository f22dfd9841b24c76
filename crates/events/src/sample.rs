//! Fully populated example events, for tests, documentation and smoke runs.
//!
//! Every optional field is set, so a round trip that drops or mangles any field shows up.

use crate::id::EventId;
use crate::model::*;
use crate::time::{Date, Timestamp};

/// A dose of IV racemic ketamine, 0.5 mg/kg for a 70 kg patient, at `at`.
pub fn dose(clinic_id: &str, patient_ref: &str, session_number: i32, at: Timestamp) -> DoseAdministered {
    DoseAdministered {
        event_id: EventId::new_random(),
        clinic_id: clinic_id.into(),
        patient_ref: patient_ref.into(),
        administered_at: at,
        product: Product::Ketamine,
        formulation: "solution for injection 50 mg/ml".into(),
        route: Route::Iv,
        dose_mg: 35.0,
        weight_kg: Some(70.0),
        indication: "treatment-resistant depression".into(),
        session_number,
        protocol: Some("IV 0.5 mg/kg over 40 min, twice weekly x4".into()),
        lot_number: Some("KX-2291-B".into()),
        received_at: Timestamp::default(),
    }
}

/// The monitoring form of the session dosed at `at`.
pub fn monitoring(
    clinic_id: &str,
    patient_ref: &str,
    session_number: i32,
    at: Timestamp,
) -> SessionMonitoring {
    SessionMonitoring {
        event_id: EventId::new_random(),
        clinic_id: clinic_id.into(),
        patient_ref: patient_ref.into(),
        session_number,
        monitored_at: at,
        bp_systolic_pre: Some(128),
        bp_diastolic_pre: Some(82),
        bp_systolic_post: Some(151),
        bp_diastolic_post: Some(94),
        sedation_moaas: Some(4),
        dissociation_cadss: Some(23),
        spo2_min_pct: Some(96),
        observation_minutes: 120,
        discharge_ready: true,
        received_at: Timestamp::default(),
    }
}

/// An initial report of ketamine cystitis with dysuria, reported at `at`, onset the day before.
pub fn adverse_event(
    clinic_id: &str,
    patient_ref: &str,
    report_id: &str,
    at: Timestamp,
) -> AdverseEventReport {
    let onset = at
        .to_datetime()
        .and_then(|t| Date::from_naive(t.date_naive()))
        .map(|d| Date::from_days(d.days() - 1));
    AdverseEventReport {
        event_id: EventId::new_random(),
        clinic_id: clinic_id.into(),
        patient_ref: patient_ref.into(),
        report_id: report_id.into(),
        version: 1,
        nullification: false,
        nullification_reason: None,
        reported_at: at,
        reporter_qualification: ReporterQualification::Physician,
        reactions: vec![
            Reaction {
                verbatim: "bladder pain and frequent urination".into(),
                coded_term: Some("Cystitis interstitial".into()),
                onset_date: onset,
                outcome: Outcome::Recovering,
                seriousness: Seriousness { hospitalisation: true, ..Seriousness::default() },
            },
            Reaction {
                verbatim: "burning when passing urine".into(),
                coded_term: None,
                onset_date: None,
                outcome: Outcome::NotRecovered,
                seriousness: Seriousness::default(),
            },
        ],
        drugs: vec![
            Drug {
                role: DrugRole::Suspect,
                name: "Ketamine hydrochloride".into(),
                product: Some(Product::Ketamine),
                route: Some(Route::Iv),
                causality: Some(Causality::Probable),
                dechallenge: Some(ChallengeResult::Positive),
                rechallenge: Some(ChallengeResult::NotApplicable),
            },
            Drug {
                role: DrugRole::Concomitant,
                name: "Sertraline".into(),
                product: None,
                route: Some(Route::Oral),
                causality: Some(Causality::Unlikely),
                dechallenge: None,
                rechallenge: None,
            },
        ],
        narrative: Some(
            "Patient reported suprapubic pain after the 8th session; urine culture negative.".into(),
        ),
        received_at: Timestamp::default(),
    }
}
