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
/// report row; and what is known of rows whose report cannot be told, so that no report is sent
/// without a reaction or drug that may be its own.
#[derive(Debug, Default)]
pub struct ReportParts {
    parts: BTreeMap<(String, i64), Parts>,
    /// Report ids with a child row whose `version` does not read: (file, line) of the first.
    unsure_versions: BTreeMap<String, (&'static str, u64)>,
    /// A child row whose `report_id` does not read: (file, line) of the first.
    unsure_report: Option<(&'static str, u64)>,
    /// Report versions already claimed by a report row, with its line.
    claimed: HashMap<(String, i64), u64>,
    /// Report versions (or report ids, version -1) whose report row was refused, with its line.
    refused: HashMap<(String, i64), u64>,
}

#[derive(Debug, Default)]
struct Parts {
    reactions: Vec<Row>,
    drugs: Vec<Row>,
}

impl ReportParts {
    /// Files a reaction (`is_drug` false) or drug row under its report version. A row whose key
    /// does not read is returned as rejects and holds back the reports it may belong to.
    pub fn add(&mut self, row: Row, is_drug: bool) -> Result<(), Vec<Reject>> {
        let layout = if is_drug { DRUGS } else { REACTIONS };
        match report_key(&row.fields) {
            Ok(key) => {
                let parts = self.parts.entry(key).or_default();
                if is_drug {
                    parts.drugs.push(row)
                } else {
                    parts.reactions.push(row)
                }
                Ok(())
            }
            Err((field, reason)) => {
                let at = (layout.file, row.line);
                match row.fields.get("report_id").and_then(Value::as_str) {
                    Some(id) => {
                        self.unsure_versions.entry(id.to_owned()).or_insert(at);
                    }
                    None => {
                        self.unsure_report.get_or_insert(at);
                    }
                }
                let mut errors = row.errors;
                if !errors.iter().any(|e| e.field == field) {
                    errors.push(reject(layout, row.line, None, field, reason));
                }
                Err(errors)
            }
        }
    }

    /// Why the report version `key` cannot be sent whatever its own content, if so.
    fn held_back(&self, key: &(String, i64)) -> Option<String> {
        if let Some(&line) = self.claimed.get(key) {
            return Some(format!(
                "the same report version (report_id `{}`, version {}) as line {line}",
                key.0, key.1
            ));
        }
        if let Some((file, line)) = self.unsure_versions.get(&key.0) {
            return Some(format!(
                "not imported: line {line} of {file} has report_id `{}` but no readable version, so it may belong to this report; fix that row",
                key.0
            ));
        }
        self.unsure_report.map(|(file, line)| {
            format!("not imported: line {line} of {file} has no readable report_id, so it may belong to this report; fix that row")
        })
    }

    /// The rows no report row claimed: each names the missing report version, or the refused
    /// report row it belonged to, with the row's own problems.
    pub fn unclaimed(self) -> Vec<Reject> {
        let mut out = Vec::new();
        for ((report_id, version), parts) in self.parts {
            let refused = self
                .refused
                .get(&(report_id.clone(), version))
                .or_else(|| self.refused.get(&(report_id.clone(), -1)));
            let reason = match refused {
                Some(line) => format!("its report (line {line} of {}) was not imported", REPORTS.file),
                None => {
                    format!("no row of {} has report_id `{report_id}` and version {version}", REPORTS.file)
                }
            };
            for (layout, rows) in [(REACTIONS, parts.reactions), (DRUGS, parts.drugs)] {
                for r in rows {
                    out.push(reject(layout, r.line, None, "report_id", reason.clone()));
                    out.extend(r.errors);
                }
            }
        }
        out.sort_by_key(|r| (r.file, r.row));
        out
    }
}

fn report_key(fields: &Map<String, Value>) -> Result<(String, i64), (&'static str, String)> {
    let unknown = |field| (field, "required: without it the row cannot be tied to its report".to_owned());
    let report_id = fields.get("report_id").and_then(Value::as_str).ok_or_else(|| unknown("report_id"))?;
    let version = fields.get("version").and_then(Value::as_i64).ok_or_else(|| unknown("version"))?;
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
        let key = report_key(&fields).ok();
        if let Some(key) = &key
            && let Some(reason) = parts.held_back(key)
        {
            let field = if parts.claimed.contains_key(key) {
                "version"
            } else {
                // Its rows stay unclaimed and are listed as belonging to a report not imported.
                parts.refused.insert(key.clone(), line);
                ""
            };
            let id = fields.get("event_id").and_then(Value::as_str).map(str::to_owned);
            return Err(vec![Reject {
                file: REPORTS.file,
                row: line,
                event_id: id,
                field: field.into(),
                reason,
            }]);
        }
        if let Some(key) = &key {
            parts.claimed.insert(key.clone(), line);
        }
        let Parts { reactions, drugs } = key.as_ref().and_then(|k| parts.parts.remove(k)).unwrap_or_default();
        let fields_report_id = fields.get("report_id").and_then(Value::as_str).map(str::to_owned);
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
        let mut checked = self.check(REPORTS, line, fields, errors, &locate);
        if let Err(rejects) = &mut checked
            && rejects.iter().all(|r| r.file != REPORTS.file)
        {
            // Refused for its reactions' or drugs' rows alone: the report row is named too.
            let id = rejects.first().and_then(|r| r.event_id.clone());
            let reason =
                "not imported: rows of its reactions or drugs were refused (listed with it)".to_owned();
            rejects.insert(
                0,
                Reject { file: REPORTS.file, row: line, event_id: id, field: String::new(), reason },
            );
        }
        if checked.is_err() {
            let report_id = fields_report_id.map(|id| key.unwrap_or((id, -1)));
            if let Some(k) = report_id {
                parts.refused.insert(k, line);
            }
        }
        checked
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
