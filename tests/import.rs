//! `pv import` against the real broker and ClickHouse: a clinic's history as CSV files goes
//! through the gateway's validation; rejected rows are listed by file, line and column while the
//! rest is enriched and stored; rows without an id get derived ones; running the same files
//! again sends nothing; and running again after fixing the rejected rows sends just those.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestEnv, pv_binary, simulated_stream};
use pv_events::{ClinicEvent, EventKind};

const CLINIC: &str = "clinic-01";

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
}

async fn import(config: &Path, ledger: &str, dir: &Path) -> Run {
    let out = tokio::process::Command::new(pv_binary())
        .args(["--config", config.to_str().expect("utf-8"), "import", "--clinic", CLINIC])
        .args(["--ledger-topic", ledger, "--chunk", "100"])
        .arg(dir)
        .output()
        .await
        .expect("pv runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    Run { ok: out.status.success(), code: out.status.code(), stdout: stdout + &stderr }
}

/// The history's files, with the monitoring forms' `event_id` column dropped (their ids are
/// derived) and two bad dose rows appended.
fn write_files(dir: &Path, events: &[ClinicEvent]) {
    std::fs::create_dir_all(dir).expect("dir");
    pv_import::write_history(events, |name| std::fs::File::create(dir.join(name))).expect("written");
    let monitoring = dir.join("session_monitoring.csv");
    let mut reader = csv::Reader::from_path(&monitoring).expect("monitoring");
    let header = reader.headers().expect("header").clone();
    let keep: Vec<usize> = (0..header.len()).filter(|&i| &header[i] != "event_id").collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let mut writer = csv::Writer::from_path(&monitoring).expect("rewrite");
    writer.write_record(keep.iter().map(|&i| &header[i])).expect("header");
    for r in &rows {
        writer.write_record(keep.iter().map(|&i| &r[i])).expect("row");
    }
    writer.flush().expect("flush");
}

fn bad_rows() -> String {
    // Columns: event_id,patient_ref,administered_at,product,formulation,route,dose_mg,weight_kg,
    // indication,session_number,protocol,lot_number
    [
        "0b6f3c1e-6f2a-4c51-9d0e-2f4b8a7c9d10,late-1,2026-01-20T10:00:00Z,ketamine,generic,iv,3500,70,trd,1,,",
        "6a1d0c59-1e55-4a57-9c38-1b7d5e7c2f11,late-2,2026-01-21T10:00:00Z,ketamine,generic,intravenous,35,70,trd,1,,",
    ]
    .join("\n")
}

fn append(path: &Path, text: &str) {
    let mut body = std::fs::read_to_string(path).expect("read");
    body.push_str(text);
    body.push('\n');
    std::fs::write(path, body).expect("write");
}

fn rejects(dir: &Path) -> Vec<(String, u64, String, String)> {
    let mut reader = csv::Reader::from_path(dir.join("rejects.csv")).expect("rejects file");
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            (r[0].to_owned(), r[1].parse().expect("line"), r[3].to_owned(), r[4].to_owned())
        })
        .collect()
}

async fn stored_ids(env: &TestEnv, table: &str) -> BTreeSet<String> {
    env.db()
        .sql(&format!("SELECT toString(event_id) FROM {{{table}}} FINAL"))
        .fetch_all::<String>()
        .await
        .expect("ids")
        .into_iter()
        .collect()
}

fn config(env: &TestEnv) -> PathBuf {
    let path = env.write_config(&env.sink_config());
    let clinics = env.dir.join("clinics.toml");
    std::fs::write(
        &clinics,
        format!("[[clinic]]\nid = \"{CLINIC}\"\ntoken_sha256 = \"{}\"\n", "ab".repeat(32)),
    )
    .expect("clinics file");
    let gateway =
        format!("\n[gateway]\ntopic = \"{}\"\nclinics_file = \"{}\"\n", env.raw_topic, clinics.display());
    append(&path, &gateway);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_is_imported_once_with_its_bad_rows_named() {
    let env = TestEnv::new("import").await;
    let config = config(&env);
    let ledger = format!("pvt.{}.imports", env.id);
    let events: Vec<ClinicEvent> =
        simulated_stream(1, 15, 60).into_iter().filter(|e| e.clinic_id() == CLINIC).collect();
    let dir = env.dir.join("history");
    write_files(&dir, &events);
    let doses_file = dir.join("dose_administered.csv");
    let dose_lines = std::fs::read_to_string(&doses_file).expect("doses").lines().count() as u64;
    append(&doses_file, &bad_rows());

    // A header problem in any file refuses the whole import before anything is sent.
    let monitoring = dir.join("session_monitoring.csv");
    let good = std::fs::read_to_string(&monitoring).expect("monitoring");
    std::fs::write(&monitoring, good.replacen("patient_ref", "patient", 1)).expect("bad header");
    let refused = import(&config, &ledger, &dir).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(refused.stdout.contains("unknown column `patient`"), "{}", refused.stdout);
    assert_eq!(env.topic_messages(&env.raw_topic), 0, "nothing sent before the headers are checked");
    std::fs::write(&monitoring, good).expect("restored");

    let first = import(&config, &ledger, &dir).await;
    assert_eq!(first.code, Some(2), "rows rejected, the rest imported: exit 2: {}", first.stdout);
    assert!(first.stdout.contains("2 rows rejected"), "{}", first.stdout);
    let r = rejects(&dir);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        (r[0].0.as_str(), r[0].1, r[0].2.as_str()),
        ("dose_administered.csv", dose_lines + 1, "dose_mg")
    );
    assert_eq!(
        (r[1].0.as_str(), r[1].1, r[1].2.as_str()),
        ("dose_administered.csv", dose_lines + 2, "route")
    );
    assert!(r[1].3.contains("unknown variant `intravenous`"), "{}", r[1].3);

    let (kafka, raw_topic) = (env.kafka.clone(), env.raw_topic.clone());
    let raw =
        tokio::task::spawn_blocking(move || common::read_topic(&kafka, &raw_topic)).await.expect("read");
    let limits = pv_events::Limits::default().to_header();
    assert!(
        raw.iter().all(|m| m.headers.contains(&(pv_events::Limits::HEADER.to_owned(), limits.clone()))),
        "every imported event records the limits it passed"
    );
    let enricher = env.start_enricher(env.enrich_config());
    let sink = env.start_sink(env.sink_config());
    let wait = Duration::from_secs(120);
    env.wait_for_all(&events, wait).await;
    let [doses, ..] = common::distinct(&events);
    let ids_of = |kind: EventKind, derive: bool| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| e.kind() == kind)
            .map(|e| if derive { pv_import::ids::derived_id(e) } else { e.event_id() }.to_string())
            .collect()
    };
    assert_eq!(stored_ids(&env, "doses").await, ids_of(EventKind::DoseAdministered, false), "given ids kept");
    assert_eq!(
        stored_ids(&env, "monitoring_forms").await,
        ids_of(EventKind::SessionMonitoring, true),
        "derived ids"
    );

    let raw_before = env.topic_messages(&env.raw_topic);
    let again = import(&config, &ledger, &dir).await;
    assert!(again.stdout.contains("  0 events sent"), "a re-run sends nothing: {}", again.stdout);
    assert_eq!(env.topic_messages(&env.raw_topic), raw_before, "nothing produced on a re-run");

    // The clinic fixes the two rows and runs the same command: only they go.
    let fixed = bad_rows().replace(",3500,", ",35,").replace(",intravenous,", ",iv,");
    let body = std::fs::read_to_string(&doses_file).expect("doses");
    let kept: Vec<&str> = body.lines().take(dose_lines as usize).collect();
    std::fs::write(&doses_file, format!("{}\n{fixed}\n", kept.join("\n"))).expect("fixed");
    let third = import(&config, &ledger, &dir).await;
    assert!(third.ok, "{}", third.stdout);
    assert!(third.stdout.contains("  2 events sent"), "{}", third.stdout);
    assert!(rejects(&dir).is_empty(), "the rejects file is rewritten on every run");
    env.wait_for_count("doses", true, doses + 2, wait).await;

    enricher.stop().await;
    sink.stop().await;
    let _ = pv_runtime::kafka::delete_topics(&env.kafka, &[ledger.as_str()]).await;
    env.cleanup().await;
}
