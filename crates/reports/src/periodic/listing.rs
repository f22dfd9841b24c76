//! Appendix tables: the line listing of serious cases and the data-lock provenance.

use std::collections::BTreeMap;

use super::build::{date, suspect_products};
use super::input::{CaseAtLock, Input, Spec};
use crate::table::Table;

fn criteria(c: &CaseAtLock) -> String {
    let mut met = Vec::new();
    for r in &c.case.reactions {
        let s = r.seriousness;
        for (yes, name) in [
            (s.death, "death"),
            (s.life_threatening, "life-threatening"),
            (s.hospitalisation, "hospitalisation"),
            (s.disability, "disability"),
            (s.congenital_anomaly, "congenital anomaly"),
            (s.other_medically_important, "medically important"),
        ] {
            if yes && !met.contains(&name) {
                met.push(name);
            }
        }
    }
    met.join(", ")
}

fn reactions(c: &CaseAtLock) -> String {
    let term = |r: &pv_events::EnrichedReaction| {
        let pt = r.pt.clone().unwrap_or_else(|| r.verbatim.clone());
        let outcome = serde_json::to_value(r.outcome).ok().and_then(|v| v.as_str().map(str::to_owned));
        let onset = r.onset_date.map(|d| format!(", onset {d}")).unwrap_or_default();
        format!(
            "{pt}{} ({}{onset})",
            if r.seriousness.is_serious() { "*" } else { "" },
            outcome.unwrap_or_default()
        )
    };
    c.case.reactions.iter().map(term).collect::<Vec<_>>().join("; ")
}

/// Serious cases first received in the interval, by clinic and case id.
pub(crate) fn serious_cases(spec: &Spec, input: &Input) -> Table {
    let demographics: BTreeMap<&str, (&str, &str)> = input
        .demographics
        .iter()
        .map(|d| (d.patient_key.as_str(), (d.age_band.as_str(), d.sex.as_str())))
        .collect();
    let mut t = Table::new(
        "20.1-serious-cases",
        "Line listing of serious cases",
        &[
            "Case",
            "Version",
            "First received",
            "Patient",
            "Age band",
            "Sex",
            "Suspect product",
            "Reactions",
            "Seriousness",
        ],
        "Reactions: PT (outcome, onset); * marks a serious reaction.",
    );
    let mut cases: Vec<&CaseAtLock> = input
        .cases
        .iter()
        .filter(|c| {
            spec.in_interval(c.first_reported_ms)
                && c.case.reactions.iter().any(|r| r.seriousness.is_serious())
        })
        .collect();
    cases.sort_by(|a, b| (&a.case.clinic_id, &a.case.report_id).cmp(&(&b.case.clinic_id, &b.case.report_id)));
    for c in cases {
        let (age, sex) =
            demographics.get(c.case.patient_key.as_str()).copied().unwrap_or(("unknown", "unknown"));
        t.push(vec![
            format!("{}/{}", c.case.clinic_id, c.case.report_id).into(),
            i64::from(c.case.version).into(),
            date(c.first_reported_ms).into(),
            c.case.patient_key.clone().into(),
            age.into(),
            sex.into(),
            suspect_products(c).into(),
            reactions(c).into(),
            criteria(c).into(),
        ]);
    }
    t
}

/// Raw-topic positions at the lock.
pub(crate) fn positions(input: &Input) -> Table {
    let mut t = Table::new(
        "20.2-kafka-positions",
        "Event log positions at the data-lock point",
        &["Topic", "Partition", "Offset"],
        "Every message before the offset had been accepted by the lock.",
    );
    let mut sorted = input.positions.clone();
    sorted.sort();
    for p in sorted {
        t.push(vec![p.topic.into(), i64::from(p.partition).into(), p.offset.into()]);
    }
    t
}

/// Rows read from each source.
pub(crate) fn rows_read(input: &Input) -> Table {
    let mut t =
        Table::new("20.2-inputs", "What the report was computed from", &["Input (table)", "Count"], "");
    for (source, n) in &input.rows_read {
        t.push(vec![source.clone().into(), (*n).into()]);
    }
    t
}
