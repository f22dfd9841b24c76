//! `pv disproportionality` on report-level CSV files: output rows, the MGPS side file, and
//! clear errors for bad input. No servers needed.

use std::path::Path;
use std::process::Command;

fn pv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pv"))
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn every_pair_gets_a_row_with_hand_checked_values() {
    let dir = std::env::temp_dir().join(format!("pv-dispro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // 40 reports: K+cystitis in 6 (one listed twice), K+nausea in 4, S+cystitis in 2, S+nausea in 28.
    let mut csv = String::from("report,drug,reaction\n");
    let mut r = 0;
    let mut add = |drug: &str, reaction: &str, times: usize, csv: &mut String| {
        for _ in 0..times {
            r += 1;
            csv.push_str(&format!("R{r},{drug},{reaction}\n"));
        }
    };
    add("K", "cystitis", 6, &mut csv);
    csv.push_str("R1,K,cystitis\n");
    add("K", "nausea", 4, &mut csv);
    add("S", "cystitis", 2, &mut csv);
    add("S", "\"nausea\"", 28, &mut csv);
    let input = write(&dir, "in.csv", &csv);
    let output = dir.join("out.csv");
    let run = pv()
        .args(["disproportionality", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .args(["--report-col", "report", "--product-col", "drug", "--event-col", "reaction"])
        .output()
        .expect("runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("41 rows, 40 reports, 4 product-event pairs"), "{stdout}");
    let mut reader = csv::Reader::from_path(&output).expect("output");
    let header = reader.headers().expect("header").clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 4);
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let row = rows.iter().find(|r| &r[0] == "K" && &r[1] == "cystitis").expect("K/cystitis");
    // a=6, b=4, c=2, d=28: PRR = (6/10)/(2/30) = 9; ROR = 6*28/(4*2) = 21; E = 10*8/40 = 2.
    assert_eq!((&row[col("a")], &row[col("b")], &row[col("c")], &row[col("d")]), ("6", "4", "2", "28"));
    let num = |r: &csv::StringRecord, name: &str| -> f64 { r[col(name)].parse().expect("number") };
    assert!((num(row, "PRR") - 9.0).abs() < 1e-6);
    assert!((num(row, "ROR") - 21.0).abs() < 1e-6);
    assert!((num(row, "E") - 2.0).abs() < 1e-9);
    assert!((num(row, "IC") - (6.5f64 / 2.5).log2()).abs() < 1e-6);
    assert_eq!(&row[col("PRR_signal")], "true");
    for r in &rows {
        for name in ["EBGM", "EB05", "EB95", "IC025"] {
            assert!(num(r, name).is_finite(), "{name} in {r:?}");
        }
    }
    let hyper: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out.csv.hyper.json")).expect("side file"))
            .expect("json");
    assert_eq!(hyper["pairs"], 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_names_the_column_or_row() {
    let dir = std::env::temp_dir().join(format!("pv-dispro-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = write(&dir, "in.csv", "id,var1,var2\n1,K,cystitis\n2,,nausea\n");
    let out = pv()
        .args(["disproportionality", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.join("o.csv"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 3: `var1` is empty"), "{err}");
    let out = pv()
        .args(["disproportionality", "--event-col", "reaction", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.join("o.csv"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no column `reaction` (columns: id, var1, var2)"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
