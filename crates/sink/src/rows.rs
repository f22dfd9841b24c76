//! Row types of the raw event tables (DDL in [`crate::migrations`]), and the conversions
//! between events and rows in both directions (events -> rows for the sink; rows -> events to
//! prove nothing was lost on the way).

use clickhouse::Row;
use pv_events::{
    AdverseEventReport, ClinicEvent, Date, DoseAdministered, Drug, EventId, Reaction, Seriousness,
    SessionMonitoring, Timestamp,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::*;

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

/// A row of `dose_administered`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DoseRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub clinic_id: String,
    pub patient_ref: String,
    pub administered_at_ms: i64,
    pub product: ProductCol,
    pub formulation: String,
    pub route: RouteCol,
    pub dose_mg: f64,
    pub weight_kg: Option<f64>,
    pub indication: String,
    pub session_number: i32,
    pub protocol: Option<String>,
    pub lot_number: Option<String>,
    pub received_at_ms: i64,
    pub dedup_version: u64,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

impl DoseRow {
    /// The row for an event read at `at`.
    pub fn new(e: &DoseAdministered, at: Provenance) -> Self {
        Self {
            event_id: e.event_id.0,
            clinic_id: e.clinic_id.clone(),
            patient_ref: e.patient_ref.clone(),
            administered_at_ms: e.administered_at.millis(),
            product: e.product.into(),
            formulation: e.formulation.clone(),
            route: e.route.into(),
            dose_mg: e.dose_mg,
            weight_kg: e.weight_kg,
            indication: e.indication.clone(),
            session_number: e.session_number,
            protocol: e.protocol.clone(),
            lot_number: e.lot_number.clone(),
            received_at_ms: e.received_at.millis(),
            dedup_version: dedup_version(e.received_at),
            kafka_partition: at.partition,
            kafka_offset: at.offset,
        }
    }

    /// The event this row stores.
    pub fn to_event(&self) -> DoseAdministered {
        DoseAdministered {
            event_id: EventId(self.event_id),
            clinic_id: self.clinic_id.clone(),
            patient_ref: self.patient_ref.clone(),
            administered_at: Timestamp::from_millis(self.administered_at_ms),
            product: self.product.into(),
            formulation: self.formulation.clone(),
            route: self.route.into(),
            dose_mg: self.dose_mg,
            weight_kg: self.weight_kg,
            indication: self.indication.clone(),
            session_number: self.session_number,
            protocol: self.protocol.clone(),
            lot_number: self.lot_number.clone(),
            received_at: Timestamp::from_millis(self.received_at_ms),
        }
    }
}

/// A row of `session_monitoring`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MonitoringRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub clinic_id: String,
    pub patient_ref: String,
    pub session_number: i32,
    pub monitored_at_ms: i64,
    pub bp_systolic_pre: Option<i32>,
    pub bp_diastolic_pre: Option<i32>,
    pub bp_systolic_post: Option<i32>,
    pub bp_diastolic_post: Option<i32>,
    pub sedation_moaas: Option<i32>,
    pub dissociation_cadss: Option<i32>,
    pub spo2_min_pct: Option<i32>,
    pub observation_minutes: i32,
    pub discharge_ready: bool,
    pub received_at_ms: i64,
    pub dedup_version: u64,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

impl MonitoringRow {
    /// The row for an event read at `at`.
    pub fn new(e: &SessionMonitoring, at: Provenance) -> Self {
        Self {
            event_id: e.event_id.0,
            clinic_id: e.clinic_id.clone(),
            patient_ref: e.patient_ref.clone(),
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

    /// The event this row stores.
    pub fn to_event(&self) -> SessionMonitoring {
        SessionMonitoring {
            event_id: EventId(self.event_id),
            clinic_id: self.clinic_id.clone(),
            patient_ref: self.patient_ref.clone(),
            session_number: self.session_number,
            monitored_at: Timestamp::from_millis(self.monitored_at_ms),
            bp_systolic_pre: self.bp_systolic_pre,
            bp_diastolic_pre: self.bp_diastolic_pre,
            bp_systolic_post: self.bp_systolic_post,
            bp_diastolic_post: self.bp_diastolic_post,
            sedation_moaas: self.sedation_moaas,
            dissociation_cadss: self.dissociation_cadss,
            spo2_min_pct: self.spo2_min_pct,
            observation_minutes: self.observation_minutes,
            discharge_ready: self.discharge_ready,
            received_at: Timestamp::from_millis(self.received_at_ms),
        }
    }
}

/// A row of `adverse_event_report`: one report version, its reactions and drugs as parallel
/// arrays (element i of every `reaction_*` array describes reaction i).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct AdverseEventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub clinic_id: String,
    pub patient_ref: String,
    pub report_id: String,
    pub version: i32,
    pub nullification: bool,
    pub nullification_reason: Option<String>,
    pub reported_at_ms: i64,
    pub reporter_qualification: ReporterCol,
    pub reaction_verbatim: Vec<String>,
    pub reaction_coded_term: Vec<Option<String>>,
    /// Days since 1970-01-01 (ClickHouse `Date`).
    pub reaction_onset_date: Vec<Option<u16>>,
    pub reaction_outcome: Vec<OutcomeCol>,
    pub reaction_death: Vec<bool>,
    pub reaction_life_threatening: Vec<bool>,
    pub reaction_hospitalisation: Vec<bool>,
    pub reaction_disability: Vec<bool>,
    pub reaction_congenital_anomaly: Vec<bool>,
    pub reaction_other_medically_important: Vec<bool>,
    pub drug_role: Vec<DrugRoleCol>,
    pub drug_name: Vec<String>,
    pub drug_product: Vec<Option<ProductCol>>,
    pub drug_route: Vec<Option<RouteCol>>,
    pub drug_causality: Vec<Option<CausalityCol>>,
    pub drug_dechallenge: Vec<Option<ChallengeCol>>,
    pub drug_rechallenge: Vec<Option<ChallengeCol>>,
    pub narrative: Option<String>,
    pub received_at_ms: i64,
    pub dedup_version: u64,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

impl AdverseEventRow {
    /// The row for an event read at `at`.
    pub fn new(e: &AdverseEventReport, at: Provenance) -> Result<Self, RowError> {
        let rs = &e.reactions;
        let ds = &e.drugs;
        let onset = rs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.onset_date
                    .map(|d| {
                        u16::try_from(d.days()).map_err(|_| RowError::DateOutOfRange {
                            field: format!("reactions[{i}].onset_date"),
                            value: d.to_string(),
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let criterion = |f: fn(&Seriousness) -> bool| rs.iter().map(|r| f(&r.seriousness)).collect();
        Ok(Self {
            event_id: e.event_id.0,
            clinic_id: e.clinic_id.clone(),
            patient_ref: e.patient_ref.clone(),
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
            drug_role: ds.iter().map(|d| d.role.into()).collect(),
            drug_name: ds.iter().map(|d| d.name.clone()).collect(),
            drug_product: ds.iter().map(|d| d.product.map(Into::into)).collect(),
            drug_route: ds.iter().map(|d| d.route.map(Into::into)).collect(),
            drug_causality: ds.iter().map(|d| d.causality.map(Into::into)).collect(),
            drug_dechallenge: ds.iter().map(|d| d.dechallenge.map(Into::into)).collect(),
            drug_rechallenge: ds.iter().map(|d| d.rechallenge.map(Into::into)).collect(),
            narrative: e.narrative.clone(),
            received_at_ms: e.received_at.millis(),
            dedup_version: dedup_version(e.received_at),
            kafka_partition: at.partition,
            kafka_offset: at.offset,
        })
    }

    /// The event this row stores (`None` if the parallel arrays disagree in length).
    pub fn to_event(&self) -> Option<AdverseEventReport> {
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
            .map(|i| Reaction {
                verbatim: self.reaction_verbatim[i].clone(),
                coded_term: self.reaction_coded_term[i].clone(),
                onset_date: self.reaction_onset_date[i].map(|d| Date::from_days(i32::from(d))),
                outcome: self.reaction_outcome[i].into(),
                seriousness: Seriousness {
                    death: self.reaction_death[i],
                    life_threatening: self.reaction_life_threatening[i],
                    hospitalisation: self.reaction_hospitalisation[i],
                    disability: self.reaction_disability[i],
                    congenital_anomaly: self.reaction_congenital_anomaly[i],
                    other_medically_important: self.reaction_other_medically_important[i],
                },
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
        Some(AdverseEventReport {
            event_id: EventId(self.event_id),
            clinic_id: self.clinic_id.clone(),
            patient_ref: self.patient_ref.clone(),
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
        })
    }
}

/// A decoded event as the row of its table.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived: moved straight into the batch's per-table Vec
pub enum AnyRow {
    /// For `dose_administered`.
    Dose(DoseRow),
    /// For `session_monitoring`.
    Monitoring(MonitoringRow),
    /// For `adverse_event_report`.
    AdverseEvent(AdverseEventRow),
}

impl AnyRow {
    /// The row for any clinic event.
    pub fn new(event: &ClinicEvent, at: Provenance) -> Result<Self, RowError> {
        Ok(match event {
            ClinicEvent::DoseAdministered(e) => AnyRow::Dose(DoseRow::new(e, at)),
            ClinicEvent::SessionMonitoring(e) => AnyRow::Monitoring(MonitoringRow::new(e, at)),
            ClinicEvent::AdverseEventReport(e) => AnyRow::AdverseEvent(AdverseEventRow::new(e, at)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use pv_events::sample;

    use super::*;

    const AT: Provenance = Provenance { partition: 3, offset: 42 };

    fn ts() -> Timestamp {
        Timestamp::parse_rfc3339("2026-05-04T09:30:00.5Z").expect("valid")
    }

    #[test]
    fn rows_convert_back_to_the_same_events() {
        let d = sample::dose("c", "p", 1, ts());
        assert_eq!(DoseRow::new(&d, AT).to_event(), d);
        let m = sample::monitoring("c", "p", 1, ts());
        assert_eq!(MonitoringRow::new(&m, AT).to_event(), m);
        let r = sample::adverse_event("c", "p", "R", ts());
        let row = AdverseEventRow::new(&r, AT).expect("row");
        assert_eq!(row.reaction_hospitalisation, [true, false]);
        assert_eq!(row.to_event(), Some(r));
    }

    #[test]
    fn earliest_acceptance_has_the_highest_version() {
        let mut a = sample::dose("c", "p", 1, ts());
        a.received_at = Timestamp::from_millis(1_000);
        let mut b = a.clone();
        b.received_at = Timestamp::from_millis(2_000);
        assert!(DoseRow::new(&a, AT).dedup_version > DoseRow::new(&b, AT).dedup_version);
    }

    #[test]
    fn dates_clickhouse_cannot_hold_are_errors() {
        let mut r = sample::adverse_event("c", "p", "R", ts());
        r.reactions[1].onset_date = Some(Date::from_days(-1));
        let err = AdverseEventRow::new(&r, AT).expect_err("1969");
        assert_eq!(
            err,
            RowError::DateOutOfRange { field: "reactions[1].onset_date".into(), value: "1969-12-31".into() }
        );
    }

    #[test]
    fn mismatched_arrays_do_not_convert() {
        let r = sample::adverse_event("c", "p", "R", ts());
        let mut row = AdverseEventRow::new(&r, AT).expect("row");
        row.drug_route.pop();
        assert_eq!(row.to_event(), None);
    }
}
