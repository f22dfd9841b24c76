//! Versioned ClickHouse migrations, applied by `pv migrate` and at sink start-up.
//!
//! Each migration runs once and is recorded in `schema_migrations`. Statements are idempotent
//! (`IF NOT EXISTS`), so a crash between a statement and its record is harmless. A migration's
//! text never changes once published: new needs get new migrations.
//!
//! The DDL runs on ClickHouse 18.16 and on current releases: no DateTime64, LowCardinality,
//! window functions or table-level dedup settings. Times are stored as `Int64` milliseconds with a
//! `MATERIALIZED` `DateTime` next to them for SQL. Tables are `ReplacingMergeTree` keyed on
//! `(clinic_id, event_id)`, so re-delivered events collapse; queries that count use `FINAL`.
//! `dedup_version = 2^64-1 - received_at_ms` makes the earliest acceptance of an event win.
//!
//! Signals (migration 3): `signal_results` (every result of every run) and `signal_changes`
//! (every change of a signal's state, as emitted).
//!
//! Event tables (migration 2): `doses`, `monitoring_forms`, `ae_report_versions` (one row per
//! report version, reactions and drugs as parallel arrays), `ae_cases` (latest version of each
//! case, fed by a materialised view). Every event row carries the patient's exposure as of the
//! event (`exp_*`) and a pseudonymous `patient_key`, never the clinic's patient reference.

use pv_runtime::ClickHouseConfig;

/// One migration: a version, a name, and its statements.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version.
    pub version: u32,
    /// Short description.
    pub name: &'static str,
    /// DDL statements, run in order.
    pub statements: &'static [&'static str],
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "raw clinic event tables",
    statements: &[
        "CREATE TABLE IF NOT EXISTS dose_administered (
            event_id UUID,
            clinic_id String,
            patient_ref String,
            administered_at_ms Int64,
            administered_at DateTime MATERIALIZED toDateTime(intDiv(administered_at_ms, 1000)),
            product Enum8('ketamine' = 1, 'esketamine' = 2),
            formulation String,
            route Enum8('iv' = 1, 'im' = 2, 'intranasal' = 3, 'oral' = 4, 'sublingual' = 5, 'sc' = 6),
            dose_mg Float64,
            weight_kg Nullable(Float64),
            indication String,
            session_number Int32,
            protocol Nullable(String),
            lot_number Nullable(String),
            received_at_ms Int64,
            received_at DateTime MATERIALIZED toDateTime(intDiv(received_at_ms, 1000)),
            dedup_version UInt64,
            kafka_partition Int32,
            kafka_offset Int64
        ) ENGINE = ReplacingMergeTree(dedup_version)
        PARTITION BY toYYYYMM(toDateTime(intDiv(administered_at_ms, 1000)))
        ORDER BY (clinic_id, event_id)",
        "CREATE TABLE IF NOT EXISTS session_monitoring (
            event_id UUID,
            clinic_id String,
            patient_ref String,
            session_number Int32,
            monitored_at_ms Int64,
            monitored_at DateTime MATERIALIZED toDateTime(intDiv(monitored_at_ms, 1000)),
            bp_systolic_pre Nullable(Int32),
            bp_diastolic_pre Nullable(Int32),
            bp_systolic_post Nullable(Int32),
            bp_diastolic_post Nullable(Int32),
            sedation_moaas Nullable(Int32),
            dissociation_cadss Nullable(Int32),
            spo2_min_pct Nullable(Int32),
            observation_minutes Int32,
            discharge_ready UInt8,
            received_at_ms Int64,
            received_at DateTime MATERIALIZED toDateTime(intDiv(received_at_ms, 1000)),
            dedup_version UInt64,
            kafka_partition Int32,
            kafka_offset Int64
        ) ENGINE = ReplacingMergeTree(dedup_version)
        PARTITION BY toYYYYMM(toDateTime(intDiv(monitored_at_ms, 1000)))
        ORDER BY (clinic_id, event_id)",
        "CREATE TABLE IF NOT EXISTS adverse_event_report (
            event_id UUID,
            clinic_id String,
            patient_ref String,
            report_id String,
            version Int32,
            nullification UInt8,
            nullification_reason Nullable(String),
            reported_at_ms Int64,
            reported_at DateTime MATERIALIZED toDateTime(intDiv(reported_at_ms, 1000)),
            reporter_qualification Enum8('physician' = 1, 'pharmacist' = 2, 'other_health_professional' = 3, 'lawyer' = 4, 'consumer' = 5),
            reaction_verbatim Array(String),
            reaction_coded_term Array(Nullable(String)),
            reaction_onset_date Array(Nullable(Date)),
            reaction_outcome Array(Enum8('recovered' = 1, 'recovering' = 2, 'not_recovered' = 3, 'recovered_with_sequelae' = 4, 'fatal' = 5, 'unknown' = 6)),
            reaction_death Array(UInt8),
            reaction_life_threatening Array(UInt8),
            reaction_hospitalisation Array(UInt8),
            reaction_disability Array(UInt8),
            reaction_congenital_anomaly Array(UInt8),
            reaction_other_medically_important Array(UInt8),
            drug_role Array(Enum8('suspect' = 1, 'concomitant' = 2, 'interacting' = 3)),
            drug_name Array(String),
            drug_product Array(Nullable(Enum8('ketamine' = 1, 'esketamine' = 2))),
            drug_route Array(Nullable(Enum8('iv' = 1, 'im' = 2, 'intranasal' = 3, 'oral' = 4, 'sublingual' = 5, 'sc' = 6))),
            drug_causality Array(Nullable(Enum8('certain' = 1, 'probable' = 2, 'possible' = 3, 'unlikely' = 4, 'conditional' = 5, 'unassessable' = 6))),
            drug_dechallenge Array(Nullable(Enum8('positive' = 1, 'negative' = 2, 'not_applicable' = 3, 'unknown' = 4))),
            drug_rechallenge Array(Nullable(Enum8('positive' = 1, 'negative' = 2, 'not_applicable' = 3, 'unknown' = 4))),
            narrative Nullable(String),
            received_at_ms Int64,
            received_at DateTime MATERIALIZED toDateTime(intDiv(received_at_ms, 1000)),
            dedup_version UInt64,
            kafka_partition Int32,
            kafka_offset Int64
        ) ENGINE = ReplacingMergeTree(dedup_version)
        PARTITION BY toYYYYMM(toDateTime(intDiv(reported_at_ms, 1000)))
        ORDER BY (clinic_id, event_id)",
    ],
}, Migration {
    version: 2,
    name: "enriched event tables; no raw patient references",
    statements: &[
        // The raw tables held clinic patient references: from here on only pseudonymous keys
        // reach ClickHouse. Their data is rebuilt from the enriched topic (Kafka is the record).
        "DROP TABLE IF EXISTS dose_administered",
        "DROP TABLE IF EXISTS session_monitoring",
        "DROP TABLE IF EXISTS adverse_event_report",
        "CREATE TABLE IF NOT EXISTS doses (
            event_id UUID,
            clinic_id String,
            patient_key String,
            administered_at_ms Int64,
            administered_at DateTime MATERIALIZED toDateTime(intDiv(administered_at_ms, 1000)),
            product Enum8('ketamine' = 1, 'esketamine' = 2),
            formulation String,
            route Enum8('iv' = 1, 'im' = 2, 'intranasal' = 3, 'oral' = 4, 'sublingual' = 5, 'sc' = 6),
            dose_mg Float64,
            weight_kg Nullable(Float64),
            dose_mg_per_kg Nullable(Float64),
            indication String,
            session_number Int32,
            protocol Nullable(String),
            lot_number Nullable(String),
            received_at_ms Int64,
            received_at DateTime MATERIALIZED toDateTime(intDiv(received_at_ms, 1000)),
            exp_administrations Int32,
            exp_cumulative_mg Float64,
            exp_cumulative_mg_per_kg Float64,
            exp_doses_with_weight Int32,
            exp_first_dose_at_ms Nullable(Int64),
            exp_last_dose_at_ms Nullable(Int64),
            exp_mean_interval_days Nullable(Float64),
            exp_recent_interval_days Nullable(Float64),
            exp_interval_trend_days_per_session Nullable(Float64),
            exp_baseline_dose_mg Nullable(Float64),
            exp_last_dose_mg Nullable(Float64),
            exp_escalation_ratio Nullable(Float64),
            dedup_version UInt64,
            kafka_partition Int32,
            kafka_offset Int64
        ) ENGINE = ReplacingMergeTree(dedup_version)
        PARTITION BY toYYYYMM(toDateTime(intDiv(administered_at_ms, 1000)))
        ORDER BY (clinic_id, event_id)",
        "CREATE TABLE IF NOT EXISTS monitoring_forms (
            event_id UUID,
            clinic_id String,
            patient_key String,
            session_number Int32,
            monitored_at_ms Int64,
            monitored_at DateTime MATERIALIZED toDateTime(intDiv(monitored_at_ms, 1000)),
            bp_systolic_pre Nullable(Int32),
            bp_diastolic_pre Nullable(Int32),
            bp_systolic_post Nullable(Int32),
            bp_diastolic_post Nullable(Int32),
            sedation_moaas Nullable(Int32),
            dissociation_cadss Nullable(Int32),
            spo2_min_pct Nullable(Int32),
            observation_minutes Int32,
            discharge_ready UInt8,
            received_at_ms Int64,
            received_at DateTime MATERIALIZED toDateTime(intDiv(received_at_ms, 1000)),
            exp_administrations Int32,
            exp_cumulative_mg Float64,
            exp_cumulative_mg_per_kg Float64,
            exp_doses_with_weight Int32,
            exp_first_dose_at_ms Nullable(Int64),
            exp_last_dose_at_ms Nullable(Int64),
            exp_mean_interval_days Nullable(Float64),
            exp_recent_interval_days Nullable(Float64),
            exp_interval_trend_days_per_session Nullable(Float64),
            exp_baseline_dose_mg Nullable(Float64),
            exp_last_dose_mg Nullable(Float64),
            exp_escalation_ratio Nullable(Float64),
            dedup_version UInt64,
            kafka_partition Int32,
            kafka_offset Int64
        ) ENGINE = ReplacingMergeTree(dedup_version)
        PARTITION BY toYYYYMM(toDateTime(intDiv(monitored_at_ms, 1000)))
        ORDER BY (clinic_id, event_id)",
        "CREATE TABLE IF NOT EXISTS ae_report_versions (
            event_id UUID,
            clinic_id String,
            patient_key String,
            report_id String,
            version Int32,
            nullification UInt8,
            nullification_reason Nullable(String),
            reported_at_ms Int64,
            reported_at DateTime MATERIALIZED toDateTime(intDiv(reported_at_ms, 1000)),
            reporter_qualification Enum8('physician' = 1, 'pharmacist' = 2, 'other_health_professional' = 3, 'lawyer' = 4, 'consumer' = 5),
            reaction_verbatim Array(String),
            reaction_coded_term Array(Nullable(String)),
            reaction_onset_date Array(Nullable(Date)),
            reaction_outcome Array(Enum8('recovered' = 1, 'recovering' = 2, 'not_recovered' = 3, 'recovered_with_sequelae' = 4, 'fatal' = 5, 'unknown' = 6)),
            reaction_death Array(UInt8),
            reaction_life_threatening Array(UInt8),
            reaction_hospitalisation Array(UInt8),
            reaction_disability Array(UInt8),
            reaction_congenital_anomaly Array(UInt8),
            reaction_other_medically_important Array(UInt8),
            reaction_pt Array(Nullable(String)),
            reaction_pt_code Array(Nullable(Int64)),
            reaction_soc Array(Nullable(String)),
            reaction_soc_code Array(Nullable(Int64)),
            reaction_coded_from Array(Enum8('clinic_term' = 1, 'verbatim' = 2, 'uncoded' = 3)),
            reaction_groups Array(Array(String)),
            drug_role Array(Enum8('suspect' = 1, 'concomitant' = 2, 'interacting' = 3)),
            drug_name Array(String),
            drug_product Array(Nullable(Enum8('ketamine' = 1, 'esketamine' = 2))),
            drug_route Array(Nullable(Enum8('iv' = 1, 'im' = 2, 'intranasal' = 3, 'oral' = 4, 'sublingual' = 5, 'sc' = 6))),
            drug_causality Array(Nullable(Enum8('certain' = 1, 'probable' = 2, 'possible' = 3, 'unlikely' = 4, 'conditional' = 5, 'unassessable' = 6))),
            drug_dechallenge Array(Nullable(Enum8('positive' = 1, 'negative' = 2, 'not_applicable' = 3, 'unknown' = 4))),
            drug_rechallenge Array(Nullable(Enum8('positive' = 1, 'negative' = 2, 'not_applicable' = 3, 'unknown' = 4))),
            narrative Nullable(String),
            received_at_ms Int64,
            received_at DateTime MATERIALIZED toDateTime(intDiv(received_at_ms, 1000)),
            latest_version_seen Int32,
            exposure_as_of_ms Int64,
            days_since_first_dose Nullable(Float64),
            days_since_last_dose Nullable(Float64),
            exp_administrations Int32,
            exp_cumulative_mg Float64,
            exp_cumulative_mg_per_kg Float64,
            exp_doses_with_weight Int32,
            exp_first_dose_at_ms Nullable(Int64),
            exp_last_dose_at_ms Nullable(Int64),
            exp_mean_interval_days Nullable(Float64),
            exp_recent_interval_days Nullable(Float64),
            exp_interval_trend_days_per_session Nullable(Float64),
            exp_baseline_dose_mg Nullable(Float64),
            exp_last_dose_mg Nullable(Float64),
            exp_escalation_ratio Nullable(Float64),
            dedup_version UInt64,
            kafka_partition Int32,
            kafka_offset Int64
        ) ENGINE = ReplacingMergeTree(dedup_version)
        PARTITION BY toYYYYMM(toDateTime(intDiv(reported_at_ms, 1000)))
        ORDER BY (clinic_id, event_id)",
        // The current state of every case: its highest version (FINAL collapses the others).
        "CREATE TABLE IF NOT EXISTS ae_cases (
            clinic_id String,
            report_id String,
            version Int32,
            event_id UUID,
            patient_key String,
            nullification UInt8,
            reported_at_ms Int64,
            received_at_ms Int64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (clinic_id, report_id)",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS ae_cases_mv TO ae_cases AS
            SELECT clinic_id, report_id, version, event_id, patient_key, nullification, reported_at_ms, received_at_ms
            FROM ae_report_versions",
    ],
}, Migration {
    version: 3,
    name: "signal results and the signal change log",
    statements: &[
        // Every result of every signals run (pv_signals::SignalResult): the dashboard's source
        // and the record of what was known when.
        "CREATE TABLE IF NOT EXISTS signal_results (
            run_at_ms Int64,
            run_at DateTime MATERIALIZED toDateTime(intDiv(run_at_ms, 1000)),
            as_of_ms Int64,
            analysis String,
            time_window String,
            product String,
            route String,
            formulation String,
            dose_band String,
            event String,
            event_level String,
            n UInt64,
            denominator Float64,
            estimate Float64,
            lower Float64,
            upper Float64,
            prr Nullable(Float64),
            chi2 Nullable(Float64),
            ror Nullable(Float64),
            ror_lower Nullable(Float64),
            ic025 Nullable(Float64),
            ebgm Nullable(Float64),
            eb05 Nullable(Float64),
            llr Nullable(Float64),
            cv Nullable(Float64),
            trend_z Nullable(Float64),
            signal UInt8,
            flags String
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(toDateTime(intDiv(run_at_ms, 1000)))
        ORDER BY (analysis, product, event, run_at_ms)",
        // Every change of a signal's state (pv_signals::SignalEvent, as emitted on the signals
        // topic): append-only; the current state of a signal is its latest row.
        "CREATE TABLE IF NOT EXISTS signal_changes (
            event_id String,
            change String,
            run_at_ms Int64,
            as_of_ms Int64,
            first_signalled_at_ms Int64,
            signal_key String,
            analysis String,
            time_window String,
            product String,
            route String,
            formulation String,
            dose_band String,
            event String,
            event_level String,
            n Int64,
            previous_n Nullable(Int64),
            denominator Float64,
            estimate Float64,
            lower Float64,
            upper Float64,
            prr Nullable(Float64),
            chi2 Nullable(Float64),
            ror Nullable(Float64),
            ror_lower Nullable(Float64),
            ic025 Nullable(Float64),
            ebgm Nullable(Float64),
            eb05 Nullable(Float64),
            llr Nullable(Float64),
            cv Nullable(Float64),
            trend_z Nullable(Float64),
            flags String
        ) ENGINE = MergeTree
        ORDER BY (signal_key, run_at_ms)",
    ],
}];

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree ORDER BY version";

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The configured database name is not a plain identifier.
    #[error("database name `{0}` must match [A-Za-z_][A-Za-z0-9_]*")]
    BadDatabaseName(String),
    /// A statement failed.
    #[error("migration {version} ({name}) failed: {source}")]
    Statement {
        /// Migration version.
        version: u32,
        /// Migration name.
        name: &'static str,
        /// The ClickHouse error.
        #[source]
        source: clickhouse::error::Error,
    },
    /// Talking to ClickHouse failed outside a migration.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// Creates the database if needed and applies every migration not yet recorded.
/// Returns the versions applied by this call.
pub async fn migrate(cfg: &ClickHouseConfig) -> Result<Vec<u32>, MigrateError> {
    migrate_with(cfg, MIGRATIONS).await
}

/// [`migrate`] with an explicit migration list.
pub async fn migrate_with(
    cfg: &ClickHouseConfig,
    migrations: &[Migration],
) -> Result<Vec<u32>, MigrateError> {
    if !is_identifier(&cfg.database) {
        return Err(MigrateError::BadDatabaseName(cfg.database.clone()));
    }
    let server = pv_runtime::clickhouse::server_client(cfg);
    server.query(&format!("CREATE DATABASE IF NOT EXISTS {}", cfg.database)).execute().await?;
    let client = pv_runtime::clickhouse::client(cfg);
    client.query(MIGRATIONS_TABLE).execute().await?;
    let applied: Vec<u32> =
        client.query("SELECT DISTINCT version FROM schema_migrations").fetch_all().await?;
    let mut done = Vec::new();
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        let err = |source| MigrateError::Statement { version: m.version, name: m.name, source };
        for statement in m.statements {
            client.query(statement).execute().await.map_err(err)?;
        }
        client
            .query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())")
            .bind(m.version)
            .bind(m.name)
            .execute()
            .await
            .map_err(err)?;
        tracing::info!(version = m.version, name = m.name, database = %cfg.database, "migration applied");
        done.push(m.version);
    }
    Ok(done)
}

/// Whether `s` is a plain SQL identifier.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn database_names_must_be_identifiers() {
        assert!(is_identifier("pv_test_01"));
        assert!(!is_identifier("pv; DROP TABLE x"));
        assert!(!is_identifier("1pv"));
        assert!(!is_identifier(""));
    }
}
