//! The ClickHouse store: what is stored and how it is read.
//!
//! - [`column`]: how Rust field types map to ClickHouse column types; the `Enum8` columns.
//! - [`table`]: table definitions typed by their rows, and the DDL rendered from both.
//! - [`events`], [`signals`], [`workflow`]: the tables, each row type beside its definition.
//! - [`migrations`]: versioned migrations, rendered from the definitions.
//! - [`db`]: the query layer every reader and writer uses ([`Db`]).
//! - [`digest`]: a fingerprint of the event tables' content (for `pv replay --verify`).
//!
//! To add a table: declare its row with [`table_row!`] and its [`table::Table`] beside it, list
//! it in [`TABLES`], and add a migration with a [`migrations::Step::Create`] for it.

pub mod column;
pub mod db;
pub mod digest;
pub mod events;
pub mod migrations;
pub mod signals;
pub mod table;
pub mod workflow;

pub use db::{Db, Sql};
pub use migrations::migrate;
pub use table::{Schema, Table, TableRow};

/// Every table of the store.
pub const TABLES: &[&dyn Schema] = &[
    &migrations::SCHEMA_MIGRATIONS,
    &events::DOSES,
    &events::MONITORING_FORMS,
    &events::AE_REPORT_VERSIONS,
    &events::ENROLMENTS,
    &events::AE_CASES,
    &events::CASE_SUMMARIES,
    &signals::SIGNAL_RESULTS,
    &signals::SIGNAL_CHANGES,
    &signals::SIGNAL_CONTRIBUTIONS,
    &signals::SIGNAL_EXPOSURE,
    &workflow::SIGNAL_WORKFLOW,
    &workflow::USER_VISITS,
];

/// Every materialized view of the store.
pub const VIEWS: &[&table::CopyView] = &[&events::AE_CASES_MV, &events::CASE_SUMMARIES_MV];

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// ClickHouse answered with an error, or could not be reached.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// A query names `{name}`, which is neither a table of the store nor a bound value.
    #[error("query names `{{{0}}}`, which is neither a table of the store nor a bound value")]
    UnknownName(String),
    /// A query names `{name}`, which is both a table and a bound value.
    #[error("query names `{{{0}}}`, which is both a table and a bound value")]
    AmbiguousName(String),
    /// The configured database name is not a plain identifier.
    #[error("database name `{0}` must match [A-Za-z_][A-Za-z0-9_]*")]
    BadDatabaseName(String),
    /// A migration step names a table that no migration creates (a bug in the migrations).
    #[error("a migration step names table {0}, which no migration creates")]
    UnknownTable(String),
    /// A migration step failed.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// Migration version.
        version: u32,
        /// Migration name.
        name: &'static str,
        /// The ClickHouse error.
        #[source]
        source: clickhouse::error::Error,
    },
}
