//! The signal tables: `signal_results` (every result of every signals run: the dashboard's
//! source and the record of what was known when) and `signal_changes` (every change of a
//! signal's state, as emitted on the signals topic; append-only, the current state of a signal
//! is its latest row).
//!
//! Both rows carry a result's identity (analysis, window, stratum, event) and its measures, in
//! the same columns: [`signal_row!`] writes them once.

use pv_events::AvroRecord;

use crate::column::Day;
use crate::table::Table;
use crate::table_row;

/// `signal_results`.
pub const SIGNAL_RESULTS: Table<SignalResult> =
    Table::new("signal_results", "MergeTree", "(analysis, product, event, run_at_ms)")
        .partition_by("toYYYYMM(toDateTime(intDiv(run_at_ms, 1000)))")
        .with_datetimes(&["run_at_ms"]);

/// `signal_changes`.
pub const SIGNAL_CHANGES: Table<SignalEvent> =
    Table::new("signal_changes", "MergeTree", "(signal_key, run_at_ms)");

/// `signal_contributions`: what each signals run counted, one row per case (and per patient
/// showing a dependence marker). A result's contributing cases are the rows of its run that match
/// its identity (`pv_signals::contributions::counts`, tested against every result's count).
pub const SIGNAL_CONTRIBUTIONS: Table<SignalContribution> =
    Table::new("signal_contributions", "MergeTree", "(run_at_ms, product, route, formulation, clinic_id)")
        .partition_by(RUN_DAY);

table_row! {
    /// A case or a patient as one signals run counted it.
    #[derive(Default)]
    pub struct SignalContribution {
        /// The run (its `run_at_ms`).
        run_at_ms: i64,
        /// `case` (an adverse-event case) or `patient` (a patient showing a dependence marker).
        kind: String,
        /// The clinic.
        clinic_id: String,
        /// The patient's pseudonymous key.
        patient_key: String,
        /// The case's report id (empty for patients).
        report_id: String,
        /// The case version counted (0 for patients).
        version: i32,
        /// Stratum: product.
        product: String,
        /// Stratum: route.
        route: String,
        /// Stratum: formulation.
        formulation: String,
        /// Cumulative-dose band label at onset (`*` for patients).
        dose_band: String,
        /// Event groups of the case's reactions.
        groups: Vec<String>,
        /// Preferred terms of the case's reactions.
        pts: Vec<String>,
        /// Dependence markers the patient shows.
        markers: Vec<String>,
        /// Subgroups the patient belongs to (`clinic=...`, `age_band=...`, `sex=...`), for
        /// the person-time analyses' incident cases.
        subgroups: Vec<String>,
        /// Onset (exposure as-of instant) of the case, ms since the epoch (0 for patients).
        onset_ms: i64,
        /// Days from the first dose to onset.
        days_from_first_dose: Option<f64>,
        /// Whether the case falls in the run's period window (always true for patients).
        in_period: bool,
    }
}

/// `signal_exposure`: administrations per stratum, clinic and month as each signals run counted
/// them (distinct per patient by instant and dose, as the analyses count): the breakdowns a
/// result's detail draws, consistent with its denominator.
pub const SIGNAL_EXPOSURE: Table<SignalExposure> =
    Table::new("signal_exposure", "MergeTree", "(run_at_ms, product, route, formulation, clinic_id, month)")
        .partition_by(RUN_DAY);

/// One partition per day of runs (`YYYYMMDD`), so that old runs' rows are dropped a day at a
/// time ([`expired_partitions`]).
pub const RUN_DAY: &str = "toYYYYMMDD(toDateTime(intDiv(run_at_ms, 1000)))";

/// Of the partitions `ids` of a [`RUN_DAY`]-partitioned table, those of days before
/// `first_kept` (`YYYYMMDD`). An id that is not a day (a table partitioned otherwise) is never
/// expired.
pub fn expired_partitions(ids: &[String], first_kept: u32) -> Vec<String> {
    ids.iter()
        .filter(|id| id.len() == 8 && id.parse::<u32>().is_ok_and(|day| day < first_kept))
        .cloned()
        .collect()
}

table_row! {
    /// Administrations of one stratum at one clinic in one month, in one run.
    pub struct SignalExposure {
        /// The run.
        run_at_ms: i64,
        /// Stratum: product.
        product: String,
        /// Stratum: route.
        route: String,
        /// Stratum: formulation.
        formulation: String,
        /// The clinic.
        clinic_id: String,
        /// The month (its first day).
        month: Day,
        /// Administrations.
        administrations: u64,
    }
}

/// A row with a result's identity and measures: its own fields go before the identity, between
/// identity and measures, and after the measures (three brace groups, in column order).
macro_rules! signal_row {
    ($(#[$doc:meta])* pub struct $name:ident { $($head:tt)* } { $($middle:tt)* } { $($tail:tt)* }) => {
        table_row! {
            $(#[$doc])*
            pub struct $name {
                $($head)*
                /// Analysis (as its name).
                analysis: String,
                /// Window (as its name).
                time_window: String,
                /// Product, or `*` for all.
                product: String,
                /// Route, or `*`.
                route: String,
                /// Formulation, or `*`.
                formulation: String,
                /// Cumulative-dose band label, or `*`.
                dose_band: String,
                /// Event group, preferred term, or dependence marker.
                event: String,
                /// `group`, `pt` or `marker`.
                event_level: String,
                /// The subgroup or comparison (`clinic=...`, `age_band=...`, `vs ...`), or `*`.
                subgroup: String,
                $($middle)*
                /// The denominator behind the estimate (administrations, patient-years, patients, expected).
                denominator: f64,
                /// The main measure.
                estimate: f64,
                /// Its lower 95% bound (quartile for time to onset).
                lower: f64,
                /// Its upper 95% bound.
                upper: f64,
                /// PRR (disproportionality).
                prr: Option<f64>,
                /// Yates chi-square (disproportionality).
                chi2: Option<f64>,
                /// ROR (disproportionality).
                ror: Option<f64>,
                /// ROR lower 95% bound.
                ror_lower: Option<f64>,
                /// IC025 (disproportionality).
                ic025: Option<f64>,
                /// EBGM (disproportionality).
                ebgm: Option<f64>,
                /// EB05 (disproportionality).
                eb05: Option<f64>,
                /// MaxSPRT log-likelihood ratio.
                llr: Option<f64>,
                /// MaxSPRT critical value.
                cv: Option<f64>,
                /// Dose-response trend z.
                trend_z: Option<f64>,
                /// Two-sided p-value of the result's test, where it has one.
                p_value: Option<f64>,
                /// False-discovery-rate adjusted p-value (Benjamini-Hochberg) over the screen.
                q_value: Option<f64>,
                $($tail)*
            }
        }
    };
}

signal_row! {
    /// One computed measure: the unit the dashboard shows and the signal workflow tracks.
    #[derive(Default)]
    pub struct SignalResult {
        /// Start of the run that computed it (ms since the epoch; set when stored).
        run_at_ms: i64,
        /// The data time the run analysed up to (set when stored).
        as_of_ms: i64,
    } {
        /// Cases (or patients showing a marker).
        n: u64,
    } {
        /// Whether the result is a signal by the configured thresholds.
        signal: bool,
        /// Caveats (comma-separated: small_count, zero_cell_corrected, mgps_unavailable, ...).
        flags: String,
    }
}

impl SignalResult {
    /// The identity of the result across runs (what a signal's status is tracked by). A
    /// subgroup other than `*` is an eighth part; results without one keep the keys they had.
    pub fn key(&self) -> String {
        let mut key = [
            &self.analysis,
            &self.time_window,
            &self.product,
            &self.route,
            &self.formulation,
            &self.dose_band,
            &self.event,
        ]
        .map(|s| s.as_str())
        .join("|");
        if !self.subgroup.is_empty() && self.subgroup != "*" {
            key.push('|');
            key.push_str(&self.subgroup);
        }
        key
    }
}

signal_row! {
    /// One change of one signal. Field for field the Avro record (`schemas/signal_event.v1.avsc`)
    /// and the `signal_changes` row.
    pub struct SignalEvent {
        /// Deterministic id: a re-sent change has the same one.
        event_id: String,
        /// `new`, `updated` or `closed`.
        change: String,
        /// Start of the run that saw the change.
        run_at_ms: i64,
        /// The data time that run analysed up to.
        as_of_ms: i64,
        /// When the signal was first raised.
        first_signalled_at_ms: i64,
        /// The signal ([`SignalResult::key`]).
        signal_key: String,
    } {
        /// Cases at this change.
        n: i64,
        /// Cases at the previous change.
        previous_n: Option<i64>,
    } {
        /// The result's caveats.
        flags: String,
    }
}

impl AvroRecord for SignalEvent {
    const AVRO_NAME: &'static str = "pv.signals.SignalEvent";
}

impl SignalEvent {
    /// The change `change` (`new`, `updated`, `closed`) with id `event_id` of the signal whose
    /// latest result is `r`, first raised at `first_signalled_at_ms`, with `previous_n` cases at
    /// its previous change.
    pub fn of_result(
        r: &SignalResult,
        change: &str,
        event_id: String,
        run_at_ms: i64,
        first_signalled_at_ms: i64,
        previous_n: Option<i64>,
    ) -> Self {
        let r = r.clone();
        SignalEvent {
            event_id,
            change: change.into(),
            run_at_ms,
            as_of_ms: r.as_of_ms,
            first_signalled_at_ms,
            signal_key: r.key(),
            n: i64::try_from(r.n).unwrap_or(i64::MAX),
            previous_n,
            analysis: r.analysis,
            time_window: r.time_window,
            product: r.product,
            route: r.route,
            formulation: r.formulation,
            dose_band: r.dose_band,
            event: r.event,
            event_level: r.event_level,
            subgroup: r.subgroup,
            denominator: r.denominator,
            estimate: r.estimate,
            lower: r.lower,
            upper: r.upper,
            prr: r.prr,
            chi2: r.chi2,
            ror: r.ror,
            ror_lower: r.ror_lower,
            ic025: r.ic025,
            ebgm: r.ebgm,
            eb05: r.eb05,
            llr: r.llr,
            cv: r.cv,
            trend_z: r.trend_z,
            p_value: r.p_value,
            q_value: r.q_value,
            flags: r.flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_days_before_the_first_kept_expire() {
        let ids: Vec<String> =
            ["20261120", "20261123", "20261124", "202611", "all"].map(String::from).to_vec();
        assert_eq!(expired_partitions(&ids, 20261124), ["20261120", "20261123"]);
        assert!(expired_partitions(&ids, 20200101).is_empty());
    }
}
