//! Event groups of interest (in the spirit of MedDRA SMQs): named lists of preferred terms,
//! kept as configuration (`config/groups/*.toml`) and resolved against the loaded dictionary.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::dictionary::Dictionary;

/// One group file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventGroup {
    /// Short name used in events and tables, e.g. `urological`.
    pub name: String,
    /// What the group covers.
    pub description: String,
    /// Preferred-term names in the group.
    pub pts: Vec<String>,
}

/// Why groups could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// A file could not be read or parsed.
    #[error("event group file {file}: {message}")]
    File {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A group names PTs the dictionary does not have.
    #[error("event group `{group}` names terms missing from the dictionary ({dictionary}): {missing:?}")]
    UnknownTerms {
        /// The group.
        group: String,
        /// The dictionary's source.
        dictionary: String,
        /// The names not found.
        missing: Vec<String>,
    },
    /// Two groups share a name.
    #[error("two event groups are named `{0}`")]
    Duplicate(String),
}

/// The groups bundled with the project.
pub fn bundled() -> Vec<EventGroup> {
    [
        ("config/groups/urological.toml", include_str!("../../../config/groups/urological.toml")),
        ("config/groups/dependence.toml", include_str!("../../../config/groups/dependence.toml")),
    ]
    .into_iter()
    // Bundled and covered by tests: a parse failure here is a build defect.
    .map(|(file, text)| parse(file, text).expect("bundled event groups parse"))
    .collect()
}

/// Parses one group file.
pub fn parse(file: &str, text: &str) -> Result<EventGroup, GroupError> {
    toml::from_str(text).map_err(|e| GroupError::File { file: file.into(), message: e.to_string() })
}

/// Reads every `*.toml` in `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<EventGroup>, GroupError> {
    let err = |message: String| GroupError::File { file: dir.display().to_string(), message };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| err(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .map_err(|e| GroupError::File { file: p.display().to_string(), message: e.to_string() })?;
            parse(&p.display().to_string(), &text)
        })
        .collect()
}

/// Groups resolved against a dictionary: PT index -> names of the groups holding it.
#[derive(Debug, Clone, Default)]
pub struct EventGroups {
    groups: Vec<EventGroup>,
    by_pt: HashMap<usize, Vec<String>>,
}

impl EventGroups {
    /// Resolves `groups` against `dictionary`; every PT name must exist there.
    pub fn resolve(groups: Vec<EventGroup>, dictionary: &Dictionary) -> Result<Self, GroupError> {
        let mut by_pt: HashMap<usize, Vec<String>> = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            if groups[..i].iter().any(|o| o.name == g.name) {
                return Err(GroupError::Duplicate(g.name.clone()));
            }
            let mut missing = Vec::new();
            for name in &g.pts {
                match dictionary.pt_by_name(name) {
                    Some((index, _)) => {
                        let names = by_pt.entry(index).or_default();
                        if !names.contains(&g.name) {
                            names.push(g.name.clone());
                        }
                    }
                    None => missing.push(name.clone()),
                }
            }
            if !missing.is_empty() {
                return Err(GroupError::UnknownTerms {
                    group: g.name.clone(),
                    dictionary: dictionary.source().to_owned(),
                    missing,
                });
            }
        }
        Ok(Self { groups, by_pt })
    }

    /// The groups a PT belongs to (by dictionary index).
    pub fn of(&self, pt_index: usize) -> &[String] {
        self.by_pt.get(&pt_index).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every group.
    pub fn groups(&self) -> &[EventGroup] {
        &self.groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Coder, demo};

    #[test]
    fn the_bundled_groups_resolve_against_the_demo_dictionary() {
        let coder = Coder::demo().expect("every group term is in the demo dictionary");
        let groups = |verbatim: &str| coder.code(verbatim, None).groups.to_vec();
        assert_eq!(groups("ketamine cystitis"), ["urological"]);
        assert_eq!(groups("blood in urine"), ["urological"]);
        assert_eq!(groups("tolerance to dose"), ["dependence"]);
        assert!(groups("nausea").is_empty());
        assert!(groups("unheard-of symptom").is_empty());
        let names: Vec<&str> = coder.groups.groups().iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["urological", "dependence"]);
    }

    #[test]
    fn every_demo_synonym_of_a_group_term_carries_the_group() {
        // All synonyms of the group PTs code to a group member: the whole group is covered.
        let coder = Coder::demo().expect("demo");
        for g in coder.groups.groups() {
            for pt in &g.pts {
                let coding = coder.code(pt, None);
                assert!(coding.groups.contains(&g.name), "{pt} not in {}", g.name);
            }
        }
    }

    #[test]
    fn a_group_naming_an_unknown_term_is_an_error() {
        let g = EventGroup {
            name: "x".into(),
            description: "d".into(),
            pts: vec!["Bladder pain".into(), "Nope".into()],
        };
        let err = EventGroups::resolve(vec![g], demo::dictionary()).expect_err("unknown");
        assert!(
            matches!(&err, GroupError::UnknownTerms { missing, .. } if missing == &["Nope".to_string()]),
            "{err}"
        );
    }
}
