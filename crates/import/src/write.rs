//! Events to the CSV layout: how `pv simulate --to csv` writes a clinic history, and the other
//! half of the round-trip tests.

use std::io::Write;

use pv_events::{ClinicEvent, EventKind, event_to_json};
use serde_json::{Map, Value};

use crate::cell;
use crate::layout::{FILES, FileLayout, Part};

/// Writes `events` as the six files, each through the writer `open` gives for its name (every
/// file gets its header, even with no rows), and returns the flushed writers by file name.
/// Absent optional fields become empty cells.
pub fn write_history<W: Write>(
    events: &[ClinicEvent],
    mut open: impl FnMut(&'static str) -> std::io::Result<W>,
) -> Result<Vec<(&'static str, W)>, csv::Error> {
    let mut written = Vec::with_capacity(FILES.len());
    for layout in FILES {
        let mut out = csv::Writer::from_writer(open(layout.file)?);
        out.write_record(layout.columns.iter().map(|c| c.name))?;
        for event in events {
            for row in rows(layout, event) {
                out.write_record(layout.columns.iter().map(|c| cell::from_json(row.get(c.name))))?;
            }
        }
        let inner = out.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
        written.push((layout.file, inner));
    }
    Ok(written)
}

/// The rows `event` contributes to the file of `layout`.
fn rows(layout: FileLayout, event: &ClinicEvent) -> Vec<Map<String, Value>> {
    let Value::Object(mut fields) = event_to_json(event) else { return Vec::new() };
    match layout.part {
        Part::Events(kind) if kind == event.kind() => vec![fields],
        Part::Reactions | Part::Drugs if event.kind() == EventKind::AdverseEventReport => {
            let name = if layout.part == Part::Drugs { "drugs" } else { "reactions" };
            let Some(Value::Array(children)) = fields.remove(name) else { return Vec::new() };
            let key = ["report_id", "version"]
                .map(|k| (k.to_owned(), fields.get(k).cloned().unwrap_or(Value::Null)));
            children
                .into_iter()
                .filter_map(|c| match c {
                    Value::Object(mut child) => {
                        child.extend(key.clone());
                        Some(child)
                    }
                    _ => None,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}
