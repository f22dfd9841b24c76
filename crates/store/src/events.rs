//! The event tables: one row per enriched event (`doses`, `monitoring_forms`,
//! `ae_report_versions`, `enrolments`) and the current version of every case (`ae_cases`, fed by
//! a view), with the conversions between enriched events and rows in both directions (events ->
//! rows for the sink; rows -> events to prove nothing was lost on the way).
//!
//! Tables are `ReplacingMergeTree` keyed on `(clinic_id, event_id)`, so re-delivered events
//! collapse; queries that count use `FINAL`. `dedup_version = 2^64-1 - received_at_ms` makes the
//! earliest acceptance of an event win. Times are `Int64` milliseconds with a server-computed
//! `DateTime` twin for SQL. Every event row carries a pseudonymous `patient_key`, never the
//! clinic's patient reference.
//!
//! Rows are lean where they are many: a dose keeps only the two exposure figures the analyses
//! read (`exp_cumulative_mg`, the cumulative-dose bands; `exp_escalation_ratio`, the escalation
//! screen), a monitoring form none; the rest of the exposure the enricher computed is on the
//! enriched topic and can be recomputed from `doses` (every administration, with its dose, weight
//! and time). A report version keeps its whole exposure snapshot (`exp_*`, as of the onset):
//! cases are few and the workbench and the regulators' outputs show it.

use pv_events::{
    Date, Drug, EnrichedAdverseEvent, EnrichedDose, EnrichedEnrolment, EnrichedEvent, EnrichedMonitoring,
    EnrichedReaction, EventId, Exposure, Seriousness, Timestamp,
};
use uuid::Uuid;

use crate::column::*;
use crate::table::{CopyView, Schema, Table};
use crate::table_row;

/// Where a row came from on Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provenance {
    /// Partition of the source message.
    pub partition: i32,
    /// Offset of the source message.
    pub offset: i64,
}

/// Why an event cannot become a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// A date outside ClickHouse's `Date` range (1970-01-01 .. 2149-06-06).
    #[error("{field}: {value} is outside the range ClickHouse Date can store")]
    DateOutOfRange {
        /// Field path.
        field: String,
        /// The date.
        value: String,
    },
}

/// Among copies of one event, the earliest acceptance has the highest version and wins.
fn dedup_version(received_at: Timestamp) -> u64 {
    u64::MAX - u64::try_from(received_at.millis()).unwrap_or(0)
}

/// Each stored event once: of the copies of an event (same `key`, e.g. its id), the earliest
/// acceptance (highest dedup version), in key order. The rule `FINAL` applies within a partition,
/// here across partitions too (a copy re-sent with another date lands in another month). Copies
/// of one event normally agree; one re-sent with other content must not count twice, nor
/// differently from one read to the next.
pub fn earliest_accepted<K: Ord, T>(copies: impl IntoIterator<Item = (K, u64, T)>) -> Vec<T> {
    let mut kept: std::collections::BTreeMap<K, (u64, T)> = std::collections::BTreeMap::new();
    for (key, version, value) in copies {
        match kept.get(&key) {
            Some((v, _)) if *v >= version => {}
            _ => {
                kept.insert(key, (version, value));
            }
        }
    }
    kept.into_values().map(|(_, value)| value).collect()
}

/// `YYYYMM` (UTC) of a time in ms since the epoch; 0 outside chrono's range.
fn yyyymm(ms: i64) -> u32 {
    use chrono::Datelike as _;
    chrono::DateTime::from_timestamp_millis(ms).map_or(0, |t| t.year().unsigned_abs() * 100 + t.month())
}

fn ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::millis)
}

fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(Timestamp::from_millis)
}

/// The `exp_*` columns every event table has, in DDL order, after the listed ones.
macro_rules! exposure_row {
    ($(#[$doc:meta])* pub struct $name:ident { $($body:tt)* }) => {
        table_row! {
            $(#[$doc])*
            pub struct $name {
                $($body)*
                exp_administrations: i32,
                exp_cumulative_mg: f64,
                exp_cumulative_mg_per_kg: f64,
                exp_doses_with_weight: i32,
                exp_first_dose_at_ms: Option<i64>,
                exp_last_dose_at_ms: Option<i64>,
                exp_mean_interval_days: Option<f64>,
                exp_recent_interval_days: Option<f64>,
                exp_interval_trend_days_per_session: Option<f64>,
                exp_baseline_dose_mg: Option<f64>,
                exp_last_dose_mg: Option<f64>,
                exp_escalation_ratio: Option<f64>,
                dedup_version: u64,
                kafka_partition: i32,
                kafka_offset: i64,
            }
        }

        impl $name {
            fn exposure(&self) -> Exposure {
                Exposure {
                    administrations: self.exp_administrations,
                    cumulative_mg: self.exp_cumulative_mg,
                    cumulative_mg_per_kg: self.exp_cumulative_mg_per_kg,
                    doses_with_weight: self.exp_doses_with_weight,
                    first_dose_at: ts(self.exp_first_dose_at_ms),
                    last_dose_at: ts(self.exp_last_dose_at_ms),
                    mean_interval_days: self.exp_mean_interval_days,
                    recent_interval_days: self.exp_recent_interval_days,
                    interval_trend_days_per_session: self.exp_interval_trend_days_per_session,
                    baseline_dose_mg: self.exp_baseline_dose_mg,
                    last_dose_mg: self.exp_last_dose_mg,
                    escalation_ratio: self.exp_escalation_ratio,
                }
            }
        }
    };
}

/// Builds a row: the listed fields, then the exposure and provenance columns.
macro_rules! with_exposure {
    ($name:ident { $($field:ident : $value:expr),* $(,)? }, $exp:expr, $received:expr, $at:expr) => {{
        let e: &Exposure = $exp;
        $name {
            $($field: $value,)*
            exp_administrations: e.administrations,
            exp_cumulative_mg: e.cumulative_mg,
            exp_cumulative_mg_per_kg: e.cumulative_mg_per_kg,
            exp_doses_with_weight: e.doses_with_weight,
            exp_first_dose_at_ms: ms(e.first_dose_at),
            exp_last_dose_at_ms: ms(e.last_dose_at),
            exp_mean_interval_days: e.mean_interval_days,
            exp_recent_interval_days: e.recent_interval_days,
            exp_interval_trend_days_per_session: e.interval_trend_days_per_session,
            exp_baseline_dose_mg: e.baseline_dose_mg,
            exp_last_dose_mg: e.last_dose_mg,
            exp_escalation_ratio: e.escalation_ratio,
            dedup_version: dedup_version($received),
            kafka_partition: $at.partition,
            kafka_offset: $at.offset,
        }
    }};
}

table_row! {
    /// A row of `doses`: the administration, and the patient's cumulative dose and escalation
    /// ratio with it counted.
    pub struct DoseRow {
        #[serde(with = "clickhouse::serde::uuid")]
        event_id: Uuid,
        clinic_id: String,
        patient_key: String,
        administered_at_ms: i64,
        product: ProductCol,
        formulation: String,
        route: RouteCol,
        dose_mg: f64,
        weight_kg: Option<f64>,
        dose_mg_per_kg: Option<f64>,
        indication: String,
        session_number: i32,
        protocol: Option<String>,
        lot_number: Option<String>,
        received_at_ms: i64,
        /// mg given to the patient so far, this dose included.
        exp_cumulative_mg: f64,
        /// This dose over the mean of the patient's first three (1.0 when the enriched event
        /// carries none: a dose with no earlier ones is its own baseline).
        exp_escalation_ratio: f64,
        dedup_version: u64,
        kafka_partition: i32,
        kafka_offset: i64,
    }
}

table_row! {
    /// A row of `monitoring_forms`.
    pub struct MonitoringRow {
        #[serde(with = "clickhouse::serde::uuid")]
        event_id: Uuid,
        clinic_id: String,
        patient_key: String,
        session_number: i32,
        monitored_at_ms: i64,
        bp_systolic_pre: Option<i32>,
        bp_diastolic_pre: Option<i32>,
        bp_systolic_post: Option<i32>,
        bp_diastolic_post: Option<i32>,
        sedation_moaas: Option<i32>,
        dissociation_cadss: Option<i32>,
        spo2_min_pct: Option<i32>,
        observation_minutes: i32,
        discharge_ready: bool,
        received_at_ms: i64,
        dedup_version: u64,
        kafka_partition: i32,
        kafka_offset: i64,
    }
}

exposure_row! {
    /// A row of `ae_report_versions`: one report version, its reactions and drugs as parallel
    /// arrays (element i of every `reaction_*` array describes reaction i).
    pub struct AdverseEventRow {
        #[serde(with = "clickhouse::serde::uuid")]
        event_id: Uuid,
        clinic_id: String,
        patient_key: String,
        report_id: String,
        version: i32,
        nullification: bool,
        nullification_reason: Option<String>,
        reported_at_ms: i64,
        reporter_qualification: ReporterCol,
        reaction_verbatim: Vec<String>,
        reaction_coded_term: Vec<Option<String>>,
        reaction_onset_date: Vec<Option<Day>>,
        reaction_outcome: Vec<OutcomeCol>,
        reaction_death: Vec<bool>,
        reaction_life_threatening: Vec<bool>,
        reaction_hospitalisation: Vec<bool>,
        reaction_disability: Vec<bool>,
        reaction_congenital_anomaly: Vec<bool>,
        reaction_other_medically_important: Vec<bool>,
        reaction_pt: Vec<Option<String>>,
        reaction_pt_code: Vec<Option<i64>>,
        reaction_soc: Vec<Option<String>>,
        reaction_soc_code: Vec<Option<i64>>,
        reaction_coded_from: Vec<CodedFromCol>,
        reaction_groups: Vec<Vec<String>>,
        drug_role: Vec<DrugRoleCol>,
        drug_name: Vec<String>,
        drug_product: Vec<Option<ProductCol>>,
        drug_route: Vec<Option<RouteCol>>,
        drug_causality: Vec<Option<CausalityCol>>,
        drug_dechallenge: Vec<Option<ChallengeCol>>,
        drug_rechallenge: Vec<Option<ChallengeCol>>,
        narrative: Option<String>,
        received_at_ms: i64,
        latest_version_seen: i32,
        exposure_as_of_ms: i64,
        days_since_first_dose: Option<f64>,
        days_since_last_dose: Option<f64>,
    }
}

table_row! {
    /// A row of `enrolments`: one patient enrolment and the baseline recorded with it. No `exp_*`
    /// columns: an enrolment precedes the patient's first dose.
    pub struct EnrolmentRow {
        #[serde(with = "clickhouse::serde::uuid")]
        event_id: Uuid,
        clinic_id: String,
        patient_key: String,
        enrolled_at_ms: i64,
        age_band: AgeBandCol,
        sex: SexCol,
        baseline_urinary_score: Option<i32>,
        prior_substance_use_disorder: Option<bool>,
        indication: String,
        protocol: String,
        received_at_ms: i64,
        dedup_version: u64,
        kafka_partition: i32,
        kafka_offset: i64,
    }
}

/// `doses`: one row per administration.
pub const DOSES: Table<DoseRow> =
    Table::new("doses", "ReplacingMergeTree(dedup_version)", "(clinic_id, event_id)")
        .sharded_by_patient()
        .partition_by("toYYYYMM(toDateTime(intDiv(administered_at_ms, 1000)))")
        .with_datetimes(&["administered_at_ms", "received_at_ms"]);

/// `monitoring_forms`: one row per session-monitoring form.
pub const MONITORING_FORMS: Table<MonitoringRow> =
    Table::new("monitoring_forms", "ReplacingMergeTree(dedup_version)", "(clinic_id, event_id)")
        .sharded_by_patient()
        .partition_by("toYYYYMM(toDateTime(intDiv(monitored_at_ms, 1000)))")
        .with_datetimes(&["monitored_at_ms", "received_at_ms"]);

/// `ae_report_versions`: one row per version of an adverse-event report.
pub const AE_REPORT_VERSIONS: Table<AdverseEventRow> =
    Table::new("ae_report_versions", "ReplacingMergeTree(dedup_version)", "(clinic_id, event_id)")
        .sharded_by_patient()
        .partition_by("toYYYYMM(toDateTime(intDiv(reported_at_ms, 1000)))")
        .with_datetimes(&["reported_at_ms", "received_at_ms"]);

/// `enrolments`: one row per patient enrolment.
pub const ENROLMENTS: Table<EnrolmentRow> =
    Table::new("enrolments", "ReplacingMergeTree(dedup_version)", "(clinic_id, event_id)")
        .sharded_by_patient()
        .partition_by("toYYYYMM(toDateTime(intDiv(enrolled_at_ms, 1000)))")
        .with_datetimes(&["enrolled_at_ms", "received_at_ms"]);

/// The tables with one row per enriched event.
pub const EVENT_TABLES: [&dyn Schema; 4] = [&DOSES, &MONITORING_FORMS, &AE_REPORT_VERSIONS, &ENROLMENTS];

/// `ae_cases`: the current state of every case, its highest version (`FINAL` collapses the others).
pub const AE_CASES: Table<CaseRow> =
    Table::new("ae_cases", "ReplacingMergeTree(version)", "(clinic_id, report_id)");

/// Feeds [`AE_CASES`] from every insert into [`AE_REPORT_VERSIONS`].
pub const AE_CASES_MV: CopyView =
    CopyView { name: "ae_cases_mv", from: &AE_REPORT_VERSIONS, to: &AE_CASES, computed: &[] };

/// `case_summaries`: every case as the line listing shows it, its highest version (`FINAL`
/// collapses the others). What the workbench's listings and counts read: a few small columns
/// instead of every version's arrays.
pub const CASE_SUMMARIES: Table<CaseSummaryRow> =
    Table::new("case_summaries", "ReplacingMergeTree(version)", "(clinic_id, report_id)");

/// Feeds [`CASE_SUMMARIES`] from every insert into [`AE_REPORT_VERSIONS`] (18.16: lambdas take
/// the arrays as arguments).
pub const CASE_SUMMARIES_MV: CopyView = CopyView {
    name: "case_summaries_mv",
    from: &AE_REPORT_VERSIONS,
    to: &CASE_SUMMARIES,
    computed: &[
        ("reporter", "toString(reporter_qualification)"),
        (
            "serious",
            "arrayExists((a, b, c, d, e, f) -> a OR b OR c OR d OR e OR f, reaction_death, \
             reaction_life_threatening, reaction_hospitalisation, reaction_disability, \
             reaction_congenital_anomaly, reaction_other_medically_important)",
        ),
        ("fatal", "arrayExists(x -> x = 1, reaction_death)"),
        ("pts", "arrayMap((p, v) -> ifNull(p, v), reaction_pt, reaction_verbatim)"),
        ("groups", "arraySort(arrayReduce('groupUniqArrayArray', reaction_groups))"),
        ("product", "ifNull(toString(drug_product[indexOf(drug_role, 1)]), '')"),
    ],
};

table_row! {
    /// A row of `case_summaries`: a case's line-listing columns as of one of its versions.
    pub struct CaseSummaryRow {
        clinic_id: String,
        report_id: String,
        version: i32,
        #[serde(with = "clickhouse::serde::uuid")]
        event_id: Uuid,
        patient_key: String,
        nullification: bool,
        reported_at_ms: i64,
        received_at_ms: i64,
        reporter: String,
        serious: bool,
        fatal: bool,
        pts: Vec<String>,
        groups: Vec<String>,
        product: String,
    }
}

table_row! {
    /// A row of `ae_cases`: a case as of one of its versions.
    pub struct CaseRow {
        clinic_id: String,
        report_id: String,
        version: i32,
        #[serde(with = "clickhouse::serde::uuid")]
        event_id: Uuid,
        patient_key: String,
        nullification: bool,
        reported_at_ms: i64,
        received_at_ms: i64,
    }
}

impl DoseRow {
    /// The row for an enriched dose read at `at`.
    pub fn new(e: &EnrichedDose, at: Provenance) -> Self {
        DoseRow {
            event_id: e.event_id.0,
            clinic_id: e.clinic_id.clone(),
            patient_key: e.patient_key.clone(),
            administered_at_ms: e.administered_at.millis(),
            product: e.product.into(),
            formulation: e.formulation.clone(),
            route: e.route.into(),
            dose_mg: e.dose_mg,
            weight_kg: e.weight_kg,
            dose_mg_per_kg: e.dose_mg_per_kg,
            indication: e.indication.clone(),
            session_number: e.session_number,
            protocol: e.protocol.clone(),
            lot_number: e.lot_number.clone(),
            received_at_ms: e.received_at.millis(),
            exp_cumulative_mg: e.exposure.cumulative_mg,
            exp_escalation_ratio: e.exposure.escalation_ratio.unwrap_or(1.0),
            dedup_version: dedup_version(e.received_at),
            kafka_partition: at.partition,
            kafka_offset: at.offset,
        }
    }
}

impl MonitoringRow {
    /// The row for an enriched monitoring form read at `at`.
    pub fn new(e: &EnrichedMonitoring, at: Provenance) -> Self {
        MonitoringRow {
            event_id: e.event_id.0,
            clinic_id: e.clinic_id.clone(),
            patient_key: e.patient_key.clone(),
            session_number: e.session_number,
            monitored_at_ms: e.monitored_at.millis(),
            bp_systolic_pre: e.bp_systolic_pre,
            bp_diastolic_pre: e.bp_diastolic_pre,
            bp_systolic_post: e.bp_systolic_post,
            bp_diastolic_post: e.bp_diastolic_post,
            sedation_moaas: e.sedation_moaas,
            dissociation_cadss: e.dissociation_cadss,
            spo2_min_pct: e.spo2_min_pct,
            observation_minutes: e.observation_minutes,
            discharge_ready: e.discharge_ready,
            received_at_ms: e.received_at.millis(),
            dedup_version: dedup_version(e.received_at),
            kafka_partition: at.partition,
            kafka_offset: at.offset,
        }
    }
}

impl EnrolmentRow {
    /// The row for an enriched enrolment read at `at`.
    pub fn new(e: &EnrichedEnrolment, at: Provenance) -> Self {
        EnrolmentRow {
            event_id: e.event_id.0,
            clinic_id: e.clinic_id.clone(),
            patient_key: e.patient_key.clone(),
            enrolled_at_ms: e.enrolled_at.millis(),
            age_band: e.age_band.into(),
            sex: e.sex.into(),
            baseline_urinary_score: e.baseline_urinary_score,
            prior_substance_use_disorder: e.prior_substance_use_disorder,
            indication: e.indication.clone(),
            protocol: e.protocol.clone(),
            received_at_ms: e.received_at.millis(),
            dedup_version: dedup_version(e.received_at),
            kafka_partition: at.partition,
            kafka_offset: at.offset,
        }
    }

    /// The event this row stores.
    pub fn to_event(&self) -> EnrichedEnrolment {
        EnrichedEnrolment {
            event_id: EventId(self.event_id),
            clinic_id: self.clinic_id.clone(),
            patient_key: self.patient_key.clone(),
            enrolled_at: Timestamp::from_millis(self.enrolled_at_ms),
            age_band: self.age_band.into(),
            sex: self.sex.into(),
            baseline_urinary_score: self.baseline_urinary_score,
            prior_substance_use_disorder: self.prior_substance_use_disorder,
            indication: self.indication.clone(),
            protocol: self.protocol.clone(),
            received_at: Timestamp::from_millis(self.received_at_ms),
        }
    }
}

impl AdverseEventRow {
    /// The row for an enriched report version read at `at`.
    pub fn new(e: &EnrichedAdverseEvent, at: Provenance) -> Result<Self, RowError> {
        let rs = &e.reactions;
        let ds = &e.drugs;
        let onset = rs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.onset_date
                    .map(|d| {
                        u16::try_from(d.days()).map(Day).map_err(|_| RowError::DateOutOfRange {
                            field: format!("reactions[{i}].onset_date"),
                            value: d.to_string(),
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let criterion = |f: fn(&Seriousness) -> bool| rs.iter().map(|r| f(&r.seriousness)).collect();
        Ok(with_exposure!(
            AdverseEventRow {
                event_id: e.event_id.0,
                clinic_id: e.clinic_id.clone(),
                patient_key: e.patient_key.clone(),
                report_id: e.report_id.clone(),
                version: e.version,
                nullification: e.nullification,
                nullification_reason: e.nullification_reason.clone(),
                reported_at_ms: e.reported_at.millis(),
                reporter_qualification: e.reporter_qualification.into(),
                reaction_verbatim: rs.iter().map(|r| r.verbatim.clone()).collect(),
                reaction_coded_term: rs.iter().map(|r| r.coded_term.clone()).collect(),
                reaction_onset_date: onset,
                reaction_outcome: rs.iter().map(|r| r.outcome.into()).collect(),
                reaction_death: criterion(|s| s.death),
                reaction_life_threatening: criterion(|s| s.life_threatening),
                reaction_hospitalisation: criterion(|s| s.hospitalisation),
                reaction_disability: criterion(|s| s.disability),
                reaction_congenital_anomaly: criterion(|s| s.congenital_anomaly),
                reaction_other_medically_important: criterion(|s| s.other_medically_important),
                reaction_pt: rs.iter().map(|r| r.pt.clone()).collect(),
                reaction_pt_code: rs.iter().map(|r| r.pt_code).collect(),
                reaction_soc: rs.iter().map(|r| r.soc.clone()).collect(),
                reaction_soc_code: rs.iter().map(|r| r.soc_code).collect(),
                reaction_coded_from: rs.iter().map(|r| r.coded_from.into()).collect(),
                reaction_groups: rs.iter().map(|r| r.groups.clone()).collect(),
                drug_role: ds.iter().map(|d| d.role.into()).collect(),
                drug_name: ds.iter().map(|d| d.name.clone()).collect(),
                drug_product: ds.iter().map(|d| d.product.map(Into::into)).collect(),
                drug_route: ds.iter().map(|d| d.route.map(Into::into)).collect(),
                drug_causality: ds.iter().map(|d| d.causality.map(Into::into)).collect(),
                drug_dechallenge: ds.iter().map(|d| d.dechallenge.map(Into::into)).collect(),
                drug_rechallenge: ds.iter().map(|d| d.rechallenge.map(Into::into)).collect(),
                narrative: e.narrative.clone(),
                received_at_ms: e.received_at.millis(),
                latest_version_seen: e.latest_version_seen,
                exposure_as_of_ms: e.exposure_as_of.millis(),
                days_since_first_dose: e.days_since_first_dose,
                days_since_last_dose: e.days_since_last_dose,
            },
            &e.exposure,
            e.received_at,
            at
        ))
    }

    /// The event this row stores (`None` if the parallel arrays disagree in length).
    pub fn to_event(&self) -> Option<EnrichedAdverseEvent> {
        let n = self.reaction_verbatim.len();
        let reaction_lens = [
            self.reaction_coded_term.len(),
            self.reaction_onset_date.len(),
            self.reaction_outcome.len(),
            self.reaction_death.len(),
            self.reaction_life_threatening.len(),
            self.reaction_hospitalisation.len(),
            self.reaction_disability.len(),
            self.reaction_congenital_anomaly.len(),
            self.reaction_other_medically_important.len(),
            self.reaction_pt.len(),
            self.reaction_pt_code.len(),
            self.reaction_soc.len(),
            self.reaction_soc_code.len(),
            self.reaction_coded_from.len(),
            self.reaction_groups.len(),
        ];
        let m = self.drug_role.len();
        let drug_lens = [
            self.drug_name.len(),
            self.drug_product.len(),
            self.drug_route.len(),
            self.drug_causality.len(),
            self.drug_dechallenge.len(),
            self.drug_rechallenge.len(),
        ];
        if reaction_lens.iter().any(|&l| l != n) || drug_lens.iter().any(|&l| l != m) {
            return None;
        }
        let reactions = (0..n)
            .map(|i| EnrichedReaction {
                verbatim: self.reaction_verbatim[i].clone(),
                coded_term: self.reaction_coded_term[i].clone(),
                onset_date: self.reaction_onset_date[i].map(|d| Date::from_days(i32::from(d.0))),
                outcome: self.reaction_outcome[i].into(),
                seriousness: Seriousness {
                    death: self.reaction_death[i],
                    life_threatening: self.reaction_life_threatening[i],
                    hospitalisation: self.reaction_hospitalisation[i],
                    disability: self.reaction_disability[i],
                    congenital_anomaly: self.reaction_congenital_anomaly[i],
                    other_medically_important: self.reaction_other_medically_important[i],
                },
                pt: self.reaction_pt[i].clone(),
                pt_code: self.reaction_pt_code[i],
                soc: self.reaction_soc[i].clone(),
                soc_code: self.reaction_soc_code[i],
                coded_from: self.reaction_coded_from[i].into(),
                groups: self.reaction_groups[i].clone(),
            })
            .collect();
        let drugs = (0..m)
            .map(|i| Drug {
                role: self.drug_role[i].into(),
                name: self.drug_name[i].clone(),
                product: self.drug_product[i].map(Into::into),
                route: self.drug_route[i].map(Into::into),
                causality: self.drug_causality[i].map(Into::into),
                dechallenge: self.drug_dechallenge[i].map(Into::into),
                rechallenge: self.drug_rechallenge[i].map(Into::into),
            })
            .collect();
        Some(EnrichedAdverseEvent {
            event_id: EventId(self.event_id),
            clinic_id: self.clinic_id.clone(),
            patient_key: self.patient_key.clone(),
            report_id: self.report_id.clone(),
            version: self.version,
            nullification: self.nullification,
            nullification_reason: self.nullification_reason.clone(),
            reported_at: Timestamp::from_millis(self.reported_at_ms),
            reporter_qualification: self.reporter_qualification.into(),
            reactions,
            drugs,
            narrative: self.narrative.clone(),
            received_at: Timestamp::from_millis(self.received_at_ms),
            latest_version_seen: self.latest_version_seen,
            exposure_as_of: Timestamp::from_millis(self.exposure_as_of_ms),
            days_since_first_dose: self.days_since_first_dose,
            days_since_last_dose: self.days_since_last_dose,
            exposure: self.exposure(),
        })
    }
}

/// A decoded event as the row of its table.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived: moved straight into the batch's per-table Vec
pub enum AnyRow {
    /// For `doses`.
    Dose(DoseRow),
    /// For `monitoring_forms`.
    Monitoring(MonitoringRow),
    /// For `ae_report_versions`.
    AdverseEvent(AdverseEventRow),
    /// For `enrolments`.
    Enrolment(EnrolmentRow),
}

impl AnyRow {
    /// The partition of its table the row lands in (`YYYYMM` of the time its table is partitioned
    /// by, as `toYYYYMM(toDateTime(..))` on a server in UTC). The sink groups rows by it so that
    /// an insert writes one part; on a server in another time zone a row near a month's edge may
    /// land in the neighbouring partition, which costs a part, never a row.
    pub fn partition_month(&self) -> u32 {
        let ms = match self {
            AnyRow::Dose(r) => r.administered_at_ms,
            AnyRow::Monitoring(r) => r.monitored_at_ms,
            AnyRow::AdverseEvent(r) => r.reported_at_ms,
            AnyRow::Enrolment(r) => r.enrolled_at_ms,
        };
        yyyymm(ms)
    }

    /// The row for any enriched event.
    pub fn new(event: &EnrichedEvent, at: Provenance) -> Result<Self, RowError> {
        Ok(match event {
            EnrichedEvent::Dose(e) => AnyRow::Dose(DoseRow::new(e, at)),
            EnrichedEvent::Monitoring(e) => AnyRow::Monitoring(MonitoringRow::new(e, at)),
            EnrichedEvent::AdverseEvent(e) => AnyRow::AdverseEvent(AdverseEventRow::new(e, at)?),
            EnrichedEvent::Enrolment(e) => AnyRow::Enrolment(EnrolmentRow::new(e, at)),
        })
    }
}

#[cfg(test)]
mod tests {
    use pv_events::sample;

    use super::*;
    use crate::table::TableRow as _;

    const AT: Provenance = Provenance { partition: 3, offset: 42 };

    #[test]
    fn partition_months_are_utc_calendar_months() {
        assert_eq!(yyyymm(0), 197_001);
        // 2026-01-31T23:59:59.999Z and the next millisecond.
        assert_eq!(yyyymm(1_769_903_999_999), 202_601);
        assert_eq!(yyyymm(1_769_904_000_000), 202_602);
        // 2024-02-29T12:00:00Z (a leap day).
        assert_eq!(yyyymm(1_709_208_000_000), 202_402);
        let mut d = sample::enriched_dose();
        d.administered_at = Timestamp::from_millis(1_769_904_000_000);
        assert_eq!(AnyRow::Dose(DoseRow::new(&d, AT)).partition_month(), 202_602);
    }

    #[test]
    fn lean_rows_keep_what_the_analyses_read() {
        let mut d = sample::enriched_dose();
        let row = DoseRow::new(&d, AT);
        assert_eq!((row.dose_mg, row.session_number), (d.dose_mg, d.session_number));
        assert_eq!((row.exp_cumulative_mg, row.exp_escalation_ratio), (d.exposure.cumulative_mg, 1.1));
        assert_eq!((row.kafka_partition, row.kafka_offset), (AT.partition, AT.offset));
        d.exposure.escalation_ratio = None;
        assert_eq!(DoseRow::new(&d, AT).exp_escalation_ratio, 1.0, "no ratio: its own baseline");
        let m = sample::enriched_monitoring();
        let row = MonitoringRow::new(&m, AT);
        assert_eq!(
            (row.dissociation_cadss, row.observation_minutes),
            (m.dissociation_cadss, m.observation_minutes)
        );
        let names: Vec<String> = MonitoringRow::columns().into_iter().map(|c| c.name).collect();
        assert!(!names.iter().any(|n| n.starts_with("exp_")), "{names:?}");
        let names: Vec<String> = DoseRow::columns().into_iter().map(|c| c.name).collect();
        let exposure: Vec<&String> = names.iter().filter(|n| n.starts_with("exp_")).collect();
        assert_eq!(exposure, ["exp_cumulative_mg", "exp_escalation_ratio"]);
    }

    #[test]
    fn report_and_enrolment_rows_convert_back_to_the_same_events() {
        let r = sample::enriched_adverse_event();
        let row = AdverseEventRow::new(&r, AT).expect("row");
        assert_eq!(row.reaction_hospitalisation, [true, false]);
        assert_eq!(row.exp_administrations, r.exposure.administrations);
        assert_eq!(row.to_event(), Some(r));
        let e = sample::enriched_enrolment();
        let row = EnrolmentRow::new(&e, AT);
        assert_eq!((row.kafka_partition, row.kafka_offset), (AT.partition, AT.offset));
        assert_eq!(row.to_event(), e);
        let mut bare = e.clone();
        bare.baseline_urinary_score = None;
        bare.prior_substance_use_disorder = None;
        assert_eq!(EnrolmentRow::new(&bare, AT).to_event(), bare);
        assert_eq!(
            AnyRow::new(&EnrichedEvent::Enrolment(e.clone()), AT),
            Ok(AnyRow::Enrolment(EnrolmentRow::new(&e, AT)))
        );
    }

    #[test]
    fn earliest_acceptance_has_the_highest_version() {
        let mut a = sample::enriched_dose();
        a.received_at = Timestamp::from_millis(1_000);
        let mut b = a.clone();
        b.received_at = Timestamp::from_millis(2_000);
        assert!(DoseRow::new(&a, AT).dedup_version > DoseRow::new(&b, AT).dedup_version);
    }

    #[test]
    fn dates_clickhouse_cannot_hold_are_errors() {
        let mut r = sample::enriched_adverse_event();
        r.reactions[1].onset_date = Some(Date::from_days(-1));
        let err = AdverseEventRow::new(&r, AT).expect_err("1969");
        assert_eq!(
            err,
            RowError::DateOutOfRange { field: "reactions[1].onset_date".into(), value: "1969-12-31".into() }
        );
    }

    #[test]
    fn mismatched_arrays_do_not_convert() {
        let r = sample::enriched_adverse_event();
        let mut row = AdverseEventRow::new(&r, AT).expect("row");
        row.reaction_groups.pop();
        assert_eq!(row.to_event(), None);
    }
}
