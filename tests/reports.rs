//! The periodic report for a data-lock point, end to end: a simulated stream goes through the
//! real broker, enricher and sink into real ClickHouse, the signals service runs, and the report
//! is generated at a lock. Then more events arrive (new cases, follow-up versions of cases known
//! at the lock, a nullification, late doses inside the interval) and:
//!
//! - the report regenerated with the same lock is the same, file for file, byte for byte;
//! - a report at a later lock differs exactly where the new data should show;
//! - the tables agree with independent SQL, the manifest's hashes with the files, and the PDF,
//!   read back with poppler's `pdftotext` and `pdffonts`, has the sections, the key numbers and
//!   only embedded fonts. Its pages (`pdftoppm`) are kept under `target/report-pages/`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::NaiveDate;
use common::{TestEnv, arrive, through_pipeline};
use pv_events::{AdverseEventReport, ClinicEvent, EventId, Timestamp};
use pv_reports::ReportsConfig;
use pv_reports::icsr::{self, Batch, IcsrCase, ReadCase};
use pv_reports::periodic::{self, Input, Outputs, Spec};
use pv_reports::sections::HumanSections;
use pv_reports::source::{IcsrSelection, Sources, icsr_cases, periodic_input};
use pv_signals::{SignalsConfig, SignalsService};
use pv_simulate::{SimConfig, generate};
use sha2::{Digest, Sha256};

const SECTIONS: &str = "## 2 Marketing authorisation status\n\nTest text for section two.\n\n\
                        ## 19 Conclusions and actions\n\n- Keep monitoring.\n";

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

fn spec(lock_ms: i64) -> Spec {
    Spec {
        from: day(2026, 3, 1),
        to: day(2026, 5, 31),
        lock_ms,
        title: "Test periodic report".into(),
        organisation: "pv integration tests".into(),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn report(env: &TestEnv, lock_ms: i64) -> (Input, Outputs) {
    let signals = SignalsConfig { topic: env.signals_topic.clone(), ..SignalsConfig::default() };
    let (enrich, sink) = (env.enrich_config(), env.sink_config());
    let sources = Sources {
        clickhouse: &env.clickhouse,
        kafka: &env.kafka,
        raw_topic: &env.raw_topic,
        signals: &signals,
        enrich_group: &enrich.group_id,
        enriched_topic: &env.enriched_topic,
        sink_group: &sink.group_id,
    };
    let spec = spec(lock_ms);
    let input = periodic_input(&sources, &spec).await.expect("report input");
    let built = periodic::build(&spec, &input, &HumanSections::parse(SECTIONS));
    let out = periodic::render(&built, &input).expect("rendered");
    (input, out)
}

/// The rows of a CSV table of a report, header first.
fn table(out: &Outputs, name: &str) -> Vec<Vec<String>> {
    let bytes = out.files.get(&format!("tables/{name}.csv")).unwrap_or_else(|| panic!("no table {name}"));
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice())
        .records()
        .map(|r| r.expect("csv row").iter().map(str::to_owned).collect())
        .collect()
}

/// The administrations in the interval, all products (the `All ... interval` row of 5.2).
fn interval_administrations(out: &Outputs) -> u64 {
    let rows = table(out, "5.2-exposure-by-product");
    let all = rows.iter().find(|r| r[0] == "All" && r[3] == "interval").expect("All/interval row");
    all[5].parse().expect("a count")
}

/// Case id -> version in the serious-case line listing.
fn listing(out: &Outputs) -> BTreeMap<String, String> {
    table(out, "20.1-serious-cases").into_iter().skip(1).map(|r| (r[0].clone(), r[1].clone())).collect()
}

fn positions_total(out: &Outputs) -> i64 {
    let manifest: serde_json::Value =
        serde_json::from_slice(&out.files["manifest.json"]).expect("manifest parses");
    manifest["kafka_positions"]
        .as_array()
        .expect("positions")
        .iter()
        .map(|p| p["offset"].as_i64().expect("offset"))
        .sum()
}

fn is_serious(r: &AdverseEventReport) -> bool {
    r.reactions.iter().any(|x| x.seriousness.is_serious())
}

fn case_id(r: &AdverseEventReport) -> String {
    format!("{}/{}", r.clinic_id, r.report_id)
}

/// What the stream is split into: what arrives before the lock, and what arrives after it.
struct Split {
    first: Vec<ClinicEvent>,
    later: Vec<ClinicEvent>,
    late_doses: u64,
    new_case: String,
    follow_up: String,
    nullified: String,
}

/// Holds back follow-up versions, some initial reports in the interval (new cases at the later
/// lock) and every tenth dose in the interval (late events), and adds a follow-up version and a
/// nullification of two serious cases known at the lock.
fn split(events: Vec<ClinicEvent>) -> Split {
    let s = spec(0);
    let in_interval = |t: Timestamp| s.in_interval(t.millis());
    let (mut first, mut later) = (Vec::new(), Vec::new());
    let (mut n_doses, mut n_reports) = (0u64, 0u64);
    for e in events {
        let hold = match &e {
            ClinicEvent::AdverseEventReport(r) if r.version >= 2 => true,
            ClinicEvent::AdverseEventReport(r) if in_interval(r.reported_at) => {
                n_reports += 1;
                n_reports % if is_serious(r) { 3 } else { 5 } == 0
            }
            ClinicEvent::DoseAdministered(d) if in_interval(d.administered_at) => {
                n_doses += 1;
                n_doses % 10 == 0
            }
            _ => false,
        };
        if hold {
            later.push(e);
        } else {
            first.push(e);
        }
    }
    // The simulator re-sends some events (same id): a held-back copy of a dose known at the lock is not late.
    let known_ids: BTreeSet<EventId> = first.iter().map(ClinicEvent::event_id).collect();
    let late: BTreeSet<EventId> = later
        .iter()
        .filter(|e| matches!(e, ClinicEvent::DoseAdministered(_)) && !known_ids.contains(&e.event_id()))
        .map(ClinicEvent::event_id)
        .collect();
    let late_doses = late.len() as u64;
    let reports = |v: &[ClinicEvent]| -> Vec<AdverseEventReport> {
        v.iter()
            .filter_map(|e| match e {
                ClinicEvent::AdverseEventReport(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    };
    let (known, held) = (reports(&first), reports(&later));
    let later_ids: BTreeSet<String> = held.iter().map(case_id).collect();
    let serious_in_interval = |r: &&AdverseEventReport| is_serious(r) && in_interval(r.reported_at);
    let new_case =
        held.iter().filter(|r| r.version == 1).find(serious_in_interval).map(case_id).expect("a new case");
    let mut candidates =
        known.iter().filter(serious_in_interval).filter(|k| !later_ids.contains(&case_id(k)));
    let (to_follow, to_nullify) = (
        candidates.next().expect("a serious case to follow up").clone(),
        candidates.next().expect("a serious case to nullify").clone(),
    );
    let (follow_up, nullified) = (case_id(&to_follow), case_id(&to_nullify));
    let next_day = |r: &AdverseEventReport| Timestamp::from_millis(r.reported_at.millis() + 86_400_000);
    let mut follow = AdverseEventReport {
        event_id: EventId::new_random(),
        version: 2,
        reported_at: next_day(&to_follow),
        narrative: Some("Follow-up: the patient recovered.".into()),
        ..to_follow
    };
    follow.reactions.iter_mut().for_each(|r| r.outcome = pv_events::Outcome::Recovered);
    later.push(ClinicEvent::from(follow));
    later.push(ClinicEvent::from(AdverseEventReport {
        event_id: EventId::new_random(),
        version: 2,
        nullification: true,
        nullification_reason: Some("duplicate of another case".into()),
        reported_at: next_day(&to_nullify),
        ..to_nullify
    }));
    Split { first, later, late_doses, new_case, follow_up, nullified }
}

fn assert_same_files(a: &Outputs, b: &Outputs) {
    assert_eq!(a.files.keys().collect::<Vec<_>>(), b.files.keys().collect::<Vec<_>>(), "the same files");
    for (name, bytes) in &a.files {
        assert!(bytes == &b.files[name], "{name} differs after later events arrived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_the_same_bytes_for_its_lock_and_a_later_lock_shows_exactly_the_new_data() {
    let env = TestEnv::new("report_lock").await;
    let sim = generate(&SimConfig {
        seed: 5,
        clinics: 2,
        patients_per_clinic: 200,
        start: day(2026, 1, 1),
        days: 180,
        ..SimConfig::default()
    });
    let mut s = split(sim.events);
    through_pipeline(&env, &mut s.first).await;
    let signals = SignalsConfig { topic: env.signals_topic.clone(), ..SignalsConfig::default() };
    SignalsService::new(signals, &env.clickhouse, &env.kafka)
        .expect("service")
        .run_once(None)
        .await
        .expect("signals run");
    let lock = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (input_a, a) = report(&env, lock).await;

    let mut all = s.first.clone();
    all.extend(s.later.iter().cloned());
    arrive(&env, &mut s.later, &all).await;
    let (_, b) = report(&env, lock).await;
    assert_same_files(&a, &b);

    let later_lock = now_ms();
    let (_, c) = report(&env, later_lock).await;
    // Late doses in the interval, and nothing else, add to the interval's exposure.
    assert_eq!(interval_administrations(&c), interval_administrations(&a) + s.late_doses);
    // The event log's positions moved by exactly the events that arrived.
    assert_eq!(positions_total(&c) - positions_total(&a), i64::try_from(s.later.len()).expect("fits"));
    // The line listing: the nullified case leaves, the follow-up shows its new version, the new case appears.
    let (before, after) = (listing(&a), listing(&c));
    assert_eq!(before.get(&s.nullified).map(String::as_str), Some("1"), "{} listed at the lock", s.nullified);
    assert!(!after.contains_key(&s.nullified), "{} nullified after the lock", s.nullified);
    assert_eq!(before.get(&s.follow_up).map(String::as_str), Some("1"));
    assert_eq!(after.get(&s.follow_up).map(String::as_str), Some("2"));
    assert!(!before.contains_key(&s.new_case) && after.contains_key(&s.new_case), "{} is new", s.new_case);

    check_icsr(&env, &s, lock, later_lock).await;
    check_against_sql(&env, &a, lock).await;
    check_manifest(&a, &input_a, lock);
    check_pdf(&a, &s.nullified);
    env.cleanup().await;
}

/// The report's numbers against independent SQL over the same rows.
async fn check_against_sql(env: &TestEnv, out: &Outputs, lock: i64) {
    let s = spec(lock);
    let administrations = env
        .number(&format!(
            "SELECT count() FROM (
               SELECT argMax(administered_at_ms, dedup_version) AS at FROM {{doses}}
               WHERE received_at_ms <= {lock} GROUP BY clinic_id, event_id)
             WHERE at >= {} AND at < {}",
            s.from_ms(),
            s.end_ms()
        ))
        .await;
    assert_eq!(interval_administrations(out), administrations);
    let case_terms = env
        .number(&format!(
            "SELECT toUInt64(sum(length(arrayDistinct(pts)))) FROM (
               SELECT argMax(arrayMap((p, v) -> ifNull(p, v), reaction_pt, reaction_verbatim), version) AS pts,
                      argMax(nullification, version) AS nul, min(reported_at_ms) AS first
               FROM {{ae_report_versions}} WHERE received_at_ms <= {lock}
               GROUP BY clinic_id, report_id)
             WHERE nul = 0 AND first < {}",
            s.end_ms()
        ))
        .await;
    let rows = table(out, "6.3-reactions-by-soc-and-pt");
    let total = rows.iter().find(|r| r[0] == "All").expect("total row");
    let cumulative: u64 = total[4].parse::<u64>().expect("n") + total[5].parse::<u64>().expect("n");
    assert_eq!(cumulative, case_terms, "6.3 counts each PT once per case");
    let serious = env
        .number(&format!(
            "SELECT count() FROM (
               SELECT argMax(arrayExists(x -> x = 1, arrayMap((a, b, c, d, e, f) -> a OR b OR c OR d OR e OR f,
                        reaction_death, reaction_life_threatening, reaction_hospitalisation, reaction_disability,
                        reaction_congenital_anomaly, reaction_other_medically_important)), version) AS serious,
                      argMax(nullification, version) AS nul, min(reported_at_ms) AS first
               FROM {{ae_report_versions}} WHERE received_at_ms <= {lock}
               GROUP BY clinic_id, report_id)
             WHERE nul = 0 AND serious AND first >= {} AND first < {}",
            s.from_ms(),
            s.end_ms()
        ))
        .await;
    assert_eq!(listing(out).len() as u64, serious, "every serious case of the interval is listed");
}

fn check_manifest(out: &Outputs, input: &Input, lock: i64) {
    let manifest: serde_json::Value = serde_json::from_slice(&out.files["manifest.json"]).expect("manifest");
    assert_eq!(manifest["data_lock_point_ms"].as_i64(), Some(lock));
    let hashes = manifest["files"].as_object().expect("files");
    assert_eq!(hashes.len(), out.files.len() - 1, "every file but the manifest is hashed");
    for (name, bytes) in out.files.iter().filter(|(n, _)| n.as_str() != "manifest.json") {
        let sha = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hashes[name].as_str(), Some(sha.as_str()), "{name}");
    }
    assert_eq!(
        manifest["inputs"]["case versions (ae_report_versions)"].as_u64(),
        input.rows_read.get("case versions (ae_report_versions)").copied()
    );
    assert_eq!(
        manifest["kafka_positions"].as_array().map(Vec::len),
        Some(3),
        "one position per raw partition"
    );
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (poppler-utils installed?)"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads the PDF back: sections, key numbers, embedded fonts, page images kept for people.
fn check_pdf(out: &Outputs, listed_case: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-pages");
    std::fs::create_dir_all(&dir).expect("pages dir");
    let pdf = dir.join("periodic-report.pdf");
    std::fs::write(&pdf, &out.files[periodic::output::PDF]).expect("write pdf");
    let pdf = pdf.to_str().expect("utf-8 path");
    let text = run("pdftotext", &["-layout", pdf, "-"]);
    for heading in [
        "Contents",
        "5.2 Cumulative and interval patient exposure from marketing experience",
        "6.3 Cumulative and interval summary tabulations from post-marketing data sources",
        "15 Overview of signals: new, ongoing or closed",
        "16.4.1 Dependence and abuse",
        "16.4.2 Urological harm",
        "20.1 Line listing of serious cases in the reporting interval",
        "Test text for section two.",
        "Written by the responsible person",
        "Not provided in the sections file.",
    ] {
        assert!(text.contains(heading), "the PDF has {heading:?}");
    }
    let administrations = interval_administrations(out).to_string();
    let all_interval = text
        .lines()
        .find(|l| l.trim_start().starts_with("All") && l.contains("interval"))
        .expect("the All/interval row of 5.2");
    assert!(
        all_interval.split_whitespace().any(|w| w == administrations),
        "the PDF's 5.2 All/interval row shows {administrations} administrations: {all_interval}"
    );
    // Table cells wrap (and pdftotext joins a word broken after a hyphen): compare in reading
    // order without white space and hyphens.
    let flat = |t: &str| t.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>();
    assert!(flat(&run("pdftotext", &[pdf, "-"])).contains(&flat(listed_case)), "the PDF lists {listed_case}");
    assert!(text.contains("2 / "), "pages are numbered");
    // The two incidence tables run over more than one page each (this stream): their header
    // repeats at the top of every page they fill.
    let headers = text.lines().filter(|l| l.contains("Subgroup") && l.contains("Patient-years")).count();
    assert!(headers > 2, "table headers repeat on each page ({headers} for 2 tables)");
    let fonts = run("pdffonts", &[pdf]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "the PDF has fonts");
    for row in rows {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields.get(fields.len().saturating_sub(5)), Some(&"yes"), "embedded: {row}");
    }
    run("pdftoppm", &["-r", "60", "-png", pdf, dir.join("page").to_str().expect("utf-8")]);
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct StoredVersion {
    version: i32,
    verbatims: Vec<String>,
    outcomes: Vec<String>,
    drugs: Vec<String>,
    narrative: Option<String>,
}

/// The demo settings with a sender contact (FDA requires C.3.3 and C.3.4).
fn reports_config() -> ReportsConfig {
    let contact = icsr::SenderContact {
        department: "Drug Safety".into(),
        title: "Dr".into(),
        given_name: "Test".into(),
        family_name: "Officer".into(),
        street: "1 Test Street".into(),
        city: "Springfield".into(),
        state: "IL".into(),
        postcode: "62701".into(),
        telephone: "+1 555 0100".into(),
        fax: "+1 555 0101".into(),
        email: "safety@example.org".into(),
    };
    ReportsConfig { contact: Some(contact), ..ReportsConfig::default() }
}

/// Exports `selection` as received by `lock` and reads it back.
async fn export(env: &TestEnv, selection: &IcsrSelection, lock: i64) -> (Vec<IcsrCase>, String) {
    let cases = icsr_cases(&env.clickhouse, selection, lock).await.expect("case versions");
    let cfg = reports_config();
    let batch = Batch { batch_id: "TEST-1".into(), created_at_ms: lock, cases: cases.clone() };
    let xml = icsr::batch_xml(&batch, &cfg.sender(), None).expect("E2B XML");
    (cases, xml)
}

/// E2B exports of the same data: a case at the lock (its first version) and after it (the
/// follow-up), parsed back field by field and against the stored rows; the interval's serious
/// cases with the nullification; FDA's business rules.
async fn check_icsr(env: &TestEnv, s: &Split, lock: i64, later_lock: i64) {
    let (clinic_id, report_id) = s.follow_up.split_once('/').expect("clinic/report");
    let one =
        |version| IcsrSelection::Case { clinic_id: clinic_id.into(), report_id: report_id.into(), version };
    let sender = reports_config().sender();
    for (lock_ms, want_version) in [(lock, 1), (later_lock, 2)] {
        let (cases, xml) = export(env, &one(None), lock_ms).await;
        let read = icsr::read_batch(&xml).expect("parses back");
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].version, Some(want_version), "the version known at the lock");
        let expected = ReadCase::expected(&cases[0], lock_ms, &sender, None).expect("expected");
        assert_eq!(read[0], expected, "every field reads back as written");
        // C.1.4 is when the clinic first received the case: version 1's date, at both locks.
        let first: u64 = env
            .number(&format!(
                "SELECT toUInt64(min(reported_at_ms) / 1000) FROM {{ae_report_versions}}
                 WHERE clinic_id = '{clinic_id}' AND report_id = '{report_id}' AND version = 1"
            ))
            .await;
        let first =
            chrono::DateTime::from_timestamp(i64::try_from(first).expect("fits"), 0).expect("instant");
        assert_eq!(read[0].first_received, Some(first.format("%Y%m%d%H%M%S+0000").to_string()), "C.1.4");
        // And against ClickHouse directly.
        let stored: StoredVersion = env
            .db()
            .sql(
                "SELECT version, reaction_verbatim, arrayMap(o -> toString(o), reaction_outcome), drug_name, narrative
                 FROM {ae_report_versions} FINAL WHERE clinic_id = {c} AND report_id = {r} AND version = {v}",
            )
            .bind("c", clinic_id.to_owned())
            .bind("r", report_id.to_owned())
            .bind("v", want_version)
            .fetch_one()
            .await
            .expect("stored version");
        let verbatims: Vec<String> = read[0].reactions.iter().filter_map(|r| r.verbatim.clone()).collect();
        assert_eq!(verbatims, stored.verbatims);
        let outcome_code = |o: &str| match o {
            "recovered" => "1",
            "recovering" => "2",
            "not_recovered" => "3",
            "recovered_with_sequelae" => "4",
            "fatal" => "5",
            _ => "0",
        };
        let outcomes: Vec<&str> = read[0].reactions.iter().filter_map(|r| r.outcome.as_deref()).collect();
        assert_eq!(outcomes, stored.outcomes.iter().map(|o| outcome_code(o)).collect::<Vec<_>>());
        let mut names: Vec<String> = read[0].drugs.iter().filter_map(|d| d.name.clone()).collect();
        let mut stored_names = stored.drugs.clone();
        names.sort();
        stored_names.sort();
        assert_eq!(names, stored_names);
        assert_eq!(stored.version, want_version);
        if let Some(n) = &stored.narrative {
            assert!(read[0].narrative.as_deref().is_some_and(|t| t.starts_with(n.as_str())), "narrative");
        }
        // Without a licensed MedDRA release the only findings are the missing MedDRA codes.
        let other: Vec<_> = icsr::check(&xml)
            .into_iter()
            .filter(|v| !(v.element.starts_with("E.i.2.1") || v.is_warning()))
            .collect();
        assert!(other.is_empty(), "FDA rules: {other:?}");
    }
    let interval = IcsrSelection::Interval { from: day(2026, 3, 1), to: day(2026, 5, 31), serious: true };
    let (cases, xml) = export(env, &interval, later_lock).await;
    let read = icsr::read_batch(&xml).expect("parses back");
    assert_eq!(read.len(), cases.len());
    let (nc, nr) = s.nullified.split_once('/').expect("clinic/report");
    let nullification = cases.iter().position(|c| c.clinic_id == nc && c.report_id == nr && c.nullification);
    let i = nullification.expect("the nullification is exported");
    assert_eq!(read[i].nullification.as_deref(), Some("1"), "C.1.11.1 = nullification");
    assert_eq!(read[i].nullification_reason.as_deref(), Some("duplicate of another case"));
    let (_, again) = export(env, &interval, later_lock).await;
    assert_eq!(xml, again, "the same export for the same lock is the same bytes");
}
