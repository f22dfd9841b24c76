//! The report's files: the PDF, one CSV per table, the charts, and `manifest.json` recording the
//! lock, the interval, the rows read and written, the event-log positions and the SHA-256 of
//! every other file.

use std::collections::BTreeMap;

use chrono::DateTime;
use sha2::{Digest, Sha256};

use super::build::instant;
use super::input::{Input, KafkaPosition};
use super::markup::markup;
use super::report::Report;
use crate::ReportError;

/// The files of a report, by path relative to the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// Path -> bytes, `manifest.json` included.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The PDF's file name.
pub const PDF: &str = "periodic-report.pdf";
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, serde::Serialize)]
struct Manifest<'a> {
    report: &'a str,
    interval_from: String,
    interval_to: String,
    data_lock_point: String,
    data_lock_point_ms: i64,
    sections_file_sha256: &'a str,
    inputs: &'a BTreeMap<String, u64>,
    table_rows: BTreeMap<String, usize>,
    kafka_positions: &'a [KafkaPosition],
    files: BTreeMap<String, String>,
}

/// The chart as the PDF embeds it: its text in one font variant. Typst 0.13 writes the fonts of
/// an SVG's text in an order that varies from run to run when the SVG uses more than one variant
/// (typst/typst#6783), which would break byte-identical reports; the bold chart titles are set
/// regular in the PDF (the SVG files beside it keep them bold).
fn one_font_variant(svg: &str) -> String {
    svg.replace(" font-weight=\"bold\"", "")
}

/// Renders `report` (built from `input`) into its files.
pub fn render(report: &Report, input: &Input) -> Result<Outputs, ReportError> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for t in report.tables() {
        files.insert(format!("tables/{}.csv", t.file), t.csv()?);
    }
    for (path, svg) in &report.charts {
        files.insert(path.clone(), svg.as_bytes().to_vec());
    }
    let mut doc = pv_typeset::Document { markup: markup(report), files: BTreeMap::new() };
    doc.files.extend(report.charts.iter().map(|(p, svg)| (p.clone(), one_font_variant(svg).into_bytes())));
    let stamp =
        DateTime::from_timestamp_millis(report.spec.lock_ms).ok_or(ReportError::Lock(report.spec.lock_ms))?;
    let ident =
        format!("{} {} {} {}", report.spec.title, report.spec.from, report.spec.to, report.spec.lock_ms);
    files.insert(PDF.into(), pv_typeset::pdf(&doc, stamp, &ident)?);
    let mut positions = input.positions.clone();
    positions.sort();
    let manifest = Manifest {
        report: &report.spec.title,
        interval_from: report.spec.from.to_string(),
        interval_to: report.spec.to.to_string(),
        data_lock_point: instant(report.spec.lock_ms),
        data_lock_point_ms: report.spec.lock_ms,
        sections_file_sha256: &report.sections_sha256,
        inputs: &input.rows_read,
        table_rows: report.tables().map(|t| (t.file.clone(), t.rows.len())).collect(),
        kafka_positions: &positions,
        files: files.iter().map(|(p, bytes)| (p.clone(), hex::encode(Sha256::digest(bytes)))).collect(),
    };
    let mut json = serde_json::to_vec_pretty(&manifest)?;
    json.push(b'\n');
    files.insert(MANIFEST.into(), json);
    Ok(Outputs { files })
}
