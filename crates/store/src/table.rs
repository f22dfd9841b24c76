//! Tables: a definition (name, engine, keys) typed by its row, and the DDL rendered from both.
//!
//! A row type is declared with [`table_row!`], which derives the clickhouse-rs `Row` and lists
//! the columns with the ClickHouse types of the fields ([`crate::column::ColumnType`]). The
//! table's `CREATE` statement is rendered from that list, so a column and its type are written
//! once, in the row.

use std::marker::PhantomData;

use pv_runtime::ClickHouseConfig;

use crate::column::Column;

/// Where the store's tables live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One server: each table is a plain `MergeTree`-family table.
    Single,
    /// A cluster: each table `t` is a replicated `t_local` on every server, and a Distributed
    /// table `t` over them, sharded by patient where the table has one (so one patient's rows,
    /// and every copy of one event, live on one shard: `FINAL` and per-patient subqueries stay
    /// exact), else by its sorting key.
    Cluster {
        /// The cluster's name in the servers' `remote_servers`.
        name: String,
        /// The database.
        database: String,
        /// ZooKeeper path template (`{database}`, `{table}` filled in here).
        replication_path: String,
        /// Replica name (a server macro).
        replica_name: String,
    },
}

impl Layout {
    /// The layout `cfg` asks for.
    pub fn of(cfg: &ClickHouseConfig) -> Self {
        match &cfg.cluster {
            None => Layout::Single,
            Some(name) => Layout::Cluster {
                name: name.clone(),
                database: cfg.database.clone(),
                replication_path: cfg.replication_path.clone(),
                replica_name: cfg.replica_name.clone(),
            },
        }
    }

    /// ` ON CLUSTER name`, or nothing on one server.
    pub fn on_cluster(&self) -> String {
        match self {
            Layout::Single => String::new(),
            Layout::Cluster { name, .. } => format!(" ON CLUSTER {name}"),
        }
    }

    /// The name of the table that stores `table`'s rows on each server.
    pub fn storage_name(&self, table: &str) -> String {
        match self {
            Layout::Single => table.to_owned(),
            Layout::Cluster { .. } => format!("{table}_local"),
        }
    }

    /// `name` as DDL must write it: with the database on a cluster (a statement `ON CLUSTER`
    /// resolves bare names in each server's default database).
    pub fn qualified(&self, name: &str) -> String {
        match self {
            Layout::Single => name.to_owned(),
            Layout::Cluster { database, .. } => format!("{database}.{name}"),
        }
    }
}

/// What every table definition can say about itself, whatever its row type.
pub trait Schema: Sync {
    /// The table's name (as created; see [`crate::Db::name_of`] for the name queries use).
    fn name(&self) -> &'static str;
    /// Every column in DDL order, the `MATERIALIZED` ones included.
    fn columns(&self) -> Vec<Column>;
    /// The row type's field names (what an insert writes).
    fn row_fields(&self) -> &'static [&'static str];
    /// `CREATE TABLE IF NOT EXISTS ...` for this table on one server.
    fn create_statement(&self) -> String;
    /// The statements that create this table in `layout`: on a cluster, the replicated local
    /// table on every server, then the Distributed table over them.
    fn create_statements(&self, layout: &Layout) -> Vec<String>;
    /// The `PARTITION BY` expression, if any.
    fn partition_key(&self) -> Option<&'static str>;
    /// Which shard a row goes to on a cluster (the Distributed table's sharding key).
    fn shard_by(&self) -> String;
}

/// A row type stored in a table: its stored columns, in order.
pub trait TableRow: clickhouse::RowOwned + clickhouse::RowRead + clickhouse::RowWrite {
    /// The stored columns (one per field).
    fn columns() -> Vec<Column>;
}

/// A table whose rows are `R`.
#[derive(Debug)]
pub struct Table<R> {
    name: &'static str,
    engine: &'static str,
    partition_by: Option<&'static str>,
    order_by: &'static str,
    datetimes: &'static [&'static str],
    by_patient: bool,
    row: PhantomData<fn() -> R>,
}

impl<R> Table<R> {
    /// A table `name` with `engine` (e.g. `ReplacingMergeTree(version)`), sorted by `order_by`.
    pub const fn new(name: &'static str, engine: &'static str, order_by: &'static str) -> Self {
        Self {
            name,
            engine,
            partition_by: None,
            order_by,
            datetimes: &[],
            by_patient: false,
            row: PhantomData,
        }
    }

    /// Sharded by `patient_key` on a cluster: only for tables whose sorting key determines the
    /// patient (an event belongs to one patient), so rows that replace each other still meet.
    pub const fn sharded_by_patient(self) -> Self {
        Self { by_patient: true, ..self }
    }

    /// Partitioned by `expr`.
    pub const fn partition_by(self, expr: &'static str) -> Self {
        Self { partition_by: Some(expr), ..self }
    }

    /// With a server-computed `DateTime` twin right after each of these `X_ms` columns, for SQL
    /// that wants calendar functions ([`Column::datetime_of`]).
    pub const fn with_datetimes(self, ms_columns: &'static [&'static str]) -> Self {
        Self { datetimes: ms_columns, ..self }
    }

    /// The table's name.
    pub const fn table_name(&self) -> &'static str {
        self.name
    }
}

impl<R: TableRow> Schema for Table<R> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn columns(&self) -> Vec<Column> {
        let mut out = Vec::new();
        for column in R::columns() {
            let twin =
                self.datetimes.contains(&column.name.as_str()).then(|| Column::datetime_of(&column.name));
            out.push(column);
            out.extend(twin);
        }
        out
    }

    fn row_fields(&self) -> &'static [&'static str] {
        R::COLUMN_NAMES
    }

    fn create_statement(&self) -> String {
        self.render(self.name, "", self.engine)
    }

    fn partition_key(&self) -> Option<&'static str> {
        self.partition_by
    }

    fn shard_by(&self) -> String {
        self.sharding_key()
    }

    fn create_statements(&self, layout: &Layout) -> Vec<String> {
        let Layout::Cluster { name: cluster, database, replication_path, replica_name } = layout else {
            return vec![self.create_statement()];
        };
        let local = layout.qualified(&layout.storage_name(self.name));
        let path = replication_path.replace("{database}", database).replace("{table}", self.name);
        let (family, args) = self.engine.split_once('(').unwrap_or((self.engine, ")"));
        let args = if args == ")" { ")".to_owned() } else { format!(", {args}") };
        let engine = format!("Replicated{family}('{path}', '{replica_name}'{args}");
        vec![
            self.render(&local, &layout.on_cluster(), &engine),
            format!(
                "CREATE TABLE IF NOT EXISTS {}{} (\n    {}\n) ENGINE = Distributed({cluster}, {database}, {}, {})",
                layout.qualified(self.name),
                layout.on_cluster(),
                self.distributed_columns().join(",\n    "),
                layout.storage_name(self.name),
                self.sharding_key()
            ),
        ]
    }
}

impl<R: TableRow> Table<R> {
    /// `CREATE TABLE IF NOT EXISTS name[ ON CLUSTER c] (...) ENGINE = engine ...`.
    fn render(&self, name: &str, on_cluster: &str, engine: &str) -> String {
        let columns: Vec<String> = self.columns().iter().map(Column::ddl).collect();
        let partition = self.partition_by.map(|p| format!("\nPARTITION BY {p}")).unwrap_or_default();
        format!(
            "CREATE TABLE IF NOT EXISTS {name}{on_cluster} (\n    {}\n) ENGINE = {engine}{partition}\nORDER BY {}",
            columns.join(",\n    "),
            self.order_by
        )
    }

    /// The Distributed table's columns: a `MATERIALIZED` column becomes an `ALIAS` of the same
    /// expression (ClickHouse 18.16 forwards a Distributed table's materialized columns with the
    /// insert, and the shard refuses them).
    fn distributed_columns(&self) -> Vec<String> {
        let ddl = |c: &Column| match &c.materialized {
            None => c.ddl(),
            Some(expr) => format!("{} {} ALIAS {expr}", c.name, c.ty),
        };
        self.columns().iter().map(ddl).collect()
    }

    /// Which shard a row goes to on a cluster: its patient for the event tables (an event has one
    /// patient), else its sorting key (a case's versions may name different patients); rows that
    /// replace each other meet on one shard either way.
    pub fn sharding_key(&self) -> String {
        if self.by_patient {
            return "cityHash64(patient_key)".to_owned();
        }
        let key = self.order_by.trim();
        let key = key.strip_prefix('(').and_then(|k| k.strip_suffix(')')).unwrap_or(key);
        format!("cityHash64({key})")
    }
}

/// A materialized view that copies the columns of `to`'s row from every insert into `from`.
#[derive(Debug)]
pub struct CopyView {
    /// The view's name.
    pub name: &'static str,
    /// The table it reads inserts of.
    pub from: &'static dyn Schema,
    /// The table it writes.
    pub to: &'static dyn Schema,
    /// Columns of `to` computed by an expression over `from`'s row, (column, expression); the
    /// others are copied by name.
    pub computed: &'static [(&'static str, &'static str)],
}

impl CopyView {
    /// The `SELECT` list: every column of `to`, copied or computed.
    fn select_list(&self) -> String {
        let fields: Vec<String> = self
            .to
            .row_fields()
            .iter()
            .map(|f| match self.computed.iter().find(|(c, _)| c == f) {
                Some((c, expr)) => format!("{expr} AS {c}"),
                None => (*f).to_string(),
            })
            .collect();
        fields.join(", ")
    }

    /// `CREATE MATERIALIZED VIEW IF NOT EXISTS ...` on one server.
    pub fn create_statement(&self) -> String {
        self.create_statement_in(&Layout::Single)
    }

    /// The view in `layout`: on a cluster, on every server, from the local table (it sees each
    /// insert once, on the replica that took it) into the Distributed table, which routes each
    /// row to its own shard.
    pub fn create_statement_in(&self, layout: &Layout) -> String {
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {}{} TO {} AS\n    SELECT {}\n    FROM {}",
            layout.qualified(self.name),
            layout.on_cluster(),
            layout.qualified(self.to.name()),
            self.select_list(),
            layout.qualified(&layout.storage_name(self.from.name()))
        )
    }

    /// `INSERT INTO to SELECT ... FROM from`: what the view would have written for the rows
    /// `from` held before it existed. Harmless to repeat when `to` deduplicates.
    pub fn backfill_statement(&self) -> String {
        format!(
            "INSERT INTO {} ({}) SELECT {} FROM {}",
            self.to.name(),
            self.to.row_fields().join(", "),
            self.select_list(),
            self.from.name()
        )
    }
}

impl std::fmt::Debug for dyn Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares a row type: a `pub` struct deriving clickhouse-rs `Row` and serde, whose
/// [`TableRow::columns`] are its fields with their [`crate::column::ColumnType`]s.
#[macro_export]
macro_rules! table_row {
    ($(#[$doc:meta])* pub struct $name:ident { $($(#[$fattr:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $($(#[$fattr])* pub $field: $ty,)*
        }

        impl $crate::table::TableRow for $name {
            fn columns() -> Vec<$crate::column::Column> {
                vec![$($crate::column::Column::of::<$ty>(stringify!($field))),*]
            }
        }
    };
}

#[cfg(test)]
#[allow(unreachable_pub)]
mod tests {
    use super::*;

    table_row! {
        /// A test row.
        pub struct Reading {
            /// When.
            at_ms: i64,
            /// What.
            value: Option<f64>,
        }
    }

    const READINGS: Table<Reading> = Table::new("readings", "MergeTree", "at_ms")
        .partition_by("toYYYYMM(toDateTime(intDiv(at_ms, 1000)))")
        .with_datetimes(&["at_ms"]);

    #[test]
    fn ddl_is_rendered_from_the_row_and_the_definition() {
        assert_eq!(
            READINGS.create_statement(),
            "CREATE TABLE IF NOT EXISTS readings (
    at_ms Int64,
    at DateTime MATERIALIZED toDateTime(intDiv(at_ms, 1000)),
    value Nullable(Float64)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(at_ms, 1000)))
ORDER BY at_ms"
        );
        assert_eq!(READINGS.row_fields(), ["at_ms", "value"]);
    }

    #[test]
    fn a_cluster_gets_replicated_local_tables_and_distributed_tables_over_them() {
        let cluster = Layout::Cluster {
            name: "pv".into(),
            database: "db".into(),
            replication_path: "/clickhouse/tables/{shard}/{database}/{table}".into(),
            replica_name: "{replica}".into(),
        };
        const VERSIONED: Table<Reading> =
            Table::new("readings", "ReplacingMergeTree(at_ms)", "(at_ms, value)");
        let [local, distributed] =
            <[String; 2]>::try_from(VERSIONED.create_statements(&cluster)).expect("two");
        assert!(
            local.starts_with("CREATE TABLE IF NOT EXISTS db.readings_local ON CLUSTER pv (")
                && local.contains(
                    "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/readings', '{replica}', at_ms)"
                ),
            "{local}"
        );
        assert_eq!(
            distributed,
            "CREATE TABLE IF NOT EXISTS db.readings ON CLUSTER pv (\n    at_ms Int64,\n    value Nullable(Float64)\n) ENGINE = Distributed(pv, db, readings_local, cityHash64(at_ms, value))"
        );
        let with_twin = READINGS.create_statements(&cluster);
        assert!(
            with_twin[1].contains("at DateTime ALIAS toDateTime(intDiv(at_ms, 1000))"),
            "{}",
            with_twin[1]
        );
        let plain = READINGS.create_statements(&cluster);
        assert!(plain[0].contains("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/readings', '{replica}')\nPARTITION BY"), "{}", plain[0]);
        assert_eq!(READINGS.create_statements(&Layout::Single), [READINGS.create_statement()]);
        assert_eq!(crate::events::DOSES.sharding_key(), "cityHash64(patient_key)", "events by patient");
        assert_eq!(
            crate::events::AE_CASES.sharding_key(),
            "cityHash64(clinic_id, report_id)",
            "cases by case: a follow-up may name another patient"
        );
        let view = crate::events::AE_CASES_MV.create_statement_in(&cluster);
        assert!(
            view.starts_with(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS db.ae_cases_mv ON CLUSTER pv TO db.ae_cases AS"
            ) && view.ends_with("FROM db.ae_report_versions_local"),
            "{view}"
        );
    }

    #[test]
    fn a_copy_view_selects_the_target_rows_columns() {
        static FROM: Table<Reading> = Table::new("raw", "MergeTree", "at_ms");
        static TO: Table<Reading> = Table::new("copy", "MergeTree", "at_ms");
        let view = CopyView { name: "copy_mv", from: &FROM, to: &TO, computed: &[] };
        assert_eq!(
            view.create_statement(),
            "CREATE MATERIALIZED VIEW IF NOT EXISTS copy_mv TO copy AS\n    SELECT at_ms, value\n    FROM raw"
        );
    }
}
