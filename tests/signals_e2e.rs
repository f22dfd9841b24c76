//! Signal detection end to end: a simulated stream goes through the real broker, enricher and
//! sink into real ClickHouse, the signals service runs over it, and its results, its change
//! events on the signals topic and its change log are checked.
//!
//! - The planted stream (dose-dependent urological hazard, a dependence subgroup that escalates
//!   its dose) must raise a urological dose-response signal for ketamine and a dose-escalation
//!   marker signal.
//! - The null stream (background rates only; same clinics, patients and reporting noise) must
//!   raise no signal at all.
//!
//! `PV_TEST_SEED` replaces the simulator seed (default 11) to try the same checks on other
//! streams.

mod common;

use std::collections::HashSet;

use chrono::NaiveDate;
use common::{TestEnv, read_topic, through_pipeline};
use pv_events::EventCodec;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_urological_dose_response_and_escalation_are_flagged_and_emitted() {
    let env = TestEnv::new("signals_planted").await;
    let (service, report) = pipeline(&env, Harms::default(), seed()).await;

    // Results cover both windows and every analysis family.
    for analysis in [
        "disproportionality",
        "incidence_per_1000_administrations",
        "incidence_per_100_patient_years",
        "dose_response",
        "time_to_onset",
        "dependence_marker",
        "maxsprt",
    ] {
        assert!(report.results.iter().any(|r| r.analysis == analysis), "no {analysis} results");
    }
    assert!(report.results.iter().all(|r| r.estimate.is_finite() && r.lower.is_finite()));

    // The planted urological hazard grows with cumulative dose: ketamine's trend is flagged.
    let urological: Vec<_> = report
        .signals()
        .filter(|r| r.analysis == "dose_response" && r.event == "urological" && r.product == "ketamine")
        .collect();
    assert!(!urological.is_empty(), "no urological dose-response signal for ketamine");
    for r in &urological {
        assert!(r.trend_z.unwrap_or(0.0) >= service.config().trend_z);
        assert!(r.estimate > 1.0, "top band should carry more risk than the lowest: {}", r.estimate);
    }
    // The planted dependence subgroup escalates its ketamine dose.
    let escalation = report.signals().find(|r| {
        r.analysis == "dependence_marker" && r.event == "dose_escalation" && r.product == "ketamine"
    });
    let escalation = escalation.expect("no dose-escalation marker signal for ketamine");
    assert!(escalation.lower > service.config().marker_background_share);

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
