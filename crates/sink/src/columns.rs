//! ClickHouse `Enum8` columns for the event enums.
//!
//! RowBinary carries an `Enum8` as its `Int8` value, so each event enum has a column twin here
//! with fixed numbers. The numbers are part of the table definitions in [`crate::migrations`];
//! a test checks the live tables against [`Enum8Column::DDL`].

use pv_events as ev;
use serde_repr::{Deserialize_repr, Serialize_repr};

/// A Rust enum stored as a ClickHouse `Enum8`.
pub trait Enum8Column {
    /// The column type as ClickHouse prints it, e.g. `Enum8('ketamine' = 1, 'esketamine' = 2)`.
    const DDL: &'static str;
}

macro_rules! enum8_column {
    ($(#[$doc:meta])* $col:ident <=> $ev:ident { $($variant:ident = $n:literal => $name:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize_repr, Deserialize_repr)]
        #[repr(i8)]
        #[allow(missing_docs)]
        pub enum $col { $($variant = $n),+ }

        impl Enum8Column for $col {
            const DDL: &'static str = concat!("Enum8(", enum8_column!(@list $($name = $n),+), ")");
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
    (@list $name:literal = $n:literal) => { concat!("'", $name, "' = ", $n) };
    (@list $name:literal = $n:literal, $($rest:literal = $m:literal),+) => {
        concat!("'", $name, "' = ", $n, ", ", enum8_column!(@list $($rest = $m),+))
    };
}

enum8_column! {
    /// `product` columns.
    ProductCol <=> Product { Ketamine = 1 => "ketamine", Esketamine = 2 => "esketamine" }
}
enum8_column! {
    /// `route` columns.
    RouteCol <=> Route {
        Iv = 1 => "iv", Im = 2 => "im", Intranasal = 3 => "intranasal",
        Oral = 4 => "oral", Sublingual = 5 => "sublingual", Sc = 6 => "sc",
    }
}
enum8_column! {
    /// `reporter_qualification` column.
    ReporterCol <=> ReporterQualification {
        Physician = 1 => "physician", Pharmacist = 2 => "pharmacist",
        OtherHealthProfessional = 3 => "other_health_professional", Lawyer = 4 => "lawyer",
        Consumer = 5 => "consumer",
    }
}
enum8_column! {
    /// `reaction_outcome` column.
    OutcomeCol <=> Outcome {
        Recovered = 1 => "recovered", Recovering = 2 => "recovering", NotRecovered = 3 => "not_recovered",
        RecoveredWithSequelae = 4 => "recovered_with_sequelae", Fatal = 5 => "fatal", Unknown = 6 => "unknown",
    }
}
enum8_column! {
    /// `drug_role` column.
    DrugRoleCol <=> DrugRole { Suspect = 1 => "suspect", Concomitant = 2 => "concomitant", Interacting = 3 => "interacting" }
}
enum8_column! {
    /// `drug_causality` column.
    CausalityCol <=> Causality {
        Certain = 1 => "certain", Probable = 2 => "probable", Possible = 3 => "possible",
        Unlikely = 4 => "unlikely", Conditional = 5 => "conditional", Unassessable = 6 => "unassessable",
    }
}
enum8_column! {
    /// `drug_dechallenge` and `drug_rechallenge` columns.
    ChallengeCol <=> ChallengeResult {
        Positive = 1 => "positive", Negative = 2 => "negative", NotApplicable = 3 => "not_applicable", Unknown = 4 => "unknown",
    }
}

enum8_column! {
    /// `reaction_coded_from` column.
    CodedFromCol <=> CodedFrom { ClinicTerm = 1 => "clinic_term", Verbatim = 2 => "verbatim", Uncoded = 3 => "uncoded" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_lists_names_and_numbers() {
        assert_eq!(ProductCol::DDL, "Enum8('ketamine' = 1, 'esketamine' = 2)");
        assert!(ChallengeCol::DDL.ends_with("'not_applicable' = 3, 'unknown' = 4)"));
    }

    #[test]
    fn names_match_the_event_enums_wire_names() {
        // The Enum8 names are the JSON/Avro names of the event enums, so SQL reads like the API.
        let json = serde_json::to_string(&ev::Route::Intranasal).expect("json");
        assert!(RouteCol::DDL.contains(&format!("'{}' = 3", json.trim_matches('"'))));
        assert_eq!(ev::Route::from(RouteCol::from(ev::Route::Sc)), ev::Route::Sc);
    }
}
