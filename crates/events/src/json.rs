//! The JSON form of clinic events used by the gateway's HTTP API.
//!
//! An event is a JSON object with `"type"` naming its kind (`dose_administered`,
//! `session_monitoring`, `adverse_event_report`, `patient_enrolment`) and the fields of that
//! kind's schema. Times are RFC 3339 strings, dates `YYYY-MM-DD`, enums lower-case names.
//! `received_at` is set by the gateway and must not be sent.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::model::{ClinicEvent, EventKind};
use crate::validate::FieldError;

/// Parses one event object; a type error names the offending field path.
pub fn event_from_json(value: Value) -> Result<ClinicEvent, FieldError> {
    let Value::Object(mut map) = value else {
        return Err(FieldError::new("", format!("expected a JSON object, found {}", json_type(&value))));
    };
    let kinds = || EventKind::ALL.map(EventKind::as_str).join(", ");
    let kind = match map.remove("type") {
        None => {
            return Err(FieldError::new("type", format!("required; one of {}", kinds())));
        }
        Some(Value::String(name)) => EventKind::from_name(&name).ok_or_else(|| {
            FieldError::new("type", format!("unknown event type `{name}`; expected one of {}", kinds()))
        })?,
        Some(other) => {
            return Err(FieldError::new("type", format!("expected a string, found {}", json_type(&other))));
        }
    };
    if map.contains_key("received_at") {
        return Err(FieldError::new("received_at", "set by the gateway on acceptance; do not send it"));
    }
    Ok(match kind {
        EventKind::DoseAdministered => ClinicEvent::DoseAdministered(typed(map)?),
        EventKind::SessionMonitoring => ClinicEvent::SessionMonitoring(typed(map)?),
        EventKind::AdverseEventReport => ClinicEvent::AdverseEventReport(typed(map)?),
        EventKind::PatientEnrolment => ClinicEvent::PatientEnrolment(typed(map)?),
    })
}

/// The JSON object a clinic sends for `event` (with `"type"`, without `received_at`).
pub fn event_to_json(event: &ClinicEvent) -> Value {
    let value = match event {
        ClinicEvent::DoseAdministered(e) => serde_json::to_value(e),
        ClinicEvent::SessionMonitoring(e) => serde_json::to_value(e),
        ClinicEvent::AdverseEventReport(e) => serde_json::to_value(e),
        ClinicEvent::PatientEnrolment(e) => serde_json::to_value(e),
    };
    // The event types serialise to objects by construction.
    let mut map = match value {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.remove("received_at");
    map.insert("type".into(), Value::String(event.kind().as_str().into()));
    Value::Object(map)
}

fn typed<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        field_error(&path, &message)
    })
}

/// Turns serde's messages into a field path and a reason. Missing and unknown fields are
/// reported at the enclosing object, so their names are moved into the path.
fn field_error(path: &str, message: &str) -> FieldError {
    let prefix = if path == "." { String::new() } else { format!("{path}.") };
    let named = |rest: &str| rest.split('`').nth(1).map(str::to_owned);
    if let Some(rest) = message.strip_prefix("missing field ")
        && let Some(name) = named(rest)
    {
        return FieldError::new(format!("{prefix}{name}"), "required field is missing");
    }
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some(name) = named(rest)
    {
        let expected = rest.split_once(", expected ").map(|(_, e)| e).unwrap_or("");
        // serde_path_to_error already puts an unknown field's own name at the end of the path.
        let field = if path.rsplit('.').next() == Some(name.as_str()) {
            path.to_owned()
        } else {
            format!("{prefix}{name}")
        };
        return FieldError::new(field, format!("unknown field; expected {expected}"));
    }
    let field = if path == "." { String::new() } else { path.to_owned() };
    FieldError::new(field, message.to_owned())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sample;
    use crate::time::Timestamp;

    fn dose_json() -> Value {
        let at = Timestamp::parse_rfc3339("2026-05-04T09:30:00Z").expect("valid");
        event_to_json(&sample::dose("c1", "p1", 1, at).into())
    }

    #[test]
    fn json_round_trips_every_kind() {
        let at = Timestamp::parse_rfc3339("2026-05-04T09:30:00Z").expect("valid");
        for event in [
            ClinicEvent::from(sample::dose("c1", "p1", 1, at)),
            sample::monitoring("c1", "p1", 1, at).into(),
            sample::adverse_event("c1", "p1", "R1", at).into(),
            sample::enrolment("c1", "p1", at).into(),
        ] {
            let value = event_to_json(&event);
            assert_eq!(value["type"], event.kind().as_str());
            assert!(value.get("received_at").is_none());
            assert_eq!(event_from_json(value).expect("parses"), event);
        }
    }

    #[test]
    fn missing_type_and_unknown_type_are_named() {
        let mut v = dose_json();
        v.as_object_mut().expect("object").remove("type");
        assert_eq!(event_from_json(v).expect_err("no type").field, "type");
        let mut v = dose_json();
        v["type"] = json!("dose");
        let e = event_from_json(v).expect_err("bad type");
        assert_eq!(e.field, "type");
        assert!(e.reason.contains("unknown event type `dose`"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_field_and_the_expectation() {
        let mut v = dose_json();
        v["dose_mg"] = json!("35 mg");
        let e = event_from_json(v).expect_err("string dose");
        assert_eq!(e.field, "dose_mg");
        assert!(e.reason.contains("invalid type: string \"35 mg\", expected f64"), "{e}");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let mut v = dose_json();
        v.as_object_mut().expect("object").remove("route");
        let e = event_from_json(v).expect_err("missing route");
        assert_eq!((e.field.as_str(), e.reason.as_str()), ("route", "required field is missing"));

        let mut v = dose_json();
        v["wieght_kg"] = json!(70);
        let e = event_from_json(v).expect_err("typo");
        assert_eq!(e.field, "wieght_kg");
        assert!(e.reason.starts_with("unknown field; expected"), "{e}");
    }

    #[test]
    fn nested_errors_carry_the_array_path() {
        let at = Timestamp::parse_rfc3339("2026-05-04T09:30:00Z").expect("valid");
        let mut v = event_to_json(&sample::adverse_event("c1", "p1", "R1", at).into());
        v["reactions"][1]["outcome"] = json!("better");
        let e = event_from_json(v).expect_err("bad enum");
        assert_eq!(e.field, "reactions[1].outcome");
        assert!(e.reason.contains("unknown variant `better`"), "{e}");

        let mut v = event_to_json(&sample::adverse_event("c1", "p1", "R1", at).into());
        v["reactions"][0]["seriousness"].as_object_mut().expect("object").remove("death");
        let e = event_from_json(v).expect_err("missing criterion");
        assert_eq!(e.field, "reactions[0].seriousness.death");
    }

    #[test]
    fn enrolment_enums_are_checked_by_name() {
        let at = Timestamp::parse_rfc3339("2026-05-04T08:00:00Z").expect("valid");
        let enrolment = || event_to_json(&sample::enrolment("c1", "p1", at).into());
        let v = enrolment();
        assert_eq!(v["type"], "patient_enrolment");
        assert_eq!(v["age_band"], "age_45_54");
        assert_eq!(v["sex"], "female");

        let mut v = enrolment();
        v["age_band"] = json!("45-54");
        let e = event_from_json(v).expect_err("a label is not a symbol");
        assert_eq!(e.field, "age_band");
        assert!(e.reason.contains("unknown variant `45-54`"), "{e}");

        let mut v = enrolment();
        v["sex"] = json!("F");
        assert_eq!(event_from_json(v).expect_err("bad sex").field, "sex");

        // The optional baseline may be left out or sent as null.
        let mut v = enrolment();
        let map = v.as_object_mut().expect("object");
        map.remove("baseline_urinary_score");
        map.insert("prior_substance_use_disorder".into(), Value::Null);
        let ClinicEvent::PatientEnrolment(e) = event_from_json(v).expect("parses") else {
            panic!("an enrolment");
        };
        assert_eq!((e.baseline_urinary_score, e.prior_substance_use_disorder), (None, None));
    }

    #[test]
    fn bad_times_and_ids_are_rejected_with_examples() {
        let mut v = dose_json();
        v["administered_at"] = json!("04/05/2026 09:30");
        let e = event_from_json(v).expect_err("bad time");
        assert_eq!(e.field, "administered_at");
        assert!(e.reason.contains("RFC 3339"), "{e}");
        let mut v = dose_json();
        v["event_id"] = json!("42");
        assert_eq!(event_from_json(v).expect_err("bad id").field, "event_id");
    }

    #[test]
    fn received_at_and_non_objects_are_refused() {
        let mut v = dose_json();
        v["received_at"] = json!("2026-05-04T09:30:00Z");
        assert_eq!(event_from_json(v).expect_err("server field").field, "received_at");
        assert!(event_from_json(json!([1, 2])).expect_err("array").reason.contains("an array"));
    }
}
