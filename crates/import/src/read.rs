//! Reading the files: header checks, then each row to a JSON object of its fields (typed by its
//! column), with row-level problems kept as [`Reject`]s instead of stopping the import.

use std::io::Read;

use csv::ByteRecord;
use serde_json::{Map, Value};

use crate::cell;
use crate::layout::{Column, FileLayout};

/// One refused row, or the cell of it at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The file, by name.
    pub file: &'static str,
    /// The row's line in its file (the header is line 1).
    pub row: u64,
    /// The event's id, when known.
    pub event_id: Option<String>,
    /// The column at fault; empty for the row as a whole.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Why a whole file cannot be read (nothing of it is imported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file, by name.
    pub file: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}

impl std::error::Error for FileError {}

/// One data row: its line, its non-empty cells as JSON, and the cells that did not read.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The row's line in its file.
    pub line: u64,
    /// Field name -> value, for every non-empty cell that read.
    pub fields: Map<String, Value>,
    /// Cells that are not of their column's type, and row-level problems.
    pub errors: Vec<Reject>,
}

/// The rows of one file, read one at a time.
#[derive(Debug)]
pub struct FileRows<R> {
    layout: FileLayout,
    reader: csv::Reader<R>,
    columns: Vec<&'static Column>,
    /// Optional columns the header lacks, filled as if their cells were empty.
    absent: Vec<&'static Column>,
    record: ByteRecord,
}

impl<R: Read> FileRows<R> {
    /// Opens a file, refusing a header with an unknown, repeated or missing required column.
    pub fn open(layout: FileLayout, input: R) -> Result<Self, FileError> {
        let fail = |reason: String| FileError { file: layout.file, reason };
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(input);
        let header = reader.headers().map_err(|e| fail(format!("cannot read the header: {e}")))?.clone();
        let mut columns = Vec::with_capacity(header.len());
        for name in &header {
            let column = layout.column(name).ok_or_else(|| {
                let known: Vec<&str> = layout.columns.iter().map(|c| c.name).collect();
                fail(format!("unknown column `{name}`; the columns are {}", known.join(", ")))
            })?;
            if columns.iter().any(|c: &&Column| c.name == name) {
                return Err(fail(format!("column `{name}` appears twice")));
            }
            columns.push(column);
        }
        if let Some(c) = layout.columns.iter().find(|c| c.required && !columns.contains(c)) {
            return Err(fail(format!("required column `{}` is missing from the header", c.name)));
        }
        let absent = layout.columns.iter().filter(|c| !columns.contains(c)).collect();
        Ok(Self { layout, reader, columns, absent, record: ByteRecord::new() })
    }

    /// Bytes read so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The next row; `None` at the end. An I/O error ends the file.
    pub fn next_row(&mut self) -> Option<Result<Row, FileError>> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => Some(Ok(self.row())),
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                let reason = format!("cannot read past line {line}: {e}");
                Some(Err(FileError { file: self.layout.file, reason }))
            }
        }
    }

    /// The row's cells as JSON. Every cell that reads is kept even when others do not (or the
    /// row has the wrong number of cells), so a reaction or drug row stays tied to its report.
    fn row(&self) -> Row {
        let line = self.record.position().map_or(0, csv::Position::line);
        let mut row = Row { line, fields: Map::new(), errors: Vec::new() };
        if self.record.len() != self.columns.len() {
            let reason =
                format!("has {} cells where the header has {}", self.record.len(), self.columns.len());
            row.errors.push(self.reject(line, "", reason));
        }
        for (column, bytes) in self.columns.iter().zip(self.record.iter()) {
            let value = match std::str::from_utf8(bytes) {
                Err(_) => Some(Err("is not UTF-8 text (save the file as UTF-8)".to_owned())),
                Ok("") => cell::empty(column.cell).map(Ok),
                Ok(text) => Some(cell::to_json(column.cell, text)),
            };
            match value {
                Some(Ok(v)) => {
                    row.fields.insert(column.name.to_owned(), v);
                }
                Some(Err(reason)) => row.errors.push(self.reject(line, column.name, reason)),
                None => {}
            }
        }
        for column in &self.absent {
            if let Some(v) = cell::empty(column.cell) {
                row.fields.insert(column.name.to_owned(), v);
            }
        }
        row
    }

    fn reject(&self, row: u64, field: &str, reason: String) -> Reject {
        Reject { file: self.layout.file, row, event_id: None, field: field.to_owned(), reason }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::layout::{DOSES, REACTIONS};

    fn rows(layout: FileLayout, text: &str) -> Result<Vec<Row>, FileError> {
        let mut f = FileRows::open(layout, text.as_bytes())?;
        let mut out = Vec::new();
        while let Some(row) = f.next_row() {
            out.push(row?);
        }
        Ok(out)
    }

    #[test]
    fn headers_are_checked_before_any_row() {
        let e = rows(DOSES, "patient_ref,dose\np1,3\n").expect_err("unknown column");
        assert!(e.reason.starts_with("unknown column `dose`;"), "{e}");
        let e = rows(DOSES, "patient_ref,patient_ref\n").expect_err("twice");
        assert_eq!(e.reason, "column `patient_ref` appears twice");
        let e = rows(DOSES, "patient_ref\n").expect_err("missing");
        assert_eq!(e.reason, "required column `administered_at` is missing from the header");
    }

    #[test]
    fn cells_are_typed_and_bad_ones_named_with_their_line() {
        let text = "report_id,version,verbatim,outcome,seriousness\n\
                    R1, 2 ,bladder pain,recovered,hospitalisation\n\
                    R1,two,\"multi\nline\",recovered,\n\
                    R2,1\n";
        let r = rows(REACTIONS, text).expect("reads");
        assert_eq!(r[0].line, 2);
        assert_eq!(r[0].fields["version"], json!(2));
        assert_eq!(r[0].fields["seriousness"]["hospitalisation"], json!(true));
        assert_eq!((r[1].line, r[1].errors[0].field.as_str()), (3, "version"));
        assert_eq!(r[1].errors[0].reason, "`two` is not a whole number");
        assert_eq!(r[1].fields["verbatim"], json!("multi\nline"));
        assert_eq!((r[2].line, r[2].errors[0].reason.as_str()), (5, "has 2 cells where the header has 5"));
        assert_eq!(r[2].fields["report_id"], json!("R2"), "the cells there are still read");
        assert_eq!(r[0].fields.len(), 5);
    }

    #[test]
    fn a_byte_order_mark_and_invalid_utf8_are_handled() {
        let r = rows(REACTIONS, "\u{feff}report_id,version,verbatim,outcome\nR1,1,x,fatal\n").expect("BOM");
        assert_eq!(r[0].fields["report_id"], json!("R1"));
        let mut bytes = b"report_id,version,verbatim,outcome\nR1,1,".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        let mut f = FileRows::open(REACTIONS, bytes.as_slice()).expect("header");
        let row = f.next_row().expect("a row").expect("not fatal");
        let fields: Vec<&str> = row.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!((fields, row.line), (vec!["", "verbatim"], 2));
        assert_eq!(row.fields["report_id"], json!("R1"), "the key still reads");
        let r = rows(REACTIONS, "report_id,version,verbatim,outcome\nR1,1,x,fatal\n")
            .expect("no seriousness column");
        assert_eq!(r[0].fields["seriousness"]["death"], json!(false), "an absent column is none met");
    }
}
