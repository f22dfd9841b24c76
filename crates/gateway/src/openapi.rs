//! The gateway's OpenAPI 3.1 description, built from what the gateway is: the routes, the
//! error codes of [`crate::server::ErrorCode`] with their statuses, and the event bodies from the
//! current Avro schemas (`schemas/`), with one example per event kind. The same document is kept
//! in the repository (`openapi/gateway.json`, checked equal by a test) and served at
//! `GET /openapi.json`.

use pv_events::{ClinicEvent, EventId, EventKind, SchemaRegistry, Timestamp, event_to_json, sample};
use serde_json::{Map, Value, json};

use crate::server::ErrorCode;

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pv gateway: clinic event ingest",
            "version": "1",
            "description": "Clinics send enrolments, administrations, session-monitoring forms and adverse-event \
                reports. A 202 means every event of the request is durable on the event log; any refusal \
                means none was written. Retrying a request is always safe: events are identified by their \
                event_id. Times are RFC 3339 with an offset, dates YYYY-MM-DD, enums in lower case."
        },
        "paths": {
            "/v1/events": events_path(),
            "/healthz": text_get("Liveness: the process answers.", &[(200, "ok")]),
            "/readyz": text_get(
                "Readiness: the event log is reachable.",
                &[(200, "ready"), (503, "broker unreachable")]
            ),
            "/openapi.json": {"get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}
            }}
        },
        "components": {
            "securitySchemes": {"clinicToken": {"type": "http", "scheme": "bearer",
                "description": "The clinic's token; events may only be sent for the token's own clinic."}},
            "schemas": schemas()
        }
    })
}

fn text_get(summary: &str, answers: &[(u16, &str)]) -> Value {
    let responses: Map<String, Value> = answers
        .iter()
        .map(|(status, text)| {
            (
                status.to_string(),
                json!({"description": text, "content": {"text/plain": {"schema": {"type": "string"}}}}),
            )
        })
        .collect();
    json!({"get": {"summary": summary, "responses": responses}})
}

fn events_path() -> Value {
    let mut responses = Map::new();
    responses.insert(
        "202".into(),
        json!({"description": "Every event is durable on the event log (acks=all).",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}}),
    );
    for status in
        ErrorCode::ALL.iter().map(|c| c.status().as_u16()).collect::<std::collections::BTreeSet<_>>()
    {
        let codes: Vec<&str> =
            ErrorCode::ALL.iter().filter(|c| c.status().as_u16() == status).map(|c| c.as_str()).collect();
        let outcome = if status >= 500 {
            // The broker may have taken part of the request before failing to acknowledge it.
            "Nothing is confirmed (some events may have been written; retrying with the same event ids is safe)"
        } else {
            "Refused, nothing was written"
        };
        let mut answer = json!({
            "description": format!("{outcome}: {}.", codes.join(", ")),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        });
        if let Some(header) =
            ErrorCode::ALL.iter().filter(|c| c.status().as_u16() == status).find_map(|c| c.header())
        {
            answer["headers"] = json!({header: {"schema": {"type": "string"}}});
        }
        responses.insert(status.to_string(), answer);
    }
    let examples: Map<String, Value> =
        examples().into_iter().map(|(kind, event)| (kind.to_owned(), json!({"value": event}))).collect();
    json!({"post": {
        "summary": "Send events: one as application/json, or a batch as application/x-ndjson (one event per line).",
        "security": [{"clinicToken": []}],
        "requestBody": {"required": true, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Event"}, "examples": examples},
            "application/x-ndjson": {"schema": {"type": "string",
                "description": "Events as in application/json, one per line."}}
        }},
        "responses": responses
    }})
}

/// One example per event kind, with fixed ids, at a fixed past time.
pub fn examples() -> Vec<(&'static str, Value)> {
    let at = Timestamp::from_millis(1_777_887_000_000); // 2026-05-04T09:30:00Z
    let (clinic, patient) = ("clinic-01", "01-0001");
    let events: Vec<ClinicEvent> = vec![
        sample::enrolment(clinic, patient, at).into(),
        sample::dose(clinic, patient, 1, at).into(),
        sample::monitoring(clinic, patient, 1, at).into(),
        sample::adverse_event(clinic, patient, "AE-0001", at).into(),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.set_event_id(EventId(uuid_from(i as u128 + 1)));
            (e.kind().as_str(), event_to_json(&e))
        })
        .collect()
}

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0b6f_3c1e_6f2a_4c51_9d0e_2f4b_8a7c_0000 + n)
}

fn schemas() -> Value {
    let mut all = Map::new();
    all.insert(
        "Accepted".into(),
        json!({"type": "object", "required": ["accepted", "event_ids"], "properties": {
            "accepted": {"type": "integer", "minimum": 1},
            "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}}}}),
    );
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    all.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error", "message", "errors"], "properties": {
            "error": {"type": "string", "enum": codes},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/EventError"}}}}),
    );
    all.insert(
        "EventError".into(),
        json!({"type": "object", "required": ["index", "field", "reason"], "properties": {
            "index": {"type": "integer", "description": "0-based index of the event in the request"},
            "line": {"type": "integer", "description": "1-based line of the body where the event starts (NDJSON)"},
            "field": {"type": "string", "description": "JSON path of the field, empty for the event as a whole"},
            "reason": {"type": "string"}}}),
    );
    let mut kinds = Vec::new();
    for kind in EventKind::ALL {
        let Some(sv) = SchemaRegistry::global().current(kind.avro_name()) else { continue };
        let avro = serde_json::to_value(&sv.schema).unwrap_or(Value::Null);
        let name = sv.avro_name.rsplit('.').next().unwrap_or(&sv.avro_name).to_owned();
        all.insert(name.clone(), event_schema(kind.as_str(), &avro));
        kinds.push(json!({"$ref": format!("#/components/schemas/{name}")}));
    }
    all.insert("Event".into(), json!({"oneOf": kinds, "discriminator": {"propertyName": "type"}}));
    Value::Object(all)
}

/// The JSON body of an event kind from its Avro record schema (`received_at` is the gateway's).
fn event_schema(kind: &str, avro: &Value) -> Value {
    let mut schema = record_schema(avro, &["received_at"]);
    if let Some(props) = schema["properties"].as_object_mut() {
        props.insert("type".into(), json!({"const": kind}));
    }
    if let Some(required) = schema["required"].as_array_mut() {
        required.insert(0, json!("type"));
    }
    schema
}

fn record_schema(avro: &Value, skip: &[&str]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in avro["fields"].as_array().into_iter().flatten() {
        let Some(name) = f["name"].as_str() else { continue };
        if skip.contains(&name) {
            continue;
        }
        let (mut schema, nullable) = field_type(&f["type"]);
        if let Some(doc) = f["doc"].as_str() {
            schema["description"] = json!(doc);
        }
        if !nullable && f.get("default").is_none() {
            required.push(json!(name));
        }
        properties.insert(name.to_owned(), schema);
    }
    let mut out = json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties});
    if let Some(doc) = avro["doc"].as_str() {
        out["description"] = json!(doc);
    }
    out
}

/// The JSON Schema of an Avro type, and whether it admits null.
fn field_type(t: &Value) -> (Value, bool) {
    match t {
        Value::Array(branches) => {
            let nullable = branches.iter().any(|b| b == "null");
            let others: Vec<Value> =
                branches.iter().filter(|b| *b != "null").map(|b| field_type(b).0).collect();
            let mut any: Vec<Value> = others;
            if nullable {
                any.push(json!({"type": "null"}));
            }
            (if any.len() == 1 { any.remove(0) } else { json!({"anyOf": any}) }, nullable)
        }
        Value::String(p) => (primitive(p, None), false),
        Value::Object(o) => {
            let logical = o.get("logicalType").and_then(Value::as_str);
            match o.get("type").and_then(Value::as_str) {
                Some("enum") => {
                    (json!({"type": "string", "enum": o.get("symbols").cloned().unwrap_or(json!([]))}), false)
                }
                Some("array") => (json!({"type": "array", "items": field_type(&o["items"]).0}), false),
                Some("record") => (record_schema(t, &[]), false),
                Some(p) => (primitive(p, logical), false),
                None => (json!({}), false),
            }
        }
        _ => (json!({}), false),
    }
}

fn primitive(p: &str, logical: Option<&str>) -> Value {
    match (p, logical) {
        ("string", Some("uuid")) => json!({"type": "string", "format": "uuid"}),
        ("long", Some("timestamp-millis")) => json!({"type": "string", "format": "date-time"}),
        ("int", Some("date")) => json!({"type": "string", "format": "date"}),
        ("string", _) => json!({"type": "string"}),
        ("int" | "long", _) => json!({"type": "integer"}),
        ("float" | "double", _) => json!({"type": "number"}),
        ("boolean", _) => json!({"type": "boolean"}),
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = include_str!("../../../openapi/gateway.json");

    #[test]
    fn the_committed_document_is_the_gateways() {
        let built = format!("{}\n", serde_json::to_string_pretty(&document()).expect("json"));
        if std::env::var_os("PV_UPDATE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/gateway.json");
            std::fs::write(path, &built).expect("write openapi/gateway.json");
            return;
        }
        assert!(
            built == COMMITTED,
            "openapi/gateway.json is out of date: run `PV_UPDATE_OPENAPI=1 cargo test -p pv-gateway openapi`"
        );
    }

    #[test]
    fn every_error_code_and_status_is_described() {
        let doc = document();
        let responses = &doc["paths"]["/v1/events"]["post"]["responses"];
        for code in ErrorCode::ALL {
            assert!(responses[code.status().as_str()].is_object(), "{} documented", code.status());
            let listed = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
                .as_array()
                .expect("enum");
            assert!(listed.contains(&json!(code.as_str())), "{}", code.as_str());
        }
        assert!(responses["202"].is_object());
        assert_eq!(responses["503"]["headers"]["Retry-After"]["schema"]["type"], "string");
        assert_eq!(responses["401"]["headers"]["WWW-Authenticate"]["schema"]["type"], "string");
    }

    #[test]
    fn event_bodies_follow_the_avro_schemas() {
        let doc = document();
        let dose = &doc["components"]["schemas"]["DoseAdministered"];
        assert_eq!(dose["properties"]["type"]["const"], "dose_administered");
        assert_eq!(dose["properties"]["event_id"]["format"], "uuid");
        assert_eq!(dose["properties"]["administered_at"]["format"], "date-time");
        assert_eq!(dose["properties"]["weight_kg"]["anyOf"][1]["type"], "null");
        assert!(dose["properties"]["received_at"].is_null(), "the gateway sets it");
        let required: Vec<&str> =
            dose["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
        assert!(required.contains(&"dose_mg") && !required.contains(&"weight_kg"), "{required:?}");
        let report = &doc["components"]["schemas"]["AdverseEventReport"];
        assert_eq!(
            report["properties"]["reactions"]["items"]["properties"]["onset_date"]["anyOf"][0]["format"],
            "date"
        );
    }
}
