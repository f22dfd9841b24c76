//! Dependence markers from the dosing stream, judged against the protocol the patient is on,
//! pure. In supervised clinics a dose or a schedule is the prescriber's decision, so the
//! comparator is the label schedule, not the patient's own first doses (which made titration,
//! the 28 mg start of older patients and re-induction look like misuse).
//!
//! Per session of a patient on a protocol (the enrolment's, or the product and route's default):
//! - `dose_above_protocol`: the dose (mg, or mg/kg where the protocol doses by weight and the
//!   weight is known) above the protocol's maximum by more than 5%;
//! - `start_above_protocol`: the first dose above the protocol's starting dose;
//! - `session_too_soon`: fewer days since the previous session than the protocol's minimum
//!   interval for the phase the interval starts in (days since the first dose on the protocol).
//!
//! From the monitoring forms, a tolerance marker: over at least six monitored sessions at the same
//! dose, the dissociation score (CADSS) falls by more than a point a session (least squares) and
//! the last three sessions' mean is at most half the first three's; dated at the last of them.
//!
//! Every marker has a date (its session's day), so markers have onsets: the first deviation is
//! the incident event of the person-time group `protocol_deviation`, the first tolerance marker
//! that of `dissociation_tolerance`, and the first of any marker or a dependence-term case that
//! of `dependence_with_markers`
//! ([`crate::cohort_query`] adds them to the cohort); their rates per 100 patient-years, by
//! product, band, clinic, age and sex, come from [`crate::person_time`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::cohort::{CohortCase, CohortDose, CohortPatient, DoseUnit, HarmConfig};
use crate::model::CaseRef;

/// The person-time group of protocol deviations.
pub const DEVIATION: &str = "protocol_deviation";
/// The person-time group of dependence-term cases and protocol deviations together.
pub const COMBINED: &str = "dependence_with_markers";
/// The person-time group of tolerance (dissociation falling at a constant dose).
pub const TOLERANCE: &str = "dissociation_tolerance";

/// A label schedule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// The product it doses.
    pub product: String,
    /// The unit of its doses.
    pub unit: DoseUnit,
    /// Starting dose.
    pub start_dose: f64,
    /// Highest dose of the schedule.
    pub max_dose: f64,
    /// Minimum days between sessions, by phase: (first day of the phase since the first dose,
    /// minimum gap), in increasing order of the first day.
    pub min_interval_days: Vec<(u32, u32)>,
    /// The label or guideline it follows.
    pub source: String,
}

/// Which protocols exist and which applies to a patient without (or outside) an enrolled one.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MarkerConfig {
    /// Protocols by id (the enrolment event's `protocol`).
    #[serde(default = "default_protocols")]
    pub protocols: BTreeMap<String, Protocol>,
    /// Protocol id by `product/route`, for patients without an enrolment or after a switch.
    #[serde(default = "default_by_route")]
    pub default_by_route: BTreeMap<String, String>,
    /// Days after a session a patient stays at risk of a deviation or dependence behaviour.
    #[serde(default = "default_risk_window_days")]
    pub risk_window_days: u32,
}

fn default_risk_window_days() -> u32 {
    90
}

fn default_protocols() -> BTreeMap<String, Protocol> {
    let phases = vec![(0, 2), (28, 5), (56, 5)];
    let esketamine = |start: f64| {
        Protocol {
        product: "esketamine".into(),
        unit: DoseUnit::Mg,
        start_dose: start,
        max_dose: 84.0,
        min_interval_days: phases.clone(),
        source: "esketamine nasal spray label: 56 or 84 mg twice weekly in weeks 1-4, weekly in weeks 5-8, then weekly or every two weeks; 28 mg start at 65 and over".into(),
    }
    };
    BTreeMap::from([
        ("esketamine_label".into(), esketamine(56.0)),
        ("esketamine_label_65_plus".into(), esketamine(28.0)),
        (
            "ketamine_iv_0_5_mg_kg".into(),
            Protocol {
                product: "ketamine".into(),
                unit: DoseUnit::MgPerKg,
                start_dose: 0.5,
                max_dose: 0.75,
                min_interval_days: phases.clone(),
                source: "common IV protocol: 0.5 mg/kg over 40 minutes, titrated to at most 0.75 mg/kg"
                    .into(),
            },
        ),
        (
            "ketamine_im".into(),
            Protocol {
                product: "ketamine".into(),
                unit: DoseUnit::MgPerKg,
                start_dose: 1.0,
                max_dose: 1.0,
                min_interval_days: phases,
                source: "common IM protocol: 0.5-1 mg/kg".into(),
            },
        ),
    ])
}

fn default_by_route() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("esketamine/intranasal".into(), "esketamine_label".into()),
        ("ketamine/iv".into(), "ketamine_iv_0_5_mg_kg".into()),
        ("ketamine/im".into(), "ketamine_im".into()),
    ])
}

impl Default for MarkerConfig {
    fn default() -> Self {
        Self {
            protocols: default_protocols(),
            default_by_route: default_by_route(),
            risk_window_days: default_risk_window_days(),
        }
    }
}

impl MarkerConfig {
    /// Checks the schedules; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (id, p) in &self.protocols {
            let bad = |f: &str, why: &str| Err(format!("signals.markers.protocols.{id}.{f}: {why}"));
            if !(p.max_dose.is_finite()
                && p.max_dose > 0.0
                && p.start_dose > 0.0
                && p.start_dose <= p.max_dose)
            {
                return bad("max_dose", "need 0 < start_dose <= max_dose");
            }
            if p.min_interval_days.first().map(|x| x.0) != Some(0)
                || p.min_interval_days.windows(2).any(|w| w[0].0 >= w[1].0)
            {
                return bad("min_interval_days", "phases must start at day 0 and increase");
            }
        }
        if let Some((route, id)) =
            self.default_by_route.iter().find(|(_, id)| !self.protocols.contains_key(*id))
        {
            return Err(format!("signals.markers.default_by_route.{route}: no protocol `{id}`"));
        }
        Ok(())
    }

    /// The person-time groups the markers add, with their risk windows.
    pub fn harms(&self) -> BTreeMap<String, HarmConfig> {
        let h = |why: &str| HarmConfig {
            risk_window_days: self.risk_window_days,
            lag_days: 0,
            rationale: why.into(),
        };
        BTreeMap::from([
            (
                DEVIATION.into(),
                h("a deviation happens at a session; time after the last one stays at risk for a return"),
            ),
            (
                COMBINED.into(),
                h(
                    "dependence-term reports, protocol deviations and tolerance together: any shows the behaviour",
                ),
            ),
            (
                TOLERANCE.into(),
                h("tolerance shows at sessions; time after the last one stays at risk for a return"),
            ),
        ])
    }

    /// The protocol of a dose: the enrolled one when it doses this product, else the default of
    /// the product and route.
    fn protocol_for<'a>(&'a self, enrolled: &str, d: &CohortDose) -> Option<(&'a str, &'a Protocol)> {
        let by_id = |id: &str| self.protocols.get_key_value(id).map(|(k, p)| (k.as_str(), p));
        by_id(enrolled).filter(|(_, p)| p.product == d.product).or_else(|| {
            self.default_by_route.get(&format!("{}/{}", d.product, d.route)).and_then(|id| by_id(id))
        })
    }
}

/// One deviation from the protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Deviation {
    /// The session's day.
    pub day: i32,
    /// The session number.
    pub session: i32,
    /// `dose_above_protocol`, `start_above_protocol` or `session_too_soon`.
    pub kind: &'static str,
    /// What was seen against what the protocol allows.
    pub detail: String,
}

/// Every deviation of one patient (doses in any order), in session order.
pub fn deviations(cfg: &MarkerConfig, enrolled: &str, doses: &[CohortDose]) -> Vec<Deviation> {
    let mut doses: Vec<&CohortDose> = doses.iter().collect();
    doses.sort_by_key(|d| (d.day, d.session));
    let mut out = Vec::new();
    let mut weight = doses.iter().find_map(|d| d.weight_kg);
    // Per protocol: the day of its first dose and the previous session's day.
    let mut started: BTreeMap<&str, (i32, i32)> = BTreeMap::new();
    for d in doses {
        weight = d.weight_kg.or(weight);
        let Some((id, p)) = cfg.protocol_for(enrolled, d) else { continue };
        let amount = match p.unit {
            DoseUnit::Mg => Some(d.mg),
            DoseUnit::MgPerKg => weight.filter(|w| *w > 0.0).map(|w| d.mg / w),
        };
        let unit = p.unit.label();
        let first = !started.contains_key(id);
        if let Some(a) = amount {
            if a > p.max_dose * 1.05 {
                out.push(dev(
                    d,
                    "dose_above_protocol",
                    format!("{a:.2} {unit} > {} {unit} ({id})", p.max_dose),
                ));
            } else if first && a > p.start_dose * 1.05 {
                out.push(dev(
                    d,
                    "start_above_protocol",
                    format!("{a:.2} {unit} > start {} {unit} ({id})", p.start_dose),
                ));
            }
        }
        if let Some(&(first_day, previous)) = started.get(id) {
            // The interval belongs to the phase it starts in.
            let since = (previous - first_day).max(0) as u32;
            let min_gap = p.min_interval_days.iter().take_while(|x| x.0 <= since).last().map_or(0, |x| x.1);
            let gap = d.day - previous;
            if gap < min_gap as i32 {
                out.push(dev(
                    d,
                    "session_too_soon",
                    format!("{gap} days after the previous session < {min_gap} ({id})"),
                ));
            }
        }
        let entry = started.entry(id).or_insert((d.day, d.day));
        entry.1 = d.day;
    }
    out
}

fn dev(d: &CohortDose, kind: &'static str, detail: String) -> Deviation {
    Deviation { day: d.day, session: d.session, kind, detail }
}

/// The tolerance marker of one patient, if shown: `dissociation` holds (session, day, CADSS).
pub fn tolerance(doses: &[CohortDose], dissociation: &[(i32, i32, f64)]) -> Option<Deviation> {
    let dose_of: BTreeMap<i32, f64> = doses.iter().map(|d| (d.session, d.mg)).collect();
    let mut scored: Vec<(i32, i32, f64, f64)> = dissociation
        .iter()
        .filter_map(|&(session, day, score)| dose_of.get(&session).map(|&mg| (session, day, score, mg)))
        .collect();
    scored.sort_by_key(|s| s.0);
    // Runs of consecutive monitored sessions at the same dose (within 1%).
    let mut start = 0;
    for end in 1..=scored.len() {
        let same = end < scored.len() && (scored[end].3 - scored[start].3).abs() <= 0.01 * scored[start].3;
        if same {
            continue;
        }
        if let Some(found) = falling(&scored[start..end]) {
            return Some(found);
        }
        start = end;
    }
    None
}

/// Whether a run of (session, day, CADSS, dose) shows the score falling; dated at its last session.
fn falling(run: &[(i32, i32, f64, f64)]) -> Option<Deviation> {
    if run.len() < 6 {
        return None;
    }
    let n = run.len() as f64;
    let mean_x = run.iter().map(|r| f64::from(r.0)).sum::<f64>() / n;
    let mean_y = run.iter().map(|r| r.2).sum::<f64>() / n;
    let sxy: f64 = run.iter().map(|r| (f64::from(r.0) - mean_x) * (r.2 - mean_y)).sum();
    let sxx: f64 = run.iter().map(|r| (f64::from(r.0) - mean_x).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let first = run[..3].iter().map(|r| r.2).sum::<f64>() / 3.0;
    let last = run[run.len() - 3..].iter().map(|r| r.2).sum::<f64>() / 3.0;
    let (session, day, _, mg) = run[run.len() - 1];
    (slope < -1.0 && first > 0.0 && last <= 0.5 * first).then(|| Deviation {
        day,
        session,
        kind: "dissociation_falling_at_constant_dose",
        detail: format!("CADSS {first:.0} -> {last:.0} over {} sessions at {mg} mg", run.len()),
    })
}

/// Adds each patient's deviations (group `protocol_deviation`), tolerance marker (group
/// `dissociation_tolerance`) and all of them with dependence cases (group
/// `dependence_with_markers`) to their cases.
pub fn add_to_cohort(cfg: &MarkerConfig, patients: &mut [CohortPatient]) {
    for p in patients {
        let found = deviations(cfg, &p.protocol, &p.doses);
        let tolerant = tolerance(&p.doses, &p.dissociation);
        let dependence: Vec<CohortCase> =
            p.cases.iter().filter(|c| c.group == "dependence").cloned().collect();
        let marked = [
            (DEVIATION, &found[..]),
            (COMBINED, &found[..]),
            (TOLERANCE, tolerant.as_slice()),
            (COMBINED, tolerant.as_slice()),
        ];
        for (group, found) in marked {
            for d in found {
                p.cases.push(CohortCase {
                    group: group.into(),
                    onset_day: Some(d.day),
                    reported_day: d.day,
                    who: CaseRef {
                        clinic_id: p.clinic_id.clone(),
                        report_id: format!("session {}: {}", d.session, d.detail),
                        version: 0,
                        patient_key: p.key.clone(),
                        onset_ms: i64::from(d.day) * 86_400_000,
                    },
                });
            }
        }
        p.cases.extend(dependence.into_iter().map(|c| CohortCase { group: COMBINED.into(), ..c }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dose(day: i32, session: i32, product: &str, route: &str, mg: f64, weight: Option<f64>) -> CohortDose {
        CohortDose { day, session, product: product.into(), route: route.into(), mg, weight_kg: weight }
    }

    /// The esketamine label schedule: twice weekly, then weekly.
    fn esketamine(start: f64, then: f64) -> Vec<CohortDose> {
        let mut days = vec![0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49, 56, 63];
        days.dedup();
        days.iter()
            .enumerate()
            .map(|(i, &d)| {
                dose(d, i as i32 + 1, "esketamine", "intranasal", if i == 0 { start } else { then }, None)
            })
            .collect()
    }

    #[test]
    fn the_label_schedule_and_the_older_patients_titration_are_not_deviations() {
        let cfg = MarkerConfig::default();
        assert!(deviations(&cfg, "esketamine_label", &esketamine(56.0, 84.0)).is_empty());
        // Older patients start at 28 and go to 84 mg: a titration, not an escalation.
        assert!(deviations(&cfg, "esketamine_label_65_plus", &esketamine(28.0, 84.0)).is_empty());
        // IV ketamine 0.5 mg/kg at 80 kg, twice weekly: fine; the weight of one dose carries.
        let iv: Vec<CohortDose> = (0..10)
            .map(|i| dose(i * 3 + i % 2, i + 1, "ketamine", "iv", 40.0, (i == 0).then_some(80.0)))
            .collect();
        assert!(deviations(&cfg, "", &iv).is_empty(), "{:?}", deviations(&cfg, "", &iv));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn doses_above_the_schedule_and_sessions_too_soon_are_dated() {
        let cfg = MarkerConfig::default();
        // 56 mg start on the 65+ schedule (28 mg): a start above protocol.
        let d = deviations(&cfg, "esketamine_label_65_plus", &esketamine(56.0, 84.0));
        assert_eq!(d.iter().map(|d| (d.kind, d.session)).collect::<Vec<_>>(), [("start_above_protocol", 1)]);
        // IV: the 6th dose at 0.9 mg/kg, and a session the next day in week 6 (minimum 5 days).
        let mut iv: Vec<CohortDose> =
            (0..8).map(|i| dose(i * 7, i + 1, "ketamine", "iv", 40.0, Some(80.0))).collect();
        iv[5].mg = 72.0;
        iv.push(dose(43, 9, "ketamine", "iv", 40.0, Some(80.0)));
        let d = deviations(&cfg, "ketamine_iv_0_5_mg_kg", &iv);
        let got: Vec<(&str, i32, i32)> = d.iter().map(|d| (d.kind, d.session, d.day)).collect();
        assert_eq!(got, [("dose_above_protocol", 6, 35), ("session_too_soon", 9, 43)]);
        assert!(d[0].detail.starts_with("0.90 mg/kg > 0.75 mg/kg"), "{}", d[0].detail);
        // Without any weight, a mg/kg protocol cannot judge doses (only the schedule).
        let no_weight: Vec<CohortDose> =
            iv.iter().map(|d| CohortDose { weight_kg: None, ..d.clone() }).collect();
        assert_eq!(
            deviations(&cfg, "", &no_weight).iter().map(|d| d.kind).collect::<Vec<_>>(),
            ["session_too_soon"]
        );
    }

    #[test]
    fn a_switch_takes_the_new_products_default_protocol() {
        let cfg = MarkerConfig::default();
        let mut doses = esketamine(56.0, 84.0);
        // Switched to IV ketamine at 0.5 mg/kg on day 70: judged on the IV protocol, not the
        // enrolled esketamine label, and its first session is not "too soon" after esketamine.
        doses.push(dose(70, 15, "ketamine", "iv", 40.0, Some(80.0)));
        assert!(deviations(&cfg, "esketamine_label", &doses).is_empty());
    }

    #[test]
    fn deviations_and_dependence_cases_join_the_cohort() {
        let cfg = MarkerConfig::default();
        let mut iv: Vec<CohortDose> =
            (0..4).map(|i| dose(i * 7, i + 1, "ketamine", "iv", 40.0, Some(80.0))).collect();
        iv[2].mg = 80.0; // 1 mg/kg on day 14
        let case = CohortCase {
            group: "dependence".into(),
            onset_day: Some(5),
            reported_day: 6,
            who: CaseRef::default(),
        };
        let mut ps =
            vec![CohortPatient { key: "p".into(), doses: iv, cases: vec![case], ..CohortPatient::default() }];
        add_to_cohort(&cfg, &mut ps);
        let by: Vec<(&str, Option<i32>)> =
            ps[0].cases.iter().map(|c| (c.group.as_str(), c.onset_day)).collect();
        assert_eq!(
            by,
            [("dependence", Some(5)), (DEVIATION, Some(14)), (COMBINED, Some(14)), (COMBINED, Some(5))]
        );
        assert!(ps[0].cases[1].who.report_id.starts_with("session 3: 1.00 mg/kg"));
    }

    #[test]
    fn dissociation_falling_at_a_constant_dose_is_tolerance() {
        let doses: Vec<CohortDose> =
            (1..=8).map(|i| dose(i * 7, i, "esketamine", "intranasal", 84.0, None)).collect();
        // 30, 28, 24, 20, 15, 12, 10, 9: slope about -3.2 a session, last three 10.3 <= half of 27.3.
        let scores = [30.0, 28.0, 24.0, 20.0, 15.0, 12.0, 10.0, 9.0];
        let falling: Vec<(i32, i32, f64)> =
            scores.iter().enumerate().map(|(i, &s)| (i as i32 + 1, (i as i32 + 1) * 7, s)).collect();
        let t = tolerance(&doses, &falling).expect("tolerance");
        assert_eq!((t.session, t.day, t.kind), (8, 56, "dissociation_falling_at_constant_dose"));
        // Steady scores, or a fall that comes with a change of dose, are not tolerance.
        let steady: Vec<(i32, i32, f64)> = (1..=8).map(|i| (i, i * 7, 20.0 + f64::from(i % 2))).collect();
        assert!(tolerance(&doses, &steady).is_none());
        let mut changed = doses.clone();
        for d in changed.iter_mut().skip(4) {
            d.mg = 56.0;
        }
        assert!(tolerance(&changed, &falling).is_none(), "two runs of four sessions: too short to judge");
    }
}
