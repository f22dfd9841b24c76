//! The open demo dictionary bundled with the project (`config/dictionary/demo.toml`): verbatim
//! synonyms -> preferred-term names and their SOC, no MedDRA codes.

use std::sync::LazyLock;

use serde::Deserialize;

use crate::dictionary::{Dictionary, DictionaryError, PreferredTerm};

/// The bundled file.
pub const DEMO_TOML: &str = include_str!("../../../config/dictionary/demo.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoFile {
    pt: Vec<DemoPt>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoPt {
    name: String,
    soc: String,
    #[serde(default)]
    synonyms: Vec<String>,
}

static DEMO: LazyLock<Dictionary> = LazyLock::new(|| {
    // Bundled and covered by this crate's tests: a failure here is a build defect.
    parse(DEMO_TOML).expect("config/dictionary/demo.toml is valid")
});

/// The bundled demo dictionary.
pub fn dictionary() -> &'static Dictionary {
    &DEMO
}

/// Parses a dictionary in the demo format.
pub fn parse(text: &str) -> Result<Dictionary, DictionaryError> {
    let file: DemoFile = toml::from_str(text).map_err(|e| DictionaryError::Malformed {
        file: "demo dictionary".into(),
        line: 0,
        message: e.to_string(),
    })?;
    let mut d = Dictionary::new("pv demo dictionary (not MedDRA)");
    for entry in file.pt {
        let index = d.add_pt(PreferredTerm {
            name: entry.name.clone(),
            code: None,
            soc: entry.soc.clone(),
            soc_code: None,
            all_socs: vec![entry.soc],
        })?;
        for s in &entry.synonyms {
            d.add_text(s, index)?;
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_dictionary_loads_and_codes_clinic_language() {
        let d = dictionary();
        assert!(d.pts().len() >= 50, "{}", d.pts().len());
        let pt = |verbatim: &str| d.code(verbatim, None).map(|c| c.pt.name.as_str());
        assert_eq!(pt("Ketamine cystitis"), Some("Cystitis interstitial"));
        assert_eq!(pt("needing to pass urine very often"), Some("Pollakiuria"));
        assert_eq!(pt("Blood in urine"), Some("Haematuria"));
        assert_eq!(pt("HEMATURIA"), Some("Haematuria"));
        assert_eq!(pt("asked for extra sessions"), Some("Drug seeking behaviour"));
        assert_eq!(pt("felt detached from body, lasting hours"), Some("Dissociation"));
        assert_eq!(pt("bad taste (nasal spray)"), Some("Dysgeusia"));
        assert_eq!(pt("my elbow itches"), None);
        assert_eq!(
            d.pt_by_name("bladder pain").map(|(_, p)| p.soc.as_str()),
            Some("Renal and urinary disorders")
        );
    }

    #[test]
    fn a_synonym_listed_under_two_terms_is_refused() {
        let text = "[[pt]]\nname = \"A\"\nsoc = \"S\"\nsynonyms = [\"x\"]\n[[pt]]\nname = \"B\"\nsoc = \"S\"\nsynonyms = [\"X\"]\n";
        assert!(matches!(parse(text), Err(DictionaryError::Ambiguous { .. })));
    }
}
