//! Named simulation scenarios: presets of what is planted, so that detection can be measured on
//! streams with a known answer (a harm to find, noise to ignore, or nothing at all), at any
//! effect size.

use std::fmt;
use std::str::FromStr;

use pv_events::Product;

use crate::generate::{Harms, SimConfig};

/// Share of patients who switch product in [`Scenario::Switching`].
const SWITCH_SHARE: f64 = 0.3;

/// Share of esketamine patients aged 65 or more in [`Scenario::Older28mg`].
const OLDER_ESKETAMINE_SHARE: f64 = 0.5;

/// Onset delay of the planted urological reactions in [`Scenario::LateOnset`], in days.
const LATE_ONSET_DAYS: (u32, u32) = (30, 120);

/// A named preset of planted effects. [`Scenario::apply`] sets the harms, the switching share
/// and the age mix of a [`SimConfig`], scaling the planted effect sizes by `effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Nothing planted and no surge: background rates only. Every alarm is a false alarm.
    Null,
    /// No planted harm, but the default reporting surge at one clinic: noise a detector should
    /// not flag. `effect` is ignored.
    SurgeOnly,
    /// The default harms (urological dose-response in both products, dependence in ketamine),
    /// scaled by `effect`, with the default surge.
    Default,
    /// The urological dose-response in esketamine only (on its own cumulative dose), scaled by
    /// `effect`; no dependence; the default surge.
    EsketamineOnly,
    /// The default harms scaled by `effect`, but the planted urological reactions begin 30-120
    /// days after the session that caused them (possibly after the patient stopped treatment);
    /// the default surge.
    LateOnset,
    /// The default harms scaled by `effect` and the default surge, with 30% of the patients
    /// (not the dependent ones) switching product once, at a session between 9 and 16.
    Switching,
    /// The default harms scaled by `effect` and the default surge, with half of the esketamine
    /// patients aged 65 or more, so the label's 28 mg start for older patients is common.
    Older28mg,
}

impl Scenario {
    /// Every scenario, in the order of their documentation.
    pub const ALL: [Scenario; 7] = [
        Scenario::Null,
        Scenario::SurgeOnly,
        Scenario::Default,
        Scenario::EsketamineOnly,
        Scenario::LateOnset,
        Scenario::Switching,
        Scenario::Older28mg,
    ];

    /// The scenario's name on the command line and in reports (kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Null => "null",
            Scenario::SurgeOnly => "surge-only",
            Scenario::Default => "default",
            Scenario::EsketamineOnly => "esketamine-only",
            Scenario::LateOnset => "late-onset",
            Scenario::Switching => "switching",
            Scenario::Older28mg => "older-28mg",
        }
    }

    /// Sets `cfg`'s harms, switching share and esketamine age mix to the scenario's, the planted
    /// effect sizes scaled by `effect` (1 = the defaults: 0.004 per gram of cumulative dose and 8%
    /// of ketamine patients dependent; 0 = nothing planted; negative or not a number counts as
    /// 0). Seed, size, period, submission rates and the 28 mg start (the label) are left alone,
    /// except that [`Scenario::Older28mg`] turns the 28 mg start on.
    pub fn apply(self, cfg: &mut SimConfig, effect: f64) {
        let effect = if effect.is_finite() { effect.max(0.0) } else { 0.0 };
        cfg.switch_share = 0.0;
        cfg.esketamine_65_plus_share = None;
        cfg.harms = match self {
            Scenario::Null => Harms::none(),
            Scenario::SurgeOnly => Harms::surge_only(),
            Scenario::Default => scaled(effect),
            Scenario::EsketamineOnly => Harms {
                dependence_share: 0.0,
                urological_products: vec![Product::Esketamine],
                ..scaled(effect)
            },
            Scenario::LateOnset => Harms { urological_onset_delay_days: LATE_ONSET_DAYS, ..scaled(effect) },
            Scenario::Switching => {
                cfg.switch_share = SWITCH_SHARE;
                scaled(effect)
            }
            Scenario::Older28mg => {
                cfg.esketamine_65_plus_share = Some(OLDER_ESKETAMINE_SHARE);
                cfg.older_start_28mg = true;
                scaled(effect)
            }
        };
    }
}

/// The default harms with the planted effect sizes multiplied by `effect` (the dependent share
/// at most 1).
fn scaled(effect: f64) -> Harms {
    let d = Harms::default();
    Harms {
        urological_per_gram: d.urological_per_gram * effect,
        dependence_share: (d.dependence_share * effect).min(1.0),
        ..d
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario name that is not one of [`Scenario::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownScenario(
    /// The name given.
    pub String,
);

impl fmt::Display for UnknownScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        write!(f, "unknown scenario `{}` (one of: {})", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownScenario {}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    /// Parses a [`Scenario::name`]; case and `_` for `-` do not matter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Scenario::ALL.into_iter().find(|x| x.name() == wanted).ok_or_else(|| UnknownScenario(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap, HashSet};

    use chrono::{Duration, NaiveDate};
    use pv_events::*;

    use super::*;
    use crate::generate::{UROLOGICAL, event_time, generate};
    use crate::truth::EffectKind;

    /// A configuration of `clinics` x `patients` over `days` for `scenario` at `effect`.
    fn config(scenario: Scenario, effect: f64, clinics: u32, patients: u32, days: u32) -> SimConfig {
        let mut cfg = SimConfig { clinics, patients_per_clinic: patients, days, ..SimConfig::default() };
        scenario.apply(&mut cfg, effect);
        cfg
    }

    /// The distinct doses (a re-submission repeats an event), by patient, in time order.
    fn doses_by_patient(events: &[ClinicEvent]) -> HashMap<String, Vec<DoseAdministered>> {
        let mut seen = HashSet::new();
        let mut by: HashMap<String, Vec<DoseAdministered>> = HashMap::new();
        let doses = events
            .iter()
            .filter_map(|e| if let ClinicEvent::DoseAdministered(d) = e { Some(d) } else { None });
        for d in doses.filter(|d| seen.insert(d.event_id)) {
            by.entry(d.patient_ref.clone()).or_default().push(d.clone());
        }
        for ds in by.values_mut() {
            ds.sort_by_key(|d| d.administered_at);
        }
        by
    }

    /// The distinct first versions of the reports.
    fn first_reports(events: &[ClinicEvent]) -> Vec<&AdverseEventReport> {
        let mut seen = HashSet::new();
        events
            .iter()
            .filter_map(|e| if let ClinicEvent::AdverseEventReport(r) = e { Some(r) } else { None })
            .filter(|r| r.version == 1 && seen.insert(r.event_id))
            .collect()
    }

    /// The distinct enrolments, by patient.
    fn enrolments(events: &[ClinicEvent]) -> HashMap<String, PatientEnrolment> {
        events
            .iter()
            .filter_map(|e| if let ClinicEvent::PatientEnrolment(x) = e { Some(x) } else { None })
            .map(|x| (x.patient_ref.clone(), x.clone()))
            .collect()
    }

    /// The day of `t`.
    fn day(t: Timestamp) -> Option<NaiveDate> {
        t.to_datetime().map(|t| t.date_naive())
    }

    /// Whether `mg` is `want` mg.
    fn is(mg: f64, want: f64) -> bool {
        (mg - want).abs() < 1e-9
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
            assert_eq!(s.to_string(), s.name());
        }
        assert_eq!("Esketamine_Only".parse::<Scenario>(), Ok(Scenario::EsketamineOnly));
        let err = "nope".parse::<Scenario>().expect_err("unknown");
        assert!(err.to_string().contains("late-onset"), "{err}");
    }

    #[test]
    fn every_scenario_passes_the_gateway_rules() {
        for s in Scenario::ALL {
            let cfg = config(s, 1.0, 2, 15, 120);
            let end = cfg.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
                + Duration::days(i64::from(cfg.days));
            let sim = generate(&cfg);
            assert!(sim.events.len() > 100, "{s}: {} events", sim.events.len());
            for e in sim.events {
                let errors = validate(&e, &Limits::default(), end.into());
                assert!(errors.is_empty(), "{s}: {e:?}: {errors:?}");
                assert!(event_time(&e) < end.into());
            }
        }
    }

    #[test]
    fn effect_zero_plants_nothing_in_any_scenario() {
        for s in Scenario::ALL {
            let sim = generate(&config(s, 0.0, 2, 20, 120));
            assert!(sim.truth.effects.iter().all(|e| e.kind == EffectKind::Noise), "{s}: {:?}", sim.truth);
            assert!(
                sim.truth.effects.iter().all(|e| e.patients.is_empty() && e.name == "reporting-surge"),
                "{s}"
            );
        }
        let null = generate(&config(Scenario::Null, 1.0, 2, 20, 120));
        assert!(null.truth.effects.is_empty());
    }

    #[test]
    fn surge_only_plants_noise_and_no_signal() {
        let sim = generate(&config(Scenario::SurgeOnly, 1.0, 3, 30, 180));
        let names: Vec<&str> = sim.truth.effects.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["reporting-surge"]);
        assert!(sim.truth.effects.iter().all(|e| e.kind == EffectKind::Noise));
        assert!(sim.truth.effects.iter().all(|e| e.reports_caused > 0), "the surge caused reports");
    }

    #[test]
    fn esketamine_only_harms_esketamine_patients_only() {
        let sim = generate(&config(Scenario::EsketamineOnly, 10.0, 4, 40, 240));
        let effect = sim.truth.effect("urological-dose-response").expect("planted");
        assert_eq!(effect.products, ["esketamine"]);
        assert_eq!(effect.routes, ["intranasal"]);
        assert!(sim.truth.effect("dependence-escalation").is_none());
        assert!(effect.patients.len() >= 3, "{} patients", effect.patients.len());
        let doses = doses_by_patient(&sim.events);
        for p in &effect.patients {
            let products: HashSet<Product> = doses[&p.patient_ref].iter().map(|d| d.product).collect();
            assert_eq!(products, HashSet::from([Product::Esketamine]), "{}", p.patient_ref);
        }
        // Ketamine patients still have their background urological reports.
        let ketamine: HashSet<&str> = doses
            .iter()
            .filter(|(_, ds)| ds.iter().all(|d| d.product == Product::Ketamine))
            .map(|(p, _)| p.as_str())
            .collect();
        assert!(ketamine.len() > effect.patients.len(), "most patients are on ketamine");
    }

    #[test]
    fn late_onset_reactions_begin_after_the_session_even_after_treatment_ended() {
        let mut cfg = config(Scenario::LateOnset, 1.0, 4, 40, 365);
        cfg.harms.urological_per_gram = 0.05;
        cfg.harms.dependence_share = 0.0;
        let sim = generate(&cfg);
        let effect = sim.truth.effect("urological-dose-response").expect("planted");
        assert!(effect.reports_caused > 0);
        let planted: HashSet<&str> = effect.patients.iter().map(|p| p.patient_ref.as_str()).collect();
        let doses = doses_by_patient(&sim.events);
        let (mut after_last, mut late) = (0, 0);
        for r in first_reports(&sim.events) {
            let Some(ds) = doses.get(&r.patient_ref) else { continue };
            let dose_days: BTreeSet<NaiveDate> = ds.iter().filter_map(|d| day(d.administered_at)).collect();
            for x in r.reactions.iter().filter(|x| UROLOGICAL.contains(&x.verbatim.as_str())) {
                let onset = x.onset_date.and_then(Date::to_naive).expect("onset");
                if dose_days.contains(&onset) {
                    continue; // background: onset on the session day
                }
                late += 1;
                assert!(planted.contains(r.patient_ref.as_str()), "{r:?}");
                let first = dose_days.first().copied().expect("dosed");
                assert!(onset >= first + Duration::days(30), "{onset} within 30 days of {first}");
                assert!(day(r.reported_at) >= Some(onset));
                if dose_days.last().is_some_and(|last| onset > *last) {
                    after_last += 1;
                }
            }
        }
        assert!(late >= 3, "{late} delayed onsets");
        assert!(after_last >= 1, "no onset after the last dose ({late} delayed onsets)");
        // Without the delay every reaction begins on a session day.
        let sim = generate(&config(Scenario::Default, 4.0, 2, 30, 180));
        let doses = doses_by_patient(&sim.events);
        for r in first_reports(&sim.events) {
            let days: HashSet<_> =
                doses[&r.patient_ref].iter().filter_map(|d| day(d.administered_at)).collect();
            assert!(
                r.reactions
                    .iter()
                    .all(|x| x.onset_date.and_then(Date::to_naive).is_some_and(|o| days.contains(&o)))
            );
        }
    }

    #[test]
    fn switchers_get_the_new_product_and_their_reports_name_it() {
        let sim = generate(&config(Scenario::Switching, 1.0, 3, 40, 240));
        let doses = doses_by_patient(&sim.events);
        let enrolled = enrolments(&sim.events);
        let reports = first_reports(&sim.events);
        let (mut switchers, mut reports_after) = (0, 0);
        for (patient, ds) in &doses {
            let Some(k) = ds.iter().position(|d| d.product != ds[0].product) else { continue };
            switchers += 1;
            let (before, after) = ds.split_at(k);
            let (old, new) = (before[0].product, after[0].product);
            assert!(after.iter().all(|d| d.product == new), "{patient} switches once");
            assert!((9..=16).contains(&after[0].session_number), "{patient}: {}", after[0].session_number);
            assert_eq!(Some(after[0].session_number), before.last().map(|d| d.session_number + 1));
            let older = enrolled.get(patient).is_some_and(|e| e.age_band >= AgeBand::Age65To74);
            match new {
                Product::Esketamine => {
                    assert!(after.iter().all(|d| d.route == Route::Intranasal));
                    assert!(after.iter().all(|d| d.formulation == "nasal spray 28 mg/device"));
                    assert!(is(after[0].dose_mg, if older { 28.0 } else { 56.0 }), "{patient}");
                    assert!(after.iter().all(|d| [28.0, 56.0, 84.0].contains(&d.dose_mg)));
                    assert!(
                        after.iter().all(|d| d.protocol.as_deref().is_some_and(|p| p.contains("esketamine")))
                    );
                }
                Product::Ketamine => {
                    assert!(after.iter().all(|d| d.route == Route::Iv));
                    assert!(after.iter().all(|d| d.formulation == "solution for injection 50 mg/ml"));
                    for d in after {
                        if let Some(w) = d.weight_kg {
                            assert!((d.dose_mg / w - 0.5).abs() < 0.01, "{} mg for {w} kg", d.dose_mg);
                        }
                    }
                }
            }
            let switch_day = day(after[0].administered_at);
            for r in reports.iter().filter(|r| &r.patient_ref == patient) {
                let onset = r.reactions.first().and_then(|x| x.onset_date).and_then(Date::to_naive);
                let suspect = r.drugs.iter().find(|d| d.role == DrugRole::Suspect).and_then(|d| d.product);
                if onset >= switch_day {
                    reports_after += 1;
                    assert_eq!(suspect, Some(new), "{r:?}");
                } else {
                    assert_eq!(suspect, Some(old), "{r:?}");
                }
            }
        }
        assert!(switchers >= 5, "{switchers} switchers");
        assert!(reports_after >= 1, "no report after a switch");
        let products: HashSet<Product> = doses.values().flatten().map(|d| d.product).collect();
        assert_eq!(products.len(), 2);
        // Nobody switches by default.
        let sim = generate(&config(Scenario::Default, 1.0, 3, 40, 240));
        assert!(
            doses_by_patient(&sim.events).values().all(|ds| ds.iter().all(|d| d.product == ds[0].product))
        );
    }

    #[test]
    fn older_esketamine_patients_start_on_28_mg() {
        let check = |cfg: &SimConfig| -> (usize, usize) {
            let sim = generate(cfg);
            let doses = doses_by_patient(&sim.events);
            let enrolled = enrolments(&sim.events);
            let (mut esketamine, mut older) = (0, 0);
            for (patient, ds) in &doses {
                let e = &enrolled[patient];
                let is_older = e.age_band >= AgeBand::Age65To74;
                if ds[0].product != Product::Esketamine {
                    continue; // (0.5 mg/kg of ketamine for 56 kg is 28 mg too)
                }
                esketamine += 1;
                if is_older && cfg.older_start_28mg {
                    older += 1;
                    assert!(is(ds[0].dose_mg, 28.0), "{patient}");
                    assert_eq!(e.protocol, "esketamine_label_65_plus", "{patient}");
                    assert!(ds.get(1).is_none_or(|d| is(d.dose_mg, 56.0)), "{patient}");
                    assert!(ds.iter().skip(2).all(|d| [56.0, 84.0].contains(&d.dose_mg)), "{patient}");
                } else {
                    older += usize::from(is_older);
                    assert!(is(ds[0].dose_mg, 56.0), "{patient}");
                    assert_eq!(e.protocol, "esketamine_label", "{patient}");
                    assert!(ds.iter().all(|d| !is(d.dose_mg, 28.0)), "{patient}");
                }
            }
            (esketamine, older)
        };
        let cfg = config(Scenario::Older28mg, 1.0, 4, 40, 120);
        let (esketamine, older) = check(&cfg);
        assert!(esketamine >= 20, "{esketamine} esketamine patients");
        let share = older as f64 / esketamine as f64;
        assert!((0.3..=0.7).contains(&share), "{older} of {esketamine} esketamine patients are 65+");
        let (_, older) = check(&SimConfig { older_start_28mg: false, ..cfg });
        assert!(older > 0);
    }

    #[test]
    fn cohort_sizes_split_into_clinics() {
        let split = |n: u32| {
            let c = SimConfig::with_patients(n);
            (c.clinics, c.patients_per_clinic)
        };
        assert_eq!(split(200), (5, 40));
        assert_eq!(split(1_000), (5, 200));
        assert_eq!(split(1_001), (10, 101));
        assert_eq!(split(20_000), (20, 1_000));
        assert_eq!(split(100_000), (50, 2_000));
        assert_eq!(split(3), (3, 1));
        assert_eq!(split(0), (1, 0));
    }
}
