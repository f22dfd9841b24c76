//! A periodic report as built: numbered sections of text, human-written parts, tables and
//! charts. Typeset by [`super::markup`]; its tables are also the CSV files.

use std::collections::BTreeMap;

use super::input::Spec;
use crate::table::Table;

/// One block of a section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A paragraph the system wrote.
    Text(String),
    /// A part written by people, from the sections file (Typst markup), or `None` when the file
    /// does not have it yet.
    Human(Option<String>),
    /// A table (also a CSV).
    Table(Table),
    /// A chart: the SVG file it is read from, and its caption.
    Chart {
        /// Path under the output folder, e.g. `charts/exposure-by-month.svg`.
        file: String,
        /// Caption.
        caption: String,
    },
}

/// A numbered section (ICH E2C(R2) numbering) or subsection.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Its number, e.g. `5.2`.
    pub number: String,
    /// Its title.
    pub title: String,
    /// What it holds.
    pub blocks: Vec<Block>,
}

impl Section {
    /// A section with no blocks yet.
    pub fn new(number: &str, title: &str) -> Self {
        Self { number: number.to_owned(), title: title.to_owned(), blocks: Vec::new() }
    }

    /// Depth: 1 for `5`, 2 for `5.2`, 3 for `16.4.1`.
    pub fn depth(&self) -> usize {
        self.number.split('.').count()
    }

    /// Adds a paragraph.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Text(text.into()));
        self
    }

    /// Adds a block.
    pub fn with(mut self, block: Block) -> Self {
        self.blocks.push(block);
        self
    }
}

/// The report: its specification, its sections in order and the charts they show.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// What was asked for.
    pub spec: Spec,
    /// Sections in document order.
    pub sections: Vec<Section>,
    /// SVG text of each chart, by path.
    pub charts: BTreeMap<String, String>,
    /// Facts for the cover and the manifest: (label, value), in order.
    pub facts: Vec<(String, String)>,
    /// SHA-256 of the sections file the human-written parts came from.
    pub sections_sha256: String,
}

impl Report {
    /// Every table, in document order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.sections.iter().flat_map(|s| &s.blocks).filter_map(|b| match b {
            Block::Table(t) => Some(t),
            _ => None,
        })
    }
}
