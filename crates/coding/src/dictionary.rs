//! The dictionary: preferred terms with their primary SOC, and every text and code that leads
//! to them.

use std::collections::HashMap;

use crate::normalise::normalise;

/// A preferred term and its primary place in the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferredTerm {
    /// PT name.
    pub name: String,
    /// MedDRA PT code (`None` in the demo dictionary).
    pub code: Option<i64>,
    /// Primary SOC name.
    pub soc: String,
    /// MedDRA SOC code (`None` in the demo dictionary).
    pub soc_code: Option<i64>,
    /// Every SOC the PT sits under (MedDRA is multiaxial); the primary one first.
    pub all_socs: Vec<String>,
}

/// What a coding matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSource {
    /// The clinic's own term or code.
    ClinicTerm,
    /// The verbatim text.
    Verbatim,
}

/// A successful coding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coded<'a> {
    /// The preferred term.
    pub pt: &'a PreferredTerm,
    /// Index of the PT in the dictionary (for group lookups).
    pub pt_index: usize,
    /// What matched.
    pub source: CodeSource,
}

/// Why a dictionary could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DictionaryError {
    /// A source file could not be read.
    #[error("cannot read {file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// A line or entry is malformed.
    #[error("{file}:{line}: {message}")]
    Malformed {
        /// The file.
        file: String,
        /// 1-based line (0 when not line-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// One text leads to two different PTs.
    #[error("`{text}` leads to both `{first}` and `{second}`")]
    Ambiguous {
        /// The text.
        text: String,
        /// One PT.
        first: String,
        /// The other PT.
        second: String,
    },
}

/// Terms and the texts and codes that lead to them.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    source: String,
    pts: Vec<PreferredTerm>,
    by_text: HashMap<String, usize>,
    by_code: HashMap<i64, usize>,
    by_pt_name: HashMap<String, usize>,
}

impl Dictionary {
    /// An empty dictionary describing its `source` (e.g. `demo`, `MedDRA 27.1`).
    pub fn new(source: impl Into<String>) -> Self {
        Self { source: source.into(), ..Self::default() }
    }

    /// Where the terms come from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Adds a PT (its own name leads to it); returns its index. A PT added twice keeps its
    /// first entry.
    pub fn add_pt(&mut self, pt: PreferredTerm) -> Result<usize, DictionaryError> {
        let key = normalise(&pt.name);
        if let Some(&i) = self.by_pt_name.get(&key) {
            return Ok(i);
        }
        let index = self.pts.len();
        if let Some(code) = pt.code {
            self.by_code.insert(code, index);
        }
        self.by_pt_name.insert(key.clone(), index);
        self.pts.push(pt);
        self.add_text(&key, index)?;
        Ok(index)
    }

    /// Makes `text` lead to the PT at `index`.
    pub fn add_text(&mut self, text: &str, index: usize) -> Result<(), DictionaryError> {
        let key = normalise(text);
        if key.is_empty() {
            return Ok(());
        }
        match self.by_text.get(&key) {
            Some(&other) if other != index => Err(DictionaryError::Ambiguous {
                text: text.to_owned(),
                first: self.pts[other].name.clone(),
                second: self.pts[index].name.clone(),
            }),
            _ => {
                self.by_text.insert(key, index);
                Ok(())
            }
        }
    }

    /// Makes a code (e.g. an LLT code) lead to the PT at `index`.
    pub fn add_code(&mut self, code: i64, index: usize) {
        self.by_code.entry(code).or_insert(index);
    }

    /// The PT named `name` (case and punctuation ignored).
    pub fn pt_by_name(&self, name: &str) -> Option<(usize, &PreferredTerm)> {
        self.by_pt_name.get(&normalise(name)).map(|&i| (i, &self.pts[i]))
    }

    /// Every PT.
    pub fn pts(&self) -> &[PreferredTerm] {
        &self.pts
    }

    /// Number of texts (PT names, LLTs, synonyms) that code to a PT.
    pub fn text_count(&self) -> usize {
        self.by_text.len()
    }

    /// Codes a reaction: the clinic's term or code first (a number is looked up as an LLT or PT
    /// code, anything else as text), then the verbatim. `None` when nothing matches.
    pub fn code(&self, verbatim: &str, clinic_term: Option<&str>) -> Option<Coded<'_>> {
        let hit = |index: usize, source| Coded { pt: &self.pts[index], pt_index: index, source };
        if let Some(term) = clinic_term.map(str::trim).filter(|t| !t.is_empty()) {
            let by_code = term.parse::<i64>().ok().and_then(|c| self.by_code.get(&c));
            if let Some(&i) = by_code.or_else(|| self.by_text.get(&normalise(term))) {
                return Some(hit(i, CodeSource::ClinicTerm));
            }
        }
        self.by_text.get(&normalise(verbatim)).map(|&i| hit(i, CodeSource::Verbatim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(name: &str, code: Option<i64>) -> PreferredTerm {
        PreferredTerm { name: name.into(), code, soc: "S".into(), soc_code: None, all_socs: vec!["S".into()] }
    }

    #[test]
    fn clinic_terms_and_codes_win_over_the_verbatim() {
        let mut d = Dictionary::new("t");
        let a = d.add_pt(pt("Dysuria", Some(100))).expect("add");
        let b = d.add_pt(pt("Nausea", Some(200))).expect("add");
        d.add_text("burning on urination", a).expect("syn");
        d.add_code(101, a);
        assert_eq!(
            d.code("BURNING on urination.", None).map(|c| (c.pt_index, c.source)),
            Some((a, CodeSource::Verbatim))
        );
        assert_eq!(d.code("burning on urination", Some("Nausea")).map(|c| c.pt_index), Some(b));
        assert_eq!(
            d.code("x", Some("101")).map(|c| (c.pt_index, c.source)),
            Some((a, CodeSource::ClinicTerm))
        );
        assert_eq!(
            d.code("nausea", Some("999")).map(|c| (c.pt_index, c.source)),
            Some((b, CodeSource::Verbatim))
        );
        assert_eq!(d.code("felt odd", None), None);
    }

    #[test]
    fn one_text_cannot_lead_to_two_terms() {
        let mut d = Dictionary::new("t");
        let a = d.add_pt(pt("Dysuria", None)).expect("add");
        let b = d.add_pt(pt("Nausea", None)).expect("add");
        d.add_text("sick", b).expect("first");
        assert!(matches!(d.add_text("Sick!", a), Err(DictionaryError::Ambiguous { .. })));
        assert!(d.add_text("sick", b).is_ok(), "the same mapping twice is fine");
    }
}
