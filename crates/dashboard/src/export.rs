//! CSV exports: exactly the rows and columns a screen shows. Free text (rationales, verbatim
//! terms) is made safe for spreadsheets: a cell that would run as a formula is quoted.

use pv_store::workflow::WorkflowAction;

use crate::reads::CaseLine;
use crate::views::SignalRow;

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| format!("{x}"))
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first)
/// gets a leading `'`, unless it is a number.
fn safe_cell(cell: String) -> String {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula && cell.parse::<f64>().is_err() { format!("'{cell}") } else { cell }
}

/// Writes one data row, every cell made safe.
fn write_row<const N: usize>(w: &mut csv::Writer<Vec<u8>>, cells: [String; N]) -> csv::Result<()> {
    w.write_record(cells.map(safe_cell))
}

fn finish(w: csv::Writer<Vec<u8>>) -> String {
    w.into_inner().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// The signals table.
pub fn signals(rows: &[SignalRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "signal_key",
        "analysis",
        "window",
        "product",
        "route",
        "formulation",
        "dose_band",
        "event",
        "level",
        "subgroup",
        "n",
        "denominator",
        "denominator_is",
        "estimate",
        "estimate_is",
        "lower",
        "upper",
        "prr",
        "ror",
        "ror_lower",
        "ic025",
        "ebgm",
        "eb05",
        "chi2",
        "trend_z",
        "llr",
        "cv",
        "signal",
        "flags",
        "previous_n",
        "previous_estimate",
        "direction",
        "status",
        "assignee",
        "priority",
        "due_date",
        "last_note",
        "run_at_ms",
        "as_of_ms",
    ];
    let _ = w.write_record(header);
    for row in rows {
        let r = &row.result;
        let record = [
            row.key.clone(),
            r.analysis.clone(),
            r.time_window.clone(),
            r.product.clone(),
            r.route.clone(),
            r.formulation.clone(),
            r.dose_band.clone(),
            r.event.clone(),
            r.event_level.clone(),
            r.subgroup.clone(),
            r.n.to_string(),
            format!("{}", r.denominator),
            row.denominator_label.into(),
            format!("{}", r.estimate),
            row.estimate_label.into(),
            format!("{}", r.lower),
            format!("{}", r.upper),
            opt(r.prr),
            opt(r.ror),
            opt(r.ror_lower),
            opt(r.ic025),
            opt(r.ebgm),
            opt(r.eb05),
            opt(r.chi2),
            opt(r.trend_z),
            opt(r.llr),
            opt(r.cv),
            r.signal.to_string(),
            r.flags.clone(),
            row.previous_n.map_or_else(String::new, |n| n.to_string()),
            opt(row.previous_estimate),
            row.direction.into(),
            row.status.state.name().into(),
            row.status.assignee.clone(),
            row.status.priority.map_or("", |p| p.name()).into(),
            row.status.due_date.clone().unwrap_or_default(),
            row.status.last_rationale.clone(),
            r.run_at_ms.to_string(),
            r.as_of_ms.to_string(),
        ];
        let _ = write_row(&mut w, record);
    }
    finish(w)
}

/// The case listing.
pub fn cases(rows: &[CaseLine]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "clinic_id",
        "report_id",
        "version",
        "patient_key",
        "received_at_ms",
        "reported_at_ms",
        "reporter",
        "serious",
        "fatal",
        "preferred_terms",
        "groups",
        "suspect_product",
    ]);
    for c in rows {
        let _ = write_row(
            &mut w,
            [
                c.clinic_id.clone(),
                c.report_id.clone(),
                c.version.to_string(),
                c.patient_key.clone(),
                c.received_at_ms.to_string(),
                c.reported_at_ms.to_string(),
                c.reporter.clone(),
                c.serious.to_string(),
                c.fatal.to_string(),
                c.pts.join("; "),
                c.groups.join("; "),
                c.product.clone(),
            ],
        );
    }
    finish(w)
}

/// The audit trail. The last column, `evidence_cases`, holds each decision's evidence case list
/// when the rows were read with it (`evidence=1` on the API), and is empty otherwise.
pub fn audit(rows: &[WorkflowAction]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "at_ms",
        "actor",
        "actor_role",
        "signal_key",
        "sequence",
        "action",
        "from_state",
        "to_state",
        "assignee",
        "priority",
        "due_date",
        "rationale",
        "evidence_run_at_ms",
        "evidence_n",
        "evidence_estimate",
        "evidence_lower",
        "evidence_upper",
        "event_id",
        "evidence_cases",
    ]);
    for a in rows {
        let _ = write_row(
            &mut w,
            [
                a.at_ms.to_string(),
                a.actor.clone(),
                a.actor_role.clone(),
                a.signal_key.clone(),
                a.sequence.to_string(),
                a.action.clone(),
                a.from_state.clone(),
                a.to_state.clone(),
                a.assignee.clone(),
                a.priority.clone(),
                a.due_date.clone().unwrap_or_default(),
                a.rationale.clone(),
                a.evidence_run_at_ms.to_string(),
                a.evidence_n.to_string(),
                format!("{}", a.evidence_estimate),
                format!("{}", a.evidence_lower),
                format!("{}", a.evidence_upper),
                a.event_id.clone(),
                a.evidence_cases.join("; "),
            ],
        );
    }
    finish(w)
}

/// A signal's contributing cases (and patients).
pub fn contributing(rows: &[pv_store::signals::SignalContribution]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "kind",
        "clinic_id",
        "report_id",
        "version",
        "patient_key",
        "product",
        "route",
        "formulation",
        "dose_band",
        "groups",
        "pts",
        "markers",
        "onset_ms",
        "days_from_first_dose",
        "in_period",
        "run_at_ms",
    ]);
    for c in rows {
        let _ = write_row(
            &mut w,
            [
                c.kind.clone(),
                c.clinic_id.clone(),
                c.report_id.clone(),
                c.version.to_string(),
                c.patient_key.clone(),
                c.product.clone(),
                c.route.clone(),
                c.formulation.clone(),
                c.dose_band.clone(),
                c.groups.join("; "),
                c.pts.join("; "),
                c.markers.join("; "),
                c.onset_ms.to_string(),
                opt(c.days_from_first_dose),
                c.in_period.to_string(),
                c.run_at_ms.to_string(),
            ],
        );
    }
    finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_quoted_and_numbers_are_not() {
        assert_eq!(safe_cell("=HYPERLINK(\"x\")".into()), "'=HYPERLINK(\"x\")");
        assert_eq!(safe_cell("@SUM(A1)".into()), "'@SUM(A1)");
        assert_eq!(safe_cell("-2+3".into()), "'-2+3");
        assert_eq!(safe_cell("-2.5".into()), "-2.5");
        assert_eq!(safe_cell("Dysuria".into()), "Dysuria");
    }
}
