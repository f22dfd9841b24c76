//! Loading a licensed MedDRA release from its ASCII distribution files (`MedAscii/`).
//!
//! Files are `$`-separated, one record per line, with a trailing `$`:
//! `llt.asc` (llt_code, llt_name, pt_code, 6 legacy codes, llt_currency, jart),
//! `pt.asc` (pt_code, pt_name, null, pt_soc_code, ...), `hlt.asc`, `hlgt.asc`, `soc.asc`
//! (code, name, ...), the links `hlt_pt.asc`, `hlgt_hlt.asc`, `soc_hlgt.asc`, and `mdhier.asc`
//! (pt, hlt, hlgt, soc codes, their names, soc_abbrev, null, pt_soc_code, primary_soc_fg).
//!
//! MedDRA is multiaxial: a PT can sit under several SOCs. Each PT is coded to its primary SOC
//! (the `mdhier.asc` row flagged `Y`, which must agree with `pt.asc`), so tabulations count it
//! once; every SOC is kept in [`PreferredTerm::all_socs`]. Non-current LLTs still code.
//! Ship no MedDRA files: a site points the enricher at its own licensed copy.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::dictionary::{Dictionary, DictionaryError, PreferredTerm};

/// The file names of a MedDRA ASCII release, in the order of [`MeddraFiles`].
pub const FILE_NAMES: [&str; 9] = [
    "llt.asc",
    "pt.asc",
    "hlt.asc",
    "hlt_pt.asc",
    "hlgt.asc",
    "hlgt_hlt.asc",
    "soc.asc",
    "soc_hlgt.asc",
    "mdhier.asc",
];

/// The text of each file of a release.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct MeddraFiles<'a> {
    pub llt: &'a str,
    pub pt: &'a str,
    pub hlt: &'a str,
    pub hlt_pt: &'a str,
    pub hlgt: &'a str,
    pub hlgt_hlt: &'a str,
    pub soc: &'a str,
    pub soc_hlgt: &'a str,
    pub mdhier: &'a str,
}

/// Loads the release in `dir` (the folder holding `llt.asc` and the others).
pub fn load_dir(dir: &Path) -> Result<Dictionary, DictionaryError> {
    let mut texts = Vec::with_capacity(FILE_NAMES.len());
    for name in FILE_NAMES {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| DictionaryError::Read {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        texts.push(decode(bytes));
    }
    parse(&MeddraFiles::from_texts(&texts), &format!("MedDRA ({})", dir.display()))
}

impl<'a> MeddraFiles<'a> {
    /// The files from their texts, in the order of [`FILE_NAMES`] (missing ones read as empty).
    pub fn from_texts(texts: &'a [String]) -> Self {
        let text = |i: usize| texts.get(i).map_or("", String::as_str);
        MeddraFiles {
            llt: text(0),
            pt: text(1),
            hlt: text(2),
            hlt_pt: text(3),
            hlgt: text(4),
            hlgt_hlt: text(5),
            soc: text(6),
            soc_hlgt: text(7),
            mdhier: text(8),
        }
    }
}

/// UTF-8 when valid, else Latin-1 (older English releases).
fn decode(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| e.into_bytes().iter().map(|&b| char::from(b)).collect())
}

/// One parsed line: its 1-based number and fields.
struct Record<'a> {
    line: usize,
    fields: Vec<&'a str>,
}

fn records<'a>(
    file: &'static str,
    text: &'a str,
    min_fields: usize,
) -> Result<Vec<Record<'a>>, DictionaryError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('$').collect();
        if fields.len() < min_fields {
            return Err(DictionaryError::Malformed {
                file: file.into(),
                line: i + 1,
                message: format!("{} `$`-separated fields, expected at least {min_fields}", fields.len()),
            });
        }
        out.push(Record { line: i + 1, fields });
    }
    Ok(out)
}

fn code(file: &'static str, r: &Record<'_>, index: usize) -> Result<i64, DictionaryError> {
    let text = r.fields[index].trim();
    text.parse().map_err(|_| DictionaryError::Malformed {
        file: file.into(),
        line: r.line,
        message: format!("field {} is `{text}`, not a numeric code", index + 1),
    })
}

fn names(file: &'static str, text: &str) -> Result<HashMap<i64, String>, DictionaryError> {
    records(file, text, 2)?.iter().map(|r| Ok((code(file, r, 0)?, r.fields[1].trim().to_owned()))).collect()
}

fn links(file: &'static str, text: &str) -> Result<HashMap<i64, Vec<i64>>, DictionaryError> {
    let mut map: HashMap<i64, Vec<i64>> = HashMap::new();
    for r in records(file, text, 2)? {
        // Files list parent then child; map child -> parents.
        map.entry(code(file, &r, 1)?).or_default().push(code(file, &r, 0)?);
    }
    Ok(map)
}

/// Builds the dictionary from the texts of a release.
pub fn parse(files: &MeddraFiles<'_>, source: &str) -> Result<Dictionary, DictionaryError> {
    let socs = names("soc.asc", files.soc)?;
    let hlgts = names("hlgt.asc", files.hlgt)?;
    let hlts = names("hlt.asc", files.hlt)?;
    let hlts_of_pt = links("hlt_pt.asc", files.hlt_pt)?;
    let hlgts_of_hlt = links("hlgt_hlt.asc", files.hlgt_hlt)?;
    let socs_of_hlgt = links("soc_hlgt.asc", files.soc_hlgt)?;
    let bad = |file: &str, line: usize, message: String| DictionaryError::Malformed {
        file: file.into(),
        line,
        message,
    };

    // Primary SOC per PT, from mdhier.asc's flag.
    let mut primary: HashMap<i64, i64> = HashMap::new();
    for r in records("mdhier.asc", files.mdhier, 12)? {
        if r.fields[11].trim() == "Y" {
            let (pt, soc) = (code("mdhier.asc", &r, 0)?, code("mdhier.asc", &r, 3)?);
            if primary.insert(pt, soc).is_some_and(|other| other != soc) {
                return Err(bad("mdhier.asc", r.line, format!("PT {pt} has two primary SOCs")));
            }
        }
    }

    let mut d = Dictionary::new(source);
    let mut pt_index: HashMap<i64, usize> = HashMap::new();
    for r in records("pt.asc", files.pt, 4)? {
        let pt_code = code("pt.asc", &r, 0)?;
        let name = r.fields[1].trim().to_owned();
        let listed_soc = code("pt.asc", &r, 3)?;
        let soc_code = *primary.get(&pt_code).ok_or_else(|| {
            bad("mdhier.asc", 0, format!("PT {pt_code} `{name}` has no primary SOC row (flag Y)"))
        })?;
        if soc_code != listed_soc {
            return Err(bad(
                "pt.asc",
                r.line,
                format!("PT {pt_code} primary SOC is {listed_soc} here but {soc_code} in mdhier.asc"),
            ));
        }
        let soc = socs
            .get(&soc_code)
            .cloned()
            .ok_or_else(|| bad("soc.asc", 0, format!("unknown SOC {soc_code}")))?;
        // Every SOC the PT reaches through HLT -> HLGT -> SOC, primary first.
        let mut reached = BTreeSet::new();
        for hlt in hlts_of_pt.get(&pt_code).into_iter().flatten() {
            if !hlts.contains_key(hlt) {
                return Err(bad("hlt_pt.asc", 0, format!("PT {pt_code} links to unknown HLT {hlt}")));
            }
            for hlgt in hlgts_of_hlt.get(hlt).into_iter().flatten() {
                if !hlgts.contains_key(hlgt) {
                    return Err(bad("hlgt_hlt.asc", 0, format!("HLT {hlt} links to unknown HLGT {hlgt}")));
                }
                reached.extend(socs_of_hlgt.get(hlgt).into_iter().flatten().copied());
            }
        }
        let mut all_socs = vec![soc.clone()];
        all_socs.extend(reached.iter().filter(|&&c| c != soc_code).filter_map(|c| socs.get(c).cloned()));
        let index =
            d.add_pt(PreferredTerm { name, code: Some(pt_code), soc, soc_code: Some(soc_code), all_socs })?;
        pt_index.insert(pt_code, index);
    }

    for r in records("llt.asc", files.llt, 10)? {
        let llt_code = code("llt.asc", &r, 0)?;
        let pt_code = code("llt.asc", &r, 2)?;
        let index = *pt_index.get(&pt_code).ok_or_else(|| {
            bad("llt.asc", r.line, format!("LLT {llt_code} points to unknown PT {pt_code}"))
        })?;
        // Current ('Y') and non-current ('N') LLTs both code: old verbatims must still code.
        d.add_text(r.fields[1].trim(), index)?;
        d.add_code(llt_code, index);
    }
    Ok(d)
}
