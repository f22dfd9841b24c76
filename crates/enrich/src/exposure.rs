//! A patient's dose history and the exposure snapshot it gives as of any time.
//!
//! Doses are kept in time order, one per instant; amounts in 0.01 mg and weights in 0.1 kg
//! integer units, so cumulative sums are exact whatever the order of arrival. A snapshot as of
//! time T aggregates the doses given at or before T: late-arriving doses land in their place.

use pv_events::{Exposure, Timestamp};

/// Milliseconds in a day.
pub const DAY_MS: f64 = 86_400_000.0;

/// One dose as the state keeps it (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoseRecord {
    /// Administration time, ms since the epoch.
    pub at_ms: i64,
    /// Dose in 0.01 mg.
    pub centi_mg: u32,
    /// Weight in 0.1 kg; 0 when unknown.
    pub deci_kg: u16,
}

impl DoseRecord {
    /// A record from the event's values; `None` when the dose is outside 0.01..42,949,672 mg.
    pub fn new(at: Timestamp, dose_mg: f64, weight_kg: Option<f64>) -> Option<Self> {
        let centi = (dose_mg * 100.0).round();
        if !(1.0..=f64::from(u32::MAX)).contains(&centi) {
            return None;
        }
        let deci_kg = weight_kg
            .map(|w| (w * 10.0).round())
            .filter(|w| (1.0..=f64::from(u16::MAX)).contains(w))
            .map_or(0, |w| w as u16);
        Some(Self { at_ms: at.millis(), centi_mg: centi as u32, deci_kg })
    }

    /// The dose in mg.
    pub fn mg(&self) -> f64 {
        f64::from(self.centi_mg) / 100.0
    }

    /// The dose in mg/kg, when the weight is known.
    pub fn mg_per_kg(&self) -> Option<f64> {
        (self.deci_kg > 0).then(|| self.mg() / (f64::from(self.deci_kg) / 10.0))
    }
}

/// What inserting a dose did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// A new dose.
    Added,
    /// The same dose at the same instant is already recorded (a re-sent event): nothing changed.
    Duplicate,
    /// A different dose is recorded at the same instant: nothing changed.
    Conflict(DoseRecord),
}

/// Every dose of a patient, in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoseHistory {
    doses: Vec<DoseRecord>,
}

impl DoseHistory {
    /// A history from records in any order (duplicates by instant keep the first).
    pub fn from_records(mut doses: Vec<DoseRecord>) -> Self {
        doses.sort_by_key(|d| d.at_ms);
        doses.dedup_by_key(|d| d.at_ms);
        Self { doses }
    }

    /// The doses, in time order.
    pub fn records(&self) -> &[DoseRecord] {
        &self.doses
    }

    /// Records a dose in its place in time.
    pub fn insert(&mut self, dose: DoseRecord) -> Insert {
        match self.doses.binary_search_by_key(&dose.at_ms, |d| d.at_ms) {
            Ok(i) if self.doses[i] == dose => Insert::Duplicate,
            Ok(i) => Insert::Conflict(self.doses[i]),
            Err(i) => {
                // Exact growth: state for a million patients must stay small (BENCHMARKS.md).
                self.doses.reserve_exact(1);
                self.doses.insert(i, dose);
                Insert::Added
            }
        }
    }

    /// The exposure as of `as_of`: every dose given at or before it.
    pub fn snapshot(&self, as_of: Timestamp) -> Exposure {
        let k = self.doses.partition_point(|d| d.at_ms <= as_of.millis());
        let doses = &self.doses[..k];
        let (Some(first), Some(last)) = (doses.first(), doses.last()) else {
            return Exposure::default();
        };
        let n = doses.len();
        let centi: u64 = doses.iter().map(|d| u64::from(d.centi_mg)).sum();
        let per_kg: Vec<f64> = doses.iter().filter_map(DoseRecord::mg_per_kg).collect();
        let intervals: Vec<f64> =
            doses.windows(2).map(|w| (w[1].at_ms - w[0].at_ms) as f64 / DAY_MS).collect();
        let recent = &intervals[intervals.len().saturating_sub(4)..];
        let trend_window = &intervals[intervals.len().saturating_sub(6)..];
        let baseline_doses = &doses[..n.min(3)];
        let baseline = baseline_doses.iter().map(DoseRecord::mg).sum::<f64>() / baseline_doses.len() as f64;
        Exposure {
            administrations: i32::try_from(n).unwrap_or(i32::MAX),
            cumulative_mg: centi as f64 / 100.0,
            cumulative_mg_per_kg: per_kg.iter().sum(),
            doses_with_weight: i32::try_from(per_kg.len()).unwrap_or(i32::MAX),
            first_dose_at: Some(Timestamp::from_millis(first.at_ms)),
            last_dose_at: Some(Timestamp::from_millis(last.at_ms)),
            mean_interval_days: (n >= 2).then(|| (last.at_ms - first.at_ms) as f64 / DAY_MS / (n - 1) as f64),
            recent_interval_days: (!recent.is_empty())
                .then(|| recent.iter().sum::<f64>() / recent.len() as f64),
            interval_trend_days_per_session: (trend_window.len() >= 3).then(|| slope(trend_window)),
            baseline_dose_mg: Some(baseline),
            last_dose_mg: Some(last.mg()),
            escalation_ratio: Some(last.mg() / baseline),
        }
    }
}

/// Least-squares slope of `ys` against 0, 1, 2, ...
fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    sxy / sxx
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_767_258_000_000; // 2026-01-01T09:00:00Z

    fn dose(day: i64, mg: f64, kg: Option<f64>) -> DoseRecord {
        DoseRecord::new(Timestamp::from_millis(T0 + day * DAY), mg, kg).expect("valid")
    }

    fn at(day: i64) -> Timestamp {
        Timestamp::from_millis(T0 + day * DAY)
    }

    #[test]
    fn units_are_exact_integers() {
        let d = DoseRecord::new(Timestamp::from_millis(0), 35.65, Some(71.3)).expect("valid");
        assert_eq!((d.centi_mg, d.deci_kg), (3565, 713));
        assert!((d.mg_per_kg().expect("weight") - 0.5).abs() < 1e-12);
        assert_eq!(DoseRecord::new(Timestamp::from_millis(0), 0.004, None), None, "rounds to 0");
        // 0.1 + 0.2 style sums stay exact: ten doses of 0.1 mg are 1 mg.
        let h = DoseHistory::from_records((0..10).map(|i| dose(i, 0.1, None)).collect());
        assert_eq!(h.snapshot(at(100)).cumulative_mg, 1.0);
    }

    #[test]
    fn a_hand_computed_course() {
        // Doses on days 0, 3, 7, 10, 14, 16 of 35, 35, 35, 40, 50, 60 mg at 70 kg.
        let mut h = DoseHistory::default();
        for (day, mg) in [(0, 35.0), (3, 35.0), (7, 35.0), (10, 40.0), (14, 50.0), (16, 60.0)] {
            assert_eq!(h.insert(dose(day, mg, Some(70.0))), Insert::Added);
        }
        let e = h.snapshot(at(16));
        assert_eq!(e.administrations, 6);
        assert_eq!(e.cumulative_mg, 255.0);
        assert!((e.cumulative_mg_per_kg - 255.0 / 70.0).abs() < 1e-12);
        assert_eq!(e.doses_with_weight, 6);
        assert_eq!(e.first_dose_at, Some(at(0)));
        assert_eq!(e.last_dose_at, Some(at(16)));
        assert_eq!(e.mean_interval_days, Some(16.0 / 5.0));
        // Intervals 3, 4, 3, 4, 2: the last four average 13/4.
        assert_eq!(e.recent_interval_days, Some(3.25));
        // Slope of (3, 4, 3, 4, 2) against 0..4: sxy = -2*(-0.2) + -1*0.8 + 0 + 1*0.8 + 2*(-1.2) = -2.0, sxx = 10.
        assert!((e.interval_trend_days_per_session.expect("trend") - -0.2).abs() < 1e-12);
        assert_eq!(e.baseline_dose_mg, Some(35.0));
        assert_eq!(e.last_dose_mg, Some(60.0));
        assert!((e.escalation_ratio.expect("ratio") - 60.0 / 35.0).abs() < 1e-12);
    }

    #[test]
    fn snapshots_are_as_of_their_time_and_late_doses_take_their_place() {
        let mut h = DoseHistory::default();
        h.insert(dose(0, 10.0, None));
        h.insert(dose(10, 30.0, None));
        h.insert(dose(5, 20.0, None)); // arrives late
        let e = h.snapshot(at(7));
        assert_eq!((e.administrations, e.cumulative_mg, e.last_dose_mg), (2, 30.0, Some(20.0)));
        assert_eq!(e.doses_with_weight, 0);
        assert_eq!(e.cumulative_mg_per_kg, 0.0);
        assert_eq!(h.snapshot(at(-1)), Exposure::default(), "before the first dose");
        assert_eq!(h.snapshot(at(10)).interval_trend_days_per_session, None, "needs three intervals");
    }

    #[test]
    fn resent_doses_count_once_and_conflicts_change_nothing() {
        let mut h = DoseHistory::default();
        assert_eq!(h.insert(dose(0, 35.0, Some(70.0))), Insert::Added);
        assert_eq!(h.insert(dose(0, 35.0, Some(70.0))), Insert::Duplicate);
        assert_eq!(h.insert(dose(0, 50.0, Some(70.0))), Insert::Conflict(dose(0, 35.0, Some(70.0))));
        assert_eq!(h.snapshot(at(1)).cumulative_mg, 35.0);
    }
}
