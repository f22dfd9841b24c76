//! Signal detection end to end: simulated streams go through the real broker, enricher and
//! sink into real ClickHouse, the signals service runs over them, and its results, its change
//! events on the signals topic and its change log are checked.
//!
//! - The planted stream (dose-dependent urological hazard in both products, a ketamine
//!   dependence subgroup) must raise the sequential tests of both harms in ketamine, never a
//!   dependence signal in esketamine, and show the dose-response and protocol deviations.
//! - A stream with the urological harm in esketamine only signals esketamine, not ketamine.
//! - A stream with a reporting surge and no harm flags the surge as a reporting artefact and
//!   raises no harm signal; the null stream raises no signal at all.
//! - Re-delivered rows and a re-ordered stream change no result.
//!
//! `PV_TEST_SEED` replaces the simulator seed (default 11) to try the same checks on other
//! streams.

mod common;

use std::collections::HashSet;

use chrono::NaiveDate;
use common::{TestEnv, read_topic, through_pipeline};
use pv_events::{AdverseEventReport, ClinicEvent, DoseAdministered, EventCodec, EventId, Timestamp};
use pv_signals::{RunReport, SignalEvent, SignalsConfig, SignalsService};
use pv_simulate::{Harms, SimConfig, generate};

const CLINICS: u32 = 10;
const PATIENTS_PER_CLINIC: u32 = 150;
const DAYS: u32 = 270;

fn seed() -> u64 {
    std::env::var("PV_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11)
}

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).expect("date")
}

/// Midnight UTC after the last simulated day: the data reach no further.
fn simulated_end_ms() -> i64 {
    let end = start() + chrono::Days::new(u64::from(DAYS));
    end.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis()
}

/// Feeds the simulation through enricher and sink, then runs the signals service once.
async fn pipeline(env: &TestEnv, harms: Harms, seed: u64) -> (SignalsService, RunReport) {
    let mut sim = generate(&SimConfig {
        seed,
        clinics: CLINICS,
        patients_per_clinic: PATIENTS_PER_CLINIC,
        start: start(),
        days: DAYS,
        harms,
        ..SimConfig::default()
    });
    through_pipeline(env, &mut sim.events).await;

    let cfg = SignalsConfig { topic: env.signals_topic.clone(), ..SignalsConfig::default() };
    let service = SignalsService::new(cfg, &env.clickhouse, &env.kafka).expect("signals service");
    // As received now: everything sent counts; the follow-up ends with the simulated data.
    let report = service.run_once(None).await.expect("signals run");
    assert!(
        report.data_end_ms <= simulated_end_ms() && report.data_end_ms > simulated_end_ms() - 86_400_000 * 3
    );
    for r in report.signals() {
        eprintln!(
            "signal: {} {} {}/{}/{} band {} {}: n {} estimate {:.3} ({:.3}-{:.3}) z {:?} flags {}",
            r.analysis,
            r.time_window,
            r.product,
            r.route,
            r.formulation,
            r.dose_band,
            r.event,
            r.n,
            r.estimate,
            r.lower,
            r.upper,
            r.trend_z,
            r.flags
        );
    }
    (service, report)
}

/// The signal events on the topic, decoded.
fn topic_events(env: &TestEnv) -> Vec<SignalEvent> {
    let codec = EventCodec::global();
    read_topic(&env.kafka, &env.signals_topic)
        .iter()
        .map(|m| {
            let e: SignalEvent = codec.decode_record(&m.payload).expect("signal event decodes");
            assert_eq!(m.key.as_deref(), Some(e.signal_key.as_bytes()), "keyed by signal");
            e
        })
        .collect()
}

/// The harm signals of a run: (group, product) of every sequential test that signalled.
fn harm_signals(report: &RunReport) -> Vec<(String, String)> {
    report
        .signals()
        .filter(|r| r.analysis == "sequential_test")
        .map(|r| (r.event.clone(), r.product.clone()))
        .collect()
}

fn result<'a>(
    report: &'a RunReport,
    analysis: &str,
    product: &str,
    band: &str,
    event: &str,
    subgroup: &str,
) -> &'a pv_signals::SignalResult {
    report
        .results
        .iter()
        .find(|r| {
            (
                r.analysis.as_str(),
                r.product.as_str(),
                r.dose_band.as_str(),
                r.event.as_str(),
                r.subgroup.as_str(),
            ) == (analysis, product, band, event, subgroup)
                && r.route == "*"
        })
        .unwrap_or_else(|| panic!("no {analysis} {product} {band} {event} {subgroup}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_harms_are_detected_in_the_right_product_and_emitted() {
    let env = TestEnv::new("signals_planted").await;
    let (service, report) = pipeline(&env, Harms::default(), seed()).await;

    // Results cover every analysis family.
    for analysis in [
        "disproportionality",
        "incidence_per_1000_administrations",
        "incidence_per_100_patient_years",
        "rate_ratio",
        "time_to_onset",
        "sequential_test",
        "reporting_rate",
    ] {
        assert!(report.results.iter().any(|r| r.analysis == analysis), "no {analysis} results");
    }
    assert!(report.results.iter().all(|r| r.estimate.is_finite() && r.lower.is_finite()));

    // Both planted harms are detected in ketamine by their sequential tests; dependence (planted
    // in ketamine only) is not signalled in esketamine.
    let harms = harm_signals(&report);
    for want in [("urological", "ketamine"), ("dependence", "ketamine")] {
        assert!(harms.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} not in {harms:?}");
    }
    assert!(!harms.contains(&("dependence".to_string(), "esketamine".to_string())), "{harms:?}");
    let test = result(&report, "sequential_test", "ketamine", "*", "urological", "*");
    assert!(test.llr.expect("llr") >= test.cv.expect("cv") || test.flags.contains("rejected_on="));
    assert!(test.flags.contains("rejected_on=") && test.flags.contains("method=cmaxsprt"), "{}", test.flags);
    assert!(test.estimate > 1.0 && test.flags.contains("demo_background"));

    // The planted hazard grows with cumulative dose: the adjusted trend across ketamine's mg/kg
    // bands is above 1 (descriptive: it does not decide).
    let trend = result(&report, "rate_ratio", "ketamine", "*", "urological", "trend per band");
    assert!(trend.estimate > 1.0 && trend.trend_z.expect("z") > 2.0, "{trend:?}");
    assert!(!trend.signal);
    // The dependent subgroup deviates from its protocol: ketamine's rate of first deviations
    // per 100 patient-years is well above esketamine's.
    let ket = result(&report, "incidence_per_100_patient_years", "ketamine", "*", "protocol_deviation", "*");
    let esk =
        result(&report, "incidence_per_100_patient_years", "esketamine", "*", "protocol_deviation", "*");
    assert!(ket.n >= 20 && ket.lower > esk.estimate, "ketamine {ket:?} esketamine {esk:?}");

    // Every signal was emitted as a `new` change, once, and logged in signal_changes.
    let signals: HashSet<String> = report.signals().map(|r| r.key()).collect();
    let emitted = topic_events(&env);
    assert_eq!(emitted.len(), signals.len());
    assert!(emitted.iter().all(|e| e.change == "new" && e.as_of_ms == report.as_of_ms));
    assert_eq!(emitted.iter().map(|e| e.signal_key.clone()).collect::<HashSet<_>>(), signals);
    assert_eq!(report.changes, emitted);
    let logged: Vec<SignalEvent> = env
        .db()
        .sql("SELECT ?fields FROM {signal_changes} ORDER BY signal_key")
        .fetch_all()
        .await
        .expect("signal_changes");
    let mut sorted = emitted.clone();
    sorted.sort_by(|a, b| a.signal_key.cmp(&b.signal_key));
    assert_eq!(logged, sorted);
    let stored: u64 = env
        .db()
        .sql("SELECT count() FROM {signal_results} WHERE run_at_ms = {run_at_ms}")
        .bind("run_at_ms", report.run_at_ms)
        .fetch_one()
        .await
        .expect("signal_results");
    assert_eq!(stored, report.results.len() as u64);

    // Rows delivered twice (as after a sink crash between insert and commit) must count once:
    // physical duplicates of a third of the doses and of every report version.
    for sql in [
        "INSERT INTO {doses} SELECT * FROM {doses} WHERE cityHash64(toString(event_id)) % 3 = 0",
        "INSERT INTO {ae_report_versions} SELECT * FROM {ae_report_versions}",
    ] {
        env.db().sql(sql).execute().await.expect("re-delivering rows");
    }
    let physical = env.count("doses", false).await;
    assert!(physical > env.count("doses", true).await, "no physical duplicates to count once");

    // What a run counted is kept for `keep_counted_days` of runs: a run 8 days ago is dropped
    // by the next run, the runs of today stay.
    let db = env.db();
    let old_run = report.run_at_ms - 8 * 86_400_000;
    let stale = pv_store::signals::SignalContribution {
        run_at_ms: old_run,
        kind: "case".into(),
        ..Default::default()
    };
    db.insert(&pv_store::signals::SIGNAL_CONTRIBUTIONS, &[stale]).await.expect("old run's row");
    let runs_counted = || async { env.number("SELECT uniqExact(run_at_ms) FROM signal_contributions").await };
    assert_eq!(runs_counted().await, 2);

    // The same data again: the same results, nothing new to emit.
    let again = service.run_once(Some(report.as_of_ms)).await.expect("second run");
    // What the failing-runs alert reads: two successful runs, none failed, the last just now.
    let metrics = service.metrics();
    assert_eq!(metrics.runs.with_label_values(&["ok"]).get(), 2);
    assert_eq!(metrics.runs.with_label_values(&["failed"]).get(), 0);
    let since = chrono::Utc::now().timestamp_millis() as f64 / 1000.0 - metrics.last_success.get();
    assert!((0.0..120.0).contains(&since), "last success {since:.0} s ago");
    assert_eq!(runs_counted().await, 2, "the old run's counted cases are dropped, both of today's kept");
    assert_eq!(
        env.number(&format!("SELECT count() FROM signal_contributions WHERE run_at_ms = {old_run}")).await,
        0
    );
    let strip = |rs: &[pv_signals::SignalResult]| {
        let mut v: Vec<_> =
            rs.iter().map(|r| pv_signals::SignalResult { run_at_ms: 0, ..r.clone() }).collect();
        v.sort_by_key(|r| r.key());
        v
    };
    let (a, b) = (strip(&again.results), strip(&report.results));
    let changed: Vec<(&pv_signals::SignalResult, Option<&pv_signals::SignalResult>)> =
        a.iter().filter(|r| !b.contains(r)).map(|r| (r, b.iter().find(|o| o.key() == r.key()))).collect();
    assert!(changed.is_empty() && a.len() == b.len(), "duplicate rows changed results: {changed:#?}");
    assert_eq!(again.signals().map(|r| r.key()).collect::<HashSet<_>>(), signals);
    assert!(again.changes.is_empty(), "unchanged signals re-emitted: {:?}", again.changes);
    assert_eq!(topic_events(&env).len(), emitted.len());

    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_stream_raises_no_signal() {
    let env = TestEnv::new("signals_null").await;
    let (_service, report) = pipeline(&env, Harms::none(), seed()).await;
    assert!(report.results.len() > 100, "only {} results", report.results.len());
    let signals: Vec<String> = report.signals().map(|r| r.key()).collect();
    assert!(signals.is_empty(), "false alarms on a null stream: {signals:?}");
    assert!(report.changes.is_empty());
    assert!(read_topic(&env.kafka, &env.signals_topic).is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporting_surge_is_an_artefact_not_a_harm() {
    let env = TestEnv::new("signals_surge").await;
    let (_service, report) = pipeline(&env, Harms::surge_only(), seed()).await;
    assert!(harm_signals(&report).is_empty(), "{:?}", harm_signals(&report));
    let surges: Vec<&pv_signals::SignalResult> =
        report.signals().filter(|r| r.analysis == "reporting_rate").collect();
    assert!(!surges.is_empty(), "the surge was not recognised");
    assert!(surges.iter().all(|r| r.subgroup == "clinic=clinic-02" && r.estimate >= 2.0), "{surges:?}");
    // Only the artefact signals: nothing about a harm.
    assert!(report.signals().all(|r| r.analysis == "reporting_rate" || r.analysis == "disproportionality"));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_harm_in_esketamine_only_signals_esketamine_and_not_ketamine() {
    let env = TestEnv::new("signals_esk").await;
    let harms = Harms {
        urological_products: vec![pv_events::Product::Esketamine],
        dependence_share: 0.0,
        urological_per_gram: 0.008,
        ..Harms::default()
    };
    let (_service, report) = pipeline(&env, harms, seed()).await;
    let harms = harm_signals(&report);
    assert_eq!(harms, [("urological".to_string(), "esketamine".to_string())], "{harms:?}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reordered_stream_gives_the_same_results() {
    let env = TestEnv::new("signals_order").await;
    let sim = generate(&SimConfig {
        seed: seed(),
        clinics: 4,
        patients_per_clinic: 60,
        start: start(),
        days: DAYS,
        harms: Harms::default(),
        ..SimConfig::default()
    });
    let cfg = SignalsConfig { topic: env.signals_topic.clone(), ..SignalsConfig::default() };
    let service = SignalsService::new(cfg, &env.clickhouse, &env.kafka).expect("signals service");
    let mut events = sim.events.clone();
    through_pipeline(&env, &mut events).await;

    // The same events again, in another order: each patient's own events keep their order (the
    // gateway accepts a patient's events in order), the patients interleave differently.
    let other = TestEnv::new("signals_order2").await;
    let mut reordered = sim.events;
    reordered.sort_by_key(|e| {
        (pv_simulate::event_time(e).millis() / 86_400_000, std::cmp::Reverse(e.patient_ref().to_string()))
    });
    assert_ne!(reordered, events, "the order differs");
    through_pipeline(&other, &mut reordered).await;
    let service2 =
        SignalsService::new(SignalsConfig::default(), &other.clickhouse, &other.kafka).expect("signals");
    let as_of = chrono::Utc::now().timestamp_millis();
    let first = service.evaluate(as_of).await.expect("evaluate").results;
    let second = service2.evaluate(as_of).await.expect("evaluate").results;
    assert!(first.iter().any(|r| r.analysis == "sequential_test" && r.n > 0));
    assert_eq!(first.len(), second.len());
    let differ: Vec<String> =
        first.iter().zip(&second).filter(|(a, b)| a != b).map(|(a, _)| a.key()).collect();
    assert!(differ.is_empty(), "results changed with the order: {differ:?}");
    other.cleanup().await;

    // As received: data received after the as-of instant changes nothing about a run as of it.
    // A nullification and a follow-up of existing cases, a new urological case and a late dose,
    // all with event times inside the period, arrive after `as_of`.
    let extras = late_arrivals(&events);
    assert_eq!(extras.len(), 4);
    let mut again: Vec<ClinicEvent> = events.iter().cloned().chain(extras).collect();
    through_pipeline(&env, &mut again).await;
    let reproduced = service.evaluate(as_of).await.expect("evaluate").results;
    let changed: Vec<String> =
        first.iter().zip(&reproduced).filter(|(a, b)| a != b).map(|(a, _)| a.key()).collect();
    assert!(first.len() == reproduced.len() && changed.is_empty(), "a past run changed: {changed:?}");
    // Now, they count.
    let now = service.evaluate(chrono::Utc::now().timestamp_millis()).await.expect("evaluate").results;
    let cases = |rs: &[pv_signals::SignalResult]| {
        rs.iter()
            .filter(|r| r.analysis == "incidence_per_1000_administrations" && r.event_level == "pt")
            .map(|r| r.n)
            .sum::<u64>()
    };
    assert_ne!(cases(&now), cases(&first), "the late arrivals count once received");
    env.cleanup().await;
}

/// Events a clinic sends late about the past: a nullification of a case with one version, a
/// follow-up adding a urological reaction to another, a new urological case and a dose given a
/// day before an existing one.
fn late_arrivals(events: &[ClinicEvent]) -> Vec<ClinicEvent> {
    let reports: Vec<&AdverseEventReport> = events
        .iter()
        .filter_map(|e| match e {
            ClinicEvent::AdverseEventReport(r) => Some(r),
            _ => None,
        })
        .collect();
    let mut singles = reports
        .iter()
        .copied()
        .filter(|r| reports.iter().filter(|o| o.report_id == r.report_id).count() == 1);
    let nullified = singles.next().expect("a case with one version");
    let followed = singles.next().expect("another");
    let mut out = vec![ClinicEvent::AdverseEventReport(AdverseEventReport {
        event_id: EventId::new_random(),
        version: 2,
        nullification: true,
        nullification_reason: Some("entered for the wrong patient".into()),
        ..nullified.clone()
    })];
    let mut follow = AdverseEventReport { event_id: EventId::new_random(), version: 2, ..followed.clone() };
    let mut bladder = follow.reactions[0].clone();
    bladder.verbatim = "bladder pain".into();
    follow.reactions.push(bladder);
    out.push(ClinicEvent::AdverseEventReport(follow.clone()));
    out.push(ClinicEvent::AdverseEventReport(AdverseEventReport {
        event_id: EventId::new_random(),
        report_id: format!("{}-late", follow.report_id),
        version: 1,
        ..follow
    }));
    let dose = events
        .iter()
        .find_map(|e| match e {
            ClinicEvent::DoseAdministered(d) if d.session_number == 5 => Some(d.clone()),
            _ => None,
        })
        .expect("a fifth session");
    out.push(ClinicEvent::DoseAdministered(DoseAdministered {
        event_id: EventId::new_random(),
        administered_at: Timestamp::from_millis(dose.administered_at.millis() - 86_400_000),
        session_number: 99,
        ..dose
    }));
    out
}
