//! The storage schema against its definitions, on the real ClickHouse: every live table column
//! by column and enum value by value against its row type, the rendered DDL against what the
//! previous release created, and a database of the previous release migrated with its rows kept.

use pv_events::sample;
use pv_runtime::ClickHouseConfig;
use pv_store::column::enum8_values;
use pv_store::events::{
    AE_CASES, AE_REPORT_VERSIONS, AdverseEventRow, CASE_SUMMARIES, CaseSummaryRow, DOSES, DoseRow,
    ENROLMENTS, EnrolmentRow, MonitoringRow, Provenance,
};
use pv_store::{Db, TABLES, VIEWS};

/// The schema the previous release created (`SHOW CREATE TABLE` of each table, `{db}` for the
/// database), then its migration records.
const PREVIOUS_RELEASE: &str = include_str!("fixtures/schema_v3.sql");

/// A database name of its own on the test server (not created).
fn config(name: &str) -> ClickHouseConfig {
    ClickHouseConfig {
        url: std::env::var("PV_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into()),
        database: format!("pvt_{name}_{}", std::process::id()),
        ..ClickHouseConfig::default()
    }
}

async fn drop_database(cfg: &ClickHouseConfig) {
    let server = pv_runtime::clickhouse::server_client(cfg);
    server.query(&format!("DROP DATABASE IF EXISTS {}", cfg.database)).execute().await.expect("drop");
}

/// The previous release's statements for database `db`.
fn previous_release(db: &str) -> Vec<String> {
    PREVIOUS_RELEASE
        .split(";\n")
        .map(|s| s.lines().filter(|l| !l.starts_with("--")).collect::<Vec<_>>().join("\n"))
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.replace("{db}", db))
        .collect()
}

/// The tables and views of `db`.
async fn table_names(db: &Db) -> Vec<String> {
    let sql = "SELECT name FROM system.tables WHERE database = currentDatabase()";
    db.client().query(sql).fetch_all().await.expect("tables")
}

/// `SHOW CREATE TABLE` of every table and view of `cfg`'s database, the database as `{db}`.
async fn show_create(cfg: &ClickHouseConfig) -> Vec<String> {
    let db = Db::new(cfg);
    let mut out = Vec::new();
    for name in table_names(&db).await {
        let sql: String =
            db.client().query(&format!("SHOW CREATE TABLE {name}")).fetch_one().await.expect("show create");
        out.push(sql.replace(&format!("{}.", cfg.database), "{db}."));
    }
    out.sort();
    out
}

/// Compares every table of `db` with its definition; returns the differences.
async fn differences(db: &Db) -> Vec<String> {
    let mut diffs = Vec::new();
    for name in &table_names(db).await {
        if !VIEWS.iter().any(|v| v.name == name) && !TABLES.iter().any(|t| t.name() == name) {
            diffs.push(format!("{name}: a live table without a definition"));
        }
    }
    for table in TABLES {
        let live: Vec<(String, String, String, String)> = db
            .client()
            .query(
                "SELECT name, type, default_kind, default_expression FROM system.columns
                 WHERE database = currentDatabase() AND table = ?",
            )
            .bind(table.name())
            .fetch_all()
            .await
            .expect("columns");
        if live.is_empty() {
            diffs.push(format!("{}: no such table", table.name()));
            continue;
        }
        let defined = table.columns();
        // Stored columns in order; ClickHouse 18.16 lists MATERIALIZED columns after them, a
        // current release where they were declared: compare those by name.
        let stored_live: Vec<_> = live.iter().filter(|c| c.2 != "MATERIALIZED").collect();
        let stored_defined: Vec<_> = defined.iter().filter(|c| c.materialized.is_none()).collect();
        for i in 0..stored_live.len().max(stored_defined.len()) {
            match (stored_live.get(i), stored_defined.get(i)) {
                (Some(l), Some(d)) if l.0 != d.name => diffs.push(format!(
                    "{}: column {i} is `{}` live, `{}` defined",
                    table.name(),
                    l.0,
                    d.name
                )),
                (Some(l), Some(d)) => diffs.extend(type_differences(table.name(), &l.0, &l.1, &d.ty)),
                (Some(l), None) => diffs.push(format!("{}.{}: live, not defined", table.name(), l.0)),
                (None, Some(d)) => diffs.push(format!("{}.{}: defined, not live", table.name(), d.name)),
                (None, None) => {}
            }
        }
        for d in defined.iter().filter(|c| c.materialized.is_some()) {
            match live.iter().find(|l| l.0 == d.name) {
                Some(l) if l.2 == "MATERIALIZED" && Some(&l.3) == d.materialized.as_ref() && l.1 == d.ty => {}
                Some(l) => diffs.push(format!("{}.{}: live {} {} {}", table.name(), d.name, l.1, l.2, l.3)),
                None => diffs.push(format!("{}.{}: defined, not live", table.name(), d.name)),
            }
        }
        for l in live.iter().filter(|l| l.2 == "MATERIALIZED") {
            if !defined.iter().any(|d| d.name == l.0) {
                diffs.push(format!("{}.{}: live, not defined", table.name(), l.0));
            }
        }
    }
    diffs
}

/// A column's live type against its defined one, enum value by enum value.
fn type_differences(table: &str, column: &str, live: &str, defined: &str) -> Vec<String> {
    let (live_values, defined_values) = (enum8_values(live), enum8_values(defined));
    let mut diffs: Vec<String> = defined_values
        .iter()
        .filter(|v| !live_values.contains(v))
        .map(|(name, n)| format!("{table}.{column}: enum value '{name}' = {n} defined, not live"))
        .collect();
    diffs.extend(
        live_values
            .iter()
            .filter(|v| !defined_values.contains(v))
            .map(|(name, n)| format!("{table}.{column}: enum value '{name}' = {n} live, not defined")),
    );
    if diffs.is_empty() && live != defined {
        diffs.push(format!("{table}.{column}: type {live} live, {defined} defined"));
    }
    diffs
}

#[tokio::test]
async fn every_live_table_matches_its_row_type_column_by_column() {
    let cfg = config("schema_new");
    drop_database(&cfg).await;
    assert_eq!(pv_store::migrate(&cfg).await.expect("migrate"), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let db = Db::new(&cfg);
    assert_eq!(differences(&db).await, Vec::<String>::new());

    // The comparison itself sees a changed type, a dropped enum value and a missing column.
    for sql in [
        "ALTER TABLE {doses} MODIFY COLUMN session_number Int64",
        "ALTER TABLE {doses} MODIFY COLUMN route Enum8('iv' = 1, 'im' = 2, 'intranasal' = 3, 'oral' = 4, 'sc' = 6)",
        "ALTER TABLE {ae_cases} DROP COLUMN received_at_ms",
    ] {
        db.sql(sql).execute().await.expect("alter");
    }
    assert_eq!(
        differences(&db).await,
        [
            "doses.route: enum value 'sublingual' = 5 defined, not live",
            "doses.session_number: type Int64 live, Int32 defined",
            "ae_cases.received_at_ms: defined, not live",
        ]
    );
    drop_database(&cfg).await;
}

#[tokio::test]
async fn the_rendered_ddl_creates_what_the_previous_release_created() {
    let cfg = config("schema_ddl");
    drop_database(&cfg).await;
    pv_store::migrate(&cfg).await.expect("migrate");
    let changed_since = |s: &String| {
        ["signal_results", "signal_changes", "doses", "monitoring_forms"]
            .iter()
            .any(|t| s.contains(&format!(" {{db}}.{t} ")))
    };
    let mut want: Vec<String> = previous_release("{db}")
        .into_iter()
        .filter(|s| s.starts_with("CREATE") && !changed_since(s))
        .collect();
    want.sort();
    // The tables the previous release had are created as it created them; the tables added
    // since (migrations 4 to 7), and those migrations 8 and 9 changed, are checked column by
    // column against their rows above and after the upgrade below.
    let added = [
        "signal_contributions",
        "signal_workflow",
        "user_visits",
        "case_summaries",
        "case_summaries_mv",
        "signal_exposure",
        "enrolments",
        "signal_results",
        "signal_changes",
        "doses",
        "monitoring_forms",
    ];
    let got: Vec<String> = show_create(&cfg)
        .await
        .into_iter()
        .filter(|s| !added.iter().any(|t| s.contains(&format!(" {{db}}.{t} "))))
        .collect();
    assert_eq!(got, want);
    drop_database(&cfg).await;
}

#[tokio::test]
async fn a_database_of_the_previous_release_migrates_and_keeps_its_rows() {
    let cfg = config("schema_upgrade");
    drop_database(&cfg).await;
    let server = pv_runtime::clickhouse::server_client(&cfg);
    server.query(&format!("CREATE DATABASE {}", cfg.database)).execute().await.expect("create");
    for statement in previous_release(&cfg.database) {
        server.query(&statement).execute().await.unwrap_or_else(|e| panic!("{e}: {statement}"));
    }
    let db = Db::new(&cfg);
    let at = Provenance { partition: 0, offset: 1 };
    // A dose as the previous release stored it, with every exposure column (migration 9 keeps
    // two; the optional columns are left out, so NULL).
    let dose = DoseRow {
        weight_kg: None,
        dose_mg_per_kg: None,
        protocol: None,
        lot_number: None,
        ..DoseRow::new(&sample::enriched_dose(), at)
    };
    let report = AdverseEventRow::new(&sample::enriched_adverse_event(), at).expect("row");
    server
        .query(&format!(
            "INSERT INTO {}.doses (event_id, clinic_id, patient_key, administered_at_ms, product, formulation, route, dose_mg, indication, session_number, received_at_ms, exp_administrations, exp_cumulative_mg, exp_first_dose_at_ms, exp_escalation_ratio, dedup_version, kafka_partition, kafka_offset)
             VALUES ('{}', '{}', '{}', {}, '{}', '{}', '{}', {}, '{}', {}, {}, 4, {}, 1000, {}, {}, 0, 1)",
            cfg.database,
            dose.event_id,
            dose.clinic_id,
            dose.patient_key,
            dose.administered_at_ms,
            format!("{:?}", dose.product).to_lowercase(),
            dose.formulation,
            format!("{:?}", dose.route).to_lowercase(),
            dose.dose_mg,
            dose.indication,
            dose.session_number,
            dose.received_at_ms,
            dose.exp_cumulative_mg,
            dose.exp_escalation_ratio,
            dose.dedup_version
        ))
        .execute()
        .await
        .expect("old dose");
    // A form as the previous release stored it, with the exposure columns migration 9 drops.
    let form = MonitoringRow::new(&sample::enriched_monitoring(), at);
    server
        .query(&format!(
            "INSERT INTO {}.monitoring_forms (event_id, clinic_id, patient_key, session_number, monitored_at_ms, observation_minutes, discharge_ready, received_at_ms, exp_administrations, exp_cumulative_mg, dedup_version, kafka_partition, kafka_offset)
             VALUES ('{}', '{}', '{}', {}, {}, {}, {}, {}, 3, 105.0, {}, 0, 1)",
            cfg.database,
            form.event_id,
            form.clinic_id,
            form.patient_key,
            form.session_number,
            form.monitored_at_ms,
            form.observation_minutes,
            u8::from(form.discharge_ready),
            form.received_at_ms,
            form.dedup_version
        ))
        .execute()
        .await
        .expect("old form");
    db.insert(&AE_REPORT_VERSIONS, std::slice::from_ref(&report)).await.expect("report");
    // A result of the previous release, before results had subgroups.
    server
        .query(&format!(
            "INSERT INTO {}.signal_results (run_at_ms, as_of_ms, analysis, time_window, product, route, formulation, dose_band, event, event_level, n, denominator, estimate, lower, upper, signal, flags)
             VALUES (1, 1, 'maxsprt', 'cumulative', 'ketamine', '*', '*', '*', 'urological', 'group', 5, 2.0, 2.5, 0.8, 5.8, 0, '')",
            cfg.database
        ))
        .execute()
        .await
        .expect("old result");

    assert_eq!(pv_store::migrate(&cfg).await.expect("migrate"), [4, 5, 6, 7, 8, 9], "from version 3");
    assert_eq!(differences(&db).await, Vec::<String>::new());
    assert_eq!(db.rows(&DOSES).await.expect("doses"), [dose]);
    let kept: Vec<(String, Option<i32>, Option<i32>, bool)> = db
        .sql("SELECT toString(event_id), bp_systolic_pre, dissociation_cadss, discharge_ready FROM {monitoring_forms}")
        .fetch_all()
        .await
        .expect("forms");
    assert_eq!(
        kept,
        [(form.event_id.to_string(), None, None, form.discharge_ready)],
        "the form's other columns kept"
    );
    let old: Vec<(String, Option<f64>)> =
        db.sql("SELECT subgroup, q_value FROM {signal_results}").fetch_all().await.expect("old result");
    assert_eq!(old, [("*".to_string(), None)], "results of the previous release read as no subgroup");
    // The enrolments table added by migration 7 takes rows and gives them back unchanged.
    let enrolment = EnrolmentRow::new(&sample::enriched_enrolment(), at);
    db.insert(&ENROLMENTS, std::slice::from_ref(&enrolment)).await.expect("enrolment");
    assert_eq!(db.rows(&ENROLMENTS).await.expect("enrolments"), [enrolment]);
    assert_eq!(db.rows(&AE_REPORT_VERSIONS).await.expect("reports"), std::slice::from_ref(&report));
    let cases = db.rows(&AE_CASES).await.expect("cases");
    assert_eq!(
        cases.iter().map(|c| (c.report_id.as_str(), c.version)).collect::<Vec<_>>(),
        [(report.report_id.as_str(), report.version)]
    );
    // The case summaries added by migration 5 were filled from the versions already stored,
    // with what the view computes: a later version through the view replaces it.
    let summary =
        |s: &CaseSummaryRow| (s.report_id.clone(), s.version, s.serious, s.pts.clone(), s.product.clone());
    let before = db.rows(&CASE_SUMMARIES).await.expect("summaries");
    let event = sample::enriched_adverse_event();
    let serious = event.reactions.iter().any(|r| r.seriousness != Default::default());
    let pts: Vec<String> =
        event.reactions.iter().map(|r| r.pt.clone().unwrap_or_else(|| r.verbatim.clone())).collect();
    let product = event
        .drugs
        .iter()
        .find(|d| d.role == pv_events::DrugRole::Suspect)
        .and_then(|d| d.product)
        .map(|p| format!("{p:?}").to_lowercase());
    assert_eq!(
        before.iter().map(summary).collect::<Vec<_>>(),
        [(report.report_id.clone(), report.version, serious, pts.clone(), product.unwrap_or_default())]
    );
    let mut next = report.clone();
    next.version += 1;
    next.event_id = uuid::Uuid::new_v4();
    db.insert(&AE_REPORT_VERSIONS, std::slice::from_ref(&next)).await.expect("next version");
    let after = db.rows(&CASE_SUMMARIES).await.expect("summaries");
    assert_eq!(after.iter().map(|s| s.version).collect::<Vec<_>>(), [next.version]);
    drop_database(&cfg).await;
}
