//! Multiplicity adjustment for screens: Benjamini-Hochberg (1995) false-discovery-rate adjusted
//! p-values (q-values), as R's `p.adjust(p, method = "BH")`.

/// The BH-adjusted p-value of each of `p`, in the same order: q_(i) = min over j >= i of
/// p_(j) m / j (ranks ascending), capped at 1. NaN p-values are treated as 1.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let clean = |x: f64| if x.is_nan() { 1.0 } else { x.clamp(0.0, 1.0) };
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| clean(p[a]).total_cmp(&clean(p[b])));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(clean(p[i]) * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_r_p_adjust_bh() {
        // p.adjust(c(0.04, 0.001, 0.2, 0.01), "BH") = 0.05333333 0.004 0.2 0.02
        let q = benjamini_hochberg(&[0.04, 0.001, 0.2, 0.01]);
        let want = [0.053_333_333_333_333_33, 0.004, 0.2, 0.02];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
        // p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "BH") = 0.05 x 5
        assert!(benjamini_hochberg(&[0.01, 0.02, 0.03, 0.04, 0.05]).iter().all(|q| (q - 0.05).abs() < 1e-12));
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[f64::NAN, 0.5]), [1.0, 1.0]);
    }
}
