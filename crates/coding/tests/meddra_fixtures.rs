//! The MedDRA ASCII loader on fixture files in the release format (invented codes).

use std::path::Path;

use pv_coding::{CodeSource, EventGroup, EventGroups, meddra};

fn fixtures() -> pv_coding::Dictionary {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meddra");
    meddra::load_dir(&dir).expect("fixture release loads")
}

#[test]
fn llts_current_and_non_current_code_to_their_pt_and_primary_soc() {
    let d = fixtures();
    assert_eq!(d.pts().len(), 4);
    let code =
        |verbatim: &str| d.code(verbatim, None).map(|c| (c.pt.name.clone(), c.pt.code, c.pt.soc.clone()));
    assert_eq!(
        code("ketamine CYSTITIS"),
        Some(("Cystitis interstitial".into(), Some(93000001), "Renal and urinary disorders".into()))
    );
    assert_eq!(
        code("Painful micturition"),
        Some(("Dysuria".into(), Some(93000002), "Renal and urinary disorders".into()))
    );
    // `Blood urine` is a non-current LLT: old verbatims still code.
    assert_eq!(code("blood urine").map(|c| c.0), Some("Haematuria".into()));
    assert_eq!(code("bladder on fire"), None);
}

#[test]
fn a_multiaxial_pt_counts_under_its_primary_soc_only() {
    let d = fixtures();
    let (_, haematuria) = d.pt_by_name("Haematuria").expect("pt");
    assert_eq!(haematuria.soc, "Renal and urinary disorders");
    assert_eq!(haematuria.soc_code, Some(90000001));
    assert_eq!(haematuria.all_socs, ["Renal and urinary disorders", "Investigations"]);
}

#[test]
fn clinic_codes_are_llt_or_pt_codes() {
    let d = fixtures();
    let c = d.code("whatever", Some("94000004")).expect("LLT code");
    assert_eq!((c.pt.name.as_str(), c.source), ("Dysuria", CodeSource::ClinicTerm));
    let c = d.code("whatever", Some("93000004")).expect("PT code");
    assert_eq!(c.pt.name, "Drug dependence");
}

#[test]
fn groups_resolve_against_a_meddra_release_too() {
    let d = fixtures();
    let g = EventGroup {
        name: "urological".into(),
        description: "u".into(),
        pts: vec!["Dysuria".into(), "Haematuria".into()],
    };
    let groups = EventGroups::resolve(vec![g], &d).expect("resolves");
    let idx = d.code("blood urine", None).expect("coded").pt_index;
    assert_eq!(groups.of(idx), ["urological"]);
    // The bundled groups name terms this tiny release lacks: refused, with the missing names.
    let err = EventGroups::resolve(pv_coding::groups::bundled(), &d).expect_err("incomplete release");
    assert!(err.to_string().contains("Bladder pain"), "{err}");
}

#[test]
fn malformed_and_inconsistent_files_are_refused_with_file_and_line() {
    let read = |name: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meddra").join(name),
        )
        .expect("read")
    };
    let texts: Vec<String> = meddra::FILE_NAMES.iter().map(|n| read(n)).collect();
    fn files<'a>(texts: &'a [String], llt: &'a str, pt: &'a str) -> meddra::MeddraFiles<'a> {
        meddra::MeddraFiles { llt, pt, ..meddra::MeddraFiles::from_texts(texts) }
    }
    let bad_llt = format!("{}9400000X$Broken$93000001$$$$$$$Y$$\n", texts[0]);
    let err = meddra::parse(&files(&texts, &bad_llt, &texts[1]), "t").expect_err("bad code");
    assert_eq!(err.to_string(), "llt.asc:10: field 1 is `9400000X`, not a numeric code");
    let orphan = format!("{}94000099$Orphan$93999999$$$$$$$Y$$\n", texts[0]);
    assert!(
        meddra::parse(&files(&texts, &orphan, &texts[1]), "t")
            .expect_err("orphan")
            .to_string()
            .contains("unknown PT 93999999")
    );
    let wrong_soc = texts[1].replace("93000002$Dysuria$$90000001", "93000002$Dysuria$$90000002");
    assert!(
        meddra::parse(&files(&texts, &texts[0], &wrong_soc), "t")
            .expect_err("soc")
            .to_string()
            .contains("primary SOC")
    );
}
