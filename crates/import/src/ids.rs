//! Event ids for rows that bring none: derived from what identifies the event, so importing the
//! same history twice gives the same ids (and the tables, which deduplicate on the id, stay put).

use pv_events::{ClinicEvent, EventId};
use uuid::Uuid;

/// The UUID namespace of derived ids (a fixed random UUID; never change it, or re-imports of
/// files without ids would no longer match the events already stored).
const NAMESPACE: Uuid = Uuid::from_u128(0x5c1e_7a0e_3b8d_4f42_9a61_0d2e_7c44_b915);

/// A name-based (v5) id from the event's natural key:
/// - enrolment: clinic, patient, enrolment time;
/// - dose: clinic, patient, administration time (two doses at one instant are one dose, as the
///   enricher treats them);
/// - monitoring: clinic, patient, session, observation time;
/// - report version: clinic, report id, version.
pub fn derived_id(event: &ClinicEvent) -> EventId {
    let key = match event {
        ClinicEvent::PatientEnrolment(e) => {
            format!("patient_enrolment\0{}\0{}\0{}", e.clinic_id, e.patient_ref, e.enrolled_at.millis())
        }
        ClinicEvent::DoseAdministered(e) => {
            format!("dose_administered\0{}\0{}\0{}", e.clinic_id, e.patient_ref, e.administered_at.millis())
        }
        ClinicEvent::SessionMonitoring(e) => format!(
            "session_monitoring\0{}\0{}\0{}\0{}",
            e.clinic_id,
            e.patient_ref,
            e.session_number,
            e.monitored_at.millis()
        ),
        ClinicEvent::AdverseEventReport(e) => {
            format!("adverse_event_report\0{}\0{}\0{}", e.clinic_id, e.report_id, e.version)
        }
    };
    EventId(Uuid::new_v5(&NAMESPACE, key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use pv_events::{Timestamp, sample};

    use super::*;

    #[test]
    fn ids_depend_on_the_natural_key_only() {
        let at = Timestamp::from_millis(1_780_000_000_000);
        let a = ClinicEvent::from(sample::dose("c1", "p1", 1, at));
        let mut b = sample::dose("c1", "p1", 1, at);
        b.dose_mg += 1.0;
        b.event_id = EventId::new_random();
        assert_eq!(derived_id(&a), derived_id(&b.into()), "same patient and instant");
        let later = ClinicEvent::from(sample::dose("c1", "p1", 1, Timestamp::from_millis(at.millis() + 1)));
        assert_ne!(derived_id(&a), derived_id(&later));
        let other_clinic = ClinicEvent::from(sample::dose("c2", "p1", 1, at));
        assert_ne!(derived_id(&a), derived_id(&other_clinic));
        // Pinned (computed with Python's uuid.uuid5): a change here would make re-imports of
        // id-less files duplicate their events.
        assert_eq!(derived_id(&a).to_string(), "79037cc3-9cd2-54d0-95ef-319c0c14ad25");
    }
}
