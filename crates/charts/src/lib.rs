//! SVG charts for the workbench pages and the periodic report. Pure: data in, SVG text out.
//!
//! A chart is inlined in a server-rendered page and embedded as is in the PDF report, so the
//! output is deterministic: the same input gives the same bytes (coordinates at one decimal,
//! labels at the decimals their step needs, no clock, no randomness, no hash order). Each SVG
//! is self-contained (presentation attributes, no CSS file, no script, `sans-serif`), has
//! `width`, `height`, a `viewBox` and a `<title>`, and escapes all text. Elements carry a
//! `class` (`bar`, `band`, `whisker`, `reaction`, ...) for tests and for page styles.
//!
//! Bad input never panics and never reaches the output as NaN: non-finite values (and values
//! beyond ±10^12) are skipped, zero ranges are widened, and a chart with nothing left to draw
//! says "no data". [`axis`] has the tick and date arithmetic.

pub mod axis;
mod charts;
mod svg;

pub use charts::{bars, histogram, histogram_edges, stacked_bars, time_series, timeline};

/// Size and labels common to every chart: the title (shown and as `<title>`), the axis labels
/// (the y label rotated), and the size in pixels (also the `viewBox`).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub width: u32,
    pub height: u32,
}

impl Frame {
    /// A 640 × 260 frame.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        let (title, x_label, y_label) = (title.to_owned(), x_label.to_owned(), y_label.to_owned());
        Self { title, x_label, y_label, width: 640, height: 260 }
    }

    /// The same frame at another size.
    pub fn with_size(self, width: u32, height: u32) -> Self {
        Self { width, height, ..self }
    }
}

/// One point of a series over time: `x` is days since 1970-01-01, with an optional interval
/// (drawn when both ends are given).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// A named series (no legend when every name is empty); points in any order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// A category with a value and an optional interval, e.g. incidence by dose band with its 95%
/// CI; the note (e.g. "n = 12") goes under the label.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub note: Option<String>,
}

/// One category of daily counts, e.g. an event kind: `(day, count)` with day in days since
/// 1970-01-01 (its fraction dropped); counts on the same day add up.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub name: String,
    pub values: Vec<(f64, f64)>,
}

/// One administration on a patient timeline, on its day (days since 1970-01-01).
#[derive(Debug, Clone, PartialEq)]
pub struct Dose {
    pub day: f64,
    pub mg: f64,
    pub label: String,
}

/// A monitoring observation or a reaction (label: its preferred term) on a patient timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub day: f64,
    pub label: String,
}
