//! Coding of adverse-reaction verbatims: text -> preferred term (PT) -> primary system organ
//! class (SOC), and the event groups of interest a PT belongs to.
//!
//! Two dictionary sources sit behind one [`Dictionary`] type: a licensed MedDRA release read
//! from its ASCII distribution files ([`meddra`]), and the open demo dictionary bundled with the
//! project ([`demo`], no MedDRA codes). Event groups ([`groups`]) are configuration: lists of PT
//! names, checked against the loaded dictionary.

pub mod demo;
pub mod dictionary;
pub mod groups;
pub mod meddra;
pub mod normalise;

pub use dictionary::{CodeSource, Coded, Dictionary, DictionaryError, PreferredTerm};
pub use groups::{EventGroup, EventGroups, GroupError};
pub use normalise::normalise;

/// A dictionary and its event groups: everything needed to code a reaction.
#[derive(Debug, Clone)]
pub struct Coder {
    /// The dictionary.
    pub dictionary: Dictionary,
    /// The event groups, resolved against the dictionary.
    pub groups: EventGroups,
}

/// A reaction's coding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coding<'a> {
    /// The PT and what matched, or `None` when nothing did.
    pub coded: Option<Coded<'a>>,
    /// The event groups the PT belongs to (empty when uncoded).
    pub groups: &'a [String],
}

impl Coder {
    /// The bundled demo dictionary with the bundled event groups.
    pub fn demo() -> Result<Self, GroupError> {
        let dictionary = demo::dictionary().clone();
        let groups = EventGroups::resolve(groups::bundled(), &dictionary)?;
        Ok(Self { dictionary, groups })
    }

    /// Codes a reaction from the clinic's own term or code (if any), else its verbatim.
    pub fn code(&self, verbatim: &str, clinic_term: Option<&str>) -> Coding<'_> {
        let coded = self.dictionary.code(verbatim, clinic_term);
        let groups = coded.map(|c| self.groups.of(c.pt_index)).unwrap_or(&[]);
        Coding { coded, groups }
    }
}
