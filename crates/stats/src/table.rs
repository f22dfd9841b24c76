//! 2x2 tables of reports: a = with product P and event E, b = P not E, c = E not P,
//! d = neither. N and the margins count distinct report ids (a report listing a pair twice
//! counts once), the convention of FAERS/CAERS analyses and openEBGM.

use std::collections::{HashMap, HashSet};

/// A 2x2 table of report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TwoByTwo {
    /// Reports with the product and the event.
    pub a: u64,
    /// With the product, without the event.
    pub b: u64,
    /// With the event, without the product.
    pub c: u64,
    /// With neither.
    pub d: u64,
}

impl TwoByTwo {
    /// From the pair count, the product and event margins and the total.
    pub fn from_margins(a: u64, with_product: u64, with_event: u64, total: u64) -> Self {
        let b = with_product.saturating_sub(a);
        let c = with_event.saturating_sub(a);
        let d = total.saturating_sub(a + b + c);
        Self { a, b, c, d }
    }

    /// All reports.
    pub fn n(&self) -> u64 {
        self.a + self.b + self.c + self.d
    }

    /// Expected a under independence, E0 = (a+b)(a+c)/N (0 for an empty table).
    pub fn expected(&self) -> f64 {
        let n = self.n();
        if n == 0 { 0.0 } else { (self.a + self.b) as f64 * (self.a + self.c) as f64 / n as f64 }
    }
}

/// One product-event pair and its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairCounts {
    /// Product.
    pub product: String,
    /// Event.
    pub event: String,
    /// The 2x2 table.
    pub table: TwoByTwo,
}

/// Counts every product-event pair seen in (report id, product, event) rows, sorted by product
/// then event.
pub fn count_pairs<'r, I>(rows: I) -> Vec<PairCounts>
where
    I: IntoIterator<Item = (&'r str, &'r str, &'r str)>,
{
    let mut reports: HashMap<&str, u32> = HashMap::new();
    let mut products: HashMap<&str, u32> = HashMap::new();
    let mut events: HashMap<&str, u32> = HashMap::new();
    let mut triples: HashSet<(u32, u32, u32)> = HashSet::new();
    for (report, product, event) in rows {
        let id = |m: &mut HashMap<&'r str, u32>, k: &'r str| {
            let next = m.len() as u32;
            *m.entry(k).or_insert(next)
        };
        let (r, p, e) = (id(&mut reports, report), id(&mut products, product), id(&mut events, event));
        triples.insert((r, p, e));
    }
    let with_product: HashSet<(u32, u32)> = triples.iter().map(|&(r, p, _)| (p, r)).collect();
    let with_event: HashSet<(u32, u32)> = triples.iter().map(|&(r, _, e)| (e, r)).collect();
    let mut n_product = vec![0u64; products.len()];
    for &(p, _) in &with_product {
        n_product[p as usize] += 1;
    }
    let mut n_event = vec![0u64; events.len()];
    for &(e, _) in &with_event {
        n_event[e as usize] += 1;
    }
    let mut pair: HashMap<(u32, u32), u64> = HashMap::new();
    for &(_, p, e) in &triples {
        *pair.entry((p, e)).or_insert(0) += 1;
    }
    let total = reports.len() as u64;
    let product_name: HashMap<u32, &str> = products.iter().map(|(k, v)| (*v, *k)).collect();
    let event_name: HashMap<u32, &str> = events.iter().map(|(k, v)| (*v, *k)).collect();
    let mut out: Vec<PairCounts> = pair
        .into_iter()
        .map(|((p, e), a)| PairCounts {
            product: product_name[&p].to_owned(),
            event: event_name[&e].to_owned(),
            table: TwoByTwo::from_margins(a, n_product[p as usize], n_event[e as usize], total),
        })
        .collect();
    out.sort_by(|x, y| (&x.product, &x.event).cmp(&(&y.product, &y.event)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_count_distinct_reports() {
        let rows = [
            ("r1", "K", "cystitis"),
            ("r1", "K", "cystitis"), // listed twice in one report: counts once
            ("r1", "K", "nausea"),
            ("r2", "K", "nausea"),
            ("r3", "S", "cystitis"),
            ("r4", "S", "headache"),
        ];
        let pairs = count_pairs(rows);
        let t = |p: &str, e: &str| pairs.iter().find(|x| x.product == p && x.event == e).map(|x| x.table);
        // K: reports r1, r2; cystitis: r1, r3; N = 4.
        assert_eq!(t("K", "cystitis"), Some(TwoByTwo { a: 1, b: 1, c: 1, d: 1 }));
        assert_eq!(t("K", "nausea"), Some(TwoByTwo { a: 2, b: 0, c: 0, d: 2 }));
        assert_eq!(t("S", "headache"), Some(TwoByTwo { a: 1, b: 1, c: 0, d: 2 }));
        assert_eq!(pairs.len(), 4);
        assert_eq!(t("K", "cystitis").map(|t| t.expected()), Some(1.0));
    }
}
