//! Section 5: estimated exposure, interval and cumulative, by product, route and formulation and
//! by sex and age band, with the administrations over time.

use std::collections::{BTreeMap, BTreeSet};

use super::input::{ExposureCell, Input, Spec};
use super::report::{Block, Section};
use crate::table::{Cell, Table, num};

/// Totals of one row of an exposure table.
#[derive(Debug, Default)]
struct Totals<'a> {
    patients: BTreeSet<&'a str>,
    administrations: u64,
    mg: f64,
    mg_per_kg: f64,
    with_weight: u64,
}

impl<'a> Totals<'a> {
    fn add(&mut self, c: &'a ExposureCell) {
        self.patients.insert(&c.patient_key);
        self.administrations += c.administrations;
        self.mg += c.mg;
        self.mg_per_kg += c.mg_per_kg;
        self.with_weight += c.with_weight;
    }
}

const PERIODS: [&str; 2] = ["interval", "cumulative"];

/// Sums `cells` by `key`, once for the interval and once cumulatively.
fn by<'a, K: Ord>(
    cells: &'a [ExposureCell],
    key: impl Fn(&'a ExposureCell) -> K,
) -> BTreeMap<(K, usize), Totals<'a>> {
    let mut out: BTreeMap<(K, usize), Totals<'a>> = BTreeMap::new();
    for c in cells {
        if c.in_interval {
            out.entry((key(c), 0)).or_default().add(c);
        }
        out.entry((key(c), 1)).or_default().add(c);
    }
    out
}

/// Sections 5, 5.1 and 5.2.
pub(crate) fn sections(spec: &Spec, input: &Input, charts: &mut BTreeMap<String, String>) -> Vec<Section> {
    let chart = "charts/administrations-by-month.svg".to_owned();
    charts.insert(chart.clone(), monthly_chart(input));
    vec![
        Section::new("5", "Estimated exposure and use patterns"),
        Section::new("5.1", "Cumulative subject exposure in clinical trials")
            .text("Not applicable: the data are post-marketing treatment records from clinics."),
        Section::new("5.2", "Cumulative and interval patient exposure from marketing experience")
            .text(format!(
                "Patients treated, administrations and cumulative dose, from the clinics' administration records: \
                 interval {} to {}, cumulative up to {}. Doses are never added across products or routes (the All \
                 rows count patients and administrations only). Doses per kilogram are totalled over the administrations with a recorded weight (their count is shown); \
                 esketamine is a fixed dose and is not dosed by weight.",
                spec.from, spec.to, spec.to
            ))
            .with(Block::Chart { file: chart, caption: "Administrations by month and product".into() })
            .with(Block::Table(by_product(&input.exposure)))
            .with(Block::Table(by_demographics(input))),
    ]
}

fn by_product(cells: &[ExposureCell]) -> Table {
    let mut t = Table::new(
        "5.2-exposure-by-product",
        "Exposure by product, route and formulation",
        &[
            "Product",
            "Route",
            "Formulation",
            "Period",
            "Patients",
            "Administrations",
            "Total mg",
            "Administrations with weight",
            "Total mg/kg",
        ],
        "Patients: distinct patients with at least one administration in the period.",
    );
    for ((key, period), s) in by(cells, |c| (c.product.as_str(), c.route.as_str(), c.formulation.as_str())) {
        t.push(vec![
            key.0.into(),
            key.1.into(),
            key.2.into(),
            PERIODS[period].into(),
            (s.patients.len() as u64).into(),
            s.administrations.into(),
            num(s.mg, 1),
            s.with_weight.into(),
            num(s.mg_per_kg, 2),
        ]);
    }
    for ((_, period), s) in by(cells, |_| ()) {
        t.push(vec![
            "All".into(),
            "All".into(),
            "All".into(),
            PERIODS[period].into(),
            (s.patients.len() as u64).into(),
            s.administrations.into(),
            Cell::Text(String::new()),
            s.with_weight.into(),
            Cell::Text(String::new()),
        ]);
    }
    t
}

fn by_demographics(input: &Input) -> Table {
    let known: BTreeMap<&str, (&str, &str)> = input
        .demographics
        .iter()
        .map(|d| (d.patient_key.as_str(), (d.sex.as_str(), d.age_band.as_str())))
        .collect();
    let of = |c: &ExposureCell| known.get(c.patient_key.as_str()).copied().unwrap_or(("unknown", "unknown"));
    let mut t = Table::new(
        "5.2-exposure-by-sex-and-age",
        "Exposure by product, sex and age band",
        &["Product", "Sex", "Age band", "Period", "Patients", "Administrations", "Total mg"],
        "Sex and age band from the patient's enrolment; `unknown` where no enrolment was received by the lock.",
    );
    for ((key, period), s) in by(&input.exposure, |c| {
        let (sex, age) = of(c);
        (c.product.as_str(), sex, age)
    }) {
        t.push(vec![
            key.0.into(),
            key.1.into(),
            key.2.into(),
            PERIODS[period].into(),
            (s.patients.len() as u64).into(),
            s.administrations.into(),
            num(s.mg, 1),
        ]);
    }
    t
}

/// Administrations a month, one line per product (a point on each month's first day): stacked
/// daily bars would be one-day slivers for monthly totals.
fn monthly_chart(input: &Input) -> String {
    let mut series: BTreeMap<&str, Vec<pv_charts::Point>> = BTreeMap::new();
    for m in &input.monthly {
        let point = pv_charts::Point {
            x: f64::from(m.month_day),
            y: m.administrations as f64,
            lower: None,
            upper: None,
        };
        series.entry(m.product.as_str()).or_default().push(point);
    }
    let series: Vec<pv_charts::Series> = series
        .into_iter()
        .map(|(name, points)| pv_charts::Series { name: name.to_owned(), points })
        .collect();
    let frame =
        pv_charts::Frame::new("Administrations by month", "month", "administrations").with_size(640, 260);
    pv_charts::time_series(&frame, &series, None)
}
