//! The documented CSV layout: one file per event kind, and two more for the reactions and drugs
//! of adverse-event reports (linked to their report version by `report_id` and `version`).
//!
//! Column names are the JSON field names of the gateway's API, so a clinic that already sends
//! JSON knows them. The README's import section is generated from these tables (a test compares).

use pv_events::EventKind;

/// How a cell's text becomes the value of its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Text as written (surrounding spaces trimmed); enum fields take their JSON names.
    Text,
    /// A whole number.
    Integer,
    /// A decimal number with a point (`12.5`).
    Number,
    /// `true` or `false`.
    Boolean,
    /// An RFC 3339 time with its offset, e.g. `2026-05-04T09:30:00Z`.
    Time,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A UUID.
    Uuid,
    /// Seriousness criteria met, separated by `;` (empty: non-serious).
    Criteria,
}

impl Cell {
    /// How the README names the type.
    pub const fn describe(self) -> &'static str {
        match self {
            Cell::Text => "text",
            Cell::Integer => "integer",
            Cell::Number => "number",
            Cell::Boolean => "`true`/`false`",
            Cell::Time => "RFC 3339 time",
            Cell::Date => "`YYYY-MM-DD`",
            Cell::Uuid => "UUID",
            Cell::Criteria => "criteria, `;`-separated",
        }
    }
}

/// One column of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The header, which is also the field's JSON name.
    pub name: &'static str,
    /// How its cells are read.
    pub cell: Cell,
    /// Whether every row needs a value (a required column must be in the header).
    pub required: bool,
}

const fn req(name: &'static str, cell: Cell) -> Column {
    Column { name, cell, required: true }
}

const fn opt(name: &'static str, cell: Cell) -> Column {
    Column { name, cell, required: false }
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Whole events of one kind, one per row.
    Events(EventKind),
    /// Reactions of adverse-event report versions, one per row.
    Reactions,
    /// Drugs of adverse-event report versions, one per row.
    Drugs,
}

/// One file of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLayout {
    /// The file name inside the import directory.
    pub file: &'static str,
    /// What its rows are.
    pub part: Part,
    /// Its columns, in the documented order (files may order them freely).
    pub columns: &'static [Column],
}

impl FileLayout {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Every file, in the order an import sends them: enrolments, then doses, so that monitoring
/// forms and reports are enriched with the exposure they follow.
pub const FILES: [FileLayout; 6] = [ENROLMENTS, DOSES, MONITORING, REPORTS, REACTIONS, DRUGS];

/// `patient_enrolment.csv`.
pub const ENROLMENTS: FileLayout = FileLayout {
    file: "patient_enrolment.csv",
    part: Part::Events(EventKind::PatientEnrolment),
    columns: &[
        opt("event_id", Cell::Uuid),
        req("patient_ref", Cell::Text),
        req("enrolled_at", Cell::Time),
        req("age_band", Cell::Text),
        req("sex", Cell::Text),
        opt("baseline_urinary_score", Cell::Integer),
        opt("prior_substance_use_disorder", Cell::Boolean),
        req("indication", Cell::Text),
        req("protocol", Cell::Text),
    ],
};

/// `dose_administered.csv`.
pub const DOSES: FileLayout = FileLayout {
    file: "dose_administered.csv",
    part: Part::Events(EventKind::DoseAdministered),
    columns: &[
        opt("event_id", Cell::Uuid),
        req("patient_ref", Cell::Text),
        req("administered_at", Cell::Time),
        req("product", Cell::Text),
        req("formulation", Cell::Text),
        req("route", Cell::Text),
        req("dose_mg", Cell::Number),
        opt("weight_kg", Cell::Number),
        req("indication", Cell::Text),
        req("session_number", Cell::Integer),
        opt("protocol", Cell::Text),
        opt("lot_number", Cell::Text),
    ],
};

/// `session_monitoring.csv`.
pub const MONITORING: FileLayout = FileLayout {
    file: "session_monitoring.csv",
    part: Part::Events(EventKind::SessionMonitoring),
    columns: &[
        opt("event_id", Cell::Uuid),
        req("patient_ref", Cell::Text),
        req("session_number", Cell::Integer),
        req("monitored_at", Cell::Time),
        opt("bp_systolic_pre", Cell::Integer),
        opt("bp_diastolic_pre", Cell::Integer),
        opt("bp_systolic_post", Cell::Integer),
        opt("bp_diastolic_post", Cell::Integer),
        opt("sedation_moaas", Cell::Integer),
        opt("dissociation_cadss", Cell::Integer),
        opt("spo2_min_pct", Cell::Integer),
        req("observation_minutes", Cell::Integer),
        req("discharge_ready", Cell::Boolean),
    ],
};

/// `adverse_event_report.csv`: one row per report version.
pub const REPORTS: FileLayout = FileLayout {
    file: "adverse_event_report.csv",
    part: Part::Events(EventKind::AdverseEventReport),
    columns: &[
        opt("event_id", Cell::Uuid),
        req("patient_ref", Cell::Text),
        req("report_id", Cell::Text),
        req("version", Cell::Integer),
        opt("nullification", Cell::Boolean),
        opt("nullification_reason", Cell::Text),
        req("reported_at", Cell::Time),
        req("reporter_qualification", Cell::Text),
        opt("narrative", Cell::Text),
    ],
};

/// `adverse_event_reaction.csv`: one row per reaction of a report version.
pub const REACTIONS: FileLayout = FileLayout {
    file: "adverse_event_reaction.csv",
    part: Part::Reactions,
    columns: &[
        req("report_id", Cell::Text),
        req("version", Cell::Integer),
        req("verbatim", Cell::Text),
        opt("coded_term", Cell::Text),
        opt("onset_date", Cell::Date),
        req("outcome", Cell::Text),
        opt("seriousness", Cell::Criteria),
    ],
};

/// `adverse_event_drug.csv`: one row per drug of a report version.
pub const DRUGS: FileLayout = FileLayout {
    file: "adverse_event_drug.csv",
    part: Part::Drugs,
    columns: &[
        req("report_id", Cell::Text),
        req("version", Cell::Integer),
        req("role", Cell::Text),
        req("name", Cell::Text),
        opt("product", Cell::Text),
        opt("route", Cell::Text),
        opt("causality", Cell::Text),
        opt("dechallenge", Cell::Text),
        opt("rechallenge", Cell::Text),
    ],
};

/// The seriousness criteria a `seriousness` cell may name (ICH E2A), in schema order.
pub const CRITERIA: [&str; 6] = [
    "death",
    "life_threatening",
    "hospitalisation",
    "disability",
    "congenital_anomaly",
    "other_medically_important",
];

/// The layout as the README documents it: one line per file, required columns in bold, the
/// type in parentheses unless it is text.
pub fn markdown() -> String {
    let mut out = String::new();
    for f in FILES {
        let columns: Vec<String> = f
            .columns
            .iter()
            .map(|c| {
                let name = if c.required { format!("**`{}`**", c.name) } else { format!("`{}`", c.name) };
                match c.cell {
                    Cell::Text => name,
                    cell => format!("{name} ({})", cell.describe()),
                }
            })
            .collect();
        out.push_str(&format!("- `{}`: {}\n", f.file, columns.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str =
        "<!-- import-layout: generated from crates/import/src/layout.rs; a test compares -->\n";
    const END: &str = "<!-- /import-layout -->";

    /// The README documents exactly this layout (`PV_UPDATE_README=1` rewrites its tables).
    #[test]
    fn the_readme_documents_this_layout() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let start = readme.find(START).expect("start marker") + START.len();
        let end = readme[start..].find(END).expect("end marker") + start;
        let want = markdown();
        if std::env::var_os("PV_UPDATE_README").is_some() {
            std::fs::write(path, format!("{}{want}{}", &readme[..start], &readme[end..])).expect("write");
            return;
        }
        assert_eq!(
            &readme[start..end],
            want,
            "README's import tables are stale: PV_UPDATE_README=1 cargo test -p pv-import"
        );
    }

    #[test]
    fn every_field_of_every_kind_has_a_column() {
        use pv_events::{ClinicEvent, Timestamp, event_to_json, sample};
        let at = Timestamp::from_millis(1_780_000_000_000);
        let events: [ClinicEvent; 4] = [
            sample::enrolment("c", "p", at).into(),
            sample::dose("c", "p", 1, at).into(),
            sample::monitoring("c", "p", 1, at).into(),
            sample::adverse_event("c", "p", "R", at).into(),
        ];
        for event in events {
            let layout =
                FILES.iter().find(|f| f.part == Part::Events(event.kind())).expect("a file per kind");
            let serde_json::Value::Object(fields) = event_to_json(&event) else { panic!("object") };
            for (name, value) in &fields {
                let nested = match name.as_str() {
                    "reactions" => Some(REACTIONS),
                    "drugs" => Some(DRUGS),
                    "type" | "clinic_id" => continue,
                    _ => None,
                };
                match (nested, value) {
                    (Some(child), serde_json::Value::Array(items)) => {
                        let serde_json::Value::Object(item) = &items[0] else { panic!("object") };
                        for key in item.keys() {
                            assert!(child.column(key).is_some(), "{}: no column for {key}", child.file);
                        }
                    }
                    _ => assert!(layout.column(name).is_some(), "{}: no column for {name}", layout.file),
                }
            }
        }
    }
}
