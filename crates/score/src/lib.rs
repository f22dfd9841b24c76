//! Scoring detection against a simulation's ground truth.
//!
//! Two screens run on what the pipeline stored, with no knowledge of the truth:
//! - dependence, per patient, from the dosing stream: the latest dose at least 1.5 times the
//!   patient's first doses, or (from the 8th dose) recent intervals under half the patient's
//!   mean interval;
//! - urological harm, per cumulative-dose band: urological reports per 1,000 administrations at
//!   >= 1 g versus < 500 mg, flagged when the rate ratio's 95% lower bound exceeds 1.
//!
//! The scores compare them with what was planted: sensitivity, false alarms, days from onset.

use std::collections::{HashMap, HashSet};

use pv_simulate::GroundTruth;
use pv_store::{Db, StoreError};

/// How the dependence screen did.
#[derive(Debug, Clone, PartialEq)]
pub struct DependenceScore {
    /// Patients planted with dependence.
    pub planted: usize,
    /// Patients the screen flagged.
    pub flagged: usize,
    /// Flagged and planted.
    pub true_positives: usize,
    /// Flagged, not planted.
    pub false_alarms: usize,
    /// Median days from a patient's planted onset to the first flagged dose.
    pub median_days_to_flag: f64,
}

/// How the urological dose-response screen did.
#[derive(Debug, Clone, PartialEq)]
pub struct DoseResponse {
    /// (band, administrations, reports with a urological reaction, per 1,000 administrations).
    pub bands: Vec<(String, u64, u64, f64)>,
    /// Rate ratio >= 1 g vs < 500 mg.
    pub rate_ratio: f64,
    /// Its 95% confidence interval.
    pub ci: (f64, f64),
    /// Whether the screen raises it.
    pub flagged: bool,
    /// Whether a dose-dependent urological harm was planted.
    pub planted: bool,
}

/// Both screens against the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionScore {
    /// Dependence, per patient.
    pub dependence: DependenceScore,
    /// Urological dose-response.
    pub urological: DoseResponse,
}

/// Runs the screens on the tables of `db` and scores them against `truth`; `keyer` is the
/// enricher's pseudonymiser (to find the truth's patients among the keys). Only the patients of
/// the simulation count for the dependence score; the dose-response screen reads every row.
pub async fn score(
    db: &Db,
    keyer: &pv_enrich::Pseudonymiser,
    truth: &GroundTruth,
) -> Result<DetectionScore, StoreError> {
    let key = |clinic: &str, patient: &str| pv_enrich::pseudonym::key_hex(&keyer.key(clinic, patient));
    let simulated: HashSet<String> = (1..=truth.clinics)
        .flat_map(|c| {
            (1..=truth.patients_per_clinic)
                .map(move |p| key(&pv_simulate::clinic_id(c), &pv_simulate::patient_ref(truth.seed, c, p)))
        })
        .collect();

    // ---- dependence
    let planted: HashMap<String, i64> = truth
        .effect("dependence-escalation")
        .map(|e| {
            e.patients
                .iter()
                .map(|p| {
                    let onset =
                        pv_events::Timestamp::parse_rfc3339(&p.onset_at).map(|t| t.millis()).unwrap_or(0);
                    (key(&p.clinic_id, &p.patient_ref), onset)
                })
                .collect()
        })
        .unwrap_or_default();
    const RULE: &str = "ifNull(exp_escalation_ratio, 0) >= 1.5
        OR (exp_administrations >= 8 AND ifNull(exp_recent_interval_days, 1e9) < 0.5 * ifNull(exp_mean_interval_days, 0))";
    let flagged: Vec<(String, i64)> = db
        .sql(&format!(
            "SELECT patient_key, minIf(administered_at_ms, {RULE}) FROM {{doses}} FINAL
             GROUP BY patient_key HAVING countIf({RULE}) > 0"
        ))
        .fetch_all()
        .await?;
    let flagged: Vec<(String, i64)> = flagged.into_iter().filter(|(k, _)| simulated.contains(k)).collect();
    let flagged_keys: HashSet<&str> = flagged.iter().map(|(k, _)| k.as_str()).collect();
    let true_positives = planted.keys().filter(|k| flagged_keys.contains(k.as_str())).count();
    let days: Vec<f64> = flagged
        .iter()
        .filter_map(|(k, first)| planted.get(k).map(|onset| (first - onset) as f64 / 86_400_000.0))
        .collect();
    let dependence = DependenceScore {
        planted: planted.len(),
        flagged: flagged.len(),
        true_positives,
        false_alarms: flagged.len() - true_positives,
        median_days_to_flag: pv_stats::quantile::nearest_rank(&days, 0.5),
    };

    // ---- urological dose-response
    const BAND: &str =
        "multiIf(exp_cumulative_mg < 500, 0, exp_cumulative_mg < 1000, 1, exp_cumulative_mg < 2000, 2, 3)";
    let doses: Vec<(u8, u64)> = db
        .sql(&format!("SELECT toUInt8({BAND}) AS b, count() FROM {{doses}} FINAL GROUP BY b"))
        .fetch_all()
        .await?;
    let cases: Vec<(u8, u64)> = db
        .sql(&format!(
            "SELECT b, count() FROM (
                SELECT toUInt8({BAND}) AS b, arrayExists(g -> has(g, 'urological'), reaction_groups) AS uro
                FROM {{ae_report_versions}} FINAL WHERE version = 1 AND nullification = 0)
             WHERE uro GROUP BY b"
        ))
        .fetch_all()
        .await?;
    let labels = ["< 500 mg", "500 mg - 1 g", "1 - 2 g", ">= 2 g"];
    let get = |v: &[(u8, u64)], b: u8| v.iter().find(|x| x.0 == b).map_or(0, |x| x.1);
    let bands: Vec<(String, u64, u64, f64)> = (0..4u8)
        .map(|b| {
            let (n, c) = (get(&doses, b), get(&cases, b));
            (labels[b as usize].to_string(), n, c, if n == 0 { 0.0 } else { 1000.0 * c as f64 / n as f64 })
        })
        .collect();
    let (n_lo, c_lo) = (bands[0].1 as f64, bands[0].2 as f64);
    let (n_hi, c_hi) = (bands[2].1 as f64 + bands[3].1 as f64, bands[2].2 as f64 + bands[3].2 as f64);
    // Rate ratio with a 0.5 continuity correction when a cell is empty.
    let corr = if c_lo == 0.0 || c_hi == 0.0 { 0.5 } else { 0.0 };
    let rr = ((c_hi + corr) / n_hi.max(1.0)) / ((c_lo + corr) / n_lo.max(1.0));
    let se = (1.0 / (c_hi + corr) + 1.0 / (c_lo + corr)).sqrt();
    let ci = ((rr.ln() - 1.96 * se).exp(), (rr.ln() + 1.96 * se).exp());
    let urological = DoseResponse {
        bands,
        rate_ratio: rr,
        ci,
        flagged: ci.0 > 1.0 && c_hi >= 3.0,
        planted: truth.effect("urological-dose-response").is_some(),
    };
    Ok(DetectionScore { dependence, urological })
}

impl DetectionScore {
    /// The score as report lines.
    pub fn lines(&self, label: &str) -> Vec<String> {
        let d = &self.dependence;
        let u = &self.urological;
        let bands: Vec<String> =
            u.bands.iter().map(|(b, n, c, r)| format!("{b}: {c}/{n} ({r:.2}/1000)")).collect();
        vec![
            format!(
                "detection, {label}: dependence screen: {} of {} planted patients flagged (sensitivity {:.0}%), {} false alarms, median {:.1} days from onset",
                d.true_positives,
                d.planted,
                if d.planted == 0 { 0.0 } else { 100.0 * d.true_positives as f64 / d.planted as f64 },
                d.false_alarms,
                d.median_days_to_flag
            ),
            format!(
                "detection, {label}: urological dose-response RR {:.2} (95% CI {:.2}-{:.2}) -> {} (planted: {}); {}",
                u.rate_ratio,
                u.ci.0,
                u.ci.1,
                if u.flagged { "SIGNAL" } else { "no signal" },
                u.planted,
                bands.join("; ")
            ),
        ]
    }
}
