//! Rows to events, through the gateway's own parsing and validation rules, with every problem
//! attributed to a file, a line and a column.

use std::collections::{BTreeMap, HashMap};

use pv_events::{ClinicEvent, EventId, EventKind, FieldError, Limits, Timestamp, event_from_json, validate};
use serde_json::{Map, Value};

use crate::ids::derived_id;
use crate::layout::{DRUGS, FileLayout, REACTIONS, REPORTS};
use crate::read::{Reject, Row};

/// Where an accepted event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: &'static str,
    /// The row's line.
    pub row: u64,
}

/// Checks the rows of one clinic's import: each is parsed and validated exactly as the gateway
/// does with a request's events, and no event id may appear twice in the whole import.
#[derive(Debug)]
pub struct Checker {
    clinic: String,
    limits: Limits,
    now: Timestamp,
    seen: HashMap<EventId, Origin>,
}

/// The reactions and drugs of report versions, by `(report_id, version)`, waiting for their
/// report row.
#[derive(Debug, Default)]
pub struct ReportParts {
    parts: BTreeMap<(String, i64), Parts>,
}

#[derive(Debug, Default)]
struct Parts {
    reactions: Vec<Row>,
    drugs: Vec<Row>,
}

impl ReportParts {
    /// Files a reaction (`is_drug` false) or drug row under its report version; a row without a
    /// readable key is returned as rejects.
    pub fn add(&mut self, row: Row, is_drug: bool) -> Result<(), Vec<Reject>> {
        let layout = if is_drug { DRUGS } else { REACTIONS };
        let key = report_key(&row.fields).map_err(|(field, reason)| {
            let mut errors = row.errors.clone();
            if !errors.iter().any(|e| e.field == field) {
                errors.push(reject(layout, row.line, None, field, reason));
            }
            errors
        })?;
        let parts = self.parts.entry(key).or_default();
        if is_drug {
            parts.drugs.push(row)
        } else {
            parts.reactions.push(row)
        }
        Ok(())
    }

    /// The rows no report row claimed: each names the missing report version.
    pub fn unclaimed(self) -> Vec<Reject> {
        let mut out = Vec::new();
        for ((report_id, version), parts) in self.parts {
            let reason =
                format!("no row of {} has report_id `{report_id}` and version {version}", REPORTS.file);
            for (layout, rows) in [(REACTIONS, parts.reactions), (DRUGS, parts.drugs)] {
                out.extend(rows.iter().map(|r| reject(layout, r.line, None, "report_id", reason.clone())));
            }
        }
        out.sort_by_key(|r| (r.file, r.row));
        out
    }
}

fn report_key(fields: &Map<String, Value>) -> Result<(String, i64), (&'static str, String)> {
    let report_id =
        fields.get("report_id").and_then(Value::as_str).ok_or(("report_id", "required".to_owned()))?;
    let version = fields.get("version").and_then(Value::as_i64).ok_or(("version", "required".to_owned()))?;
    Ok((report_id.to_owned(), version))
}

fn reject(layout: FileLayout, row: u64, id: Option<EventId>, field: &str, reason: String) -> Reject {
    Reject { file: layout.file, row, event_id: id.map(|i| i.to_string()), field: field.to_owned(), reason }
}

impl Checker {
    /// A checker for `clinic`'s rows, with the gateway's limits and `now` for future times.
    pub fn new(clinic: &str, limits: Limits, now: Timestamp) -> Self {
        Self { clinic: clinic.to_owned(), limits, now, seen: HashMap::new() }
    }

    /// Events checked so far (accepted ones).
    pub fn accepted(&self) -> usize {
        self.seen.len()
    }

    /// The event of a row of a one-event-per-row file.
    pub fn event(&mut self, layout: FileLayout, row: Row) -> Result<ClinicEvent, Vec<Reject>> {
        let locate = |path: &str| (layout.file, row.line, path.to_owned());
        self.check(layout, row.line, row.fields, row.errors, &locate)
    }

    /// The event of a report row, with the reactions and drugs filed for its version.
    pub fn report(&mut self, row: Row, parts: &mut ReportParts) -> Result<ClinicEvent, Vec<Reject>> {
        let Row { line, mut fields, mut errors } = row;
        let Parts { reactions, drugs } =
            report_key(&fields).ok().and_then(|k| parts.parts.remove(&k)).unwrap_or_default();
        let mut children = |rows: Vec<Row>, name: &str| {
            let mut values = Vec::with_capacity(rows.len());
            let mut lines = Vec::with_capacity(rows.len());
            for mut r in rows {
                errors.append(&mut r.errors);
                r.fields.remove("report_id");
                r.fields.remove("version");
                values.push(Value::Object(r.fields));
                lines.push(r.line);
            }
            fields.insert(name.to_owned(), Value::Array(values));
            lines
        };
        let reaction_lines = children(reactions, "reactions");
        let drug_lines = children(drugs, "drugs");
        let locate = |path: &str| locate_in_report(path, line, &reaction_lines, &drug_lines);
        self.check(REPORTS, line, fields, errors, &locate)
    }

    /// Parses and validates one event's fields; `locate` maps a JSON path to file, line, column.
    fn check(
        &mut self,
        layout: FileLayout,
        line: u64,
        mut fields: Map<String, Value>,
        errors: Vec<Reject>,
        locate: &dyn Fn(&str) -> (&'static str, u64, String),
    ) -> Result<ClinicEvent, Vec<Reject>> {
        let given_id = fields.get("event_id").and_then(Value::as_str).and_then(|s| s.parse::<EventId>().ok());
        let to_reject = |id: Option<EventId>, e: FieldError| {
            let (file, row, field) = locate(&e.field);
            Reject { file, row, event_id: id.map(|i| i.to_string()), field, reason: e.reason }
        };
        if !errors.is_empty() {
            return Err(errors
                .into_iter()
                .map(|mut r| {
                    r.event_id = given_id.map(|i| i.to_string());
                    r
                })
                .collect());
        }
        let derive = !fields.contains_key("event_id");
        if derive {
            fields.insert("event_id".into(), Value::String(EventId(uuid::Uuid::nil()).to_string()));
        }
        let kind = match layout.part {
            crate::layout::Part::Events(kind) => kind,
            _ => EventKind::AdverseEventReport,
        };
        fields.insert("type".into(), Value::String(kind.as_str().into()));
        fields.insert("clinic_id".into(), Value::String(self.clinic.clone()));
        let mut event = event_from_json(Value::Object(fields)).map_err(|e| vec![to_reject(given_id, e)])?;
        if derive {
            event.set_event_id(derived_id(&event));
        }
        let id = event.event_id();
        let mut problems: Vec<Reject> =
            validate(&event, &self.limits, self.now).into_iter().map(|e| to_reject(Some(id), e)).collect();
        if problems.is_empty() {
            if let Some(first) = self.seen.get(&id) {
                let same = if derive {
                    "the same event (same natural key, see the README)"
                } else {
                    "the same event_id"
                };
                problems.push(reject(
                    layout,
                    line,
                    Some(id),
                    if derive { "" } else { "event_id" },
                    format!("{same} as line {} of {}", first.row, first.file),
                ));
            } else {
                self.seen.insert(id, Origin { file: layout.file, row: line });
            }
        }
        if problems.is_empty() { Ok(event) } else { Err(problems) }
    }
}

/// File, line and column of a report's JSON path: `reactions[i].x` is line `i` of the reactions.
fn locate_in_report(path: &str, line: u64, reactions: &[u64], drugs: &[u64]) -> (&'static str, u64, String) {
    for (prefix, layout, lines) in [("reactions[", REACTIONS, reactions), ("drugs[", DRUGS, drugs)] {
        if let Some(rest) = path.strip_prefix(prefix)
            && let Some((index, field)) = rest.split_once("].")
            && let Some(&child) = index.parse::<usize>().ok().and_then(|i| lines.get(i))
        {
            let column = field.split('.').next().unwrap_or(field);
            return (layout.file, child, column.to_owned());
        }
    }
    (REPORTS.file, line, path.to_owned())
}
