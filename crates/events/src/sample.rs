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

/// The enrolment of a 45-54-year-old woman onto IV racemic ketamine at `at`, with a mild
/// baseline IPSS and no documented substance-use disorder.
pub fn enrolment(clinic_id: &str, patient_ref: &str, at: Timestamp) -> PatientEnrolment {
    PatientEnrolment {
        event_id: EventId::new_random(),
        clinic_id: clinic_id.into(),
        patient_ref: patient_ref.into(),
        enrolled_at: at,
        age_band: AgeBand::Age45To54,
        sex: Sex::Female,
        baseline_urinary_score: Some(4),
        prior_substance_use_disorder: Some(false),
        indication: "treatment-resistant depression".into(),
        protocol: "ketamine_iv_0_5_mg_kg".into(),
        received_at: Timestamp::default(),
    }
}

/// A fully populated exposure snapshot (every optional value set).
pub fn exposure() -> crate::enriched::Exposure {
    crate::enriched::Exposure {
        administrations: 8,
        cumulative_mg: 287.5,
        cumulative_mg_per_kg: 4.107142857142857,
        doses_with_weight: 8,
        first_dose_at: Some(Timestamp::from_millis(1_767_258_000_000)),
        last_dose_at: Some(Timestamp::from_millis(1_769_677_200_000)),
        mean_interval_days: Some(4.0),
        recent_interval_days: Some(3.5),
        interval_trend_days_per_session: Some(-0.25),
        baseline_dose_mg: Some(35.0),
        last_dose_mg: Some(38.5),
        escalation_ratio: Some(1.1),
    }
}

fn patient_key() -> String {
    "9617ad615997c4d2ccee44927204d48998d7c44fa22edaeeb0a94dbaa0cabd18".into()
}

fn at() -> Timestamp {
    Timestamp::from_millis(1_769_677_200_123)
}

/// A fully populated enriched dose.
pub fn enriched_dose() -> crate::enriched::EnrichedDose {
    let d = dose("clinic-a", "unused", 8, at());
    crate::enriched::EnrichedDose {
        event_id: d.event_id,
        clinic_id: d.clinic_id,
        patient_key: patient_key(),
        administered_at: d.administered_at,
        product: d.product,
        formulation: d.formulation,
        route: d.route,
        dose_mg: d.dose_mg,
        weight_kg: d.weight_kg,
        dose_mg_per_kg: Some(0.5),
        indication: d.indication,
        session_number: d.session_number,
        protocol: d.protocol,
        lot_number: d.lot_number,
        received_at: Timestamp::from_millis(at().millis() + 1),
        exposure: exposure(),
    }
}

/// A fully populated enriched monitoring form.
pub fn enriched_monitoring() -> crate::enriched::EnrichedMonitoring {
    let m = monitoring("clinic-a", "unused", 8, at());
    crate::enriched::EnrichedMonitoring {
        event_id: m.event_id,
        clinic_id: m.clinic_id,
        patient_key: patient_key(),
        session_number: m.session_number,
        monitored_at: m.monitored_at,
        bp_systolic_pre: m.bp_systolic_pre,
        bp_diastolic_pre: m.bp_diastolic_pre,
        bp_systolic_post: m.bp_systolic_post,
        bp_diastolic_post: m.bp_diastolic_post,
        sedation_moaas: m.sedation_moaas,
        dissociation_cadss: m.dissociation_cadss,
        spo2_min_pct: m.spo2_min_pct,
        observation_minutes: m.observation_minutes,
        discharge_ready: m.discharge_ready,
        received_at: Timestamp::from_millis(at().millis() + 1),
        exposure: exposure(),
    }
}

/// A fully populated enriched enrolment.
pub fn enriched_enrolment() -> crate::enriched::EnrichedEnrolment {
    let e = enrolment("clinic-a", "unused", at());
    crate::enriched::EnrichedEnrolment {
        event_id: e.event_id,
        clinic_id: e.clinic_id,
        patient_key: patient_key(),
        enrolled_at: e.enrolled_at,
        age_band: e.age_band,
        sex: e.sex,
        baseline_urinary_score: e.baseline_urinary_score,
        prior_substance_use_disorder: e.prior_substance_use_disorder,
        indication: e.indication,
        protocol: e.protocol,
        received_at: Timestamp::from_millis(at().millis() + 1),
    }
}

/// A fully populated enriched report version: one coded urological reaction, one uncoded.
pub fn enriched_adverse_event() -> crate::enriched::EnrichedAdverseEvent {
    use crate::enriched::{CodedFrom, EnrichedReaction};
    let r = adverse_event("clinic-a", "unused", "CASE-1", at());
    let reactions = r
        .reactions
        .into_iter()
        .enumerate()
        .map(|(i, x)| EnrichedReaction {
            verbatim: x.verbatim,
            coded_term: x.coded_term,
            onset_date: x.onset_date,
            outcome: x.outcome,
            seriousness: x.seriousness,
            pt: (i == 0).then(|| "Cystitis interstitial".to_string()),
            pt_code: (i == 0).then_some(90_000_001),
            soc: (i == 0).then(|| "Renal and urinary disorders".to_string()),
            soc_code: (i == 0).then_some(90_000_002),
            coded_from: if i == 0 { CodedFrom::ClinicTerm } else { CodedFrom::Uncoded },
            groups: if i == 0 { vec!["urological".to_string()] } else { vec![] },
        })
        .collect();
    crate::enriched::EnrichedAdverseEvent {
        event_id: r.event_id,
        clinic_id: r.clinic_id,
        patient_key: patient_key(),
        report_id: r.report_id,
        version: 2,
        nullification: r.nullification,
        nullification_reason: r.nullification_reason,
        reported_at: r.reported_at,
        reporter_qualification: r.reporter_qualification,
        reactions,
        drugs: r.drugs,
        narrative: r.narrative,
        received_at: Timestamp::from_millis(at().millis() + 1),
        latest_version_seen: 3,
        exposure_as_of: Timestamp::from_millis(at().millis() - 3_600_000),
        days_since_first_dose: Some(27.96),
        days_since_last_dose: Some(0.5),
        exposure: exposure(),
    }
}
