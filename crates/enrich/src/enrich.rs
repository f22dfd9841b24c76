//! The pure enrichment step: one clinic event and its patient's state in, one enriched event
//! out (or a reason to dead-letter it). No I/O.

use pv_coding::{CodeSource, Coder};
use pv_events::{
    AdverseEventReport, ClinicEvent, CodedFrom, DoseAdministered, EnrichedAdverseEvent, EnrichedDose,
    EnrichedEnrolment, EnrichedEvent, EnrichedMonitoring, EnrichedReaction, Limits, PatientEnrolment,
    SessionMonitoring, Timestamp, validate,
};

use crate::exposure::{DAY_MS, DoseRecord, Insert};
use crate::pseudonym::{PatientKey, Pseudonymiser, key_hex};
use crate::state::{PatientState, PatientStore};

/// Turns clinic events into enriched events.
#[derive(Debug, Clone)]
pub struct Enricher {
    pseudonymiser: Pseudonymiser,
    coder: Coder,
    limits: Limits,
}

/// An enriched event and the patient it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Enriched {
    /// The patient's key.
    pub key: PatientKey,
    /// The enriched event.
    pub event: EnrichedEvent,
    /// Whether the patient's state changed (and must be written to the changelog).
    pub state_changed: bool,
    /// Reactions that no dictionary entry matched.
    pub uncoded: usize,
}

impl Enricher {
    /// An enricher keying patients with `pseudonymiser`, coding with `coder`, and re-checking
    /// events against `limits` (those of the gateway).
    pub fn new(pseudonymiser: Pseudonymiser, coder: Coder, limits: Limits) -> Self {
        Self { pseudonymiser, coder, limits }
    }

    /// The coder in use.
    pub fn coder(&self) -> &Coder {
        &self.coder
    }

    /// The limits events are checked against when they do not say which they were accepted under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Enriches `event`, checked against the enricher's own limits (see [`Enricher::enrich_under`]).
    pub fn enrich(&self, store: &mut PatientStore, event: &ClinicEvent) -> Result<Enriched, String> {
        self.enrich_under(store, event, &self.limits)
    }

    /// Enriches `event`, updating its patient's state in `store`, after checking it against
    /// `limits`: those it was accepted under when its message records them, so a limit tightened
    /// since does not dead-letter an event already accepted. On `Err` (the reason to dead-letter
    /// it) nothing in `store` changes.
    pub fn enrich_under(
        &self,
        store: &mut PatientStore,
        event: &ClinicEvent,
        limits: &Limits,
    ) -> Result<Enriched, String> {
        // Defence in depth: the raw topic may have other writers than the gateway.
        let problems = validate(event, limits, event.received_at());
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(format!("invalid event: {}", list.join("; ")));
        }
        let key = self.pseudonymiser.key(event.clinic_id(), event.patient_ref());
        let existed = store.contains_key(&key);
        let state = store.entry(key).or_default();
        let result = match event {
            ClinicEvent::DoseAdministered(e) => dose(state, key, e),
            ClinicEvent::SessionMonitoring(e) => Ok(monitoring(state, key, e)),
            ClinicEvent::AdverseEventReport(e) => self.adverse_event(state, key, e),
            ClinicEvent::PatientEnrolment(e) => Ok(enrolment(key, e)),
        };
        if result.is_err() && !existed {
            store.remove(&key);
        }
        result
    }

    fn adverse_event(
        &self,
        state: &mut PatientState,
        key: PatientKey,
        e: &AdverseEventReport,
    ) -> Result<Enriched, String> {
        let observed = state.report_mut(&e.report_id).observe(e.version, event_hash(e), e.nullification);
        let observed = match observed {
            Ok(o) => o,
            Err(err) => {
                state.reports.retain(|r| !r.versions.is_empty());
                return Err(err.to_string());
            }
        };
        let mut uncoded = 0;
        let reactions = e
            .reactions
            .iter()
            .map(|r| {
                let coding = self.coder.code(&r.verbatim, r.coded_term.as_deref());
                let (pt, pt_code, soc, soc_code, coded_from) = match coding.coded {
                    Some(c) => (
                        Some(c.pt.name.clone()),
                        c.pt.code,
                        Some(c.pt.soc.clone()),
                        c.pt.soc_code,
                        match c.source {
                            CodeSource::ClinicTerm => CodedFrom::ClinicTerm,
                            CodeSource::Verbatim => CodedFrom::Verbatim,
                        },
                    ),
                    None => {
                        uncoded += 1;
                        (None, None, None, None, CodedFrom::Uncoded)
                    }
                };
                EnrichedReaction {
                    verbatim: r.verbatim.clone(),
                    coded_term: r.coded_term.clone(),
                    onset_date: r.onset_date,
                    outcome: r.outcome,
                    seriousness: r.seriousness,
                    pt,
                    pt_code,
                    soc,
                    soc_code,
                    coded_from,
                    groups: coding.groups.to_vec(),
                }
            })
            .collect();
        // Exposure as of the end of the earliest onset day, else as of the report.
        let as_of = e
            .reactions
            .iter()
            .filter_map(|r| r.onset_date)
            .min()
            .map(|d| Timestamp::from_millis((i64::from(d.days()) + 1) * DAY_MS as i64 - 1))
            .unwrap_or(e.reported_at);
        let exposure = state.doses.snapshot(as_of);
        let days_since = |t: Option<Timestamp>| t.map(|t| (as_of.millis() - t.millis()) as f64 / DAY_MS);
        Ok(Enriched {
            key,
            event: EnrichedEvent::AdverseEvent(EnrichedAdverseEvent {
                event_id: e.event_id,
                clinic_id: e.clinic_id.clone(),
                patient_key: key_hex(&key),
                report_id: e.report_id.clone(),
                version: e.version,
                nullification: e.nullification,
                nullification_reason: e.nullification_reason.clone(),
                reported_at: e.reported_at,
                reporter_qualification: e.reporter_qualification,
                reactions,
                drugs: e.drugs.clone(),
                narrative: e.narrative.clone(),
                received_at: e.received_at,
                latest_version_seen: observed.latest_version_seen,
                exposure_as_of: as_of,
                days_since_first_dose: days_since(exposure.first_dose_at),
                days_since_last_dose: days_since(exposure.last_dose_at),
                exposure,
            }),
            state_changed: !observed.duplicate,
            uncoded,
        })
    }
}

fn dose(state: &mut PatientState, key: PatientKey, e: &DoseAdministered) -> Result<Enriched, String> {
    let record = DoseRecord::new(e.administered_at, e.dose_mg, e.weight_kg)
        .ok_or_else(|| format!("dose_mg {} cannot be recorded", e.dose_mg))?;
    let state_changed = match state.doses.insert(record) {
        Insert::Added => true,
        Insert::Duplicate => false,
        Insert::Conflict(existing) => {
            return Err(format!(
                "a different dose ({} mg) is already recorded for this patient at {}",
                existing.mg(),
                e.administered_at
            ));
        }
    };
    Ok(Enriched {
        key,
        event: EnrichedEvent::Dose(EnrichedDose {
            event_id: e.event_id,
            clinic_id: e.clinic_id.clone(),
            patient_key: key_hex(&key),
            administered_at: e.administered_at,
            product: e.product,
            formulation: e.formulation.clone(),
            route: e.route,
            dose_mg: e.dose_mg,
            weight_kg: e.weight_kg,
            dose_mg_per_kg: e.weight_kg.map(|w| e.dose_mg / w),
            indication: e.indication.clone(),
            session_number: e.session_number,
            protocol: e.protocol.clone(),
            lot_number: e.lot_number.clone(),
            received_at: e.received_at,
            exposure: state.doses.snapshot(e.administered_at),
        }),
        state_changed,
        uncoded: 0,
    })
}

fn monitoring(state: &PatientState, key: PatientKey, e: &SessionMonitoring) -> Enriched {
    Enriched {
        key,
        event: EnrichedEvent::Monitoring(EnrichedMonitoring {
            event_id: e.event_id,
            clinic_id: e.clinic_id.clone(),
            patient_key: key_hex(&key),
            session_number: e.session_number,
            monitored_at: e.monitored_at,
            bp_systolic_pre: e.bp_systolic_pre,
            bp_diastolic_pre: e.bp_diastolic_pre,
            bp_systolic_post: e.bp_systolic_post,
            bp_diastolic_post: e.bp_diastolic_post,
            sedation_moaas: e.sedation_moaas,
            dissociation_cadss: e.dissociation_cadss,
            spo2_min_pct: e.spo2_min_pct,
            observation_minutes: e.observation_minutes,
            discharge_ready: e.discharge_ready,
            received_at: e.received_at,
            exposure: state.doses.snapshot(e.monitored_at),
        }),
        state_changed: false,
        uncoded: 0,
    }
}

/// An enrolment carries the patient's baseline, not their exposure: it changes no state.
fn enrolment(key: PatientKey, e: &PatientEnrolment) -> Enriched {
    Enriched {
        key,
        event: EnrichedEvent::Enrolment(EnrichedEnrolment {
            event_id: e.event_id,
            clinic_id: e.clinic_id.clone(),
            patient_key: key_hex(&key),
            enrolled_at: e.enrolled_at,
            age_band: e.age_band,
            sex: e.sex,
            baseline_urinary_score: e.baseline_urinary_score,
            prior_substance_use_disorder: e.prior_substance_use_disorder,
            indication: e.indication.clone(),
            protocol: e.protocol.clone(),
            received_at: e.received_at,
        }),
        state_changed: false,
        uncoded: 0,
    }
}

/// A stable 64-bit hash of an event id (its first 8 bytes; ids are random UUIDs).
fn event_hash(e: &AdverseEventReport) -> i64 {
    let b = e.event_id.0.as_bytes();
    i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use pv_events::{Date, EventCodec, Outcome, sample};

    use super::*;

    const DAY: i64 = 86_400_000;

    fn enricher() -> Enricher {
        let p = Pseudonymiser::new(b"test secret test secret test secret!").expect("secret");
        Enricher::new(p, Coder::demo().expect("demo"), Limits::default())
    }

    fn t(day: i64) -> Timestamp {
        Timestamp::from_millis(1_767_258_000_000 + day * DAY) // 2026-01-01T09:00Z + days
    }

    fn dose_event(day: i64, mg: f64) -> ClinicEvent {
        let mut d = sample::dose("clinic-a", "pt-7", day as i32 + 1, t(day));
        d.dose_mg = mg;
        d.weight_kg = Some(80.0);
        d.received_at = t(day);
        d.into()
    }

    fn exposure_of(e: &Enriched) -> &pv_events::Exposure {
        match &e.event {
            EnrichedEvent::Dose(d) => &d.exposure,
            EnrichedEvent::Monitoring(m) => &m.exposure,
            EnrichedEvent::AdverseEvent(a) => &a.exposure,
            EnrichedEvent::Enrolment(_) => panic!("an enrolment carries no exposure"),
        }
    }

    #[test]
    fn a_patient_history_enriches_field_by_field() {
        let en = enricher();
        let mut store = PatientStore::default();
        for (day, mg) in [(0, 40.0), (3, 40.0), (7, 40.0)] {
            en.enrich(&mut store, &dose_event(day, mg)).expect("dose");
        }
        let out = en.enrich(&mut store, &dose_event(10, 48.0)).expect("dose");
        let EnrichedEvent::Dose(d) = &out.event else { panic!("dose") };
        assert_eq!(d.dose_mg_per_kg, Some(0.6));
        assert_eq!(d.exposure.administrations, 4);
        assert_eq!(d.exposure.cumulative_mg, 168.0);
        assert!((d.exposure.cumulative_mg_per_kg - 2.1).abs() < 1e-12);
        assert_eq!(d.exposure.escalation_ratio, Some(1.2));
        assert!(out.state_changed);

        // An AE reported on day 12 with onset on day 8: exposure as of the end of day 8.
        let mut ae = sample::adverse_event("clinic-a", "pt-7", "CASE-1", t(12));
        ae.received_at = t(12);
        ae.reactions[0].verbatim = "Ketamine Cystitis".into();
        ae.reactions[0].coded_term = None;
        ae.reactions[0].onset_date = t(8).to_datetime().and_then(|x| Date::from_naive(x.date_naive()));
        ae.reactions[1].verbatim = "an itch nobody has named".into();
        let out = en.enrich(&mut store, &ae.clone().into()).expect("ae");
        let EnrichedEvent::AdverseEvent(a) = &out.event else { panic!("ae") };
        let end_of_day_8 = Timestamp::from_millis((t(8).millis() / DAY + 1) * DAY - 1);
        assert_eq!(a.exposure_as_of, end_of_day_8);
        assert_eq!(a.exposure.administrations, 3, "the day-10 dose came after the onset");
        assert_eq!(a.exposure.cumulative_mg, 120.0);
        assert_eq!(
            a.days_since_first_dose,
            Some((end_of_day_8.millis() - t(0).millis()) as f64 / DAY as f64)
        );
        assert_eq!(a.days_since_last_dose, Some((end_of_day_8.millis() - t(7).millis()) as f64 / DAY as f64));
        assert_eq!(a.reactions[0].pt.as_deref(), Some("Cystitis interstitial"));
        assert_eq!(a.reactions[0].soc.as_deref(), Some("Renal and urinary disorders"));
        assert_eq!(a.reactions[0].coded_from, CodedFrom::Verbatim);
        assert_eq!(a.reactions[0].groups, ["urological"]);
        assert_eq!(a.reactions[1].coded_from, CodedFrom::Uncoded);
        assert_eq!(a.reactions[1].pt, None);
        assert_eq!(a.reactions[1].verbatim, "an itch nobody has named", "kept verbatim");
        assert_eq!(out.uncoded, 1);
        assert_eq!(a.latest_version_seen, 1);
        assert_eq!(a.reactions[0].outcome, Outcome::Recovering);

        // No trace of the clinic's patient reference anywhere in the encoded events.
        let bytes = EventCodec::global().encode_enriched(&out.event).expect("encode");
        assert!(!bytes.windows(4).any(|w| w == b"pt-7"));
        assert_eq!(a.patient_key.len(), 64);
    }

    #[test]
    fn monitoring_carries_exposure_as_of_its_time() {
        let en = enricher();
        let mut store = PatientStore::default();
        en.enrich(&mut store, &dose_event(0, 40.0)).expect("dose");
        en.enrich(&mut store, &dose_event(3, 40.0)).expect("dose");
        let mut m =
            sample::monitoring("clinic-a", "pt-7", 1, Timestamp::from_millis(t(0).millis() + 300_000));
        m.received_at = t(3);
        let out = en.enrich(&mut store, &m.into()).expect("monitoring");
        assert_eq!(exposure_of(&out).administrations, 1);
        assert!(!out.state_changed);
    }

    #[test]
    fn an_enrolment_is_pseudonymised_and_copied_field_for_field() {
        let en = enricher();
        let mut store = PatientStore::default();
        let first = en.enrich(&mut store, &dose_event(0, 40.0)).expect("dose");
        let mut e = sample::enrolment("clinic-a", "pt-7", Timestamp::from_millis(t(0).millis() - 3_600_000));
        e.received_at = t(0);
        let out = en.enrich(&mut store, &e.clone().into()).expect("enrolment");
        let EnrichedEvent::Enrolment(got) = &out.event else { panic!("enrolment") };
        assert_eq!(
            got,
            &EnrichedEnrolment {
                event_id: e.event_id,
                clinic_id: e.clinic_id.clone(),
                patient_key: key_hex(&first.key),
                enrolled_at: e.enrolled_at,
                age_band: e.age_band,
                sex: e.sex,
                baseline_urinary_score: e.baseline_urinary_score,
                prior_substance_use_disorder: e.prior_substance_use_disorder,
                indication: e.indication.clone(),
                protocol: e.protocol.clone(),
                received_at: e.received_at,
            }
        );
        assert_eq!(out.key, first.key, "the same patient as their doses");
        assert!(!out.state_changed);
        assert_eq!(out.uncoded, 0);
        let bytes = EventCodec::global().encode_enriched(&out.event).expect("encode");
        assert!(!bytes.windows(4).any(|w| w == b"pt-7"));

        // It changes nothing: the next dose's exposure counts the doses only.
        let next = en.enrich(&mut store, &dose_event(3, 40.0)).expect("dose");
        assert_eq!(exposure_of(&next).administrations, 2);
    }

    #[test]
    fn replayed_events_do_not_count_twice() {
        let en = enricher();
        let mut store = PatientStore::default();
        let first = en.enrich(&mut store, &dose_event(0, 40.0)).expect("dose");
        let again = en.enrich(&mut store, &dose_event(0, 40.0)).expect("re-sent");
        assert!(!again.state_changed);
        assert_eq!(exposure_of(&again), exposure_of(&first));
        assert_eq!(
            exposure_of(&en.enrich(&mut store, &dose_event(3, 40.0)).expect("dose")).administrations,
            2
        );
    }

    #[test]
    fn semantic_conflicts_are_refused_with_a_reason_and_change_nothing() {
        let en = enricher();
        let mut store = PatientStore::default();
        en.enrich(&mut store, &dose_event(0, 40.0)).expect("dose");
        let err = en.enrich(&mut store, &dose_event(0, 45.0)).expect_err("conflict");
        assert!(err.contains("a different dose (40 mg)"), "{err}");

        let mut ae = sample::adverse_event("clinic-a", "pt-7", "CASE-9", t(5));
        ae.received_at = t(5);
        en.enrich(&mut store, &ae.clone().into()).expect("v1");
        let mut clash = ae.clone();
        clash.event_id = pv_events::EventId::new_random();
        let err = en.enrich(&mut store, &clash.into()).expect_err("same version, other event");
        assert_eq!(err, "version 1 of report CASE-9 was already received as another event");

        let mut bad = sample::dose("clinic-a", "pt-new", 1, t(1));
        bad.dose_mg = -1.0;
        bad.received_at = t(1);
        let err = en.enrich(&mut store, &bad.into()).expect_err("invalid");
        assert!(err.starts_with("invalid event: dose_mg"), "{err}");
        assert_eq!(store.len(), 1, "a refused new patient leaves no state");
    }
}
