//! A whole import directory, file by file in the import order, as a stream of accepted events
//! and rejects.

use std::io::Read;

use pv_events::ClinicEvent;

use crate::check::{Checker, ReportParts};
use crate::layout::{DOSES, DRUGS, ENROLMENTS, FileLayout, MONITORING, REACTIONS, REPORTS};
use crate::read::{FileError, FileRows, Reject};

/// One outcome of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An event that passed every check, with the file and line it came from.
    Accepted(ClinicEvent),
    /// A row (or a cell of it) that did not; the rest of the import goes on.
    Rejected(Reject),
}

/// Why the stream stopped early.
#[derive(Debug)]
pub enum Stop<E> {
    /// A file could not be read (a header problem or an I/O error).
    File(FileError),
    /// The consumer of the stream failed.
    Sink(E),
}

/// Reads the files `open` provides (`None`: the clinic has no such file) in the import order:
/// enrolments, doses, monitoring, then the report versions with their reactions and drugs.
/// Each outcome goes to `sink` as soon as it is known, except the reactions and drugs, which
/// wait for their report row.
pub fn read_history<R: Read, E>(
    checker: &mut Checker,
    mut open: impl FnMut(FileLayout) -> Option<R>,
    mut sink: impl FnMut(Item) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    let mut emit = |outcome: Result<ClinicEvent, Vec<Reject>>| match outcome {
        Ok(event) => sink(Item::Accepted(event)).map_err(Stop::Sink),
        Err(rejects) => rejects.into_iter().try_for_each(|r| sink(Item::Rejected(r)).map_err(Stop::Sink)),
    };
    for layout in [ENROLMENTS, DOSES, MONITORING] {
        if let Some(input) = open(layout) {
            for_each_row(layout, input, |row| emit(checker.event(layout, row)))?;
        }
    }
    let mut parts = ReportParts::default();
    for (layout, is_drug) in [(REACTIONS, false), (DRUGS, true)] {
        if let Some(input) = open(layout) {
            for_each_row(layout, input, |row| match parts.add(row, is_drug) {
                Ok(()) => Ok(()),
                Err(rejects) => emit(Err(rejects)),
            })?;
        }
    }
    if let Some(input) = open(REPORTS) {
        for_each_row(REPORTS, input, |row| emit(checker.report(row, &mut parts)))?;
    }
    emit(Err(parts.unclaimed()))
}

fn for_each_row<R: Read, E>(
    layout: FileLayout,
    input: R,
    mut each: impl FnMut(crate::read::Row) -> Result<(), Stop<E>>,
) -> Result<(), Stop<E>> {
    let mut rows = FileRows::open(layout, input).map_err(Stop::File)?;
    while let Some(row) = rows.next_row() {
        each(row.map_err(Stop::File)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use pv_events::{
        ChallengeResult, Drug, DrugRole, EventId, Limits, Outcome, Product, Reaction, Route, Seriousness,
        Timestamp, sample,
    };

    use super::*;
    use crate::write::write_history;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-05-04T12:00:00Z").expect("valid")
    }

    fn at(h: u32) -> Timestamp {
        Timestamp::parse_rfc3339(&format!("2026-05-0{h}T09:30:00Z")).expect("valid")
    }

    type Files = BTreeMap<&'static str, Vec<u8>>;

    fn written(events: &[ClinicEvent]) -> Files {
        write_history(events, |_| Ok(Vec::new())).expect("writes").into_iter().collect()
    }

    fn read(files: &Files) -> (Vec<ClinicEvent>, Vec<Reject>) {
        let mut checker = Checker::new("north", Limits::default(), now());
        let (mut events, mut rejects) = (Vec::new(), Vec::new());
        read_history(
            &mut checker,
            |l| files.get(l.file).map(Vec::as_slice),
            |item| {
                match item {
                    Item::Accepted(e) => events.push(e),
                    Item::Rejected(r) => rejects.push(r),
                }
                Ok::<(), Infallible>(())
            },
        )
        .map_err(|e| match e {
            Stop::File(f) => f,
            Stop::Sink(never) => match never {},
        })
        .expect("reads");
        (events, rejects)
    }

    /// A history with every optional field filled in and a multi-reaction, multi-drug report.
    fn history() -> Vec<ClinicEvent> {
        let mut enrolment = sample::enrolment("north", "p1", at(1));
        enrolment.baseline_urinary_score = Some(4);
        enrolment.prior_substance_use_disorder = Some(false);
        let mut dose = sample::dose("north", "p1", 1, at(2));
        dose.weight_kg = Some(71.5);
        dose.protocol = Some("weekly".into());
        dose.lot_number = Some("L-77".into());
        let mut report = sample::adverse_event("north", "p1", "R-1", at(3));
        report.narrative = Some("Dysuria, \"severe\", after session 4;\nresolved.".into());
        report.reactions.push(Reaction {
            verbatim: "bladder pain".into(),
            coded_term: Some("Cystitis".into()),
            onset_date: Some(pv_events::Date::parse_iso("2026-05-02").expect("date")),
            outcome: Outcome::Fatal,
            seriousness: Seriousness { death: true, hospitalisation: true, ..Seriousness::default() },
        });
        report.drugs.push(Drug {
            role: DrugRole::Concomitant,
            name: "sertraline".into(),
            product: Some(Product::Ketamine),
            route: Some(Route::Oral),
            causality: Some(pv_events::Causality::Unlikely),
            dechallenge: Some(ChallengeResult::NotApplicable),
            rechallenge: Some(ChallengeResult::Unknown),
        });
        let mut follow_up = report.clone();
        follow_up.version = 2;
        follow_up.event_id = EventId::new_random();
        vec![
            enrolment.into(),
            dose.into(),
            sample::monitoring("north", "p1", 1, at(2)).into(),
            report.into(),
            follow_up.into(),
        ]
    }

    #[test]
    fn a_written_history_reads_back_as_the_same_events() {
        let events = history();
        let (back, rejects) = read(&written(&events));
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(back, events);
    }

    fn files(pairs: &[(&'static str, &str)]) -> Files {
        pairs.iter().map(|(name, text)| (*name, text.as_bytes().to_vec())).collect()
    }

    fn summary(rejects: &[Reject]) -> Vec<(&'static str, u64, &str)> {
        rejects.iter().map(|r| (r.file, r.row, r.field.as_str())).collect()
    }

    const DOSE_HEADER: &str =
        "patient_ref,administered_at,product,formulation,route,dose_mg,indication,session_number\n";

    #[test]
    fn bad_rows_are_rejected_by_line_and_column_and_the_rest_accepted() {
        let doses = format!(
            "{DOSE_HEADER}\
             p1,2026-05-01T09:00:00Z,ketamine,generic,iv,35,trd,1\n\
             p1,2026-05-02T09:00:00Z,ketamine,generic,iv,3500,trd,2\n\
             p1,2026-05-03T09:00:00Z,ketamine,generic,,35,trd,3\n\
             p1,2026-05-04T09:00:00,ketamine,generic,iv,35,trd,4\n\
             p1,2026-05-01T09:00:00Z,ketamine,generic,iv,35,trd,1\n"
        );
        let (events, rejects) = read(&files(&[("dose_administered.csv", &doses)]));
        assert_eq!(events.len(), 1);
        assert_eq!(
            summary(&rejects),
            [
                ("dose_administered.csv", 3, "dose_mg"),
                ("dose_administered.csv", 4, "route"),
                ("dose_administered.csv", 5, "administered_at"),
                ("dose_administered.csv", 6, ""),
            ]
        );
        assert!(rejects[0].reason.contains("exceeds the ceiling"), "{}", rejects[0].reason);
        assert_eq!(rejects[1].reason, "required field is missing");
        assert_eq!(
            rejects[3].reason,
            "the same event (same natural key, see the README) as line 2 of dose_administered.csv"
        );
        assert!(rejects[0].event_id.is_some(), "a derived id is known once the row parses");
    }

    #[test]
    fn ids_are_derived_the_same_way_on_every_run_and_given_ids_are_kept() {
        let given = "0b6f3c1e-6f2a-4c51-9d0e-2f4b8a7c9d10";
        let doses = format!(
            "event_id,{DOSE_HEADER}\
             ,p1,2026-05-01T09:00:00Z,ketamine,generic,iv,35,trd,1\n\
             {given},p1,2026-05-02T09:00:00Z,ketamine,generic,iv,35,trd,2\n"
        );
        let f = files(&[("dose_administered.csv", &doses)]);
        let (first, _) = read(&f);
        let (second, _) = read(&f);
        assert_eq!(first[0].event_id(), second[0].event_id());
        assert_eq!(first[0].event_id(), crate::ids::derived_id(&first[0]));
        assert_eq!(first[1].event_id().to_string(), given);
    }

    #[test]
    fn report_problems_point_at_the_reaction_or_drug_row() {
        let reports = "patient_ref,report_id,version,reported_at,reporter_qualification\n\
                       p1,R-1,1,2026-05-03T10:00:00Z,physician\n\
                       p1,R-2,1,2026-05-03T10:00:00Z,physician\n\
                       p1,R-3,1,2026-05-03T10:00:00Z,physician\n\
                       p1,R-4,1,2026-05-03T10:00:00Z,physician\n";
        let reactions = "report_id,version,verbatim,outcome,seriousness\n\
                         R-1,1,dysuria,recovered,\n\
                         R-2,1,dysuria,recovered,\n\
                         R-2,1,died,fatal,hospitalisation\n\
                         R-3,1,dysuria,dead,\n\
                         R-9,1,orphan,recovered,\n\
                         R-4,1,dysuria,recovered,\n";
        let drugs = "report_id,version,role,name\nR-1,1,suspect,ketamine\nR-2,1,suspect,ketamine\n\
                     R-3,1,suspect,ketamine\nR-4,1,concomitant,sertraline\n";
        let (events, rejects) = read(&files(&[
            ("adverse_event_report.csv", reports),
            ("adverse_event_reaction.csv", reactions),
            ("adverse_event_drug.csv", drugs),
        ]));
        assert_eq!(events.len(), 1, "only R-1 is whole and valid");
        assert_eq!(
            summary(&rejects),
            [
                ("adverse_event_report.csv", 3, ""),
                ("adverse_event_reaction.csv", 4, "seriousness"),
                ("adverse_event_report.csv", 4, ""),
                ("adverse_event_reaction.csv", 5, "outcome"),
                ("adverse_event_report.csv", 5, "drugs"),
                ("adverse_event_reaction.csv", 6, "report_id"),
            ]
        );
        assert!(
            rejects[0].reason.starts_with("not imported: rows of its reactions"),
            "{}",
            rejects[0].reason
        );
        assert_eq!(rejects[1].reason, "must be true when the outcome is fatal");
        assert!(rejects[3].reason.contains("unknown variant `dead`"), "{}", rejects[3].reason);
        assert!(rejects[5].reason.contains("report_id `R-9` and version 1"), "{}", rejects[5].reason);
    }

    const REPORT_HEADER: &str = "patient_ref,report_id,version,reported_at,reporter_qualification\n";
    const DRUGS: &str = "report_id,version,role,name\nR-1,1,suspect,ketamine\nR-2,1,suspect,ketamine\n";

    fn reports(reports: &str, reactions: &str) -> (Vec<ClinicEvent>, Vec<Reject>) {
        read(&files(&[
            ("adverse_event_report.csv", &format!("{REPORT_HEADER}{reports}")),
            ("adverse_event_reaction.csv", &format!("report_id,version,verbatim,outcome\n{reactions}")),
            ("adverse_event_drug.csv", DRUGS),
        ]))
    }

    #[test]
    fn a_report_is_never_sent_without_a_row_that_may_be_its_own() {
        let two = "p1,R-1,1,2026-05-03T10:00:00Z,physician\np1,R-2,1,2026-05-03T10:00:00Z,physician\n";
        // A reaction whose version does not read holds back every version of its report only.
        let (events, rejects) =
            reports(two, "R-1,1,dysuria,recovered\nR-1,1.0,pain,recovered\nR-2,1,x,recovered\n");
        assert_eq!(events.len(), 1, "R-2 goes");
        assert_eq!(
            summary(&rejects),
            [
                ("adverse_event_reaction.csv", 3, "version"),
                ("adverse_event_report.csv", 2, ""),
                ("adverse_event_drug.csv", 2, "report_id"),
                ("adverse_event_reaction.csv", 2, "report_id"),
            ]
        );
        assert!(rejects[1].reason.contains("line 3 of adverse_event_reaction.csv"), "{}", rejects[1].reason);
        assert!(rejects[3].reason.contains("its report (line 2 of"), "{}", rejects[3].reason);
        // One whose report_id does not read holds back every report.
        let (events, rejects) =
            reports(two, "R-1,1,dysuria,recovered\n,1,pain,recovered\nR-2,1,x,recovered\n");
        assert!(events.is_empty());
        let held: Vec<u64> =
            rejects.iter().filter(|r| r.file == "adverse_event_report.csv").map(|r| r.row).collect();
        assert_eq!(held, [2, 3], "{rejects:?}");
        assert!(rejects[1].reason.contains("line 3 of adverse_event_reaction.csv has no readable report_id"));
        // A row with a cell too few still belongs to its report, which is refused with it.
        let (events, rejects) = reports(two, "R-1,1,dysuria,recovered\nR-1,1,pain\nR-2,1,x,recovered\n");
        assert_eq!(events.len(), 1);
        assert_eq!(
            summary(&rejects),
            [("adverse_event_report.csv", 2, ""), ("adverse_event_reaction.csv", 3, "")]
        );
    }

    #[test]
    fn a_report_version_given_twice_is_refused_the_second_time() {
        let twice = "p1,R-1,1,2026-05-03T10:00:00Z,physician\np1,R-1,1,2026-05-04T10:00:00Z,physician\n";
        let (events, rejects) = reports(twice, "R-1,1,dysuria,recovered\n");
        assert_eq!(events.len(), 1);
        assert_eq!(summary(&rejects)[0], ("adverse_event_report.csv", 3, "version"));
        assert!(rejects[0].reason.contains("as line 2"), "{}", rejects[0].reason);
        // The rows of a report row that was refused say so, not that the report is missing.
        let (_, rejects) =
            reports("p1,R-1,one,2026-05-03T10:00:00Z,physician\n", "R-1,1,dysuria,recovered\n");
        let reasons: Vec<&str> = rejects.iter().map(|r| r.reason.as_str()).collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("its report (line 2 of adverse_event_report.csv) was not imported")),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_bad_header_stops_the_import_before_its_file() {
        let mut checker = Checker::new("north", Limits::default(), now());
        let f = files(&[("dose_administered.csv", "patient_ref,clinic_id\n")]);
        let outcome =
            read_history(&mut checker, |l| f.get(l.file).map(Vec::as_slice), |_| Ok::<(), Infallible>(()));
        let Err(Stop::File(e)) = outcome else { panic!("must stop") };
        assert_eq!(e.file, "dose_administered.csv");
        assert!(e.reason.starts_with("unknown column `clinic_id`"), "{}", e.reason);
    }
}
