//! A fingerprint of what the event tables hold as queries see it (deduplicated): rows, distinct
//! events and an order-independent hash of every row's content, per table. Two databases with
//! equal digests answer every query over these tables alike; `pv replay` compares a rebuilt
//! database with the live one this way.

use crate::events::{AE_CASES, AE_REPORT_VERSIONS, DOSES, ENROLMENTS, MONITORING_FORMS};
use crate::table::Schema;
use crate::{Db, StoreError};

/// The projections of the enriched topics (`ae_cases` is filled by a view on `ae_report_versions`).
pub const TABLES: [&dyn Schema; 5] = [&DOSES, &MONITORING_FORMS, &AE_REPORT_VERSIONS, &ENROLMENTS, &AE_CASES];

/// Columns left out of the content hash: where a copy was read from Kafka, which differs between
/// copies of one event that carry the same version.
const PROVENANCE: [&str; 2] = ["kafka_partition", "kafka_offset"];

/// One table's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    /// Table name.
    pub table: &'static str,
    /// Rows counted once (`FINAL`).
    pub rows: u64,
    /// Distinct event ids.
    pub events: u64,
    /// Sum (mod 2^64) of a hash of every row's stored columns.
    pub content: u64,
}

/// The digest of every table in [`TABLES`], in that order. The columns hashed are the ones the
/// live table has (`system.columns`), so a column the definitions lack is not overlooked.
pub async fn digest(db: &Db) -> Result<Vec<TableDigest>, StoreError> {
    let mut out = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let columns: Vec<(String, String)> = db
            .client()
            .query(
                "SELECT name, type FROM system.columns
                 WHERE database = currentDatabase() AND table = ? AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')",
            )
            .bind(db.name_of(table))
            .fetch_all()
            .await?;
        let hashed: Vec<String> = columns
            .iter()
            .filter(|(name, _)| !PROVENANCE.contains(&name.as_str()))
            .map(|(name, ty)| hash_input(name, ty))
            .collect();
        let sql = format!(
            "SELECT count(), uniqExact(event_id), sum(cityHash64({})) FROM {{{}}} FINAL",
            hashed.join(", "),
            table.name()
        );
        let (rows, events, content): (u64, u64, u64) = db.sql(&sql).fetch_one().await?;
        out.push(TableDigest { table: table.name(), rows, events, content });
    }
    Ok(out)
}

/// The column as a hashable string: ClickHouse 18.16's `cityHash64` takes no `Nullable`.
fn hash_input(name: &str, ty: &str) -> String {
    if ty.starts_with("Nullable(") {
        format!("ifNull(toString(`{name}`), '\\\\N')")
    } else {
        format!("toString(`{name}`)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_columns_hash_null_as_a_marker() {
        assert_eq!(hash_input("weight_kg", "Nullable(Float64)"), "ifNull(toString(`weight_kg`), '\\\\N')");
        assert_eq!(hash_input("dose_mg", "Float64"), "toString(`dose_mg`)");
        assert_eq!(hash_input("groups", "Array(Nullable(String))"), "toString(`groups`)");
    }
}
