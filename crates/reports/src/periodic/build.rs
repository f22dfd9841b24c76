//! Builds the report from its input: pure, deterministic (every table sorted on its total key,
//! every map ordered), and independent of the clock.

use std::collections::{BTreeMap, BTreeSet};

use pv_store::signals::SignalResult;

use super::exposure;
use super::input::{CaseAtLock, Input, SignalAtLock, Spec};
use super::report::{Block, Report, Section};
use crate::sections::HumanSections;
use crate::table::{Cell, Table, num, opt};

/// Builds the report for `spec` from `input`, with the parts people wrote from `human`.
pub fn build(spec: &Spec, input: &Input, human: &HumanSections) -> Report {
    let mut charts = BTreeMap::new();
    let mut sections = Vec::new();
    let push_human = |sections: &mut Vec<Section>, number: &str, title: &str| {
        sections.push(Section::new(number, title).with(Block::Human(human.get(number))));
    };
    sections.push(introduction(spec, input).with(Block::Human(human.get("1"))));
    push_human(&mut sections, "2", "Worldwide marketing authorisation status");
    push_human(&mut sections, "3", "Actions taken in the reporting interval for safety reasons");
    push_human(&mut sections, "4", "Changes to reference safety information");
    sections.extend(exposure::sections(spec, input, &mut charts));
    sections.extend(tabulations(spec, &input.cases));
    for (number, title) in LATER_HUMAN_SECTIONS {
        push_human(&mut sections, number, title);
    }
    sections.push(signal_overview(spec, &input.signals));
    push_human(&mut sections, "16", "Signal and risk evaluation");
    sections.extend(harm_sections(spec, input, &mut charts));
    push_human(&mut sections, "17", "Benefit evaluation");
    push_human(&mut sections, "18", "Integrated benefit-risk analysis for authorised indications");
    push_human(&mut sections, "19", "Conclusions and actions");
    sections.extend(appendices(spec, input));
    Report {
        spec: spec.clone(),
        sections,
        charts,
        facts: facts(spec, input),
        sections_sha256: human.sha256().to_owned(),
    }
}

const LATER_HUMAN_SECTIONS: [(&str, &str); 8] = [
    ("7", "Summaries of significant findings from clinical trials during the reporting interval"),
    ("8", "Findings from non-interventional studies"),
    ("9", "Information from other clinical trials and sources"),
    ("10", "Non-clinical data"),
    ("11", "Literature"),
    ("12", "Other periodic reports"),
    ("13", "Lack of efficacy in controlled clinical trials"),
    ("14", "Late-breaking information"),
];

/// `YYYY-MM-DD` of an instant (UTC).
pub(crate) fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

/// `YYYY-MM-DD HH:MM:SS UTC` of an instant.
pub(crate) fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn facts(spec: &Spec, input: &Input) -> Vec<(String, String)> {
    vec![
        ("Reporting interval".into(), format!("{} to {}", spec.from, spec.to)),
        ("Data-lock point".into(), instant(spec.lock_ms)),
        ("Cases at the data-lock point".into(), input.cases.len().to_string()),
        ("Organisation".into(), spec.organisation.clone()),
    ]
}

fn introduction(spec: &Spec, input: &Input) -> Section {
    Section::new("1", "Introduction").text(format!(
        "This report covers ketamine and esketamine as administered for depression by the reporting clinics, \
         from {} to {} (the reporting interval; cumulative figures run from the first record to the interval's \
         end). Its data-lock point is {}: it contains exactly what the gateway had accepted by then, each case \
         as the version known at that instant. Follow-up versions, nullifications and late events received \
         after the lock change nothing in it, and regenerating it gives the same bytes. Sections marked as \
         written by people come from the report's sections file; every other section is computed from the \
         event log. The data: {} patients' administrations and {} cases.",
        spec.from,
        spec.to,
        instant(spec.lock_ms),
        input.exposure.iter().map(|c| c.patient_key.as_str()).collect::<BTreeSet<_>>().len(),
        input.cases.len()
    ))
}

/// Section 6 with its 6.3 tabulation of reactions by SOC and PT.
fn tabulations(spec: &Spec, cases: &[CaseAtLock]) -> Vec<Section> {
    let s6 = Section::new("6", "Data in summary tabulations");
    let s61 = Section::new("6.1", "Reference information").text(
        "Reactions are coded to preferred terms (PT) and their primary system organ class (SOC) by the enricher's \
         dictionary. Without a licensed MedDRA release loaded, that is the demonstration dictionary: its terms \
         follow MedDRA's names but carry no codes, and reactions it cannot code are tabulated under their \
         verbatim text in the SOC \"(not coded)\".",
    );
    let s62 = Section::new(
        "6.2",
        "Cumulative summary tabulations of serious adverse events from clinical trials",
    )
    .text(
        "Not applicable: the data are post-marketing treatment records from clinics; no clinical-trial data.",
    );
    let s63 = Section::new("6.3", "Cumulative and interval summary tabulations from post-marketing data sources")
        .text(
            "Adverse reactions by SOC and PT, each PT counted once per case (serious when any of its reports in \
             the case meets a seriousness criterion). Interval: cases the clinic first received in the reporting \
             interval; cumulative: up to the interval's end. Nullified cases are excluded.",
        )
        .with(Block::Table(reaction_tabulation(spec, cases)));
    vec![s6, s61, s62, s63]
}

/// PTs of a case: PT -> (SOC, serious in any of its reports).
fn case_terms(c: &CaseAtLock) -> BTreeMap<String, (String, bool)> {
    let mut terms: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for r in &c.case.reactions {
        let pt = r.pt.clone().unwrap_or_else(|| r.verbatim.clone());
        let soc = r.soc.clone().unwrap_or_else(|| "(not coded)".into());
        let e = terms.entry(pt).or_insert((soc, false));
        e.1 |= r.seriousness.is_serious();
    }
    terms
}

fn reaction_tabulation(spec: &Spec, cases: &[CaseAtLock]) -> Table {
    // (SOC, PT) -> [interval serious, interval non-serious, cumulative serious, cumulative non-serious]
    let mut counts: BTreeMap<(String, String), [u64; 4]> = BTreeMap::new();
    for c in cases.iter().filter(|c| c.first_reported_ms < spec.end_ms()) {
        let interval = spec.in_interval(c.first_reported_ms);
        for (pt, (soc, serious)) in case_terms(c) {
            let n = counts.entry((soc, pt)).or_default();
            let column = if serious { 0 } else { 1 };
            if interval {
                n[column] += 1;
            }
            n[column + 2] += 1;
        }
    }
    let mut t = Table::new(
        "6.3-reactions-by-soc-and-pt",
        "Adverse reactions by SOC and PT: interval and cumulative, serious and non-serious",
        &[
            "SOC",
            "PT",
            "Interval serious",
            "Interval non-serious",
            "Cumulative serious",
            "Cumulative non-serious",
        ],
        "Cases reporting the PT; the All row adds them up (case-PT pairs).",
    );
    let mut total = [0u64; 4];
    for ((soc, pt), n) in counts {
        total.iter_mut().zip(n).for_each(|(t, v)| *t += v);
        t.push(vec![soc.into(), pt.into(), n[0].into(), n[1].into(), n[2].into(), n[3].into()]);
    }
    t.push(vec![
        "All".into(),
        "All".into(),
        total[0].into(),
        total[1].into(),
        total[2].into(),
        total[3].into(),
    ]);
    t
}

fn category(spec: &Spec, s: &SignalAtLock) -> Option<&'static str> {
    let closed = s.last_change == "closed";
    if closed && s.last_change_ms < spec.from_ms() {
        return None;
    }
    Some(if s.first_signalled_ms >= spec.end_ms() {
        "new after the interval"
    } else if closed && s.last_change_ms < spec.end_ms() {
        "closed in the interval"
    } else if s.first_signalled_ms >= spec.from_ms() {
        "new in the interval"
    } else {
        "ongoing"
    })
}

fn signal_overview(spec: &Spec, signals: &[SignalAtLock]) -> Section {
    let mut t = Table::new(
        "15-signals",
        "Signals new, ongoing or closed in the reporting interval, as at the data-lock point",
        &[
            "Event",
            "Analysis",
            "Product",
            "Route",
            "Subgroup",
            "Category",
            "Detected",
            "Status at lock",
            "Cases",
            "Estimate (95% CI)",
            "Evaluation and action",
            "Source",
        ],
        "Status: the signal workflow's state at the lock when someone acted on the signal, else the signals \
         service's last change. Detected: the date the signal was first raised. Signals raised after the \
         interval's end but before the lock are listed as new after the interval (see also section 14).",
    );
    let mut sorted: Vec<&SignalAtLock> = signals.iter().collect();
    sorted.sort_by(|a, b| (&a.event, &a.analysis, &a.key).cmp(&(&b.event, &b.analysis, &b.key)));
    for s in sorted {
        let Some(cat) = category(spec, s) else { continue };
        let (status, evaluation, source) = match &s.workflow {
            Some(w) => (
                w.state.clone(),
                format!("{} ({}, {})", w.rationale, w.actor_role, date(w.at_ms)),
                "workflow",
            ),
            None => (s.last_change.clone(), "not yet evaluated".into(), "change log"),
        };
        let estimate =
            format!("{} ({}-{})", num(s.estimate, 2).text(), num(s.lower, 2).text(), num(s.upper, 2).text());
        t.push(vec![
            s.event.clone().into(),
            s.analysis.clone().into(),
            s.product.clone().into(),
            s.route.clone().into(),
            s.subgroup.clone().into(),
            cat.into(),
            date(s.first_signalled_ms).into(),
            status.into(),
            s.n.into(),
            estimate.into(),
            evaluation.into(),
            source.into(),
        ]);
    }
    let count = t.rows.len();
    Section::new("15", "Overview of signals: new, ongoing or closed")
        .text(format!(
            "{count} signals were new, ongoing or closed in the reporting interval or raised before the lock."
        ))
        .with(Block::Table(t))
}

/// The analyses of `harm` by `analysis`, cumulative (the person-time analyses run on everything
/// received by the lock).
fn of<'a>(input: &'a Input, harm: &'a str, analysis: &'a str) -> impl Iterator<Item = &'a SignalResult> {
    input
        .analyses
        .iter()
        .filter(move |r| r.event == harm && r.analysis == analysis && r.time_window != "period")
}

fn stratum(r: &SignalResult) -> [Cell; 4] {
    [r.product.clone().into(), r.route.clone().into(), r.dose_band.clone().into(), r.subgroup.clone().into()]
}

fn harm_sections(spec: &Spec, input: &Input, charts: &mut BTreeMap<String, String>) -> Vec<Section> {
    let mut out = vec![Section::new("16.4", "Harms of special interest (computed)").text(
        "For each harm of special interest: incidence on person-time with exact Poisson 95% intervals, the \
         dose-response (rate ratios by lagged cumulative-dose band, adjusted by Poisson regression), time to \
         onset, the sequential test that decides the signal, and the outcomes reported. These are the signals \
         service's analyses of everything received by the data-lock point; README's Methods section states each \
         one's estimand, comparator and limits.",
    )];
    for (i, (harm, rationale)) in input.harms.iter().enumerate() {
        out.push(harm_section(spec, input, &format!("16.4.{}", i + 1), harm, rationale, charts));
    }
    out
}

fn harm_section(
    spec: &Spec,
    input: &Input,
    number: &str,
    harm: &str,
    rationale: &str,
    charts: &mut BTreeMap<String, String>,
) -> Section {
    let title = match harm {
        "urological" => "Urological harm".to_owned(),
        "dependence" => "Dependence and abuse".to_owned(),
        other => other.to_owned(),
    };
    let chart = format!("charts/{harm}-incidence-by-dose-band.svg");
    charts.insert(chart.clone(), incidence_chart(input, harm, &title));
    Section::new(number, &title)
        .text(format!("Risk window: {rationale}."))
        .with(Block::Chart {
            file: chart,
            caption: format!("{title}: incidence per 100 patient-years by dose band"),
        })
        .with(Block::Table(incidence_table(input, harm)))
        .with(Block::Table(rate_ratio_table(input, harm)))
        .with(Block::Table(onset_table(input, harm)))
        .with(Block::Table(sequential_table(input, harm)))
        .with(Block::Table(outcome_table(spec, &input.cases, harm)))
}

fn incidence_chart(input: &Input, harm: &str, title: &str) -> String {
    let bars: Vec<pv_charts::Bar> = of(input, harm, "incidence_per_100_patient_years")
        .filter(|r| r.dose_band != "*" && r.subgroup == "*")
        .map(|r| pv_charts::Bar {
            label: format!("{} {}", r.product, r.dose_band),
            value: r.estimate,
            lower: Some(r.lower),
            upper: Some(r.upper),
            note: Some(format!("n = {}", r.n)),
        })
        .collect();
    let frame = pv_charts::Frame::new(
        &format!("{title}: incidence by lagged cumulative-dose band"),
        "dose band",
        "per 100 patient-years",
    )
    .with_size(640, 280);
    pv_charts::bars(&frame, &bars, None)
}

fn sorted_rows(mut t: Table) -> Table {
    t.rows.sort_by_key(|row| row.iter().map(Cell::text).collect::<Vec<_>>());
    t
}

fn incidence_table(input: &Input, harm: &str) -> Table {
    let mut t = Table::new(
        &format!("16.4-{harm}-incidence"),
        "Incidence per 100 patient-years (exact Poisson 95% CI)",
        &["Product", "Route", "Dose band", "Subgroup", "Cases", "Patient-years", "Rate", "Lower", "Upper"],
        "Incident cases (first per patient) in the risk window; `*` is all levels.",
    );
    for r in of(input, harm, "incidence_per_100_patient_years") {
        let mut row = stratum(r).to_vec();
        row.extend([r.n.into(), num(r.denominator, 1), num(r.estimate, 2), num(r.lower, 2), num(r.upper, 2)]);
        t.push(row);
    }
    sorted_rows(t)
}

fn rate_ratio_table(input: &Input, harm: &str) -> Table {
    let mut t = Table::new(
        &format!("16.4-{harm}-dose-response"),
        "Dose-response: adjusted rate ratios (Poisson regression, cluster-robust 95% CI)",
        &["Product", "Route", "Dose band", "Comparison", "Cases", "Rate ratio", "Lower", "Upper", "p"],
        "Against the lowest band with cases; adjusted for time on treatment, quarter, clinic, age band and sex.",
    );
    for r in of(input, harm, "rate_ratio") {
        let mut row = stratum(r).to_vec();
        row.extend([r.n.into(), num(r.estimate, 2), num(r.lower, 2), num(r.upper, 2), opt(r.p_value, 4)]);
        t.push(row);
    }
    sorted_rows(t)
}

fn onset_table(input: &Input, harm: &str) -> Table {
    let mut t = Table::new(
        &format!("16.4-{harm}-time-to-onset"),
        "Time to onset from the first dose (days)",
        &["Product", "Route", "Dose band", "Subgroup", "Cases", "Median", "Lower quartile", "Upper quartile"],
        "Cases with a known onset date.",
    );
    for r in of(input, harm, "time_to_onset") {
        let mut row = stratum(r).to_vec();
        row.extend([r.n.into(), num(r.estimate, 0), num(r.lower, 0), num(r.upper, 0)]);
        t.push(row);
    }
    sorted_rows(t)
}

fn sequential_table(input: &Input, harm: &str) -> Table {
    let mut t = Table::new(
        &format!("16.4-{harm}-sequential-test"),
        "Sequential test (MaxSPRT / CMaxSPRT) at the data-lock point",
        &[
            "Product",
            "Route",
            "Dose band",
            "Subgroup",
            "Cases",
            "Expected",
            "LLR",
            "Critical value",
            "Signal",
            "Flags",
        ],
        "Expected: the background rate times the administrations to patients still free of the harm.",
    );
    for r in of(input, harm, "sequential_test") {
        let mut row = stratum(r).to_vec();
        let signal = if r.signal { "yes" } else { "no" };
        row.extend([
            r.n.into(),
            num(r.denominator, 2),
            opt(r.llr, 3),
            opt(r.cv, 3),
            signal.into(),
            r.flags.clone().into(),
        ]);
        t.push(row);
    }
    sorted_rows(t)
}

fn outcome_table(spec: &Spec, cases: &[CaseAtLock], harm: &str) -> Table {
    let mut counts: BTreeMap<(String, String), [u64; 2]> = BTreeMap::new();
    for c in cases.iter().filter(|c| c.first_reported_ms < spec.end_ms()) {
        let product = suspect_products(c);
        for r in c.case.reactions.iter().filter(|r| r.groups.iter().any(|g| g == harm)) {
            let outcome = serde_json::to_value(r.outcome).ok().and_then(|v| v.as_str().map(str::to_owned));
            let n = counts.entry((product.clone(), outcome.unwrap_or_default())).or_default();
            if spec.in_interval(c.first_reported_ms) {
                n[0] += 1;
            }
            n[1] += 1;
        }
    }
    let mut t = Table::new(
        &format!("16.4-{harm}-outcomes"),
        "Outcomes of the reactions in the group, as reported at the lock",
        &["Suspect product", "Outcome", "Interval", "Cumulative"],
        "Reactions (a case may report more than one).",
    );
    for ((product, outcome), n) in counts {
        t.push(vec![product.into(), outcome.into(), n[0].into(), n[1].into()]);
    }
    t
}

/// The monitored products a case names as suspect, joined with `+` (`none` when it names none).
pub(crate) fn suspect_products(c: &CaseAtLock) -> String {
    let products: BTreeSet<String> = c
        .case
        .drugs
        .iter()
        .filter(|d| d.role == pv_events::DrugRole::Suspect)
        .filter_map(|d| d.product.and_then(|p| serde_json::to_value(p).ok()?.as_str().map(str::to_owned)))
        .collect();
    if products.is_empty() { "none".into() } else { products.into_iter().collect::<Vec<_>>().join("+") }
}

fn appendices(spec: &Spec, input: &Input) -> Vec<Section> {
    let s20 = Section::new("20", "Appendices");
    let listing = Section::new("20.1", "Line listing of serious cases in the reporting interval")
        .text("Every case first received in the interval with at least one serious reaction, as its version at the lock.")
        .with(Block::Table(super::listing::serious_cases(spec, input)));
    let lock = Section::new("20.2", "Data-lock provenance")
        .text(
            "The event log's positions at the lock: in each partition of the raw topic, every message before the \
             offset shown had been accepted by the gateway by the data-lock point. And the rows read from each \
             table. The manifest beside this PDF repeats them with the SHA-256 of every output file.",
        )
        .with(Block::Table(super::listing::positions(input)))
        .with(Block::Table(super::listing::rows_read(input)));
    vec![s20, listing, lock]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn spec() -> Spec {
        let d = |m, day| chrono::NaiveDate::from_ymd_opt(2026, m, day).expect("date");
        Spec { from: d(4, 1), to: d(6, 30), lock_ms: 0, title: String::new(), organisation: String::new() }
    }

    fn signal(first: i64, change: &str, at: i64) -> SignalAtLock {
        SignalAtLock {
            key: "k".into(),
            analysis: "sequential_test".into(),
            product: "ketamine".into(),
            route: "*".into(),
            event: "urological".into(),
            subgroup: "*".into(),
            first_signalled_ms: first,
            last_change: change.into(),
            last_change_ms: at,
            n: 3,
            estimate: 1.0,
            lower: 0.5,
            upper: 2.0,
            workflow: None,
        }
    }

    #[test]
    fn signals_are_new_ongoing_or_closed_relative_to_the_interval() {
        let s = spec();
        let (from, end) = (s.from_ms(), s.end_ms());
        assert_eq!(category(&s, &signal(from, "new", from)), Some("new in the interval"));
        assert_eq!(category(&s, &signal(from - DAY, "updated", from + DAY)), Some("ongoing"));
        assert_eq!(category(&s, &signal(from - DAY, "closed", end - 1)), Some("closed in the interval"));
        assert_eq!(category(&s, &signal(from - 9 * DAY, "closed", from - DAY)), None, "closed before it");
        assert_eq!(category(&s, &signal(end, "new", end)), Some("new after the interval"));
        // Raised and closed within the interval: closed in it.
        assert_eq!(
            category(&s, &signal(from + DAY, "closed", from + 2 * DAY)),
            Some("closed in the interval")
        );
    }
}
