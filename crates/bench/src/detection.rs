//! Detection performance of the signals service itself: many simulated worlds whose truth is
//! known, each loaded into ClickHouse and read by the service's own queries and analyses
//! ([`pv_signals::SignalsService::evaluate`]), scored against the ground truth.
//!
//! A world's events are enriched in-process by the real enricher (the pure step, in submission
//! order) and stored as the sink's rows, each accepted an hour after its own time; Kafka is
//! bypassed (its delivery is proven elsewhere) so that hundreds of worlds fit in a sitting. One
//! evaluation per world, as received two days after the simulated end: the sequential tests
//! evaluate their whole path, so the day the null was first rejected is the detection day (what
//! a run every few minutes would have seen, give or take the 2-72 h reporting delay and the 2%
//! of events sent up to 14 days late).
//!
//! Scored per world: for each planted harm, whether a sequential test of its group signalled in
//! one of its products, and how many days after its first planted onset; whether any harm signal
//! was raised where nothing was planted (another group, another product, or a null world).

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::NaiveDate;
use pv_events::{ClinicEvent, Timestamp};
use pv_score::HarmSignal;
use pv_signals::{SignalsConfig, SignalsService};
use pv_simulate::{GroundTruth, Scenario, SimConfig, generate};
use pv_store::events::{AE_REPORT_VERSIONS, AnyRow, DOSES, ENROLMENTS, MONITORING_FORMS, Provenance};
use pv_store::{Db, Schema};

use crate::BenchEnv;

/// One simulated world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct World {
    /// What is planted.
    pub scenario: Scenario,
    /// Effect size (1 = the simulator's defaults).
    pub effect: f64,
    /// Patients.
    pub patients: u32,
    /// Seed.
    pub seed: u64,
}

/// One world scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The world.
    pub world: World,
    /// Per planted harm (group): detected in one of its products, and days from its first onset.
    pub detected: BTreeMap<String, Option<f64>>,
    /// A harm signal where nothing was planted.
    pub false_signal: bool,
    /// Every harm signal raised.
    pub signals: Vec<HarmSignal>,
    /// Events in the world.
    pub events: usize,
    /// Every sequential test: (group, product, cases, expected under H0).
    pub tests: Vec<(String, String, u64, f64)>,
}

/// The simulated period of every world: a year.
pub const DAYS: u32 = 365;

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default()
}

/// The simulation of a world (submission order), each event accepted an hour after its time.
pub fn simulate(world: World) -> (Vec<ClinicEvent>, GroundTruth) {
    let mut cfg = SimConfig {
        seed: world.seed,
        start: start(),
        days: DAYS,
        ..SimConfig::with_patients(world.patients)
    };
    world.scenario.apply(&mut cfg, world.effect);
    let mut sim = generate(&cfg);
    for e in &mut sim.events {
        let t = pv_simulate::event_time(e);
        e.set_received_at(Timestamp::from_millis(t.millis() + 3_600_000));
    }
    (sim.events, sim.truth)
}

/// Enriches `events` in submission order and stores them as the sink would (monitoring forms
/// are left out: no analysis of the signals service reads them).
pub async fn load(db: &Db, events: &[ClinicEvent]) -> anyhow::Result<()> {
    let enricher = pv_enrich::Enricher::new(
        pv_enrich::Pseudonymiser::new(b"detection benchmark secret, 32+ bytes long").context("secret")?,
        pv_coding::Coder::demo().context("demo dictionary")?,
        pv_events::Limits::default(),
    );
    let mut store = pv_enrich::PatientStore::default();
    let (mut doses, mut reports, mut enrolments) = (Vec::new(), Vec::new(), Vec::new());
    for (i, e) in events.iter().enumerate() {
        let Ok(out) = enricher.enrich(&mut store, e) else { continue };
        let at = Provenance { partition: 0, offset: i as i64 };
        match AnyRow::new(&out.event, at) {
            Ok(AnyRow::Dose(r)) => doses.push(r),
            Ok(AnyRow::AdverseEvent(r)) => reports.push(r),
            Ok(AnyRow::Enrolment(r)) => enrolments.push(r),
            Ok(AnyRow::Monitoring(_)) | Err(_) => {}
        }
    }
    for chunk in doses.chunks(200_000) {
        db.insert(&DOSES, chunk).await?;
    }
    for chunk in reports.chunks(50_000) {
        db.insert(&AE_REPORT_VERSIONS, chunk).await?;
    }
    db.insert(&ENROLMENTS, &enrolments).await?;
    Ok(())
}

/// Empties the event tables (and the views' targets) for the next world.
pub async fn clear(db: &Db) -> anyhow::Result<()> {
    let mut tables: Vec<&dyn Schema> = vec![&DOSES, &MONITORING_FORMS, &AE_REPORT_VERSIONS, &ENROLMENTS];
    tables.extend([&pv_store::events::AE_CASES as &dyn Schema, &pv_store::events::CASE_SUMMARIES]);
    for t in tables {
        db.sql("TRUNCATE TABLE {t}").table("t", t).execute().await?;
    }
    Ok(())
}

/// Runs one world in `env`'s database and scores it.
pub async fn run_world(env: &BenchEnv, service: &SignalsService, world: World) -> anyhow::Result<Outcome> {
    let (events, truth) = simulate(world);
    let db = env.db();
    clear(&db).await?;
    load(&db, &events).await?;
    let end = start() + chrono::Days::new(u64::from(DAYS) + 2);
    let as_of = end.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis();
    let evaluation = service.evaluate(as_of).await?;
    let d = pv_score::score(&truth, pv_score::harm_signals(&evaluation.results));
    let mut outcome = Outcome {
        world,
        detected: d.detected,
        false_signal: d.false_signal,
        signals: d.signals,
        events: events.len(),
        tests: vec![],
    };
    outcome.tests = evaluation
        .results
        .iter()
        .filter(|r| r.analysis == "sequential_test")
        .map(|r| (r.event.clone(), r.product.clone(), r.n, r.denominator))
        .collect();
    Ok(outcome)
}

/// The signals configuration the benchmark evaluates: the shipped defaults.
pub fn config() -> SignalsConfig {
    SignalsConfig::default()
}

/// A grid cell's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Scenario.
    pub scenario: Scenario,
    /// Effect size.
    pub effect: f64,
    /// Patients.
    pub patients: u32,
    /// Worlds run.
    pub runs: usize,
    /// Per planted group: worlds that detected it, and the median days from onset.
    pub detected: BTreeMap<String, (usize, f64)>,
    /// Worlds where every planted harm was detected in its product.
    pub all_detected: usize,
    /// Worlds with a harm signal where nothing was planted.
    pub false_signals: usize,
}

/// Summarises the outcomes of one grid cell.
pub fn summarise(outcomes: &[Outcome]) -> Option<Summary> {
    let first = outcomes.first()?;
    let mut detected: BTreeMap<String, (usize, Vec<f64>)> = BTreeMap::new();
    for o in outcomes {
        for (g, d) in &o.detected {
            let e = detected.entry(g.clone()).or_default();
            if let Some(days) = d {
                e.0 += 1;
                e.1.push(*days);
            }
        }
    }
    Some(Summary {
        scenario: first.world.scenario,
        effect: first.world.effect,
        patients: first.world.patients,
        runs: outcomes.len(),
        detected: detected.into_iter().map(|(g, (n, days))| (g, (n, crate::median(&days)))).collect(),
        all_detected: outcomes
            .iter()
            .filter(|o| !o.detected.is_empty() && o.detected.values().all(Option::is_some))
            .count(),
        false_signals: outcomes.iter().filter(|o| o.false_signal).count(),
    })
}

/// The grid of the detection benchmark: (scenario, effect, patients).
pub fn grid(sizes: &[u32]) -> Vec<(Scenario, f64, u32)> {
    let mut g: Vec<(Scenario, f64, u32)> = Vec::new();
    for &n in sizes {
        g.push((Scenario::SurgeOnly, 0.0, n));
    }
    for &n in sizes {
        g.push((Scenario::Default, 1.0, n));
    }
    for effect in [0.25, 0.5, 2.0] {
        g.push((Scenario::Default, effect, 2000));
    }
    for s in [Scenario::EsketamineOnly, Scenario::LateOnset, Scenario::Switching, Scenario::Older28mg] {
        g.push((s, 1.0, 2000));
    }
    g
}

/// Runs every cell of `grid` over seeds `1..=seeds` in `env`'s database; `each` sees every
/// world's outcome as it comes.
pub async fn run_grid(
    env: &BenchEnv,
    grid: &[(Scenario, f64, u32)],
    seeds: u64,
    mut each: impl FnMut(&Outcome),
) -> anyhow::Result<Vec<Summary>> {
    pv_store::migrate(&env.clickhouse).await?;
    let service = SignalsService::new(config(), &env.clickhouse, &env.kafka)?;
    let mut summaries = Vec::new();
    for &(scenario, effect, patients) in grid {
        let mut outcomes = Vec::new();
        for seed in 1..=seeds {
            let o = run_world(env, &service, World { scenario, effect, patients, seed }).await?;
            each(&o);
            outcomes.push(o);
        }
        summaries.extend(summarise(&outcomes));
    }
    Ok(summaries)
}

/// The table of BENCHMARKS.md.
pub fn markdown(summaries: &[Summary]) -> String {
    let mut out = String::from(
        "| scenario | effect | patients | runs | urological detected | median days to detection | dependence detected | median days | all planted detected | runs with a false harm signal |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let cell = |s: &Summary, g: &str| match s.detected.get(g) {
        Some((n, days)) => {
            (format!("{n}/{}", s.runs), if days.is_finite() { format!("{days:.0}") } else { "-".into() })
        }
        None => ("(none planted)".into(), "-".into()),
    };
    for s in summaries {
        let (u, ud) = cell(s, "urological");
        let (d, dd) = cell(s, "dependence");
        let all =
            if s.detected.is_empty() { "-".to_string() } else { format!("{}/{}", s.all_detected, s.runs) };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {u} | {ud} | {d} | {dd} | {all} | {}/{} |\n",
            s.scenario.name(),
            s.effect,
            s.patients,
            s.runs,
            s.false_signals,
            s.runs
        ));
    }
    out
}

/// The power curve: the share of worlds detecting every planted harm, by cohort size (default
/// effect) and by effect size (2,000 patients), and the share of null worlds with a false alarm,
/// with Wilson 95% intervals.
pub fn power_svg(summaries: &[Summary]) -> String {
    let bar = |label: String, k: usize, n: usize| {
        let p = pv_stats::proportion::wilson(k as u64, n as u64, 1.959_963_984_540_054);
        pv_charts::Bar {
            label,
            value: 100.0 * k as f64 / n.max(1) as f64,
            lower: Some(100.0 * p.lower),
            upper: Some(100.0 * p.upper),
            note: Some(format!("{k}/{n}")),
        }
    };
    let mut bars = Vec::new();
    for s in summaries.iter().filter(|s| s.scenario == Scenario::Default) {
        let label = if s.effect == 1.0 { format!("{}", s.patients) } else { format!("x{}", s.effect) };
        bars.push(bar(label, s.all_detected, s.runs));
    }
    for s in summaries.iter().filter(|s| s.scenario == Scenario::SurgeOnly) {
        bars.push(bar(format!("null {}", s.patients), s.false_signals, s.runs));
    }
    let frame = pv_charts::Frame::new(
        "Worlds detecting both planted harms in the right product, and surge-only worlds with a false harm signal",
        "patients (default effect) | effect multiple (2,000 patients) | surge-only worlds by patients",
        "% of worlds",
    )
    .with_size(900, 320);
    pv_charts::bars(&frame, &bars, Some((90.0, "target 90%")))
}
