//! Generating a stream of clinic events with known, planted harms.
//!
//! Care follows the labels and common protocols: racemic ketamine IV at 0.5 mg/kg over 40 min
//! (some clinics IM at 0.5-1 mg/kg), esketamine intranasal 56 or 84 mg; induction twice weekly
//! for four weeks, weekly for weeks 5-8, then weekly or fortnightly maintenance; patients drop
//! out along the way. Every session has a monitoring form. Every patient is enrolled on the day
//! of the first session, before the first dose, with a baseline (age band, sex, urinary symptom
//! score, substance-use history) drawn from a generator of the patient's own, so the other
//! events are the same as without enrolments. Adverse events occur at background rates across
//! common terms; some reports get follow-ups, a few are nullified.
//!
//! Esketamine patients aged 65 or more start on 28 mg, as the label says for older patients
//! ([`SimConfig::older_start_28mg`]); a share of patients may switch product once
//! ([`SimConfig::switch_share`]).
//!
//! Planted on top ([`Harms`], all configurable, all recorded in the [`GroundTruth`]):
//! - urological reactions whose per-session hazard rises with cumulative dose, in one product
//!   or both (each product's own cumulative dose), with an onset at the session or delayed;
//! - a subgroup of ketamine patients who develop dependence: escalating doses, shrinking
//!   intervals, unscheduled extra sessions, and dependence-related reports;
//! - a clinic with a reporting surge (every term, for a while): noise, not a signal.
//!
//! Draws that only some configurations need (switching, the age mix of a scenario, delayed
//! onsets) come from a generator of each patient's own, so the default stream stays the same.
//! Named presets are in [`crate::scenario`].
//!
//! The stream is returned in submission order: a few events arrive late (out of time order)
//! and a few twice (a client retry), as real clinic traffic does.

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use pv_events::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::truth::{AffectedPatient, EffectKind, GroundTruth, PlantedEffect, Submissions};

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
    /// The planted effects.
    pub harms: Harms,
    /// Share of events submitted twice (same event id), as a client retry would.
    pub duplicate_rate: f64,
    /// Share of events submitted 1-14 days late, out of time order.
    pub late_rate: f64,
    /// Share of patients who switch product once, at a session drawn in 9..=16: ketamine (IV/IM)
    /// patients to esketamine intranasal (the label's start, then 56 or 84 mg), esketamine patients
    /// to ketamine IV 0.5 mg/kg. Patients who develop dependence never switch. 0 = nobody.
    pub switch_share: f64,
    /// Esketamine patients aged 65 or more follow the label for older patients: 28 mg at the first
    /// esketamine session, 56 mg at the second, then their dose (56 or 84 mg); they are enrolled on
    /// `esketamine_label_65_plus`. When false they start on 56 mg like everyone else.
    pub older_start_28mg: bool,
    /// Share of esketamine patients aged 65 or more; `None` keeps the population's age mix (about
    /// 12% are 65 or more). Ketamine patients always follow the population's mix.
    pub esketamine_65_plus_share: Option<f64>,
}

/// The planted effects; [`Harms::none`] gives a null stream (background only), [`Harms::surge_only`]
/// a stream with noise but no harm.
#[derive(Debug, Clone, PartialEq)]
pub struct Harms {
    /// Added per-session probability of a urological reaction per gram of cumulative dose.
    pub urological_per_gram: f64,
    /// Share of ketamine (IV/IM) patients who develop dependence.
    pub dependence_share: f64,
    /// A clinic whose reporting of every term multiplies for a while (noise).
    pub surge: Option<Surge>,
    /// Products whose patients get the planted urological part, dosed by that product's own
    /// cumulative mg (default: both). Empty = no planted urological harm.
    pub urological_products: Vec<Product>,
    /// Days from the session at which the planted urological part fires to the reaction's onset,
    /// drawn uniformly in this inclusive range; the report follows 2-72 hours after the onset, and
    /// nothing is reported when that falls after the period. (0, 0), the default, gives the
    /// onset on the session day, reported with whatever else the session caused.
    pub urological_onset_delay_days: (u32, u32),
}

/// A reporting surge at one clinic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Surge {
    /// 1-based clinic number.
    pub clinic: u32,
    /// First day of the surge, counted from the start.
    pub start_day: u32,
    /// Length in days.
    pub days: u32,
    /// Factor on every reporting probability.
    pub factor: f64,
}

impl Surge {
    /// The default surge: clinic 2 reports every term x4 for 30 days from day 60.
    pub const DEFAULT: Surge = Surge { clinic: 2, start_day: 60, days: 30, factor: 4.0 };
}

impl Harms {
    /// No planted effect: background rates only, urological risk independent of dose.
    pub fn none() -> Self {
        Self { urological_per_gram: 0.0, dependence_share: 0.0, surge: None, ..Self::default() }
    }

    /// No planted harm, but the default reporting surge: noise a detector should not flag.
    pub fn surge_only() -> Self {
        Self { surge: Some(Surge::DEFAULT), ..Self::none() }
    }
}

impl Default for Harms {
    fn default() -> Self {
        Self {
            urological_per_gram: 0.004,
            dependence_share: 0.08,
            surge: Some(Surge::DEFAULT),
            urological_products: vec![Product::Ketamine, Product::Esketamine],
            urological_onset_delay_days: (0, 0),
        }
    }
}

impl SimConfig {
    /// The default configuration for about `total` patients: 5 clinics up to 1,000 patients, 10 up
    /// to 5,000, 20 up to 20,000 and 50 beyond (never more clinics than patients), each starting
    /// `ceil(total / clinics)` patients, so at least `total` in all.
    pub fn with_patients(total: u32) -> Self {
        let tier: u32 = match total {
            0..=1_000 => 5,
            1_001..=5_000 => 10,
            5_001..=20_000 => 20,
            _ => 50,
        };
        let clinics = tier.min(total.max(1));
        Self { clinics, patients_per_clinic: total.div_ceil(clinics), ..Self::default() }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            clinics: 5,
            patients_per_clinic: 40,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            days: 180,
            harms: Harms::default(),
            duplicate_rate: 0.01,
            late_rate: 0.02,
            switch_share: 0.0,
            older_start_28mg: true,
            esketamine_65_plus_share: None,
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

/// Urological reactions.
pub(crate) const UROLOGICAL: &[&str] = &[
    "bladder pain",
    "burning on urination",
    "needing to pass urine very often",
    "urgency",
    "blood in urine",
    "ketamine cystitis",
];

/// Background per-session probability of a urological reaction, whatever the dose.
const UROLOGICAL_BASELINE: f64 = 0.0008;

/// Dependence-related reactions.
const DEPENDENCE: &[&str] = &["craving for ketamine", "asked for extra sessions", "tolerance to dose"];

/// Background per-session probability of a dependence-related report.
const DEPENDENCE_BASELINE: f64 = 0.0008;

/// Per-session probability of a dependence-related report once dependence has begun.
const DEPENDENCE_PLANTED: f64 = 0.03;

/// Age bands of adults treated for depression, percent (they sum to 100).
const AGE_BANDS: [(AgeBand, u32); 7] = [
    (AgeBand::Age18To24, 10),
    (AgeBand::Age25To34, 22),
    (AgeBand::Age35To44, 22),
    (AgeBand::Age45To54, 19),
    (AgeBand::Age55To64, 15),
    (AgeBand::Age65To74, 9),
    (AgeBand::Age75Plus, 3),
];

/// Sex, percent (they sum to 100).
const SEXES: [(Sex, u32); 4] = [(Sex::Female, 58), (Sex::Male, 40), (Sex::Other, 1), (Sex::Unknown, 1)];

/// Share of enrolments with a baseline IPSS.
const IPSS_KNOWN: f64 = 0.85;

/// Share of enrolments that record whether there is a history of substance-use disorder.
const SUD_RECORDED: f64 = 0.9;

/// Share of recorded histories that are positive.
const SUD_PRIOR: f64 = 0.12;

/// Mixed into the seed of the generator that decides the enrolments' late and repeated
/// submissions ("enrolmnt").
const ENROLMENT_SUBMISSIONS: u64 = 0x656e_726f_6c6d_6e74;

/// Mixed into the seed of each patient's generator for the draws only some configurations need:
/// switching, a scenario's age mix, delayed onsets ("scenario").
const SCENARIO_DRAWS: u64 = 0x7363_656e_6172_696f;

/// The events of a simulation, in submission order, and what was planted in them.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// Events in the order a clinic would submit them (duplicates included).
    pub events: Vec<ClinicEvent>,
    /// What was planted.
    pub truth: GroundTruth,
}

#[derive(Clone)]
struct Patient {
    clinic: u32,
    clinic_id: String,
    reference: String,
    product: Product,
    route: Route,
    weight_kg: f64,
    mg_per_kg: f64,
    intranasal_mg: f64,
    weight_known: bool,
    /// Session from which dependence develops, for the dependent subgroup.
    dependence_from: Option<i32>,
    /// Age band at enrolment.
    age_band: AgeBand,
    /// Whether an esketamine course starts on 28 mg (the label for patients 65 or older).
    start_28mg: bool,
    /// Session of the first esketamine dose (1 for esketamine patients, the switch for switchers).
    esketamine_from: i32,
    /// Session at which the patient switches product, if they do.
    switch_at: Option<i32>,
}

impl Patient {
    /// The patient from session `at` on, having switched product: ketamine to esketamine
    /// intranasal at the patient's dose, esketamine to ketamine IV 0.5 mg/kg.
    fn switched(&self, at: i32) -> Patient {
        let mut next = self.clone();
        match self.product {
            Product::Ketamine => {
                next.product = Product::Esketamine;
                next.route = Route::Intranasal;
                next.esketamine_from = at;
            }
            Product::Esketamine => {
                next.product = Product::Ketamine;
                next.route = Route::Iv;
                next.mg_per_kg = 0.5;
            }
        }
        next
    }
}

/// Accumulates what the effects caused.
#[derive(Default)]
struct Caused {
    reports: u64,
    first: Option<DateTime<Utc>>,
    patients: Vec<AffectedPatient>,
}

impl Caused {
    fn record(&mut self, pt: &Patient, at: DateTime<Utc>, report: bool) {
        if report {
            self.reports += 1;
        }
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        if !self.patients.iter().any(|p| p.patient_ref == pt.reference && p.clinic_id == pt.clinic_id) {
            self.patients.push(AffectedPatient {
                clinic_id: pt.clinic_id.clone(),
                patient_ref: pt.reference.clone(),
                onset_at: rfc3339(at),
            });
        }
    }
}

struct Simulator<'a> {
    cfg: &'a SimConfig,
    rng: ChaCha8Rng,
    /// The current patient's generator for the draws only some configurations need.
    own: ChaCha8Rng,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    report_seq: u32,
    events: Vec<ClinicEvent>,
    urological: Caused,
    dependence: Caused,
    surge_reports: u64,
}

/// Simulates `cfg`: the events in submission order and the ground truth.
pub fn generate(cfg: &SimConfig) -> Simulation {
    let start: DateTime<Utc> = cfg.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let mut sim = Simulator {
        cfg,
        rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        own: ChaCha8Rng::seed_from_u64(cfg.seed ^ SCENARIO_DRAWS),
        start,
        end: start + Duration::days(i64::from(cfg.days)),
        report_seq: 0,
        events: Vec::new(),
        urological: Caused::default(),
        dependence: Caused::default(),
        surge_reports: 0,
    };
    for c in 1..=cfg.clinics {
        sim.clinic(c);
    }
    sim.events.sort_by_key(event_time);
    sim.finish()
}

impl Simulator<'_> {
    fn clinic(&mut self, c: u32) {
        let clinic_id = clinic_id(c);
        let rng = &mut self.rng;
        // Each clinic has its own habits: how many IM, how many esketamine patients.
        let esketamine_share = rng.random_range(0.15..0.5);
        let im_share = rng.random_range(0.0..0.25);
        for p in 1..=self.cfg.patients_per_clinic {
            // The baseline comes from a generator of the patient's own: the main generator draws
            // exactly what it would without enrolments, so the other events stay the same.
            let mut baseline = ChaCha8Rng::seed_from_u64(baseline_seed(self.cfg.seed, c, p));
            let population_band = pick(&mut baseline, &AGE_BANDS);
            self.own = ChaCha8Rng::seed_from_u64(baseline_seed(self.cfg.seed ^ SCENARIO_DRAWS, c, p));
            let rng = &mut self.rng;
            let product_roll: f64 = rng.random();
            let (product, route) = if product_roll < esketamine_share {
                (Product::Esketamine, Route::Intranasal)
            } else if rng.random_bool(im_share) {
                (Product::Ketamine, Route::Im)
            } else {
                (Product::Ketamine, Route::Iv)
            };
            let dependent =
                product == Product::Ketamine && rng.random_bool(prob(self.cfg.harms.dependence_share));
            let age_band = match self.cfg.esketamine_65_plus_share {
                Some(share) if product == Product::Esketamine => esketamine_age(&mut self.own, share),
                _ => population_band,
            };
            let switch_at = if !dependent && self.own.random_bool(prob(self.cfg.switch_share)) {
                Some(self.own.random_range(9..=16))
            } else {
                None
            };
            let patient = Patient {
                clinic: c,
                clinic_id: clinic_id.clone(),
                // The seed is part of the reference: streams of different seeds are different
                // patients, also when sent into the same pipeline.
                reference: patient_ref(self.cfg.seed, c, p),
                product,
                route,
                weight_kg: normal(rng, 78.0, 16.0).clamp(45.0, 160.0).round(),
                mg_per_kg: if route == Route::Im { [0.5, 0.75, 1.0][rng.random_range(0..3)] } else { 0.5 },
                intranasal_mg: if rng.random_bool(0.6) { 56.0 } else { 84.0 },
                weight_known: rng.random_bool(0.9),
                dependence_from: dependent.then(|| rng.random_range(5..=10)),
                age_band,
                start_28mg: self.cfg.older_start_28mg && age_band >= AgeBand::Age65To74,
                esketamine_from: 1,
                switch_at,
            };
            // Start within the first two thirds of the period.
            let minutes = i64::from(self.cfg.days.max(3)) * 2 / 3 * 24 * 60;
            let first = self.start + Duration::minutes(self.rng.random_range(0..minutes));
            self.enrol(&patient, first, &mut baseline);
            self.course(&patient, first);
        }
    }

    /// The patient's enrolment: 08:00 UTC on the day of the first session (the first dose is
    /// given from 09:00), unless that day is past the end of the period. Its values are drawn
    /// from `rng`, the patient's own generator.
    fn enrol(&mut self, pt: &Patient, first: DateTime<Utc>, rng: &mut ChaCha8Rng) {
        let at = first.date_naive().and_hms_opt(8, 0, 0).unwrap_or_default().and_utc();
        if at >= self.end {
            return;
        }
        let enrolment = PatientEnrolment {
            event_id: event_id(rng),
            clinic_id: pt.clinic_id.clone(),
            patient_ref: pt.reference.clone(),
            enrolled_at: at.into(),
            age_band: pt.age_band,
            sex: pick(rng, &SEXES),
            baseline_urinary_score: rng.random_bool(IPSS_KNOWN).then(|| baseline_ipss(rng)),
            prior_substance_use_disorder: rng.random_bool(SUD_RECORDED).then(|| rng.random_bool(SUD_PRIOR)),
            indication: "treatment-resistant depression".into(),
            protocol: protocol_id(pt).into(),
            received_at: Timestamp::default(),
        };
        self.events.push(enrolment.into());
    }

    fn course(&mut self, patient: &Patient, first: DateTime<Utc>) {
        let switched = patient.switch_at.map(|k| patient.switched(k));
        let mut day = first.date_naive();
        // Cumulative dose of each product (in a switcher the products' doses are not the same).
        let (mut ketamine_mg, mut esketamine_mg) = (0.0, 0.0);
        let mut escalation = 1.0f64;
        let mut shrink = 1.0f64;
        for session in 1..=400 {
            // The patient as treated at this session: after a switch, on the new product.
            let pt = match &switched {
                Some(next) if patient.switch_at.is_some_and(|k| session >= k) => next,
                _ => patient,
            };
            let rng = &mut self.rng;
            // A session at 09:00-16:00 on the scheduled day.
            let at = day
                .and_hms_opt(rng.random_range(9..16), rng.random_range(0..60), 0)
                .unwrap_or_default()
                .and_utc();
            if at >= self.end {
                break;
            }
            let dependent = pt.dependence_from.is_some_and(|k| session >= k);
            if dependent {
                if pt.dependence_from == Some(session) {
                    self.dependence.record(pt, at, false);
                }
                escalation = (escalation * 1.08).min(2.5);
                shrink = (shrink * 0.85).max(0.3);
            }
            let dose_mg = match pt.route {
                Route::Intranasal => esketamine_dose(pt, session),
                _ => (pt.mg_per_kg * pt.weight_kg * escalation * 10.0).round() / 10.0,
            };
            let product_mg = match pt.product {
                Product::Ketamine => {
                    ketamine_mg += dose_mg;
                    ketamine_mg
                }
                Product::Esketamine => {
                    esketamine_mg += dose_mg;
                    esketamine_mg
                }
            };
            let dose = DoseAdministered {
                event_id: event_id(rng),
                clinic_id: pt.clinic_id.clone(),
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
            };
            self.events.push(dose.into());
            let form = monitoring(&mut self.rng, pt, session, at);
            self.events.push(form.into());
            self.adverse_events(pt, session, at, product_mg, dependent);
            // Dependent patients keep coming; others drop out along the way.
            let dropout = if session <= 8 { 0.03 } else { 0.06 } * if dependent { 0.3 } else { 1.0 };
            if self.rng.random_bool(dropout) {
                break;
            }
            let scheduled: i64 = match session {
                1..=7 => [3, 4][(session % 2) as usize],
                8..=11 => 7,
                _ => {
                    if self.rng.random_bool(0.5) {
                        7
                    } else {
                        14
                    }
                }
            };
            let gap = if dependent && self.rng.random_bool(0.15) {
                self.rng.random_range(1..=2) // an unscheduled extra session
            } else {
                ((scheduled as f64 * shrink).round() as i64).max(2)
            };
            day += Duration::days(gap);
        }
    }

    fn surge_factor(&self, pt: &Patient, at: DateTime<Utc>) -> f64 {
        match self.cfg.harms.surge {
            Some(s) if s.clinic == pt.clinic => {
                let from = self.start + Duration::days(i64::from(s.start_day));
                let to = from + Duration::days(i64::from(s.days));
                if at >= from && at < to { s.factor } else { 1.0 }
            }
            _ => 1.0,
        }
    }

    /// The reactions of one session, reported together; `product_mg` is the cumulative dose of
    /// the product given at this session.
    fn adverse_events(
        &mut self,
        pt: &Patient,
        session: i32,
        at: DateTime<Utc>,
        product_mg: f64,
        dependent: bool,
    ) {
        let surge = self.surge_factor(pt, at);
        let cfg = self.cfg;
        let harms = &cfg.harms;
        let rng = &mut self.rng;
        let mut reactions: Vec<(String, bool)> = Vec::new();
        for &(term, p, p_serious) in BACKGROUND {
            if rng.random_bool((p * surge).min(1.0)) {
                reactions.push((term.into(), rng.random_bool(p_serious)));
            }
        }
        // Urological: a background risk whatever the dose, plus the planted dose-dependent part in
        // the listed products, on the product's own cumulative dose.
        let mut planted_uro = false;
        let mut delayed_uro = None;
        let per_gram = if harms.urological_per_gram > 0.0 && harms.urological_products.contains(&pt.product) {
            harms.urological_per_gram
        } else {
            0.0
        };
        let planted_p = (per_gram * product_mg / 1000.0).min(0.2);
        if rng.random_bool((UROLOGICAL_BASELINE * surge).min(1.0)) {
            reactions.push((UROLOGICAL[rng.random_range(0..UROLOGICAL.len())].into(), rng.random_bool(0.15)));
        } else if planted_p > 0.0 && rng.random_bool(planted_p) {
            let reaction: (String, bool) =
                (UROLOGICAL[rng.random_range(0..UROLOGICAL.len())].into(), rng.random_bool(0.15));
            if harms.urological_onset_delay_days == (0, 0) {
                reactions.push(reaction);
                planted_uro = true;
            } else {
                delayed_uro = Some(reaction);
            }
        }
        let mut planted_dep = false;
        if rng.random_bool((DEPENDENCE_BASELINE * surge).min(1.0)) {
            reactions.push((DEPENDENCE[rng.random_range(0..DEPENDENCE.len())].into(), false));
        } else if dependent && rng.random_bool(DEPENDENCE_PLANTED) {
            reactions.push((DEPENDENCE[rng.random_range(0..DEPENDENCE.len())].into(), false));
            planted_dep = true;
        }
        if let Some(reaction) = delayed_uro {
            self.delayed_urological(pt, session, at, reaction);
        }
        if reactions.is_empty() {
            return;
        }
        let reported = at + Duration::hours(self.rng.random_range(2..72));
        if reported >= self.end {
            return;
        }
        if planted_uro {
            self.urological.record(pt, at, true);
        }
        if planted_dep {
            self.dependence.record(pt, at, true);
        }
        if surge > 1.0 {
            self.surge_reports += 1;
        }
        let narrative = format!("Reported after session {session}.");
        self.file(false, pt, at, reported, &reactions, narrative);
    }

    /// A planted urological reaction with a delayed onset: it begins some days after the session
    /// (drawn from the patient's own generator) and is reported on its own 2-72 hours after the
    /// onset, unless that is after the end of the period.
    fn delayed_urological(
        &mut self,
        pt: &Patient,
        session: i32,
        at: DateTime<Utc>,
        reaction: (String, bool),
    ) {
        let (a, b) = self.cfg.harms.urological_onset_delay_days;
        let days = self.own.random_range(a.min(b)..=a.max(b));
        let onset = at + Duration::days(i64::from(days));
        let reported = onset + Duration::hours(self.own.random_range(2..72));
        // The report comes after the onset: a report within the period has its onset within it.
        if reported >= self.end {
            return;
        }
        self.urological.record(pt, onset, true);
        let narrative = format!("Onset {days} days after session {session}.");
        self.file(true, pt, onset, reported, &[reaction], narrative);
    }

    /// Files a report of `reactions` (onset `onset`, reported at `reported`) and its follow-up or
    /// nullification, if any; the draws come from the patient's own generator when `own`, else
    /// from the main one.
    fn file(
        &mut self,
        own: bool,
        pt: &Patient,
        onset: DateTime<Utc>,
        reported: DateTime<Utc>,
        reactions: &[(String, bool)],
        narrative: String,
    ) {
        self.report_seq += 1;
        let rng = if own { &mut self.own } else { &mut self.rng };
        let report = report(rng, pt, onset, reported, reactions, narrative, self.report_seq);
        let follow_up_at = reported + Duration::days(rng.random_range(3..21));
        let roll: f64 = rng.random();
        let mut versions = vec![report.clone()];
        if roll < 0.01 && follow_up_at < self.end {
            versions.push(AdverseEventReport {
                event_id: event_id(rng),
                version: 2,
                nullification: true,
                nullification_reason: Some("entered for the wrong patient".into()),
                reported_at: follow_up_at.into(),
                ..report
            });
        } else if roll < 0.25 && follow_up_at < self.end {
            let mut follow = AdverseEventReport {
                event_id: event_id(rng),
                version: 2,
                reported_at: follow_up_at.into(),
                ..report
            };
            for r in &mut follow.reactions {
                r.outcome = Outcome::Recovered;
            }
            if let Some(d) = follow.drugs.first_mut() {
                d.dechallenge = Some(ChallengeResult::NotApplicable);
            }
            versions.push(follow);
        }
        self.events.extend(versions.into_iter().map(ClinicEvent::from));
    }

    /// Puts the events in submission order (late and duplicate submissions) and writes the truth.
    fn finish(mut self) -> Simulation {
        let mut stamped: Vec<(i64, usize, ClinicEvent)> = Vec::with_capacity(self.events.len() * 102 / 100);
        let (mut late, mut duplicates) = (0u64, 0u64);
        let events = std::mem::take(&mut self.events);
        let unique = events.len() as u64;
        // Enrolments are late or repeated as often as the rest, decided by a generator of their
        // own: the main generator decides the other events' submissions as it would without them.
        let mut enrolments = ChaCha8Rng::seed_from_u64(self.cfg.seed ^ ENROLMENT_SUBMISSIONS);
        for (i, e) in events.into_iter().enumerate() {
            let rng =
                if matches!(e, ClinicEvent::PatientEnrolment(_)) { &mut enrolments } else { &mut self.rng };
            let t = event_time(&e).millis();
            let submit = if rng.random_bool(self.cfg.late_rate) {
                late += 1;
                t + rng.random_range(1..=14) * 86_400_000
            } else {
                t
            };
            if rng.random_bool(self.cfg.duplicate_rate) {
                duplicates += 1;
                stamped.push((submit + rng.random_range(60_000..7_200_000), i, e.clone()));
            }
            stamped.push((submit, i, e));
        }
        stamped.sort_by_key(|(t, i, _)| (*t, *i));
        let h = &self.cfg.harms;
        let ketamine_routes = vec!["iv".to_string(), "im".to_string()];
        let products = vec!["ketamine".to_string(), "esketamine".to_string()];
        let mut effects = Vec::new();
        // The products with the planted urological part, in a fixed order, and their routes.
        let urological: Vec<Product> = [Product::Ketamine, Product::Esketamine]
            .into_iter()
            .filter(|p| h.urological_products.contains(p))
            .collect();
        if h.urological_per_gram > 0.0 && !urological.is_empty() {
            let c = std::mem::take(&mut self.urological);
            let mut description = format!(
                "per-session probability of a urological reaction = {UROLOGICAL_BASELINE} (background) + {} per gram of cumulative dose",
                h.urological_per_gram
            );
            if let [only] = urological.as_slice() {
                let only = product_name(*only);
                description.push_str(&format!(" of {only} (its own), in {only} only"));
            }
            let (a, b) = h.urological_onset_delay_days;
            if (a, b) != (0, 0) {
                description.push_str(&format!(
                    "; onset {}-{} days after the session, reported 2-72 hours after the onset",
                    a.min(b),
                    a.max(b)
                ));
            }
            let mut routes = Vec::new();
            for p in &urological {
                match p {
                    Product::Ketamine => routes.extend(ketamine_routes.iter().cloned()),
                    Product::Esketamine => routes.push("intranasal".to_string()),
                }
            }
            effects.push(PlantedEffect {
                name: "urological-dose-response".into(),
                kind: EffectKind::Signal,
                description,
                group: Some("urological".into()),
                products: urological.iter().map(|p| product_name(*p).to_string()).collect(),
                routes,
                clinic_id: None,
                onset_at: c.first.map(rfc3339),
                window: None,
                reports_caused: c.reports,
                patients: c.patients,
            });
        }
        if h.dependence_share > 0.0 {
            let c = std::mem::take(&mut self.dependence);
            effects.push(PlantedEffect {
                name: "dependence-escalation".into(),
                kind: EffectKind::Signal,
                description: format!(
                    "{:.0}% of ketamine patients, from a session between 5 and 10: dose x1.08 per session (up to x2.5), intervals x0.85 per session (down to 2 days), 15% unscheduled extra sessions, dependence reports at {DEPENDENCE_PLANTED} per session",
                    h.dependence_share * 100.0
                ),
                group: Some("dependence".into()),
                products: vec!["ketamine".into()],
                routes: ketamine_routes,
                clinic_id: None,
                onset_at: c.first.map(rfc3339),
                window: None,
                reports_caused: c.reports,
                patients: c.patients,
            });
        }
        if let Some(s) = h.surge.filter(|s| s.clinic <= self.cfg.clinics) {
            let from = self.start + Duration::days(i64::from(s.start_day));
            effects.push(PlantedEffect {
                name: "reporting-surge".into(),
                kind: EffectKind::Noise,
                description: format!(
                    "stimulated reporting: every reaction reported x{} for {} days; no change in harm",
                    s.factor, s.days
                ),
                group: None,
                products,
                routes: vec![],
                clinic_id: Some(format!("clinic-{:02}", s.clinic)),
                onset_at: Some(rfc3339(from)),
                window: Some((rfc3339(from), rfc3339(from + Duration::days(i64::from(s.days))))),
                reports_caused: self.surge_reports,
                patients: vec![],
            });
        }
        let events: Vec<ClinicEvent> = stamped.into_iter().map(|(_, _, e)| e).collect();
        let truth = GroundTruth {
            seed: self.cfg.seed,
            clinics: self.cfg.clinics,
            patients_per_clinic: self.cfg.patients_per_clinic,
            start: self.cfg.start.to_string(),
            days: self.cfg.days,
            effects,
            submissions: Submissions { messages: events.len() as u64, events: unique, duplicates, late },
        };
        Simulation { events, truth }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The first version of a report of `reactions`, all with their onset on the day of `onset`.
fn report(
    rng: &mut ChaCha8Rng,
    pt: &Patient,
    onset: DateTime<Utc>,
    reported: DateTime<Utc>,
    reactions: &[(String, bool)],
    narrative: String,
    seq: u32,
) -> AdverseEventReport {
    let onset = Date::from_naive(onset.date_naive());
    AdverseEventReport {
        event_id: event_id(rng),
        clinic_id: pt.clinic_id.clone(),
        patient_ref: pt.reference.clone(),
        report_id: format!("{}-AE-{seq:05}", pt.reference),
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
        narrative: Some(narrative),
        received_at: Timestamp::default(),
    }
}

/// The protocol a dose is given under, in words (the product the patient is on now).
fn protocol(pt: &Patient) -> &'static str {
    match pt.route {
        Route::Intranasal if pt.start_28mg => {
            "esketamine label, 65 or older: 28 mg start, 56 mg at session 2, then 56 or 84 mg; 2x weekly wk1-4, weekly wk5-8, then weekly/fortnightly"
        }
        Route::Intranasal => "esketamine label: 2x weekly wk1-4, weekly wk5-8, then weekly/fortnightly",
        Route::Im => "IM ketamine 0.5-1 mg/kg, 2x weekly x4 then maintenance",
        _ => "IV ketamine 0.5 mg/kg over 40 min, 2x weekly x4 then maintenance",
    }
}

/// The identifier of the label schedule or protocol the patient is enrolled on.
fn protocol_id(pt: &Patient) -> &'static str {
    match pt.route {
        Route::Intranasal if pt.start_28mg => "esketamine_label_65_plus",
        Route::Intranasal => "esketamine_label",
        Route::Im => "ketamine_im",
        _ => "ketamine_iv_0_5_mg_kg",
    }
}

/// The esketamine dose at `session`: the label's start (56 mg; 28 mg then 56 mg for patients 65 or
/// older), counted from the patient's first esketamine session, then the patient's dose.
fn esketamine_dose(pt: &Patient, session: i32) -> f64 {
    match session - pt.esketamine_from {
        0 if pt.start_28mg => 28.0,
        0 => 56.0,
        1 if pt.start_28mg => 56.0,
        _ => pt.intranasal_mg,
    }
}

/// `p` as a probability: clamped to 0..=1, and 0 when it is not a number.
fn prob(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

/// The age band of an esketamine patient when `share` of them are 65 or older: 65-74 or 75+ (as
/// 9 to 3) with probability `share`, else a younger band in the population's proportions.
fn esketamine_age(rng: &mut ChaCha8Rng, share: f64) -> AgeBand {
    if rng.random_bool(prob(share)) { pick(rng, &AGE_BANDS[5..]) } else { pick(rng, &AGE_BANDS[..5]) }
}

/// The JSON name of a product.
fn product_name(p: Product) -> &'static str {
    match p {
        Product::Ketamine => "ketamine",
        Product::Esketamine => "esketamine",
    }
}

/// One of `weighted` (value, percent), drawn with those percentages.
fn pick<T: Copy>(rng: &mut ChaCha8Rng, weighted: &[(T, u32)]) -> T {
    let total: u32 = weighted.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for &(value, weight) in weighted {
        if roll < weight {
            return value;
        }
        roll -= weight;
    }
    weighted[weighted.len() - 1].0
}

/// A baseline IPSS (0-35), skewed like a population starting treatment: mostly mild (0-7, and
/// there mostly low), some moderate (8-19), few severe (20-35).
fn baseline_ipss(rng: &mut ChaCha8Rng) -> i32 {
    let severity: f64 = rng.random();
    if severity < 0.78 {
        let (a, b): (i32, i32) = (rng.random_range(0..=7), rng.random_range(0..=7));
        a.min(b)
    } else if severity < 0.96 {
        rng.random_range(8..=19)
    } else {
        rng.random_range(20..=35)
    }
}

/// The seed of patient `p` of clinic `c`'s own generator: the simulation's seed mixed with the
/// patient's numbers (SplitMix64's finaliser), so patients' generators are unrelated.
fn baseline_seed(seed: u64, c: u32, p: u32) -> u64 {
    let mut z = ((u64::from(c) << 32) | u64::from(p)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    seed ^ z ^ (z >> 31)
}

fn monitoring(rng: &mut ChaCha8Rng, pt: &Patient, session: i32, at: DateTime<Utc>) -> SessionMonitoring {
    let sys_pre = normal(rng, 126.0, 12.0).round().clamp(95.0, 175.0) as i32;
    let dia_pre = (normal(rng, 80.0, 8.0).round().clamp(55.0, 105.0) as i32).min(sys_pre - 25);
    let rise = normal(rng, 17.0, 8.0).max(0.0).round() as i32;
    SessionMonitoring {
        event_id: event_id(rng),
        clinic_id: pt.clinic_id.clone(),
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

/// The id of simulated clinic number `c` (1-based).
pub fn clinic_id(c: u32) -> String {
    format!("clinic-{c:02}")
}

/// The reference of patient `p` of clinic `c` in the simulation with `seed` (1-based numbers).
pub fn patient_ref(seed: u64, c: u32, p: u32) -> String {
    format!("s{seed}-{c:02}-{p:04}")
}

/// The clinical time of an event (dose/monitoring time, report time, or enrolment time).
pub fn event_time(e: &ClinicEvent) -> Timestamp {
    match e {
        ClinicEvent::DoseAdministered(d) => d.administered_at,
        ClinicEvent::SessionMonitoring(m) => m.monitored_at,
        ClinicEvent::AdverseEventReport(r) => r.reported_at,
        ClinicEvent::PatientEnrolment(e) => e.enrolled_at,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn small() -> SimConfig {
        SimConfig { clinics: 2, patients_per_clinic: 10, days: 90, ..SimConfig::default() }
    }

    fn doses(events: &[ClinicEvent]) -> Vec<&DoseAdministered> {
        events
            .iter()
            .filter_map(|e| if let ClinicEvent::DoseAdministered(d) = e { Some(d) } else { None })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_stream_byte_for_byte() {
        let codec = EventCodec::global();
        let run = |cfg: &SimConfig| {
            let sim = generate(cfg);
            let bytes: Vec<Vec<u8>> = sim.events.iter().map(|e| codec.encode(e).expect("encodes")).collect();
            (bytes, sim.truth)
        };
        assert_eq!(run(&small()), run(&small()));
        assert_ne!(run(&small()).0, run(&SimConfig { seed: 7, ..small() }).0);
    }

    #[test]
    fn patients_are_named_by_seed_clinic_and_number() {
        let sim = generate(&SimConfig { seed: 9, ..small() });
        let refs: HashSet<String> = sim.events.iter().map(|e| e.patient_ref().to_owned()).collect();
        let named: HashSet<String> =
            (1..=2).flat_map(|c| (1..=10).map(move |p| patient_ref(9, c, p))).collect();
        assert!(refs.is_subset(&named) && !refs.is_empty(), "{refs:?}");
        assert!(sim.events.iter().all(|e| e.clinic_id() == clinic_id(1) || e.clinic_id() == clinic_id(2)));
    }

    #[test]
    fn streams_of_different_seeds_share_no_patient_or_report() {
        let ids = |seed| -> HashSet<String> {
            generate(&SimConfig { seed, ..small() })
                .events
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
        for e in generate(&cfg).events {
            let errors = validate(&e, &Limits::default(), end.into());
            assert!(errors.is_empty(), "{e:?}: {errors:?}");
            assert!(event_time(&e) < end.into());
        }
    }

    #[test]
    fn a_null_stream_follows_the_labels_and_plants_nothing() {
        let sim = generate(&SimConfig { harms: Harms::none(), ..small() });
        assert!(sim.truth.effects.is_empty());
        let ds = doses(&sim.events);
        let forms: HashSet<EventId> = sim
            .events
            .iter()
            .filter(|e| e.kind() == EventKind::SessionMonitoring)
            .map(ClinicEvent::event_id)
            .collect();
        let unique_doses: HashSet<EventId> = ds.iter().map(|d| d.event_id).collect();
        assert_eq!(unique_doses.len(), forms.len(), "a monitoring form per session");
        assert!(unique_doses.len() > 100, "a realistic volume: {}", unique_doses.len());
        for d in ds {
            match d.route {
                // 28 mg: the first dose of patients 65 or older.
                Route::Intranasal => assert!([28.0, 56.0, 84.0].contains(&d.dose_mg), "{}", d.dose_mg),
                _ => {
                    if let Some(w) = d.weight_kg {
                        let per_kg = d.dose_mg / w;
                        assert!((0.45..=1.05).contains(&per_kg), "{per_kg} mg/kg");
                    }
                }
            }
        }
    }

    #[test]
    fn every_patient_is_enrolled_once_before_the_first_dose() {
        let sim = generate(&small());
        let mut enrolled: HashMap<&str, HashSet<EventId>> = HashMap::new();
        let mut enrolments: HashMap<EventId, &PatientEnrolment> = HashMap::new();
        for e in &sim.events {
            if let ClinicEvent::PatientEnrolment(x) = e {
                enrolled.entry(x.patient_ref.as_str()).or_default().insert(x.event_id);
                enrolments.insert(x.event_id, x);
            }
        }
        let mut first_dose: HashMap<&str, &DoseAdministered> = HashMap::new();
        for d in doses(&sim.events) {
            let first = first_dose.entry(d.patient_ref.as_str()).or_insert(d);
            if d.administered_at < first.administered_at {
                *first = d;
            }
        }
        assert!(first_dose.len() > 10, "{} patients dosed", first_dose.len());
        assert_eq!(enrolled.len(), first_dose.len(), "an enrolment for every patient dosed, and no other");
        for (patient, ids) in &enrolled {
            assert_eq!(ids.len(), 1, "{patient} is enrolled once (a re-submission repeats the event)");
        }
        for e in enrolments.values() {
            let d = first_dose[e.patient_ref.as_str()];
            let day = d.administered_at.to_datetime().expect("time").date_naive();
            let eight = day.and_hms_opt(8, 0, 0).expect("08:00").and_utc();
            assert_eq!(e.enrolled_at, Timestamp::from(eight), "08:00 on the day of the first session");
            assert!(e.enrolled_at < d.administered_at, "before the first dose");
            let protocol = match d.route {
                Route::Intranasal if e.age_band >= AgeBand::Age65To74 => "esketamine_label_65_plus",
                Route::Intranasal => "esketamine_label",
                Route::Im => "ketamine_im",
                _ => "ketamine_iv_0_5_mg_kg",
            };
            assert_eq!(e.protocol, protocol);
            assert_eq!(e.indication, "treatment-resistant depression");
            assert!(e.baseline_urinary_score.is_none_or(|s| (0..=35).contains(&s)), "{e:?}");
        }
    }

    #[test]
    fn enrolment_baselines_follow_the_population_mix() {
        let sim = generate(&SimConfig { clinics: 6, patients_per_clinic: 100, ..SimConfig::default() });
        let unique: HashMap<EventId, &PatientEnrolment> = sim
            .events
            .iter()
            .filter_map(
                |e| if let ClinicEvent::PatientEnrolment(x) = e { Some((x.event_id, x)) } else { None },
            )
            .collect();
        let all: Vec<&PatientEnrolment> = unique.into_values().collect();
        assert_eq!(all.len(), 600, "every patient of a long enough period is enrolled");
        let share = |f: fn(&PatientEnrolment) -> bool| {
            all.iter().copied().filter(|&e| f(e)).count() as f64 / all.len() as f64
        };
        let near = |got: f64, want: f64, tolerance: f64| {
            assert!((got - want).abs() <= tolerance, "{got:.3}, expected about {want}");
        };
        near(share(|e| e.sex == Sex::Female), 0.58, 0.08);
        near(share(|e| e.sex == Sex::Male), 0.40, 0.08);
        near(share(|e| e.age_band == AgeBand::Age18To24), 0.10, 0.05);
        near(share(|e| matches!(e.age_band, AgeBand::Age25To34 | AgeBand::Age35To44)), 0.44, 0.08);
        near(share(|e| e.age_band >= AgeBand::Age65To74), 0.12, 0.05);
        near(share(|e| e.baseline_urinary_score.is_some()), 0.85, 0.06);
        assert!(share(|e| e.baseline_urinary_score.is_some_and(|s| s <= 7)) > 0.5, "mostly mild");
        assert!(share(|e| e.baseline_urinary_score.is_some_and(|s| s >= 20)) > 0.0, "a few severe");
        near(share(|e| e.prior_substance_use_disorder.is_some()), 0.90, 0.05);
        near(share(|e| e.prior_substance_use_disorder == Some(true)), 0.108, 0.05);
        let protocols: HashSet<&str> = all.iter().map(|e| e.protocol.as_str()).collect();
        assert!(protocols.contains("esketamine_label") && protocols.contains("ketamine_iv_0_5_mg_kg"));
    }

    #[test]
    fn dependent_patients_escalate_and_come_more_often() {
        let sim = generate(&SimConfig { clinics: 5, patients_per_clinic: 60, ..SimConfig::default() });
        let effect = sim.truth.effect("dependence-escalation").expect("planted");
        assert!(effect.patients.len() >= 5, "{} dependent patients", effect.patients.len());
        assert!(effect.reports_caused > 0);
        let dependent: HashSet<&str> = effect.patients.iter().map(|p| p.patient_ref.as_str()).collect();
        let mut by_patient: HashMap<&str, Vec<&DoseAdministered>> = HashMap::new();
        for d in doses(&sim.events) {
            by_patient.entry(&d.patient_ref).or_default().push(d);
        }
        let mut escalated = 0;
        for (p, mut ds) in by_patient {
            ds.sort_by_key(|d| d.administered_at);
            ds.dedup_by_key(|d| d.event_id);
            let ratio = ds.last().map_or(1.0, |l| l.dose_mg) / ds[0].dose_mg;
            if dependent.contains(p) {
                escalated += usize::from(ds.len() >= 16 && ratio >= 1.5);
            } else if ds[0].route != Route::Intranasal && ds.len() > 1 {
                assert!(ratio < 1.01, "{p} escalates without being planted: {ratio}");
            }
        }
        assert!(escalated >= effect.patients.len() / 3, "{escalated} of {} escalated", effect.patients.len());
    }

    #[test]
    fn urological_harm_rises_with_cumulative_dose_only_when_planted() {
        // Reports of urological reactions per 1,000 doses, above vs below 1 g cumulative.
        let rates = |harms: Harms| -> (f64, f64) {
            let sim =
                generate(&SimConfig { clinics: 8, patients_per_clinic: 60, harms, ..SimConfig::default() });
            let mut doses_by: HashMap<String, Vec<(Timestamp, f64)>> = HashMap::new();
            for d in doses(&sim.events) {
                doses_by.entry(d.patient_ref.clone()).or_default().push((d.administered_at, d.dose_mg));
            }
            for v in doses_by.values_mut() {
                v.sort_by_key(|x| x.0);
                v.dedup_by_key(|x| x.0);
            }
            let (mut n_low, mut n_high, mut uro_low, mut uro_high) = (0.0, 0.0, 0.0, 0.0);
            for v in doses_by.values() {
                let mut cum = 0.0;
                for (_, mg) in v {
                    cum += mg;
                    if cum < 1000.0 { n_low += 1.0 } else { n_high += 1.0 }
                }
            }
            let mut seen = HashSet::new();
            for e in &sim.events {
                let ClinicEvent::AdverseEventReport(r) = e else { continue };
                if r.version != 1
                    || !seen.insert(r.event_id)
                    || !r.reactions.iter().any(|x| UROLOGICAL.contains(&x.verbatim.as_str()))
                {
                    continue;
                }
                let cum: f64 = doses_by[&r.patient_ref]
                    .iter()
                    .filter(|(t, _)| t.millis() <= r.reported_at.millis())
                    .map(|x| x.1)
                    .sum();
                if cum < 1000.0 { uro_low += 1.0 } else { uro_high += 1.0 }
            }
            (1000.0 * uro_low / n_low, 1000.0 * uro_high / n_high)
        };
        let (low, high) = rates(Harms::default());
        assert!(high > 2.5 * low, "planted: {high:.2} vs {low:.2} per 1,000 doses");
        let (low, high) = rates(Harms::none());
        assert!(high < 2.0 * low.max(0.3), "null: {high:.2} vs {low:.2} per 1,000 doses");
    }

    #[test]
    fn the_surge_clinic_reports_more_in_its_window_only() {
        let sim = generate(&SimConfig { clinics: 3, patients_per_clinic: 60, ..SimConfig::default() });
        let surge = sim.truth.effect("reporting-surge").expect("planted");
        assert_eq!(surge.kind, crate::truth::EffectKind::Noise);
        let (from, to) = surge.window.clone().expect("window");
        let (from, to) =
            (Timestamp::parse_rfc3339(&from).expect("t"), Timestamp::parse_rfc3339(&to).expect("t"));
        let inside = |t: Timestamp| t >= from && t < to;
        let per_dose = |clinic: &str, window: bool| -> f64 {
            let n = |k: EventKind| {
                sim.events
                    .iter()
                    .filter(|e| e.kind() == k && e.clinic_id() == clinic)
                    .filter(|e| inside(event_time(e)) == window)
                    .count() as f64
            };
            n(EventKind::AdverseEventReport) / n(EventKind::DoseAdministered)
        };
        assert!(per_dose("clinic-02", true) > 2.0 * per_dose("clinic-02", false));
        assert!(per_dose("clinic-01", true) < 2.0 * per_dose("clinic-01", false));
    }

    #[test]
    fn some_events_arrive_late_and_some_twice() {
        let sim = generate(&SimConfig::default());
        let s = &sim.truth.submissions;
        assert_eq!(s.messages, sim.events.len() as u64);
        assert_eq!(s.messages, s.events + s.duplicates);
        assert!(s.duplicates > 0 && s.late > 0);
        let ids: HashSet<EventId> = sim.events.iter().map(ClinicEvent::event_id).collect();
        assert_eq!(ids.len() as u64, s.events);
        let out_of_order = sim.events.windows(2).filter(|w| event_time(&w[1]) < event_time(&w[0])).count();
        assert!(out_of_order > 0);
    }
}
