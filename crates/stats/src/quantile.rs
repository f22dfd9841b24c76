//! Sample quantiles (time to onset and other distributions).

/// The `q` quantile of `values` by linear interpolation between order statistics
/// (Hyndman and Fan 1996, definition 7: the default of R and NumPy). NaNs are ignored;
/// `None` when nothing is left.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let h = (v.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

/// The `q` quantile of `values` by nearest rank: the order statistic at rank `round((n-1)q)`,
/// a value of the sample itself (no interpolation). NaN for an empty sample.
pub fn nearest_rank(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_a_sample_value() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!([0.0, 0.5, 1.0].map(|q| nearest_rank(&v, q)), [1.0, 3.0, 5.0]);
        // Four values: rank round(1.5) = 2, the upper middle one (type 7 would give 2.5).
        assert_eq!(nearest_rank(&[4.0, 1.0, 3.0, 2.0], 0.5), 3.0);
        assert!(nearest_rank(&[], 0.5).is_nan());
    }

    #[test]
    fn matches_r_type_7() {
        // R: quantile(c(7, 1, 3, 10, 2), c(0.25, 0.5, 0.75)) = 2, 3, 7.
        let v = [7.0, 1.0, 3.0, 10.0, 2.0];
        assert_eq!([0.25, 0.5, 0.75].map(|q| quantile(&v, q)), [Some(2.0), Some(3.0), Some(7.0)]);
        // R: quantile(c(1, 2, 4, 8), c(0.25, 0.5)) = 1.75, 3.
        assert_eq!(quantile(&[8.0, 4.0, 2.0, 1.0], 0.25), Some(1.75));
        assert_eq!(quantile(&[8.0, 4.0, 2.0, 1.0], 0.5), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[f64::NAN, 5.0], 0.5), Some(5.0));
    }
}
