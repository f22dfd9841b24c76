//! Columns: how a Rust field type is stored in ClickHouse, and the `Enum8` column enums.
//!
//! [`ColumnType`] names the ClickHouse type of a row field exactly as ClickHouse prints it in
//! `system.columns`, so the DDL is rendered from the row types and the live tables can be
//! compared with them. RowBinary carries an `Enum8` as its `Int8` value, so each event enum has
//! a column twin here that gives its variants their numbers; their names are the event enums'
//! own wire names (JSON and Avro), so SQL reads like the API.

use pv_events as ev;
use serde::{Deserialize, Serialize};
use serde_repr::{Deserialize_repr, Serialize_repr};

/// A Rust type stored in a ClickHouse column.
pub trait ColumnType {
    /// The column type as ClickHouse prints it, e.g. `Array(Nullable(String))`.
    fn column_type() -> String;
}

macro_rules! column_types {
    ($($rust:ty => $clickhouse:literal),* $(,)?) => {
        $(impl ColumnType for $rust {
            fn column_type() -> String {
                $clickhouse.into()
            }
        })*
    };
}

column_types! {
    bool => "UInt8",
    u8 => "UInt8",
    i32 => "Int32",
    u32 => "UInt32",
    i64 => "Int64",
    u64 => "UInt64",
    f64 => "Float64",
    String => "String",
    uuid::Uuid => "UUID",
    Day => "Date",
    Seconds => "DateTime",
}

impl<T: ColumnType> ColumnType for Option<T> {
    fn column_type() -> String {
        format!("Nullable({})", T::column_type())
    }
}

impl<T: ColumnType> ColumnType for Vec<T> {
    fn column_type() -> String {
        format!("Array({})", T::column_type())
    }
}

/// A ClickHouse `Date`: days since 1970-01-01 (1970-01-01 .. 2149-06-06).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Day(pub u16);

/// A ClickHouse `DateTime`: seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seconds(pub u32);

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type as ClickHouse prints it.
    pub ty: String,
    /// The expression of a `MATERIALIZED` column (computed by the server, never inserted).
    pub materialized: Option<String>,
}

impl Column {
    /// A stored column of Rust type `T`.
    pub fn of<T: ColumnType>(name: &str) -> Self {
        Self { name: name.into(), ty: T::column_type(), materialized: None }
    }

    /// The `DateTime` the server computes from the milliseconds column `ms_column` (`X_ms` -> `X`).
    pub fn datetime_of(ms_column: &str) -> Self {
        Self {
            name: ms_column.strip_suffix("_ms").unwrap_or(ms_column).into(),
            ty: Seconds::column_type(),
            materialized: Some(format!("toDateTime(intDiv({ms_column}, 1000))")),
        }
    }

    /// The column as it stands in `CREATE TABLE`.
    pub fn ddl(&self) -> String {
        match &self.materialized {
            None => format!("{} {}", self.name, self.ty),
            Some(expr) => format!("{} {} MATERIALIZED {expr}", self.name, self.ty),
        }
    }
}

/// The `(name, number)` pairs of every `Enum8` in a column type as ClickHouse prints it, in
/// order of appearance (`Array(Nullable(Enum8('a' = 1, 'b' = 2)))` -> `[("a", 1), ("b", 2)]`).
pub fn enum8_values(ty: &str) -> Vec<(String, i8)> {
    let Some(start) = ty.find("Enum8(") else { return Vec::new() };
    let body = &ty[start + "Enum8(".len()..];
    let body = &body[..body.find(')').unwrap_or(body.len())];
    body.split(", ")
        .filter_map(|pair| {
            let (name, number) = pair.rsplit_once(" = ")?;
            Some((name.trim_matches('\'').to_string(), number.trim().parse().ok()?))
        })
        .collect()
}

/// The wire name of an event enum's variant (its serde name, as in JSON and Avro).
fn wire_name<T: Serialize>(variant: &T) -> String {
    serde_json::to_value(variant).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

macro_rules! enum8_column {
    ($(#[$doc:meta])* $col:ident <=> $ev:ident { $($variant:ident = $n:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize_repr, Deserialize_repr)]
        #[repr(i8)]
        #[allow(missing_docs)]
        pub enum $col { $($variant = $n),+ }

        impl ColumnType for $col {
            fn column_type() -> String {
                let values: &[String] = &[$(format!("'{}' = {}", wire_name(&ev::$ev::$variant), $n)),+];
                format!("Enum8({})", values.join(", "))
            }
        }

        impl From<ev::$ev> for $col {
            fn from(v: ev::$ev) -> Self {
                match v { $(ev::$ev::$variant => $col::$variant),+ }
            }
        }

        impl From<$col> for ev::$ev {
            fn from(v: $col) -> Self {
                match v { $($col::$variant => ev::$ev::$variant),+ }
            }
        }
    };
}

enum8_column! {
    /// `product` columns.
    ProductCol <=> Product { Ketamine = 1, Esketamine = 2 }
}
enum8_column! {
    /// `route` columns.
    RouteCol <=> Route { Iv = 1, Im = 2, Intranasal = 3, Oral = 4, Sublingual = 5, Sc = 6 }
}
enum8_column! {
    /// `reporter_qualification` column.
    ReporterCol <=> ReporterQualification {
        Physician = 1, Pharmacist = 2, OtherHealthProfessional = 3, Lawyer = 4, Consumer = 5
    }
}
enum8_column! {
    /// `reaction_outcome` column.
    OutcomeCol <=> Outcome {
        Recovered = 1, Recovering = 2, NotRecovered = 3, RecoveredWithSequelae = 4, Fatal = 5, Unknown = 6
    }
}
enum8_column! {
    /// `drug_role` column.
    DrugRoleCol <=> DrugRole { Suspect = 1, Concomitant = 2, Interacting = 3 }
}
enum8_column! {
    /// `drug_causality` column.
    CausalityCol <=> Causality {
        Certain = 1, Probable = 2, Possible = 3, Unlikely = 4, Conditional = 5, Unassessable = 6
    }
}
enum8_column! {
    /// `drug_dechallenge` and `drug_rechallenge` columns.
    ChallengeCol <=> ChallengeResult { Positive = 1, Negative = 2, NotApplicable = 3, Unknown = 4 }
}
enum8_column! {
    /// `reaction_coded_from` column.
    CodedFromCol <=> CodedFrom { ClinicTerm = 1, Verbatim = 2, Uncoded = 3 }
}
enum8_column! {
    /// `age_band` column.
    AgeBandCol <=> AgeBand {
        Age18To24 = 1, Age25To34 = 2, Age35To44 = 3, Age45To54 = 4, Age55To64 = 5, Age65To74 = 6, Age75Plus = 7
    }
}
enum8_column! {
    /// `sex` column.
    SexCol <=> Sex { Female = 1, Male = 2, Other = 3, Unknown = 4 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_render_as_clickhouse_prints_them() {
        assert_eq!(ProductCol::column_type(), "Enum8('ketamine' = 1, 'esketamine' = 2)");
        assert_eq!(Vec::<Option<Day>>::column_type(), "Array(Nullable(Date))");
        assert_eq!(Vec::<Vec<String>>::column_type(), "Array(Array(String))");
        assert!(ChallengeCol::column_type().ends_with("'not_applicable' = 3, 'unknown' = 4)"));
    }

    #[test]
    fn enum_values_are_read_back_from_a_type() {
        let ty = Vec::<Option<ProductCol>>::column_type();
        assert_eq!(enum8_values(&ty), [("ketamine".to_string(), 1), ("esketamine".to_string(), 2)]);
        assert!(enum8_values("Nullable(Float64)").is_empty());
    }

    #[test]
    fn names_are_the_event_enums_wire_names() {
        assert_eq!(
            ReporterCol::column_type(),
            "Enum8('physician' = 1, 'pharmacist' = 2, 'other_health_professional' = 3, 'lawyer' = 4, 'consumer' = 5)"
        );
        assert_eq!(ev::Route::from(RouteCol::from(ev::Route::Sc)), ev::Route::Sc);
        assert_eq!(
            AgeBandCol::column_type(),
            "Enum8('age_18_24' = 1, 'age_25_34' = 2, 'age_35_44' = 3, 'age_45_54' = 4, 'age_55_64' = 5, \
             'age_65_74' = 6, 'age_75_plus' = 7)"
        );
        assert_eq!(SexCol::column_type(), "Enum8('female' = 1, 'male' = 2, 'other' = 3, 'unknown' = 4)");
        for band in ev::AgeBand::ALL {
            assert_eq!(ev::AgeBand::from(AgeBandCol::from(band)), band);
        }
    }

    #[test]
    fn datetime_twins_are_computed_from_milliseconds() {
        let c = Column::datetime_of("administered_at_ms");
        assert_eq!(
            c.ddl(),
            "administered_at DateTime MATERIALIZED toDateTime(intDiv(administered_at_ms, 1000))"
        );
    }
}
