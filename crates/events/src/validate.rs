//! Semantic validation of clinic events: ranges, required text, consistency. No I/O.
//!
//! Type-level checks (field types, enums, UUIDs, timestamp syntax, unknown fields) happen when
//! the JSON is parsed ([`crate::json`]); the rules here apply to well-typed events.

use serde::Serialize;

use crate::model::{
    AdverseEventReport, ClinicEvent, DoseAdministered, DrugRole, Outcome, PatientEnrolment, SessionMonitoring,
};
use crate::time::Timestamp;

/// A rejected field: where (a JSON path such as `reactions[0].verbatim`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the offending field, or `""` for the event as a whole.
    pub field: String,
    /// What is wrong, in words a clinic's developer can act on.
    pub reason: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Bounds the validation rules use; see the gateway configuration for their defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest plausible single dose in mg; above it the event is rejected as a likely unit error.
    pub max_dose_mg: f64,
    /// How far in the future (clock skew) an event time may lie, in milliseconds.
    pub max_future_skew_ms: i64,
    /// Earliest plausible event time (catches epoch-zero and two-digit-year bugs).
    pub earliest: Timestamp,
    /// Most reactions one report version may hold.
    pub max_reactions: usize,
    /// Most drugs one report version may hold.
    pub max_drugs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_dose_mg: 1000.0,
            max_future_skew_ms: 5 * 60 * 1000,
            // 1990-01-01T00:00:00Z
            earliest: Timestamp::from_millis(631_152_000_000),
            max_reactions: 50,
            max_drugs: 50,
        }
    }
}

impl Limits {
    /// The raw-message header in which the gateway and `pv import` record the limits an event
    /// was accepted under, so the enricher judges it by them and not by limits changed since.
    pub const HEADER: &'static str = "pv-accepted-under";

    /// The limits as the header's value, e.g.
    /// `max_dose_mg=1000;max_future_skew_ms=300000;earliest_ms=631152000000;max_reactions=50;max_drugs=50`.
    pub fn to_header(&self) -> String {
        format!(
            "max_dose_mg={};max_future_skew_ms={};earliest_ms={};max_reactions={};max_drugs={}",
            self.max_dose_mg,
            self.max_future_skew_ms,
            self.earliest.millis(),
            self.max_reactions,
            self.max_drugs
        )
    }

    /// The limits a header value records; a limit it does not name (an older writer) keeps its
    /// value in `base`, a name this build does not know is ignored (a newer writer). A value that
    /// is not a finite, non-negative number is refused (the enricher then applies its own).
    pub fn from_header(value: &str, base: Limits) -> Result<Limits, String> {
        let mut limits = base;
        for item in value.split(';').filter(|s| !s.is_empty()) {
            let (name, v) = item.split_once('=').ok_or_else(|| format!("`{item}` is not name=value"))?;
            let number = v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("`{item}`: not a finite number >= 0"))?;
            let whole = || v.parse::<i64>().map_err(|_| format!("`{item}`: not a whole number"));
            let count = || usize::try_from(whole()?).map_err(|_| format!("`{item}`: out of range"));
            match name {
                "max_dose_mg" => limits.max_dose_mg = number,
                "max_future_skew_ms" => limits.max_future_skew_ms = whole()?,
                "earliest_ms" => limits.earliest = Timestamp::from_millis(whole()?),
                "max_reactions" => limits.max_reactions = count()?,
                "max_drugs" => limits.max_drugs = count()?,
                _ => {}
            }
        }
        Ok(limits)
    }
}

/// Upper bound on identifier lengths (clinic ids, patient refs, report ids).
pub const MAX_ID_LEN: usize = 64;
/// Upper bound on short free-text fields (formulation, indication, protocol, drug names).
pub const MAX_TEXT_LEN: usize = 200;
/// Upper bound on a reaction's verbatim text.
pub const MAX_VERBATIM_LEN: usize = 500;
/// Upper bound on a narrative.
pub const MAX_NARRATIVE_LEN: usize = 20_000;

/// Checks one event; returns every problem found (empty when the event is valid).
pub fn validate(event: &ClinicEvent, limits: &Limits, now: Timestamp) -> Vec<FieldError> {
    let mut v = Checker { errors: Vec::new(), limits, now };
    v.clinic_id(event.clinic_id());
    v.ident("patient_ref", event.patient_ref(), MAX_ID_LEN);
    match event {
        ClinicEvent::DoseAdministered(e) => v.dose(e),
        ClinicEvent::SessionMonitoring(e) => v.monitoring(e),
        ClinicEvent::AdverseEventReport(e) => v.report(e),
        ClinicEvent::PatientEnrolment(e) => v.enrolment(e),
    }
    if event.event_id().0.is_nil() {
        v.fail("event_id", "must not be the nil UUID");
    }
    v.errors
}

/// Whether `id` is a well-formed clinic id: 1-64 of `A-Z a-z 0-9 . _ -`.
pub fn is_valid_clinic_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

struct Checker<'a> {
    errors: Vec<FieldError>,
    limits: &'a Limits,
    now: Timestamp,
}

impl Checker<'_> {
    fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    fn clinic_id(&mut self, id: &str) {
        if !is_valid_clinic_id(id) {
            self.fail(
                "clinic_id",
                format!("must be 1-{MAX_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_', '-'"),
            );
        }
    }

    /// Required identifier: non-blank, bounded, no control characters.
    fn ident(&mut self, field: &str, s: &str, max: usize) {
        if s.trim().is_empty() {
            self.fail(field, "must not be empty");
        } else if s.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        } else if s.chars().any(char::is_control) {
            self.fail(field, "must not contain control characters");
        }
    }

    /// Required free text: non-blank and bounded.
    fn text(&mut self, field: &str, s: &str, max: usize) {
        if s.trim().is_empty() {
            self.fail(field, "must not be empty");
        } else {
            self.max_len(field, s, max);
        }
    }

    fn max_len(&mut self, field: &str, s: &str, max: usize) {
        if s.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        }
    }

    fn opt_text(&mut self, field: &str, s: Option<&str>, max: usize) {
        if let Some(s) = s {
            self.text(field, s, max);
        }
    }

    fn time(&mut self, field: &str, t: Timestamp) {
        if t.millis() > self.now.millis().saturating_add(self.limits.max_future_skew_ms) {
            self.fail(
                field,
                format!(
                    "{t} is in the future (now {}, allowed clock skew {} s)",
                    self.now,
                    self.limits.max_future_skew_ms / 1000
                ),
            );
        } else if t < self.limits.earliest {
            self.fail(field, format!("{t} is before {}, not a plausible event time", self.limits.earliest));
        }
    }

    fn range(&mut self, field: &str, value: i32, lo: i32, hi: i32, unit: &str) {
        if !(lo..=hi).contains(&value) {
            self.fail(field, format!("{value} is outside {lo}..={hi}{unit}"));
        }
    }

    fn opt_range(&mut self, field: &str, value: Option<i32>, lo: i32, hi: i32, unit: &str) {
        if let Some(value) = value {
            self.range(field, value, lo, hi, unit);
        }
    }

    fn dose(&mut self, e: &DoseAdministered) {
        self.time("administered_at", e.administered_at);
        self.text("formulation", &e.formulation, MAX_TEXT_LEN);
        if !e.dose_mg.is_finite() || e.dose_mg <= 0.0 {
            self.fail("dose_mg", format!("{} must be a number > 0 (mg)", e.dose_mg));
        } else if e.dose_mg > self.limits.max_dose_mg {
            self.fail(
                "dose_mg",
                format!(
                    "{} mg exceeds the ceiling of {} mg (unit error? doses are in mg)",
                    e.dose_mg, self.limits.max_dose_mg
                ),
            );
        }
        if let Some(w) = e.weight_kg
            && !(w.is_finite() && (2.0..=400.0).contains(&w))
        {
            self.fail("weight_kg", format!("{w} is outside 2..=400 kg"));
        }
        self.text("indication", &e.indication, MAX_TEXT_LEN);
        self.range("session_number", e.session_number, 1, 10_000, "");
        self.opt_text("protocol", e.protocol.as_deref(), MAX_TEXT_LEN);
        self.opt_text("lot_number", e.lot_number.as_deref(), MAX_ID_LEN);
    }

    fn monitoring(&mut self, e: &SessionMonitoring) {
        self.range("session_number", e.session_number, 1, 10_000, "");
        self.time("monitored_at", e.monitored_at);
        self.opt_range("bp_systolic_pre", e.bp_systolic_pre, 40, 300, " mmHg");
        self.opt_range("bp_diastolic_pre", e.bp_diastolic_pre, 20, 200, " mmHg");
        self.opt_range("bp_systolic_post", e.bp_systolic_post, 40, 300, " mmHg");
        self.opt_range("bp_diastolic_post", e.bp_diastolic_post, 20, 200, " mmHg");
        for (when, sys, dia) in [
            ("pre", e.bp_systolic_pre, e.bp_diastolic_pre),
            ("post", e.bp_systolic_post, e.bp_diastolic_post),
        ] {
            if let (Some(s), Some(d)) = (sys, dia)
                && d >= s
            {
                self.fail(format!("bp_diastolic_{when}"), format!("{d} must be below systolic {s}"));
            }
        }
        self.opt_range("sedation_moaas", e.sedation_moaas, 0, 5, " (MOAA/S)");
        self.opt_range("dissociation_cadss", e.dissociation_cadss, 0, 92, " (CADSS total)");
        self.opt_range("spo2_min_pct", e.spo2_min_pct, 50, 100, " %");
        self.range("observation_minutes", e.observation_minutes, 0, 1440, " min");
    }

    fn enrolment(&mut self, e: &PatientEnrolment) {
        self.time("enrolled_at", e.enrolled_at);
        self.opt_range("baseline_urinary_score", e.baseline_urinary_score, 0, 35, " (IPSS)");
        self.text("indication", &e.indication, MAX_TEXT_LEN);
        self.text("protocol", &e.protocol, MAX_TEXT_LEN);
    }

    fn report(&mut self, e: &AdverseEventReport) {
        self.ident("report_id", &e.report_id, MAX_ID_LEN);
        self.range("version", e.version, 1, 10_000, "");
        self.time("reported_at", e.reported_at);
        if e.nullification {
            match e.nullification_reason.as_deref() {
                Some(r) if !r.trim().is_empty() => self.max_len("nullification_reason", r, MAX_TEXT_LEN),
                _ => self.fail("nullification_reason", "required when nullification is true"),
            }
        } else {
            if e.nullification_reason.is_some() {
                self.fail("nullification_reason", "only allowed when nullification is true");
            }
            if e.reactions.is_empty() {
                self.fail("reactions", "at least one reaction is required (unless the report is nullified)");
            }
            if !e.drugs.iter().any(|d| d.role == DrugRole::Suspect) {
                self.fail(
                    "drugs",
                    "at least one drug with role `suspect` is required (unless the report is nullified)",
                );
            }
        }
        if e.reactions.len() > self.limits.max_reactions {
            let n = (e.reactions.len(), self.limits.max_reactions);
            self.fail("reactions", format!("{} reactions, more than the {} one report may hold", n.0, n.1));
        }
        if e.drugs.len() > self.limits.max_drugs {
            let n = (e.drugs.len(), self.limits.max_drugs);
            self.fail("drugs", format!("{} drugs, more than the {} one report may hold", n.0, n.1));
        }
        let reported_day = e.reported_at.to_datetime().map(|t| t.date_naive());
        let earliest_day = self.limits.earliest.to_datetime().map(|t| t.date_naive());
        for (i, r) in e.reactions.iter().enumerate() {
            self.text(&format!("reactions[{i}].verbatim"), &r.verbatim, MAX_VERBATIM_LEN);
            self.opt_text(&format!("reactions[{i}].coded_term"), r.coded_term.as_deref(), MAX_TEXT_LEN);
            if let Some(onset) = r.onset_date {
                let field = format!("reactions[{i}].onset_date");
                let day = onset.to_naive();
                if day.is_none() || day < earliest_day {
                    self.fail(
                        field,
                        format!("{onset} is before {}, not a plausible onset", self.limits.earliest),
                    );
                } else if reported_day.is_some() && day > reported_day {
                    self.fail(field, format!("{onset} is after reported_at"));
                }
            }
            if r.outcome == Outcome::Fatal && !r.seriousness.death {
                self.fail(
                    format!("reactions[{i}].seriousness.death"),
                    "must be true when the outcome is fatal",
                );
            }
        }
        for (i, d) in e.drugs.iter().enumerate() {
            self.text(&format!("drugs[{i}].name"), &d.name, MAX_TEXT_LEN);
        }
        if let Some(n) = &e.narrative {
            self.max_len("narrative", n, MAX_NARRATIVE_LEN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClinicEvent, Outcome};
    use crate::sample;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-05-04T12:00:00Z").expect("valid")
    }

    fn at() -> Timestamp {
        Timestamp::parse_rfc3339("2026-05-04T09:30:00Z").expect("valid")
    }

    fn fields(event: impl Into<ClinicEvent>) -> Vec<String> {
        validate(&event.into(), &Limits::default(), now()).into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn limits_travel_in_a_header() {
        let tight = Limits { max_dose_mg: 500.5, max_reactions: 3, ..Limits::default() };
        assert_eq!(Limits::from_header(&tight.to_header(), Limits::default()), Ok(tight));
        let older_writer = Limits::from_header("max_dose_mg=800;someday=1", tight).expect("parses");
        assert_eq!((older_writer.max_dose_mg, older_writer.max_reactions), (800.0, 3));
        assert!(Limits::from_header("max_dose_mg=lots", tight).is_err());
        for unbounded in ["max_dose_mg=inf", "max_dose_mg=NaN", "max_future_skew_ms=-1", "max_reactions=1.5"]
        {
            assert!(Limits::from_header(unbounded, tight).is_err(), "{unbounded}");
        }
        assert!(Limits::from_header("max_drugs", tight).is_err());
    }

    #[test]
    fn the_samples_are_valid() {
        assert!(fields(sample::dose("c", "p", 1, at())).is_empty());
        assert!(fields(sample::monitoring("c", "p", 1, at())).is_empty());
        assert!(fields(sample::adverse_event("c", "p", "R", at())).is_empty());
        assert!(fields(sample::enrolment("c", "p", at())).is_empty());
    }

    #[test]
    fn dose_must_be_positive_and_below_the_ceiling() {
        for bad in [0.0, -5.0, 1000.5, f64::NAN] {
            let mut d = sample::dose("c", "p", 1, at());
            d.dose_mg = bad;
            assert_eq!(fields(d), ["dose_mg"], "dose {bad}");
        }
        let mut d = sample::dose("c", "p", 1, at());
        d.dose_mg = 1000.0;
        assert!(fields(d).is_empty(), "the ceiling itself is allowed");
        let mut d = sample::dose("c", "p", 1, at());
        d.dose_mg = 300.0;
        let many = {
            let mut r = sample::adverse_event("c", "p", "R", at());
            r.reactions = vec![r.reactions[0].clone(); 3];
            r.drugs = vec![r.drugs[0].clone(); 4];
            r
        };
        let few = Limits { max_reactions: 2, max_drugs: 3, ..Limits::default() };
        let errors = validate(&ClinicEvent::from(many.clone()), &few, at());
        let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["reactions", "drugs"], "{errors:?}");
        assert!(errors[0].reason.contains("3 reactions, more than the 2"), "{errors:?}");
        assert!(validate(&ClinicEvent::from(many), &Limits::default(), at()).is_empty());
        let strict = Limits { max_dose_mg: 250.0, ..Limits::default() };
        assert_eq!(validate(&d.into(), &strict, now()).len(), 1, "ceiling is configurable");
    }

    #[test]
    fn times_in_the_future_beyond_the_skew_are_rejected() {
        let mut d = sample::dose("c", "p", 1, at());
        d.administered_at = Timestamp::from_millis(now().millis() + 4 * 60 * 1000);
        assert!(fields(d.clone()).is_empty(), "within 5 min skew");
        d.administered_at = Timestamp::from_millis(now().millis() + 6 * 60 * 1000);
        assert_eq!(fields(d.clone()), ["administered_at"]);
        d.administered_at = Timestamp::from_millis(0);
        assert_eq!(fields(d), ["administered_at"], "epoch zero is implausible");
    }

    #[test]
    fn identifiers_and_text_are_checked() {
        let mut d = sample::dose("clinic/a", " ", 0, at());
        d.formulation = String::new();
        d.weight_kg = Some(0.5);
        assert_eq!(fields(d), ["clinic_id", "patient_ref", "formulation", "weight_kg", "session_number"]);
        let mut d = sample::dose("c", "p\n1", 1, at());
        d.event_id = crate::EventId(uuid::Uuid::nil());
        assert_eq!(fields(d), ["patient_ref", "event_id"]);
    }

    #[test]
    fn monitoring_ranges_and_bp_consistency() {
        let mut m = sample::monitoring("c", "p", 1, at());
        m.sedation_moaas = Some(6);
        m.spo2_min_pct = Some(101);
        m.bp_diastolic_post = m.bp_systolic_post;
        m.observation_minutes = -1;
        assert_eq!(fields(m), ["bp_diastolic_post", "sedation_moaas", "spo2_min_pct", "observation_minutes"]);
    }

    #[test]
    fn enrolment_rules() {
        let mut e = sample::enrolment("c", "p", at());
        for score in [0, 35] {
            e.baseline_urinary_score = Some(score);
            assert!(fields(e.clone()).is_empty(), "IPSS {score} is on the scale");
        }
        e.baseline_urinary_score = None;
        e.prior_substance_use_disorder = None;
        assert!(fields(e.clone()).is_empty(), "the baseline is optional");

        e.baseline_urinary_score = Some(36);
        let errors = validate(&e.clone().into(), &Limits::default(), now());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "baseline_urinary_score");
        assert!(errors[0].reason.contains("IPSS"), "the reason names the scale: {}", errors[0]);
        e.baseline_urinary_score = Some(-1);
        assert_eq!(fields(e.clone()), ["baseline_urinary_score"]);

        let mut e = sample::enrolment("c", "p", at());
        e.enrolled_at = Timestamp::from_millis(now().millis() + 6 * 60 * 1000);
        e.indication = " ".into();
        e.protocol = "x".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(fields(e.clone()), ["enrolled_at", "indication", "protocol"]);
        e.enrolled_at = Timestamp::from_millis(0);
        e.indication = "treatment-resistant depression".into();
        e.protocol = String::new();
        assert_eq!(fields(e), ["enrolled_at", "protocol"]);
    }

    #[test]
    fn report_rules() {
        let mut r = sample::adverse_event("c", "p", "R", at());
        r.reactions[0].outcome = Outcome::Fatal;
        r.reactions[1].onset_date = Some(crate::Date::from_days(30_000));
        r.drugs.retain(|d| d.role != crate::DrugRole::Suspect);
        assert_eq!(fields(r), ["drugs", "reactions[0].seriousness.death", "reactions[1].onset_date"]);

        let mut r = sample::adverse_event("c", "p", "R", at());
        r.reactions.clear();
        r.version = 0;
        assert_eq!(fields(r.clone()), ["version", "reactions"]);
        r.nullification = true;
        assert_eq!(fields(r.clone()), ["version", "nullification_reason"]);
        r.nullification_reason = Some("entered in error".into());
        r.version = 2;
        assert!(fields(r).is_empty(), "a nullification needs no reactions");
    }
}
