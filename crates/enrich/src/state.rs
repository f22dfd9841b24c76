//! Per-patient state and its changelog record (`schemas/patient_state.v1.avsc`).

use std::collections::HashMap;

use pv_events::AvroRecord;
use serde::{Deserialize, Serialize};

use crate::cases::ReportState;
use crate::exposure::{DoseHistory, DoseRecord};
use crate::pseudonym::{PatientKey, key_hex};

/// Everything the enricher remembers of one patient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientState {
    /// Every dose.
    pub doses: DoseHistory,
    /// Every adverse-event report.
    pub reports: Vec<ReportState>,
}

impl PatientState {
    /// The report state for `report_id`, created if new.
    pub fn report_mut(&mut self, report_id: &str) -> &mut ReportState {
        match self.reports.iter().position(|r| r.report_id == report_id) {
            Some(i) => &mut self.reports[i],
            None => {
                self.reports.push(ReportState::new(report_id));
                let last = self.reports.len() - 1;
                &mut self.reports[last]
            }
        }
    }

    /// The changelog record of this state.
    pub fn to_record(&self, key: &PatientKey) -> PatientStateRecord {
        PatientStateRecord {
            patient_key: key_hex(key),
            doses: self
                .doses
                .records()
                .iter()
                .map(|d| DoseRecordAvro {
                    at_ms: d.at_ms,
                    centi_mg: i64::from(d.centi_mg),
                    deci_kg: i32::from(d.deci_kg),
                })
                .collect(),
            reports: self
                .reports
                .iter()
                .map(|r| ReportRecord {
                    report_id: r.report_id.clone(),
                    versions: r.versions.iter().map(|v| v.0).collect(),
                    version_ids: r.versions.iter().map(|v| v.1).collect(),
                    nullified_at: r.nullified_at,
                })
                .collect(),
        }
    }

    /// The state a changelog record holds, with its key; `None` if the record is malformed.
    pub fn from_record(record: &PatientStateRecord) -> Option<(PatientKey, Self)> {
        let key: PatientKey = hex::decode(&record.patient_key).ok()?.try_into().ok()?;
        let doses = record
            .doses
            .iter()
            .map(|d| {
                Some(DoseRecord {
                    at_ms: d.at_ms,
                    centi_mg: u32::try_from(d.centi_mg).ok()?,
                    deci_kg: u16::try_from(d.deci_kg).ok()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let reports = record
            .reports
            .iter()
            .map(|r| {
                (r.versions.len() == r.version_ids.len()).then(|| ReportState {
                    report_id: r.report_id.clone(),
                    versions: r.versions.iter().copied().zip(r.version_ids.iter().copied()).collect(),
                    nullified_at: r.nullified_at,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((key, Self { doses: DoseHistory::from_records(doses), reports }))
    }
}

/// The patients of one partition. Hashed with FxHash, not SipHash: a key is an HMAC under a
/// secret, so it cannot be chosen to collide, and SipHash showed in the enricher's profile.
pub type PatientStore = HashMap<PatientKey, PatientState, rustc_hash::FxBuildHasher>;

/// Changelog record (Avro `pv.internal.PatientState`; serde names must match the Avro names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "PatientState")]
#[allow(missing_docs)]
pub struct PatientStateRecord {
    pub patient_key: String,
    pub doses: Vec<DoseRecordAvro>,
    pub reports: Vec<ReportRecord>,
}

/// A dose in the changelog record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "DoseRecord")]
#[allow(missing_docs)]
pub struct DoseRecordAvro {
    pub at_ms: i64,
    pub centi_mg: i64,
    pub deci_kg: i32,
}

/// A report in the changelog record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ReportRecord {
    pub report_id: String,
    pub versions: Vec<i32>,
    pub version_ids: Vec<i64>,
    pub nullified_at: Option<i32>,
}

impl AvroRecord for PatientStateRecord {
    const AVRO_NAME: &'static str = "pv.internal.PatientState";
}

#[cfg(test)]
mod tests {
    use pv_events::{EventCodec, Timestamp};

    use super::*;

    #[test]
    fn state_round_trips_through_its_avro_changelog_record() {
        let mut s = PatientState::default();
        for (day, mg, kg) in [(2, 40.0, None), (0, 35.5, Some(70.0))] {
            let d = DoseRecord::new(Timestamp::from_millis(day * 86_400_000), mg, kg).expect("dose");
            s.doses.insert(d);
        }
        s.report_mut("R1").observe(1, -5, false).expect("v1");
        s.report_mut("R1").observe(2, 7, true).expect("v2");
        s.report_mut("R2").observe(1, 9, false).expect("r2");
        let key = [7u8; 32];
        let bytes = EventCodec::global().encode_record(&s.to_record(&key)).expect("encode");
        let back: PatientStateRecord = EventCodec::global().decode_record(&bytes).expect("decode");
        assert_eq!(PatientState::from_record(&back), Some((key, s)));
    }
}
