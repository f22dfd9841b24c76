//! Signals configuration (the `[signals]` table of the pv config file): schedule and thresholds.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::artefacts::ArtefactConfig;
use crate::cohort::{DoseUnit, HarmConfig, ProductBands};
use crate::markers::MarkerConfig;
use crate::sequential::Background;

/// Settings of the signals service; every field has a named default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {
    /// Seconds between runs.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Topic for signal events (new, updated, closed signals).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Where the scheduled service serves `GET /metrics` (runs by outcome, the last success);
    /// absent: no listener. `pv signals --once` serves none.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The "period" window: the last this many days (the other window is cumulative).
    #[serde(default = "default_period_days")]
    pub period_days: u32,
    /// Cumulative-dose band edges in mg (bands: below the first, between, at or above the last).
    #[serde(default = "default_dose_bands_mg")]
    pub dose_bands_mg: Vec<f64>,
    /// Cases needed before any signal is raised.
    #[serde(default = "default_min_cases")]
    pub min_cases: u64,
    /// Evans: PRR at least this ...
    #[serde(default = "default_prr_min")]
    pub prr_min: f64,
    /// ... and Yates chi-square at least this.
    #[serde(default = "default_chi2_min")]
    pub chi2_min: f64,
    /// MGPS: EB05 at least this.
    #[serde(default = "default_eb05_min")]
    pub eb05_min: f64,
    /// The background of each monitored harm: the expected counts of its sequential test.
    #[serde(default = "default_backgrounds")]
    pub backgrounds: BTreeMap<String, Background>,
    /// Type I error of the sequential tests over the whole surveillance, shared by the family
    /// of products × harms (each test gets alpha / family size).
    #[serde(default = "default_maxsprt_alpha")]
    pub maxsprt_alpha: f64,
    /// The planned surveillance length per product, in administrations to patients at risk:
    /// part of the design (the critical values are computed for it); cases after it are not
    /// tested.
    #[serde(default = "default_surveillance_administrations")]
    pub surveillance_administrations: f64,
    /// Status hysteresis: an open signal closes only after this many consecutive runs without
    /// it (a statistic dipping under its threshold once is not a closure). Sequential tests
    /// never close: a rejected null stays rejected.
    #[serde(default = "default_close_after_runs")]
    pub close_after_runs: u32,
    /// False-discovery rate of the disproportionality screen (Benjamini-Hochberg over every
    /// stratum × preferred term of a window).
    #[serde(default = "default_screen_fdr")]
    pub screen_fdr: f64,
    /// How clinics' reporting surges are recognised.
    #[serde(default)]
    pub artefacts: ArtefactConfig,
    /// The protocols dependence markers are judged against.
    #[serde(default)]
    pub markers: MarkerConfig,
    /// MaxSPRT minimum number of events before a signal (Kulldorff and Silva 2015 suggest 4).
    #[serde(default = "default_maxsprt_min_events")]
    pub maxsprt_min_events: u64,
    /// Days of runs whose counted cases and exposure breakdowns (`signal_contributions`,
    /// `signal_exposure`, one partition per day) are kept; older days are dropped after a run.
    /// The workbench reads the latest run's, and every workflow decision keeps the cases its
    /// result counted with itself, so nothing a decision rested on is lost.
    #[serde(default = "default_keep_counted_days")]
    pub keep_counted_days: u32,
    /// The monitored harms (event groups) analysed on person-time, each with its risk window
    /// and lag and the rationale for them.
    #[serde(default = "default_harms")]
    pub harms: BTreeMap<String, HarmConfig>,
    /// Cumulative-dose bands per product for the person-time analyses, each in the product's
    /// own unit: doses of different products are never added.
    #[serde(default = "default_product_bands")]
    pub product_bands: BTreeMap<String, ProductBands>,
    /// Time-on-treatment bucket edges (days since the first dose), an adjuster of every rate
    /// ratio.
    #[serde(default = "default_on_treatment_days")]
    pub on_treatment_days: Vec<u32>,
}

fn default_metrics_listen() -> Option<std::net::SocketAddr> {
    Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9467)))
}

fn default_interval_secs() -> u64 {
    300
}
fn default_topic() -> String {
    "pv.signals".into()
}
fn default_period_days() -> u32 {
    30
}
fn default_dose_bands_mg() -> Vec<f64> {
    vec![500.0, 1000.0, 2000.0]
}
fn default_min_cases() -> u64 {
    3
}
fn default_prr_min() -> f64 {
    2.0
}
fn default_chi2_min() -> f64 {
    4.0
}
fn default_eb05_min() -> f64 {
    2.0
}
fn default_backgrounds() -> BTreeMap<String, Background> {
    BTreeMap::from([
        (
            "urological".into(),
            Background {
                source: "DEMO: an invented historical cohort (80 first urological reactions in 100,000 administrations), set to the simulator's background".into(),
                demo: true,
                rate_per_1000_administrations: None,
                rate_lower: None,
                rate_upper: None,
                historical_events: Some(80),
                historical_administrations: Some(100_000.0),
            },
        ),
        (
            "dependence".into(),
            Background {
                source: "DEMO: an invented literature rate (0.8 per 1,000 administrations, 95% 0.6-1.05), set to the simulator's background".into(),
                demo: true,
                rate_per_1000_administrations: Some(0.8),
                rate_lower: Some(0.6),
                rate_upper: Some(1.05),
                historical_events: None,
                historical_administrations: None,
            },
        ),
    ])
}
fn default_surveillance_administrations() -> f64 {
    200_000.0
}
fn default_close_after_runs() -> u32 {
    3
}
fn default_screen_fdr() -> f64 {
    0.05
}
fn default_maxsprt_alpha() -> f64 {
    0.05
}
fn default_maxsprt_min_events() -> u64 {
    4
}
fn default_keep_counted_days() -> u32 {
    7
}
fn default_harms() -> BTreeMap<String, HarmConfig> {
    BTreeMap::from([
        (
            "urological".into(),
            HarmConfig {
                risk_window_days: 180,
                lag_days: 30,
                rationale: "ketamine uropathy follows months of repeated exposure and is often recognised after \
                            treatment has stopped, so onsets up to six months after the last dose stay at risk; \
                            the band counts doses given at least 30 days before onset (damage reflects earlier \
                            cumulative dose)"
                    .into(),
            },
        ),
        (
            "dependence".into(),
            HarmConfig {
                risk_window_days: 90,
                lag_days: 14,
                rationale: "craving, tolerance and drug-seeking show during treatment and in the weeks after the \
                            last session, when seeking outside the clinic begins, so three months after the last \
                            dose stay at risk; the band counts doses given at least 14 days before"
                    .into(),
            },
        ),
    ])
}
fn default_product_bands() -> BTreeMap<String, ProductBands> {
    BTreeMap::from([
        // IV/IM ketamine is dosed by weight (0.5 mg/kg a session): 10, 20, 40 sessions.
        ("ketamine".into(), ProductBands { unit: DoseUnit::MgPerKg, edges: vec![5.0, 10.0, 20.0] }),
        // Intranasal esketamine is a fixed dose (56 or 84 mg): about 15, 30, 60 sessions.
        ("esketamine".into(), ProductBands { unit: DoseUnit::Mg, edges: vec![1000.0, 2000.0, 4000.0] }),
    ])
}
fn default_on_treatment_days() -> Vec<u32> {
    vec![30, 90, 180, 365]
}

impl Default for SignalsConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_interval_secs(),
            topic: default_topic(),
            metrics_listen: default_metrics_listen(),
            period_days: default_period_days(),
            dose_bands_mg: default_dose_bands_mg(),
            min_cases: default_min_cases(),
            prr_min: default_prr_min(),
            chi2_min: default_chi2_min(),
            eb05_min: default_eb05_min(),
            backgrounds: default_backgrounds(),
            maxsprt_alpha: default_maxsprt_alpha(),
            surveillance_administrations: default_surveillance_administrations(),
            close_after_runs: default_close_after_runs(),
            screen_fdr: default_screen_fdr(),
            artefacts: ArtefactConfig::default(),
            markers: MarkerConfig::default(),
            maxsprt_min_events: default_maxsprt_min_events(),
            keep_counted_days: default_keep_counted_days(),
            harms: default_harms(),
            product_bands: default_product_bands(),
            on_treatment_days: default_on_treatment_days(),
        }
    }
}

impl SignalsConfig {
    /// Checks the values a typo or a unit slip could make meaningless; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |field: &str, why: &str| Err(format!("signals.{field}: {why}"));
        if self.interval_secs == 0 {
            return bad("interval_secs", "must be at least 1");
        }
        if self.topic.trim().is_empty() {
            return bad("topic", "must not be empty");
        }
        if self.period_days == 0 {
            return bad("period_days", "must be at least 1");
        }
        let edges = &self.dose_bands_mg;
        if edges.iter().any(|e| !e.is_finite() || *e <= 0.0) || edges.windows(2).any(|w| w[0] >= w[1]) {
            return bad("dose_bands_mg", "edges must be positive, finite and strictly increasing");
        }
        if edges.len() > 20 {
            return bad("dose_bands_mg", "at most 20 edges");
        }
        for (field, v) in [
            ("prr_min", self.prr_min),
            ("eb05_min", self.eb05_min),
            ("surveillance_administrations", self.surveillance_administrations),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(field, "must be a positive number");
            }
        }
        for (field, v) in [("chi2_min", self.chi2_min)] {
            if !v.is_finite() {
                return bad(field, "must be a finite number");
            }
        }
        if !(self.maxsprt_alpha > 0.0 && self.maxsprt_alpha < 0.5) {
            return bad("maxsprt_alpha", "must be in (0, 0.5)");
        }
        if self.keep_counted_days == 0 {
            return bad("keep_counted_days", "must be at least 1 (the latest run's cases are read)");
        }
        for (product, b) in &self.product_bands {
            let e = &b.edges;
            if e.is_empty()
                || e.len() > 20
                || e.iter().any(|x| !x.is_finite() || *x <= 0.0)
                || e.windows(2).any(|w| w[0] >= w[1])
            {
                return bad(
                    &format!("product_bands.{product}.edges"),
                    "1-20 edges, positive, finite and strictly increasing",
                );
            }
        }
        for (group, h) in &self.harms {
            if h.risk_window_days > 3650 || h.lag_days > 3650 {
                return bad(&format!("harms.{group}"), "risk_window_days and lag_days must be at most 3650");
            }
            if h.rationale.trim().is_empty() {
                return bad(
                    &format!("harms.{group}.rationale"),
                    "say why these values (shown with the results)",
                );
            }
        }
        if self.on_treatment_days.windows(2).any(|w| w[0] >= w[1])
            || self.on_treatment_days.first() == Some(&0)
        {
            return bad("on_treatment_days", "edges must be positive and strictly increasing");
        }
        self.markers.validate()?;
        for (group, b) in &self.backgrounds {
            b.validate(group)?;
        }
        if !(self.screen_fdr > 0.0 && self.screen_fdr < 1.0) {
            return bad("screen_fdr", "must be in (0, 1)");
        }
        if self.close_after_runs == 0 {
            return bad("close_after_runs", "must be at least 1");
        }
        Ok(())
    }

    /// Every group followed on person-time: the monitored harms and the markers' groups.
    pub fn cohort_harms(&self) -> BTreeMap<String, HarmConfig> {
        let mut all = self.markers.harms();
        all.extend(self.harms.clone());
        all
    }

    /// The label of band `i` (0-based) of the cumulative-dose bands.
    pub fn band_label(&self, i: usize) -> String {
        let edges = &self.dose_bands_mg;
        let mg = |x: f64| if x >= 1000.0 { format!("{} g", x / 1000.0) } else { format!("{x} mg") };
        match i {
            0 => format!("< {}", edges.first().map_or("inf".into(), |&x| mg(x))),
            i if i >= edges.len() => format!(">= {}", edges.last().map_or("0".into(), |&x| mg(x))),
            i => format!("{} - {}", mg(edges[i - 1]), mg(edges[i])),
        }
    }

    /// The band of a cumulative dose.
    pub fn band_of(&self, cumulative_mg: f64) -> usize {
        self.dose_bands_mg.iter().take_while(|&&edge| cumulative_mg >= edge).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_slips_name_the_field() {
        assert_eq!(SignalsConfig::default().validate(), Ok(()));
        let with = |f: fn(&mut SignalsConfig)| {
            let mut c = SignalsConfig::default();
            f(&mut c);
            c.validate().expect_err("invalid")
        };
        assert!(with(|c| c.dose_bands_mg = vec![1000.0, 500.0]).starts_with("signals.dose_bands_mg:"));
        assert!(with(|c| c.maxsprt_alpha = 5.0).starts_with("signals.maxsprt_alpha:"));
        assert!(with(|c| c.period_days = 0).starts_with("signals.period_days:"));
        let e = with(|c| {
            if let Some(b) = c.backgrounds.get_mut("urological") {
                b.historical_administrations = Some(-1.0);
            }
        });
        assert!(e.starts_with("signals.backgrounds.urological.historical_administrations:"), "{e}");
    }

    #[test]
    fn bands_have_edges_and_labels() {
        let c = SignalsConfig::default();
        assert_eq!(
            [c.band_of(0.0), c.band_of(499.9), c.band_of(500.0), c.band_of(1999.0), c.band_of(5000.0)],
            [0, 0, 1, 2, 3]
        );
        assert_eq!(
            (0..4).map(|i| c.band_label(i)).collect::<Vec<_>>(),
            ["< 500 mg", "500 mg - 1 g", "1 g - 2 g", ">= 2 g"]
        );
    }
}
