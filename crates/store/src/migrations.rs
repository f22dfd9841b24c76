//! Versioned migrations, applied by `pv migrate` and at sink start-up.
//!
//! Each migration runs once and is recorded in `schema_migrations`. Its steps are idempotent
//! (`IF NOT EXISTS`), so a crash between a step and the record is harmless.
//!
//! A table's definition (its row type and [`crate::table::Table`]) is its current shape, and the
//! migration that first created the table renders it from that definition. When a table changes
//! later, its definition changes and a new migration brings the databases created before to the
//! same shape, written so that it changes nothing on a database created in the new shape.
//! `tests/store_schema.rs` checks both paths against the definitions: a new database, and one
//! created by the previous release (`tests/fixtures/`) and migrated. Never shrink an `Enum8` in
//! a migration: ClickHouse 18.16 keeps rows with the dropped value, then fails every read.
//!
//! The DDL runs on ClickHouse 18.16 and on current releases: no DateTime64, LowCardinality,
//! window functions or table-level dedup settings.

use pv_runtime::ClickHouseConfig;

use crate::column::Seconds;
use crate::events::{
    AE_CASES, AE_CASES_MV, AE_REPORT_VERSIONS, CASE_SUMMARIES, CASE_SUMMARIES_MV, DOSES, ENROLMENTS,
    MONITORING_FORMS,
};
use crate::signals::{SIGNAL_CHANGES, SIGNAL_CONTRIBUTIONS, SIGNAL_EXPOSURE, SIGNAL_RESULTS};
use crate::table::{CopyView, Layout, Schema, Table};
use crate::workflow::{SIGNAL_WORKFLOW, USER_VISITS};
use crate::{Db, StoreError, table_row};

/// One step of a migration.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// A statement, as written.
    Sql(&'static str),
    /// Create a table from its definition.
    Create(&'static dyn Schema),
    /// Create a materialized view from its definition.
    CreateView(&'static CopyView),
    /// Write what a view would have written for the rows its source held before it existed.
    Backfill(&'static CopyView),
    /// Change a column of a table: (table, change). Each change is made unless it is done
    /// already (ClickHouse 18.16 has no `IF [NOT] EXISTS` for columns).
    Column(&'static str, ColumnChange),
}

/// A change to one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnChange {
    /// Add the column unless the table has it: its type and default, and the column it goes after.
    Add { column: &'static str, ty: &'static str, after: &'static str },
    /// Drop the column if the table has it. The table's other columns keep their data.
    Drop { column: &'static str },
    /// Change the column's type, converting what it holds. Running it on a column of that type
    /// already changes nothing.
    Modify { column: &'static str, ty: &'static str },
}

impl ColumnChange {
    /// The column it changes.
    pub fn column(&self) -> &'static str {
        match self {
            ColumnChange::Add { column, .. }
            | ColumnChange::Drop { column }
            | ColumnChange::Modify { column, .. } => column,
        }
    }

    /// What `ALTER TABLE` does.
    fn alteration(&self) -> String {
        match self {
            ColumnChange::Add { column, ty, after } => format!("ADD COLUMN {column} {ty} AFTER {after}"),
            ColumnChange::Drop { column } => format!("DROP COLUMN {column}"),
            ColumnChange::Modify { column, ty } => format!("MODIFY COLUMN {column} {ty}"),
        }
    }

    /// Whether nothing is left to do on a table where the column has the types `found` (none:
    /// the table has no such column). A drop is done when the column is gone, or was never
    /// there (a database created in the current shape); a modify when the column has the
    /// wanted type, or is gone.
    fn done(&self, found: &[String]) -> bool {
        match self {
            ColumnChange::Add { .. } => !found.is_empty(),
            ColumnChange::Drop { .. } => found.is_empty(),
            ColumnChange::Modify { ty, .. } => found.iter().all(|t| t == ty),
        }
    }
}

impl Step {
    /// The statements this step runs in `layout`. On a cluster every statement runs `ON
    /// CLUSTER` with qualified names; a [`Step::Sql`] there must be a `DROP TABLE IF EXISTS t`
    /// or DDL that names its tables with the database.
    pub fn statements(&self, layout: &Layout) -> Vec<String> {
        let Layout::Cluster { .. } = layout else { return vec![self.statement()] };
        match self {
            // Qualified: `ON CLUSTER` resolves bare names in each server's default database.
            Step::Sql(sql) => match sql.strip_prefix("DROP TABLE IF EXISTS ") {
                Some(table) => {
                    vec![format!("DROP TABLE IF EXISTS {}{}", layout.qualified(table), layout.on_cluster())]
                }
                None => vec![format!("{sql}{}", layout.on_cluster())],
            },
            Step::Create(table) => table.create_statements(layout),
            Step::CreateView(view) => vec![view.create_statement_in(layout)],
            // Distributed to Distributed: each row goes back to its own shard.
            Step::Backfill(view) => vec![view.backfill_statement()],
            // The replicated local tables only: the Distributed table over them is recreated
            // ([`distributed_statements`]), as 18.16 refuses `ALTER ... ON CLUSTER` on a table
            // that is not replicated when a shard replicates internally.
            Step::Column(table, change) => vec![format!(
                "ALTER TABLE {}{} {}",
                layout.qualified(&layout.storage_name(table)),
                layout.on_cluster(),
                change.alteration()
            )],
        }
    }

    /// A column step: adds `column` (of type and default `ty`) after `after` to `table`.
    pub const fn add_column(
        table: &'static str,
        column: &'static str,
        ty: &'static str,
        after: &'static str,
    ) -> Step {
        Step::Column(table, ColumnChange::Add { column, ty, after })
    }

    /// A column step: drops `column` from `table`.
    pub const fn drop_column(table: &'static str, column: &'static str) -> Step {
        Step::Column(table, ColumnChange::Drop { column })
    }

    /// A column step: changes the type of `table`'s `column` to `ty`.
    pub const fn modify_column(table: &'static str, column: &'static str, ty: &'static str) -> Step {
        Step::Column(table, ColumnChange::Modify { column, ty })
    }

    /// The table a column step changes, if it is one.
    pub fn column_table(&self) -> Option<&'static str> {
        match self {
            Step::Column(table, _) => Some(table),
            Step::Sql(_) | Step::Create(_) | Step::CreateView(_) | Step::Backfill(_) => None,
        }
    }

    /// The statement this step runs on one server.
    pub fn statement(&self) -> String {
        match self {
            Step::Sql(sql) => (*sql).to_string(),
            Step::Create(table) => table.create_statement(),
            Step::CreateView(view) => view.create_statement(),
            Step::Backfill(view) => view.backfill_statement(),
            Step::Column(table, change) => format!("ALTER TABLE {table} {}", change.alteration()),
        }
    }
}

/// One migration: a version, a name, and its steps.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version.
    pub version: u32,
    /// Short description.
    pub name: &'static str,
    /// Run in order.
    pub steps: &'static [Step],
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    // Its three tables (`dose_administered`, `session_monitoring`, `adverse_event_report`) held
    // the clinics' patient references and are dropped by migration 2: a new database skips them.
    Migration { version: 1, name: "raw clinic event tables", steps: &[] },
    Migration {
        version: 2,
        name: "enriched event tables; no raw patient references",
        steps: &[
            // Only pseudonymous keys reach ClickHouse from here on; the data of the raw tables is
            // rebuilt from the enriched topic (Kafka is the record).
            Step::Sql("DROP TABLE IF EXISTS dose_administered"),
            Step::Sql("DROP TABLE IF EXISTS session_monitoring"),
            Step::Sql("DROP TABLE IF EXISTS adverse_event_report"),
            Step::Create(&DOSES),
            Step::Create(&MONITORING_FORMS),
            Step::Create(&AE_REPORT_VERSIONS),
            Step::Create(&AE_CASES),
            Step::CreateView(&AE_CASES_MV),
        ],
    },
    Migration {
        version: 3,
        name: "signal results and the signal change log",
        steps: &[Step::Create(&SIGNAL_RESULTS), Step::Create(&SIGNAL_CHANGES)],
    },
    Migration {
        version: 4,
        name: "what each signals run counted; the signal workflow log; workbench visits",
        steps: &[
            Step::Create(&SIGNAL_CONTRIBUTIONS),
            Step::Create(&SIGNAL_WORKFLOW),
            Step::Create(&USER_VISITS),
        ],
    },
    Migration {
        version: 5,
        name: "case summaries for the workbench's listings",
        // The view first: a case version inserted between the two steps lands twice, and the
        // table keeps one.
        steps: &[
            Step::Create(&CASE_SUMMARIES),
            Step::CreateView(&CASE_SUMMARIES_MV),
            Step::Backfill(&CASE_SUMMARIES_MV),
        ],
    },
    Migration {
        version: 6,
        name: "administrations per stratum, clinic and month of each signals run",
        steps: &[Step::Create(&SIGNAL_EXPOSURE)],
    },
    Migration {
        version: 7,
        name: "patient enrolments and their baseline",
        steps: &[Step::Create(&ENROLMENTS)],
    },
    Migration {
        version: 8,
        name: "signal results and changes: subgroup, p-value, FDR q-value; contributions: subgroups",
        steps: &[
            Step::add_column("signal_results", "subgroup", "String DEFAULT '*'", "event_level"),
            Step::add_column("signal_results", "p_value", "Nullable(Float64)", "trend_z"),
            Step::add_column("signal_results", "q_value", "Nullable(Float64)", "p_value"),
            Step::add_column("signal_changes", "subgroup", "String DEFAULT '*'", "event_level"),
            Step::add_column("signal_changes", "p_value", "Nullable(Float64)", "trend_z"),
            Step::add_column("signal_changes", "q_value", "Nullable(Float64)", "p_value"),
            Step::add_column("signal_contributions", "subgroups", "Array(String)", "markers"),
        ],
    },
    Migration {
        version: 9,
        name: "lean event rows: a dose keeps its cumulative mg and escalation ratio, a form no exposure",
        steps: &[
            // Never NULL on a dose (its exposure counts the dose itself); 18.16 refuses the change
            // if one were, and nothing changes.
            Step::modify_column("doses", "exp_escalation_ratio", "Float64"),
            Step::drop_column("doses", "exp_administrations"),
            Step::drop_column("doses", "exp_cumulative_mg_per_kg"),
            Step::drop_column("doses", "exp_doses_with_weight"),
            Step::drop_column("doses", "exp_first_dose_at_ms"),
            Step::drop_column("doses", "exp_last_dose_at_ms"),
            Step::drop_column("doses", "exp_mean_interval_days"),
            Step::drop_column("doses", "exp_recent_interval_days"),
            Step::drop_column("doses", "exp_interval_trend_days_per_session"),
            Step::drop_column("doses", "exp_baseline_dose_mg"),
            Step::drop_column("doses", "exp_last_dose_mg"),
            Step::drop_column("monitoring_forms", "exp_administrations"),
            Step::drop_column("monitoring_forms", "exp_cumulative_mg"),
            Step::drop_column("monitoring_forms", "exp_cumulative_mg_per_kg"),
            Step::drop_column("monitoring_forms", "exp_doses_with_weight"),
            Step::drop_column("monitoring_forms", "exp_first_dose_at_ms"),
            Step::drop_column("monitoring_forms", "exp_last_dose_at_ms"),
            Step::drop_column("monitoring_forms", "exp_mean_interval_days"),
            Step::drop_column("monitoring_forms", "exp_recent_interval_days"),
            Step::drop_column("monitoring_forms", "exp_interval_trend_days_per_session"),
            Step::drop_column("monitoring_forms", "exp_baseline_dose_mg"),
            Step::drop_column("monitoring_forms", "exp_last_dose_mg"),
            Step::drop_column("monitoring_forms", "exp_escalation_ratio"),
        ],
    },
];

table_row! {
    /// A row of `schema_migrations`: a migration applied.
    pub struct MigrationRow {
        version: u32,
        name: String,
        applied_at: Seconds,
    }
}

/// `schema_migrations`: which migrations a database has.
pub const SCHEMA_MIGRATIONS: Table<MigrationRow> =
    Table::new("schema_migrations", "ReplacingMergeTree", "version");

/// Creates the database if needed and applies every migration not yet recorded.
/// Returns the versions applied by this call.
pub async fn migrate(cfg: &ClickHouseConfig) -> Result<Vec<u32>, StoreError> {
    migrate_with(cfg, MIGRATIONS).await
}

/// [`migrate`] with an explicit migration list.
pub async fn migrate_with(cfg: &ClickHouseConfig, migrations: &[Migration]) -> Result<Vec<u32>, StoreError> {
    if !is_identifier(&cfg.database) {
        return Err(StoreError::BadDatabaseName(cfg.database.clone()));
    }
    let layout = Layout::of(cfg);
    let server = pv_runtime::clickhouse::server_client(cfg);
    let database = format!("CREATE DATABASE IF NOT EXISTS {}{}", cfg.database, layout.on_cluster());
    server.query(&database).execute().await?;
    let db = Db::new(cfg);
    for statement in SCHEMA_MIGRATIONS.create_statements(&layout) {
        db.client().query(&statement).execute().await?;
    }
    let applied: Vec<u32> = db.sql("SELECT DISTINCT version FROM {schema_migrations}").fetch_all().await?;
    let mut done = Vec::new();
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        let err = |source| StoreError::Migration { version: m.version, name: m.name, source };
        for step in m.steps {
            apply_step(&db, &layout, step).await.map_err(|e| match e {
                StoreError::ClickHouse(source) => err(source),
                other => other,
            })?;
        }
        let record = MigrationRow { version: m.version, name: m.name.into(), applied_at: now() };
        db.insert(&SCHEMA_MIGRATIONS, &[record]).await.map_err(err)?;
        tracing::info!(version = m.version, name = m.name, database = %cfg.database, "migration applied");
        done.push(m.version);
    }
    Ok(done)
}

/// Runs `step` unless it is done. On a cluster a column step alters the replicated local
/// tables, then recreates the Distributed table over them while it differs (also when an earlier
/// run stopped between the two).
async fn apply_step(db: &Db, layout: &Layout, step: &Step) -> Result<(), StoreError> {
    let Step::Column(table, change) = step else { return execute(db, &step.statements(layout)).await };
    if !column_change_done(db, change, &layout.storage_name(table)).await? {
        execute(db, &step.statements(layout)).await?;
    }
    if matches!(layout, Layout::Cluster { .. }) && !column_change_done(db, change, table).await? {
        execute(db, &distributed_statements(db, layout, table).await?).await?;
    }
    Ok(())
}

async fn execute(db: &Db, statements: &[String]) -> Result<(), StoreError> {
    for statement in statements {
        db.client().query(statement).execute().await?;
    }
    Ok(())
}

/// Whether `change` has nothing to do on `table`, by the column's type there.
async fn column_change_done(db: &Db, change: &ColumnChange, table: &str) -> Result<bool, StoreError> {
    let types: Vec<String> = db
        .sql("SELECT type FROM system.columns WHERE database = currentDatabase() AND table = {t} AND name = {c}")
        .bind("t", table.to_owned())
        .bind("c", change.column())
        .fetch_all()
        .await?;
    Ok(change.done(&types))
}

/// The statements that recreate `table`'s Distributed table over its local tables as they are
/// now on the server `db` talks to (after a column step). A `MATERIALIZED` column becomes an
/// `ALIAS` there, as when created ([`crate::table::Schema::create_statements`]). Between the drop
/// and the create, queries and inserts through the table fail and are retried by the services.
async fn distributed_statements(db: &Db, layout: &Layout, table: &str) -> Result<Vec<String>, StoreError> {
    let Layout::Cluster { name: cluster, database, .. } = layout else { return Ok(Vec::new()) };
    let schema = created_schema(table).ok_or_else(|| StoreError::UnknownTable(table.to_owned()))?;
    let local = layout.storage_name(table);
    let columns: Vec<(String, String, String, String)> = db
        .sql("SELECT name, type, default_kind, default_expression FROM system.columns WHERE database = currentDatabase() AND table = {t}")
        .bind("t", local.clone())
        .fetch_all()
        .await?;
    let columns: Vec<String> = columns
        .iter()
        .map(|(name, ty, kind, expr)| match kind.as_str() {
            "" => format!("{name} {ty}"),
            "MATERIALIZED" => format!("{name} {ty} ALIAS {expr}"),
            kind => format!("{name} {ty} {kind} {expr}"),
        })
        .collect();
    Ok(vec![
        format!("DROP TABLE IF EXISTS {}{}", layout.qualified(table), layout.on_cluster()),
        format!(
            "CREATE TABLE IF NOT EXISTS {}{} (\n    {}\n) ENGINE = Distributed({cluster}, {database}, {local}, {})",
            layout.qualified(table),
            layout.on_cluster(),
            columns.join(",\n    "),
            schema.shard_by()
        ),
    ])
}

/// The definition of `table`, as the migration that creates it has it.
fn created_schema(table: &str) -> Option<&'static dyn Schema> {
    MIGRATIONS.iter().flat_map(|m| m.steps).find_map(|s| match s {
        Step::Create(t) if t.name() == table => Some(*t),
        _ => None,
    })
}

fn now() -> Seconds {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Seconds(u32::try_from(secs).unwrap_or(u32::MAX))
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
    fn every_table_is_created_by_some_migration() {
        let created: Vec<String> = MIGRATIONS.iter().flat_map(|m| m.steps).map(Step::statement).collect();
        for table in crate::TABLES.iter().filter(|t| t.name() != SCHEMA_MIGRATIONS.table_name()) {
            let ddl = table.create_statement();
            assert!(created.contains(&ddl), "no migration creates `{}` as defined", table.name());
        }
    }

    #[test]
    fn every_column_step_names_a_table_some_migration_creates() {
        for table in MIGRATIONS.iter().flat_map(|m| m.steps).filter_map(Step::column_table) {
            assert!(created_schema(table).is_some(), "{table}: its Distributed table could not be recreated");
        }
    }

    #[test]
    fn cluster_steps_name_tables_with_their_database() {
        let cluster = Layout::Cluster {
            name: "pv".into(),
            database: "db".into(),
            replication_path: "/p/{table}".into(),
            replica_name: "{replica}".into(),
        };
        let add = Step::add_column("t", "c", "String", "b").statements(&cluster);
        // The local tables only: the Distributed table is recreated (`distributed_statements`).
        assert_eq!(add, ["ALTER TABLE db.t_local ON CLUSTER pv ADD COLUMN c String AFTER b"]);
        assert_eq!(
            Step::drop_column("t", "c").statements(&cluster),
            ["ALTER TABLE db.t_local ON CLUSTER pv DROP COLUMN c"]
        );
        assert_eq!(
            Step::modify_column("t", "c", "Float64").statement(),
            "ALTER TABLE t MODIFY COLUMN c Float64"
        );
        assert_eq!(
            Step::Sql("DROP TABLE IF EXISTS x").statements(&cluster),
            ["DROP TABLE IF EXISTS db.x ON CLUSTER pv"]
        );
    }

    #[test]
    fn a_column_change_is_done_by_what_the_table_has() {
        let found = |types: &[&str]| types.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        let add = ColumnChange::Add { column: "c", ty: "String", after: "b" };
        assert!(!add.done(&found(&[])), "no such column: add it");
        assert!(add.done(&found(&["String"])));
        let drop = ColumnChange::Drop { column: "c" };
        assert!(drop.done(&found(&[])), "gone, or never there in a database of today's shape");
        assert!(!drop.done(&found(&["UInt32"])));
        let modify = ColumnChange::Modify { column: "c", ty: "Float64" };
        assert!(!modify.done(&found(&["Nullable(Float64)"])));
        assert!(modify.done(&found(&["Float64"])));
        assert!(modify.done(&found(&[])), "gone: nothing to convert");
    }

    #[test]
    fn database_names_must_be_identifiers() {
        assert!(is_identifier("pv_test_01"));
        assert!(!is_identifier("pv; DROP TABLE x"));
        assert!(!is_identifier("1pv"));
        assert!(!is_identifier(""));
    }
}
