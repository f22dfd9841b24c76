//! Typesets a Typst document into a PDF, deterministically.
//!
//! The only crate that compiles Typst (about two minutes of a cold debug build), so the rest of
//! the workspace does not rebuild it. [`pdf`] takes the document's markup, the files it includes
//! (charts as SVG, tables as data) and the instant to stamp the PDF with. Nothing else reaches the
//! output: the fonts are the ones compiled in (Libertinus Serif, New Computer Modern, DejaVu Sans
//! Mono from `typst-assets`; no system font is read), `datetime.today()` is the given instant, and
//! the PDF's document id is derived from the caller's identifier. The same inputs give the same
//! bytes on any machine.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Datelike, Timelike, Utc};
use typst::diag::{FileError, FileResult, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Smart};
use typst::layout::PagedDocument;
use typst::syntax::{FileId, Source, VirtualPath};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, World};

/// Why a document could not be typeset.
#[derive(Debug, thiserror::Error)]
pub enum TypesetError {
    /// The markup did not compile; the messages are Typst's, with the line they point at.
    #[error("the document did not compile: {0}")]
    Compile(String),
    /// The compiled document could not be written as PDF.
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
    /// The stamp is outside what a PDF date can hold.
    #[error("the timestamp {0} cannot be written into a PDF")]
    Timestamp(DateTime<Utc>),
}

/// A document to typeset: its markup and the files it reads by path (`image("chart.svg")`).
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// Typst markup of `main.typ`.
    pub markup: String,
    /// Files by path relative to `main.typ`, e.g. `charts/exposure.svg`.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Typesets `doc` and returns the PDF's bytes. `stamp` is written as the PDF's creation and
/// modification date and is what `datetime.today()` returns; `ident` seeds the PDF's document id
/// (use something that identifies the document, such as its title and data-lock point).
pub fn pdf(doc: &Document, stamp: DateTime<Utc>, ident: &str) -> Result<Vec<u8>, TypesetError> {
    let today = to_datetime(stamp).ok_or(TypesetError::Timestamp(stamp))?;
    let world = ReportWorld::new(doc, today);
    let compiled = typst::compile::<PagedDocument>(&world);
    let document = compiled.output.map_err(|errors| TypesetError::Compile(describe(&world, &errors)))?;
    let options = typst_pdf::PdfOptions {
        ident: Smart::Custom(ident),
        timestamp: Some(typst_pdf::Timestamp::new_utc(today)),
        ..Default::default()
    };
    typst_pdf::pdf(&document, &options).map_err(|errors| TypesetError::Pdf(describe(&world, &errors)))
}

fn to_datetime(t: DateTime<Utc>) -> Option<Datetime> {
    let narrow = |v: u32| u8::try_from(v).ok();
    Datetime::from_ymd_hms(
        t.year(),
        narrow(t.month())?,
        narrow(t.day())?,
        narrow(t.hour())?,
        narrow(t.minute())?,
        narrow(t.second())?,
    )
}

/// Typst's messages, each with the line of the markup it points at.
fn describe(world: &ReportWorld, errors: &[SourceDiagnostic]) -> String {
    let located = |e: &SourceDiagnostic| {
        let line = e.span.id().and_then(|id| world.source(id).ok()).and_then(|source| {
            let range = source.range(e.span)?;
            let line = source.byte_to_line(range.start)?;
            Some(format!(" (line {}: {})", line + 1, source.text().lines().nth(line).unwrap_or("").trim()))
        });
        format!("{}{}", e.message, line.unwrap_or_default())
    };
    errors.iter().map(located).collect::<Vec<_>>().join("; ")
}

/// The compiled-in fonts, read once per process.
fn fonts() -> &'static (LazyHash<FontBook>, Vec<Font>) {
    static FONTS: OnceLock<(LazyHash<FontBook>, Vec<Font>)> = OnceLock::new();
    FONTS.get_or_init(|| {
        let fonts: Vec<Font> = typst_assets::fonts().flat_map(|data| Font::iter(Bytes::new(data))).collect();
        (LazyHash::new(FontBook::from_fonts(&fonts)), fonts)
    })
}

fn library() -> &'static LazyHash<Library> {
    static LIBRARY: OnceLock<LazyHash<Library>> = OnceLock::new();
    LIBRARY.get_or_init(|| LazyHash::new(Library::default()))
}

/// Everything the compiler may read: one source, the given files, the compiled-in fonts.
struct ReportWorld {
    main: Source,
    files: BTreeMap<FileId, Bytes>,
    today: Datetime,
}

impl ReportWorld {
    fn new(doc: &Document, today: Datetime) -> Self {
        let id = |path: &str| FileId::new(None, VirtualPath::new(path));
        let main = Source::new(id("main.typ"), doc.markup.clone());
        let files = doc.files.iter().map(|(path, data)| (id(path), Bytes::new(data.clone()))).collect();
        Self { main, files, today }
    }
}

impl World for ReportWorld {
    fn library(&self) -> &LazyHash<Library> {
        library()
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &fonts().0
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            let bytes = self.file(id)?;
            let text = std::str::from_utf8(&bytes).map_err(|_| FileError::InvalidUtf8)?;
            Ok(Source::new(id, text.to_owned()))
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        self.files.get(&id).cloned().ok_or_else(|| FileError::NotFound(id.vpath().as_rootless_path().into()))
    }

    fn font(&self, index: usize) -> Option<Font> {
        fonts().1.get(index).cloned()
    }

    fn today(&self, _offset: Option<i64>) -> Option<Datetime> {
        Some(self.today)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn stamp() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 30, 23, 59, 59).single().expect("valid")
    }

    fn doc(markup: &str) -> Document {
        Document { markup: markup.to_owned(), files: BTreeMap::new() }
    }

    #[test]
    fn the_same_document_gives_the_same_bytes_with_the_stamp_inside() {
        let d = doc("= Title\nHello, #datetime.today().display().");
        let a = pdf(&d, stamp(), "t").expect("typesets");
        let b = pdf(&d, stamp(), "t").expect("typesets");
        assert!(a.starts_with(b"%PDF-"));
        assert_eq!(a, b);
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("D:20260630235959"), "creation date is the stamp");
    }

    #[test]
    fn a_different_stamp_changes_the_bytes() {
        let d = doc("Hello");
        let later = stamp() + chrono::Duration::seconds(1);
        assert_ne!(pdf(&d, stamp(), "t").expect("typesets"), pdf(&d, later, "t").expect("typesets"));
    }

    #[test]
    fn an_included_svg_is_read_from_the_files_and_a_missing_one_is_named() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="5" height="5"/></svg>"#;
        let mut d = doc(r#"#image("c/one.svg")"#);
        d.files.insert("c/one.svg".into(), svg.as_bytes().to_vec());
        assert!(pdf(&d, stamp(), "t").is_ok());
        let err = pdf(&doc(r#"#image("c/two.svg")"#), stamp(), "t").expect_err("missing file");
        assert!(err.to_string().contains("two.svg"), "{err}");
    }

    #[test]
    fn a_markup_error_names_the_line() {
        let err = pdf(&doc("fine\n#let x = (\n"), stamp(), "t").expect_err("bad markup");
        assert!(err.to_string().contains("line"), "{err}");
    }
}
