//! Trend in Poisson rates across ordered exposure levels (dose-response).
//!
//! The score test for a log-linear trend: with c_i events over exposure n_i at level score x_i,
//! C = Σc_i and E_i = C n_i / Σn_i (the events expected at level i under no trend),
//! U = Σ x_i (c_i − E_i), V = Σ x_i² E_i − (Σ x_i E_i)² / C, and z = U / √V is approximately
//! standard normal under H0 (Breslow and Day 1987, Statistical Methods in Cancer Research
//! vol. II, ch. 3: the test for trend in person-time rates). Positive z: rates rise with x.

/// One exposure level: its score, events and exposure (administrations, person-time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Score of the level (band index, or band midpoint dose).
    pub score: f64,
    /// Events at the level.
    pub events: u64,
    /// Exposure at the level.
    pub exposure: f64,
}

/// The score test's z; 0 when it is undefined (no events, fewer than two levels with exposure,
/// or all scores equal).
pub fn poisson_trend_z(levels: &[Level]) -> f64 {
    let levels: Vec<&Level> = levels.iter().filter(|l| l.exposure > 0.0 && l.exposure.is_finite()).collect();
    let total_events: f64 = levels.iter().map(|l| l.events as f64).sum();
    let total_exposure: f64 = levels.iter().map(|l| l.exposure).sum();
    if total_events == 0.0 || levels.len() < 2 {
        return 0.0;
    }
    let (mut u, mut sxxe, mut sxe) = (0.0, 0.0, 0.0);
    for l in &levels {
        let e = total_events * l.exposure / total_exposure;
        u += l.score * (l.events as f64 - e);
        sxxe += l.score * l.score * e;
        sxe += l.score * e;
    }
    let v = sxxe - sxe * sxe / total_events;
    if v <= 1e-12 * sxxe.max(1.0) {
        return 0.0;
    }
    u / v.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(events: &[u64], exposure: &[f64]) -> Vec<Level> {
        events
            .iter()
            .zip(exposure)
            .enumerate()
            .map(|(i, (&c, &n))| Level { score: i as f64, events: c, exposure: n })
            .collect()
    }

    #[test]
    fn hand_computed_trend() {
        // c = (2, 5, 10), n = 1000 each, x = 0, 1, 2: C = 17, E_i = 17/3, U = 8,
        // V = 5 * 17/3 - 17^2/17 = 34/3, z = 8 / sqrt(34/3) = 2.376354...
        let z = poisson_trend_z(&levels(&[2, 5, 10], &[1000.0; 3]));
        assert!((z - 8.0 / (34.0f64 / 3.0).sqrt()).abs() < 1e-12, "{z}");
        assert!((z - 2.3763541031440187).abs() < 1e-12);
        // Unequal exposure: c = (4, 6), n = (2000, 1000): C = 10, E = (20/3, 10/3), U = 6 - 10/3 = 8/3,
        // V = 10/3 - (10/3)^2/10 = 20/9, z = (8/3) / sqrt(20/9) = 1.788854...
        let z = poisson_trend_z(&levels(&[4, 6], &[2000.0, 1000.0]));
        assert!((z - 1.7888543819998317).abs() < 1e-12, "{z}");
    }

    #[test]
    fn two_levels_agree_with_the_conditional_binomial_score_test() {
        // With two levels the test is the score test of p = n1/(n0+n1) for c1 of C events:
        // z = (c1 − C p) / sqrt(C p (1 − p)).
        let (c0, c1, n0, n1) = (7u64, 19u64, 3000.0, 2500.0);
        let c = (c0 + c1) as f64;
        let p = n1 / (n0 + n1);
        let want = (c1 as f64 - c * p) / (c * p * (1.0 - p)).sqrt();
        let z = poisson_trend_z(&levels(&[c0, c1], &[n0, n1]));
        assert!((z - want).abs() < 1e-12, "{z} vs {want}");
    }

    #[test]
    fn flat_rates_give_zero_and_degenerate_input_is_defined() {
        assert!(poisson_trend_z(&levels(&[3, 3, 3], &[1000.0; 3])).abs() < 1e-12);
        assert!(poisson_trend_z(&levels(&[6, 3], &[1000.0, 1000.0])) < 0.0, "falling rates");
        assert_eq!(poisson_trend_z(&levels(&[0, 0], &[10.0, 10.0])), 0.0);
        assert_eq!(poisson_trend_z(&levels(&[5], &[10.0])), 0.0);
        assert_eq!(poisson_trend_z(&levels(&[5, 1], &[10.0, 0.0])), 0.0, "one level with exposure");
        assert_eq!(poisson_trend_z(&[]), 0.0);
    }
}
