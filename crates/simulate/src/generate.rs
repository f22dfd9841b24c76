//! Generating a stream of clinic events.
//!
//! Care follows the labels and common protocols: racemic ketamine IV at 0.5 mg/kg over 40 min
//! (some clinics IM at 0.5-1 mg/kg), esketamine intranasal 56 or 84 mg; induction twice weekly
//! for four weeks, weekly for weeks 5-8, then weekly or fortnightly maintenance; patients drop
//! out along the way. Every session has a monitoring form. Adverse events occur at background
//! rates across common terms; urological events become likelier with cumulative dose. Some
//! reports get follow-ups, a few are nullified.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use pv_events::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed: the same seed gives the same stream.
    pub seed: u64,
    /// Number of clinics (`clinic-01`, `clinic-02`, ...).
    pub clinics: u32,
    /// Patients starting treatment per clinic.
    pub patients_per_clinic: u32,
    /// First day of the simulated period.
    pub start: NaiveDate,
    /// Length of the period in days; nothing is generated on or after `start + days`.
    pub days: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            clinics: 5,
            patients_per_clinic: 40,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            days: 180,
        }
    }
}

/// Background reactions: (verbatim, per-session probability, serious probability).
const BACKGROUND: &[(&str, f64, f64)] = &[
    ("nausea", 0.020, 0.0),
    ("vomited after session", 0.006, 0.0),
    ("dizziness", 0.015, 0.0),
    ("headache", 0.012, 0.0),
    ("felt detached from body, lasting hours", 0.006, 0.02),
    ("blood pressure spike", 0.005, 0.05),
    ("excessive sleepiness", 0.004, 0.0),
    ("anxiety", 0.006, 0.0),
    ("blurred vision", 0.003, 0.0),
    ("numbness in mouth", 0.004, 0.0),
    ("bad taste (nasal spray)", 0.004, 0.0),
    ("suicidal thoughts", 0.001, 0.9),
];

/// Urological reactions, whose probability grows with cumulative dose.
const UROLOGICAL: &[&str] = &[
    "bladder pain",
    "burning on urination",
    "needing to pass urine very often",
    "urgency",
    "blood in urine",
    "ketamine cystitis",
];

/// Dependence-related reactions, rare at baseline.
const DEPENDENCE: &[&str] = &["craving for ketamine", "asked for extra sessions", "tolerance to dose"];

struct Patient {
    clinic: String,
    reference: String,
    product: Product,
    route: Route,
    weight_kg: f64,
    mg_per_kg: f64,
    intranasal_mg: f64,
    weight_known: bool,
}

/// All events of the simulation, ordered by event time.
pub fn generate(cfg: &SimConfig) -> Vec<ClinicEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let start: DateTime<Utc> = cfg.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = start + Duration::days(i64::from(cfg.days));
    let mut events: Vec<ClinicEvent> = Vec::new();
    let mut report_seq = 0u32;
    for c in 1..=cfg.clinics {
        let clinic = format!("clinic-{c:02}");
        // Each clinic has its own habits: how many IM, how many esketamine patients.
        let esketamine_share = rng.random_range(0.15..0.5);
        let im_share = rng.random_range(0.0..0.25);
        for p in 1..=cfg.patients_per_clinic {
            let product_roll: f64 = rng.random();
            let (product, route) = if product_roll < esketamine_share {
                (Product::Esketamine, Route::Intranasal)
            } else if rng.random_bool(im_share) {
                (Product::Ketamine, Route::Im)
            } else {
                (Product::Ketamine, Route::Iv)
            };
            let patient = Patient {
                clinic: clinic.clone(),
                // The seed is part of the reference: streams of different seeds are different
                // patients, also when sent into the same pipeline.
                reference: format!("s{}-{}-{p:04}", cfg.seed, &clinic[7..]),
                product,
                route,
                weight_kg: normal(&mut rng, 78.0, 16.0).clamp(45.0, 160.0).round(),
                mg_per_kg: if route == Route::Im { [0.5, 0.75, 1.0][rng.random_range(0..3)] } else { 0.5 },
                intranasal_mg: if rng.random_bool(0.6) { 56.0 } else { 84.0 },
                weight_known: rng.random_bool(0.9),
            };
            // Start within the first two thirds of the period.
            let first = start
                + Duration::minutes(rng.random_range(0..i64::from(cfg.days.max(3)) * 2 / 3 * 24 * 60))
                    .max(Duration::zero());
            course(&mut rng, &patient, first, end, &mut report_seq, &mut events);
        }
    }
    events.sort_by_key(event_time);
    events
}

fn course(
    rng: &mut ChaCha8Rng,
    pt: &Patient,
    first: DateTime<Utc>,
    end: DateTime<Utc>,
    report_seq: &mut u32,
    out: &mut Vec<ClinicEvent>,
) {
    // A session at 09:00-16:00 on the scheduled day.
    let mut day = first.date_naive();
    let mut cumulative_mg = 0.0;
    for session in 1..=200 {
        let at = day
            .and_hms_opt(rng.random_range(9..16), rng.random_range(0..60), 0)
            .unwrap_or_default()
            .and_utc();
        if at >= end {
            break;
        }
        let dose_mg = match pt.route {
            Route::Intranasal => {
                // Esketamine: 56 mg at the first session, then the patient's dose.
                if session == 1 { 56.0 } else { pt.intranasal_mg }
            }
            _ => (pt.mg_per_kg * pt.weight_kg * 10.0).round() / 10.0,
        };
        cumulative_mg += dose_mg;
        out.push(
            DoseAdministered {
                event_id: event_id(rng),
                clinic_id: pt.clinic.clone(),
                patient_ref: pt.reference.clone(),
                administered_at: at.into(),
                product: pt.product,
                formulation: match pt.product {
                    Product::Esketamine => "nasal spray 28 mg/device".into(),
                    Product::Ketamine => "solution for injection 50 mg/ml".into(),
                },
                route: pt.route,
                dose_mg,
                weight_kg: pt.weight_known.then_some(pt.weight_kg),
                indication: "treatment-resistant depression".into(),
                session_number: session,
                protocol: Some(protocol(pt).into()),
                lot_number: Some(format!("L{:05}", rng.random_range(10_000..99_999))),
                received_at: Timestamp::default(),
            }
            .into(),
        );
        out.push(monitoring(rng, pt, session, at).into());
        adverse_events(rng, pt, session, at, cumulative_mg, end, report_seq, out);
        if rng.random_bool(if session <= 8 { 0.03 } else { 0.06 }) {
            break; // stopped treatment
        }
        let gap_days = match session {
            1..=7 => [3, 4][(session % 2) as usize],
            8..=11 => 7,
            _ => {
                if rng.random_bool(0.5) {
                    7
                } else {
                    14
                }
            }
        };
        day += Duration::days(gap_days);
    }
}

fn protocol(pt: &Patient) -> &'static str {
    match pt.route {
        Route::Intranasal => "esketamine label: 2x weekly wk1-4, weekly wk5-8, then weekly/fortnightly",
        Route::Im => "IM ketamine 0.5-1 mg/kg, 2x weekly x4 then maintenance",
        _ => "IV ketamine 0.5 mg/kg over 40 min, 2x weekly x4 then maintenance",
    }
}

fn monitoring(rng: &mut ChaCha8Rng, pt: &Patient, session: i32, at: DateTime<Utc>) -> SessionMonitoring {
    let sys_pre = normal(rng, 126.0, 12.0).round().clamp(95.0, 175.0) as i32;
    let dia_pre = (normal(rng, 80.0, 8.0).round().clamp(55.0, 105.0) as i32).min(sys_pre - 25);
    let rise = normal(rng, 17.0, 8.0).max(0.0).round() as i32;
    SessionMonitoring {
        event_id: event_id(rng),
        clinic_id: pt.clinic.clone(),
        patient_ref: pt.reference.clone(),
        session_number: session,
        monitored_at: (at + Duration::minutes(5)).into(),
        bp_systolic_pre: Some(sys_pre),
        bp_diastolic_pre: Some(dia_pre),
        bp_systolic_post: Some((sys_pre + rise).min(230)),
        bp_diastolic_post: Some((dia_pre + rise / 2).min(140)),
        sedation_moaas: Some(*[5, 5, 4, 4, 4, 3, 3, 2].get(rng.random_range(0..8)).unwrap_or(&4)),
        dissociation_cadss: Some(normal(rng, 18.0, 10.0).round().clamp(0.0, 70.0) as i32),
        spo2_min_pct: Some(normal(rng, 96.5, 1.5).round().clamp(88.0, 100.0) as i32),
        observation_minutes: rng.random_range(120..=180),
        discharge_ready: rng.random_bool(0.985),
        received_at: Timestamp::default(),
    }
}

#[allow(clippy::too_many_arguments)]
fn adverse_events(
    rng: &mut ChaCha8Rng,
    pt: &Patient,
    session: i32,
    at: DateTime<Utc>,
    cumulative_mg: f64,
    end: DateTime<Utc>,
    report_seq: &mut u32,
    out: &mut Vec<ClinicEvent>,
) {
    let mut reactions: Vec<(String, bool)> = Vec::new();
    for &(term, p, p_serious) in BACKGROUND {
        if rng.random_bool(p) {
            reactions.push((term.into(), rng.random_bool(p_serious)));
        }
    }
    // Urological hazard per session: small baseline, rising with cumulative grams.
    let grams = cumulative_mg / 1000.0;
    if rng.random_bool((0.0008 + 0.004 * grams).min(0.2)) {
        let term = UROLOGICAL[rng.random_range(0..UROLOGICAL.len())];
        reactions.push((term.into(), rng.random_bool(0.15)));
    }
    if rng.random_bool(0.0008) {
        reactions.push((DEPENDENCE[rng.random_range(0..DEPENDENCE.len())].into(), false));
    }
    if reactions.is_empty() {
        return;
    }
    *report_seq += 1;
    let report_id = format!("{}-AE-{:05}", pt.reference, report_seq);
    let reported = at + Duration::hours(rng.random_range(2..72));
    if reported >= end {
        return;
    }
    let onset = Date::from_naive(at.date_naive());
    let initial = AdverseEventReport {
        event_id: event_id(rng),
        clinic_id: pt.clinic.clone(),
        patient_ref: pt.reference.clone(),
        report_id: report_id.clone(),
        version: 1,
        nullification: false,
        nullification_reason: None,
        reported_at: reported.into(),
        reporter_qualification: if rng.random_bool(0.8) {
            ReporterQualification::Physician
        } else {
            ReporterQualification::OtherHealthProfessional
        },
        reactions: reactions
            .iter()
            .map(|(term, serious)| Reaction {
                verbatim: term.clone(),
                coded_term: None,
                onset_date: onset,
                outcome: Outcome::NotRecovered,
                seriousness: Seriousness { other_medically_important: *serious, ..Seriousness::default() },
            })
            .collect(),
        drugs: vec![Drug {
            role: DrugRole::Suspect,
            name: match pt.product {
                Product::Ketamine => "ketamine hydrochloride".into(),
                Product::Esketamine => "esketamine nasal spray".into(),
            },
            product: Some(pt.product),
            route: Some(pt.route),
            causality: Some(
                [Causality::Possible, Causality::Probable, Causality::Unlikely][rng.random_range(0..3)],
            ),
            dechallenge: None,
            rechallenge: None,
        }],
        narrative: Some(format!("Reported after session {session}.")),
        received_at: Timestamp::default(),
    };
    let follow_up_at = reported + Duration::days(rng.random_range(3..21));
    let roll: f64 = rng.random();
    let mut versions = vec![initial.clone()];
    if roll < 0.01 && follow_up_at < end {
        versions.push(AdverseEventReport {
            event_id: event_id(rng),
            version: 2,
            nullification: true,
            nullification_reason: Some("entered for the wrong patient".into()),
            reported_at: follow_up_at.into(),
            ..initial
        });
    } else if roll < 0.25 && follow_up_at < end {
        let mut follow = AdverseEventReport {
            event_id: event_id(rng),
            version: 2,
            reported_at: follow_up_at.into(),
            ..initial
        };
        for r in &mut follow.reactions {
            r.outcome = Outcome::Recovered;
        }
        if let Some(d) = follow.drugs.first_mut() {
            d.dechallenge = Some(ChallengeResult::NotApplicable);
        }
        versions.push(follow);
    }
    out.extend(versions.into_iter().map(ClinicEvent::from));
}

/// A UUID (v4 layout) drawn from the simulation's generator, so ids are reproducible.
fn event_id(rng: &mut ChaCha8Rng) -> EventId {
    let bytes: [u8; 16] = rng.random();
    EventId(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// A normal variate (Box-Muller).
fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The clinical time of an event (dose/monitoring time, or report time).
pub fn event_time(e: &ClinicEvent) -> Timestamp {
    match e {
        ClinicEvent::DoseAdministered(d) => d.administered_at,
        ClinicEvent::SessionMonitoring(m) => m.monitored_at,
        ClinicEvent::AdverseEventReport(r) => r.reported_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig { clinics: 2, patients_per_clinic: 10, days: 90, ..SimConfig::default() }
    }

    #[test]
    fn the_same_seed_gives_the_same_stream_byte_for_byte() {
        let codec = EventCodec::global();
        let bytes = |cfg: &SimConfig| -> Vec<Vec<u8>> {
            generate(cfg).iter().map(|e| codec.encode(e).expect("encodes")).collect()
        };
        assert_eq!(bytes(&small()), bytes(&small()));
        assert_ne!(bytes(&small()), bytes(&SimConfig { seed: 7, ..small() }));
    }

    #[test]
    fn streams_of_different_seeds_share_no_patient_or_report() {
        let ids = |seed| -> std::collections::HashSet<String> {
            generate(&SimConfig { seed, ..small() })
                .iter()
                .map(|e| match e {
                    ClinicEvent::AdverseEventReport(r) => r.report_id.clone(),
                    other => format!("{}/{}", other.clinic_id(), other.patient_ref()),
                })
                .collect()
        };
        assert!(ids(1).is_disjoint(&ids(2)));
    }

    #[test]
    fn every_generated_event_passes_the_gateway_rules() {
        let cfg = SimConfig::default();
        let end = cfg.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
            + Duration::days(i64::from(cfg.days));
        for e in generate(&cfg) {
            let errors = validate(&e, &Limits::default(), end.into());
            assert!(errors.is_empty(), "{e:?}: {errors:?}");
            assert!(event_time(&e) < end.into());
        }
    }

    #[test]
    fn each_dose_has_its_monitoring_form_and_doses_follow_the_labels() {
        let events = generate(&small());
        let doses: Vec<&DoseAdministered> = events
            .iter()
            .filter_map(|e| if let ClinicEvent::DoseAdministered(d) = e { Some(d) } else { None })
            .collect();
        let forms = events.iter().filter(|e| e.kind() == EventKind::SessionMonitoring).count();
        assert_eq!(doses.len(), forms);
        assert!(doses.len() > 100, "a realistic volume: {}", doses.len());
        for d in doses {
            match d.route {
                Route::Intranasal => assert!([56.0, 84.0].contains(&d.dose_mg), "{}", d.dose_mg),
                _ => {
                    if let Some(w) = d.weight_kg {
                        let per_kg = d.dose_mg / w;
                        assert!((0.45..=1.05).contains(&per_kg), "{per_kg} mg/kg");
                    }
                }
            }
        }
    }
}
