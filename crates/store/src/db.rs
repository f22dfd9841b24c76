//! The query layer: every reader and writer of the store goes through a [`Db`].
//!
//! A query is SQL text in which tables and values appear by name, `{doses}` and `{as_of}`:
//! [`Db::sql`] starts one, [`Sql::bind`] gives a value its name, and the query resolves every
//! `{table}` through [`Db::name_of`] and sends every `{value}` as a bind (clickhouse-rs escapes
//! it). A name that is neither a table of the store nor a bound value fails the query before it
//! is sent, so a typo fails at its first run, and the name a table is read by is decided in one
//! place (a cluster would read Distributed tables: change `name_of`). Inserts take a [`Table`]
//! and its own row type, so a row cannot go to the wrong table.

use clickhouse::query::Query;
use clickhouse::sql::Bind;
use pv_runtime::ClickHouseConfig;

use crate::StoreError;
use crate::table::{Layout, Schema, Table, TableRow};

/// A store database: a ClickHouse client bound to it.
#[derive(Clone)]
pub struct Db {
    client: clickhouse::Client,
    layout: Layout,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("database", &self.client.database()).finish_non_exhaustive()
    }
}

impl Db {
    /// The database `cfg` names, on its server.
    pub fn new(cfg: &ClickHouseConfig) -> Self {
        Self { client: pv_runtime::clickhouse::client(cfg), layout: Layout::of(cfg) }
    }

    /// One server, or a cluster.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The partition ids `table` holds. On a cluster they are read from the data (each server's
    /// `system.parts` shows only its shard).
    pub async fn partition_ids(&self, table: &dyn Schema) -> Result<Vec<String>, StoreError> {
        match (&self.layout, table.partition_key()) {
            (Layout::Single, _) => {
                self.sql("SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() AND table = {name} AND active")
                    .bind("name", table.name())
                    .fetch_all()
                    .await
            }
            (Layout::Cluster { .. }, Some(key)) => {
                let sql = format!("SELECT DISTINCT toString({key}) FROM {}", self.name_of(table));
                Ok(self.client.query(&sql).fetch_all().await?)
            }
            (Layout::Cluster { .. }, None) => Ok(Vec::new()),
        }
    }

    /// Drops partition `id` (digits only, else nothing is done) of `table`, on every server of a
    /// cluster.
    pub async fn drop_partition(&self, table: &dyn Schema, id: &str) -> Result<(), StoreError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(());
        }
        let storage = self.layout.qualified(&self.layout.storage_name(table.name()));
        // Unquoted: 18.16 wants the partition key's own type (UInt32).
        let sql = format!("ALTER TABLE {storage}{} DROP PARTITION {id}", self.layout.on_cluster());
        Ok(self.client.query(&sql).execute().await?)
    }

    /// The client underneath, for statements that name no table of the store.
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// The name queries and inserts use for `table`: on a single node, the table itself.
    pub fn name_of(&self, table: &dyn Schema) -> &'static str {
        table.name()
    }

    /// A query: `template` names tables as `{table}` and values as `{name}` ([`Sql::bind`]).
    pub fn sql(&self, template: &str) -> Sql<'_> {
        Sql { db: self, template: template.to_string(), values: Vec::new(), tables: Vec::new() }
    }

    /// Inserts `rows` into `table` in one INSERT (a failed insert can be retried with the same rows).
    pub async fn insert<R: TableRow>(
        &self,
        table: &Table<R>,
        rows: &[R],
    ) -> Result<(), clickhouse::error::Error> {
        let mut insert = self.client.insert::<R>(self.name_of(table)).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }

    /// Every row of `table`, re-delivered copies collapsed (`FINAL`).
    pub async fn rows<R: TableRow>(&self, table: &Table<R>) -> Result<Vec<R>, StoreError> {
        let sql = format!("SELECT ?fields FROM {} FINAL", self.name_of(table));
        Ok(self.client.query(&sql).fetch_all().await?)
    }

    /// Rows of `table`, re-delivered copies counted once (`FINAL`) or not.
    pub async fn count(&self, table: &dyn Schema, deduplicated: bool) -> Result<u64, StoreError> {
        let modifier = if deduplicated { " FINAL" } else { "" };
        let sql = format!("SELECT count() FROM {}{modifier}", self.name_of(table));
        Ok(self.client.query(&sql).fetch_one().await?)
    }
}

/// Binds one named value to a query (once per place the name stands).
type Binder = Box<dyn Fn(Query) -> Query + Send + Sync>;

/// A query being written ([`Db::sql`]).
pub struct Sql<'db> {
    db: &'db Db,
    template: String,
    values: Vec<(&'static str, Binder)>,
    tables: Vec<(&'static str, &'static dyn Schema)>,
}

impl std::fmt::Debug for Sql<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.values.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Sql").field("template", &self.template).field("values", &names).finish()
    }
}

impl Sql<'_> {
    /// Gives `{name}` the value `value` (numbers, strings, arrays: anything serde serializes).
    pub fn bind<T: Bind + Clone + Send + Sync + 'static>(mut self, name: &'static str, value: T) -> Self {
        self.values.push((name, Box::new(move |q: Query| q.bind(value.clone()))));
        self
    }

    /// Lets `{name}` stand for `table` (for a query run over several tables in turn).
    pub fn table(mut self, name: &'static str, table: &'static dyn Schema) -> Self {
        self.tables.push((name, table));
        self
    }

    /// The query, ready to run.
    pub fn query(self) -> Result<Query, StoreError> {
        let (text, order) = self.resolve()?;
        let mut query = self.db.client.query(&text);
        for i in order {
            query = (self.values[i].1)(query);
        }
        Ok(query)
    }

    /// Runs it; every row.
    pub async fn fetch_all<T: clickhouse::RowOwned + clickhouse::RowRead>(
        self,
    ) -> Result<Vec<T>, StoreError> {
        Ok(self.query()?.fetch_all().await?)
    }

    /// Runs it; the one row.
    pub async fn fetch_one<T: clickhouse::RowOwned + clickhouse::RowRead>(self) -> Result<T, StoreError> {
        Ok(self.query()?.fetch_one().await?)
    }

    /// Runs a statement.
    pub async fn execute(self) -> Result<(), StoreError> {
        Ok(self.query()?.execute().await?)
    }

    /// The SQL with tables named and values as `?` (other `?` escaped), and which value each
    /// `?` takes, in order. `{{` stands for a literal `{`.
    fn resolve(&self) -> Result<(String, Vec<usize>), StoreError> {
        let mut text = String::with_capacity(self.template.len());
        let mut order = Vec::new();
        let mut after_value = false;
        let mut rest = self.template.as_str();
        while let Some(at) = rest.find(['{', '?']) {
            text.push_str(&rest[..at]);
            rest = &rest[at..];
            let value_before = after_value && at == 0;
            after_value = false;
            let taken = if rest.starts_with("?fields") {
                text.push_str("?fields");
                "?fields".len()
            } else if rest.starts_with('?') {
                // clickhouse-rs reads `??` as a literal `?`; a space keeps it off a value's `?`.
                text.push_str(if value_before { " ??" } else { "??" });
                1
            } else if rest.starts_with("{{") {
                text.push('{');
                2
            } else {
                let close = rest.find('}').ok_or_else(|| StoreError::UnknownName(rest.to_string()))?;
                match self.lookup(&rest[1..close])? {
                    Name::Table(table) => text.push_str(self.db.name_of(table)),
                    Name::Value(i) => {
                        text.push('?');
                        order.push(i);
                        after_value = true;
                    }
                }
                close + 1
            };
            rest = &rest[taken..];
        }
        text.push_str(rest);
        Ok((text, order))
    }

    /// What `{name}` stands for: a table (named by [`Sql::table`] or of the store), or a value.
    fn lookup(&self, name: &str) -> Result<Name, StoreError> {
        let named = self.tables.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        let table = named.or_else(|| crate::TABLES.iter().find(|t| t.name() == name).copied());
        let value = self.values.iter().position(|(n, _)| *n == name);
        match (table, value) {
            (Some(table), None) => Ok(Name::Table(table)),
            (None, Some(i)) => Ok(Name::Value(i)),
            (Some(_), Some(_)) => Err(StoreError::AmbiguousName(name.to_string())),
            (None, None) => Err(StoreError::UnknownName(name.to_string())),
        }
    }
}

/// What a `{name}` of a query stands for.
enum Name {
    Table(&'static dyn Schema),
    Value(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Db {
        Db::new(&ClickHouseConfig::default())
    }

    /// The SQL `sql` sends.
    fn sent(sql: Sql<'_>) -> String {
        sql.query().expect("query").sql_display().to_string()
    }

    #[test]
    fn tables_resolve_to_their_names_and_values_to_binds_in_order() {
        let db = db();
        let sql = db
            .sql("SELECT count() FROM {doses} FINAL WHERE at <= {to} AND at >= {from} AND x < {to}")
            .bind("from", 1)
            .bind("to", 2);
        let (text, order) = sql.resolve().expect("resolves");
        assert_eq!(text, "SELECT count() FROM doses FINAL WHERE at <= ? AND at >= ? AND x < ?");
        assert_eq!(order, [1, 0, 1]);
        assert_eq!(sent(sql), "SELECT count() FROM doses FINAL WHERE at <= 2 AND at >= 1 AND x < 2");
    }

    #[test]
    fn values_are_escaped_and_question_marks_stay_text() {
        let db = db();
        let sql = db
            .sql("SELECT ?fields, 'a?' FROM {ae_cases} WHERE report_id = {id} AND e IN {edges}")
            .bind("id", "x' OR 1")
            .bind("edges", vec![500.0, 1000.5]);
        let want = "SELECT ?fields, 'a?' FROM ae_cases WHERE report_id = 'x\\' OR 1' AND e IN [500,1000.5]";
        assert_eq!(sent(sql), want);
    }

    #[test]
    fn literal_question_marks_and_braces_stay_text() {
        let db = db();
        let sql = db.sql("SELECT {x}?1:0, '{{x}', '?', ?{x}?").bind("x", 7);
        assert_eq!(sql.resolve().expect("resolves").0, "SELECT ? ??1:0, '{x}', '??', ??? ??");
        assert_eq!(sent(sql), "SELECT 7 ?1:0, '{x}', '?', ?7 ?");
    }

    #[test]
    fn unknown_and_ambiguous_names_are_refused() {
        let clash = db().sql("SELECT {doses}").bind("doses", 1).resolve();
        assert!(matches!(clash, Err(StoreError::AmbiguousName(n)) if n == "doses"));
        let db = db();
        let unknown = db.sql("SELECT 1 FROM {dose}").resolve();
        assert!(matches!(unknown, Err(StoreError::UnknownName(n)) if n == "dose"));
        assert!(matches!(db.sql("SELECT 1 FROM {doses").resolve(), Err(StoreError::UnknownName(_))));
        let each = db.sql("SELECT count() FROM {t}").table("t", &crate::events::AE_CASES).resolve();
        assert_eq!(each.expect("named table").0, "SELECT count() FROM ae_cases");
        let misspelt = db.sql("SELECT {from}").bind("form", 1).resolve();
        assert!(matches!(misspelt, Err(StoreError::UnknownName(n)) if n == "from"));
    }
}
