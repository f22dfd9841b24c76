//! Turning a request body into accepted events or field-level errors. No I/O.
//!
//! A request is all-or-nothing: if any event is malformed, invalid or belongs to another clinic,
//! no event of the request is produced, and every problem is reported with its event index.

use std::collections::HashMap;

use pv_events::{ClinicEvent, EventId, FieldError, Limits, Timestamp, event_from_json, validate};
use serde::Serialize;

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON object (`application/json`).
    Single,
    /// One JSON object per line (`application/x-ndjson`); blank lines are ignored.
    Ndjson,
}

impl Framing {
    /// The framing a `Content-Type` value names, if supported.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Self> {
        let mime = content_type?.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => Some(Framing::Single),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Some(Framing::Ndjson),
            _ => None,
        }
    }
}

/// One problem with one event of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventError {
    /// 0-based index of the event in the request.
    pub index: usize,
    /// 1-based line of the body (NDJSON) where the event starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// JSON path of the field, `""` for the event as a whole.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The body is not JSON / NDJSON (HTTP 400).
    Malformed(Vec<EventError>),
    /// The body holds no event (HTTP 400).
    Empty,
    /// More events than allowed (HTTP 413).
    TooManyEvents {
        /// Events found.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// Some event names another clinic (HTTP 403).
    WrongClinic(Vec<EventError>),
    /// Some event fails type or semantic checks (HTTP 422).
    Invalid(Vec<EventError>),
}

/// Parses and checks a whole request body for `clinic_id`, stamping `received_at` on success.
pub fn ingest(
    body: &[u8],
    framing: Framing,
    clinic_id: &str,
    limits: &Limits,
    max_events: usize,
    now: Timestamp,
) -> Result<Vec<ClinicEvent>, Rejection> {
    let values = parse(body, framing, max_events)?;
    let mut events = Vec::with_capacity(values.len());
    let mut invalid = Vec::new();
    let mut foreign = Vec::new();
    let mut seen: HashMap<EventId, usize> = HashMap::with_capacity(values.len());
    for (index, (line, value)) in values.into_iter().enumerate() {
        let err = |e: FieldError| EventError { index, line, field: e.field, reason: e.reason };
        let mut event = match event_from_json(value) {
            Ok(event) => event,
            Err(e) => {
                invalid.push(err(e));
                continue;
            }
        };
        if event.clinic_id() != clinic_id {
            foreign.push(err(FieldError::new(
                "clinic_id",
                format!(
                    "the token belongs to clinic `{clinic_id}`; it cannot submit events for `{}`",
                    event.clinic_id()
                ),
            )));
            continue;
        }
        if let Some(first) = seen.insert(event.event_id(), index) {
            invalid.push(err(FieldError::new(
                "event_id",
                format!("duplicates the event_id of event {first} in this request"),
            )));
        }
        invalid.extend(validate(&event, limits, now).into_iter().map(err));
        event.set_received_at(now);
        events.push(event);
    }
    if !foreign.is_empty() {
        return Err(Rejection::WrongClinic(foreign));
    }
    if !invalid.is_empty() {
        return Err(Rejection::Invalid(invalid));
    }
    Ok(events)
}

/// Splits and parses the body into JSON values, each with its 1-based line (NDJSON only).
fn parse(
    body: &[u8],
    framing: Framing,
    max_events: usize,
) -> Result<Vec<(Option<usize>, serde_json::Value)>, Rejection> {
    let malformed = |index, line, e: serde_json::Error| EventError {
        index,
        line,
        field: String::new(),
        reason: format!("malformed JSON: {e}"),
    };
    match framing {
        Framing::Single => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(Rejection::Empty);
            }
            serde_json::from_slice(body)
                .map(|v| vec![(None, v)])
                .map_err(|e| Rejection::Malformed(vec![malformed(0, None, e)]))
        }
        Framing::Ndjson => {
            let lines: Vec<(usize, &[u8])> = body
                .split(|&b| b == b'\n')
                .enumerate()
                .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
                .map(|(i, l)| (i + 1, l))
                .collect();
            if lines.is_empty() {
                return Err(Rejection::Empty);
            }
            if lines.len() > max_events {
                return Err(Rejection::TooManyEvents { found: lines.len(), max: max_events });
            }
            let mut values = Vec::with_capacity(lines.len());
            let mut errors = Vec::new();
            for (index, (line, text)) in lines.into_iter().enumerate() {
                match serde_json::from_slice(text) {
                    Ok(v) => values.push((Some(line), v)),
                    Err(e) => errors.push(malformed(index, Some(line), e)),
                }
            }
            if errors.is_empty() { Ok(values) } else { Err(Rejection::Malformed(errors)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use pv_events::{EventKind, event_to_json, sample};

    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-05-04T12:00:00Z").expect("valid")
    }

    fn line(event: impl Into<ClinicEvent>) -> String {
        event_to_json(&event.into()).to_string()
    }

    fn run(body: &str, framing: Framing) -> Result<Vec<ClinicEvent>, Rejection> {
        ingest(body.as_bytes(), framing, "north", &Limits::default(), 100, now())
    }

    fn at() -> Timestamp {
        Timestamp::parse_rfc3339("2026-05-04T09:00:00Z").expect("valid")
    }

    #[test]
    fn a_good_batch_is_accepted_and_stamped() {
        let body = format!(
            "{}\n{}\n\n{}\n{}\n",
            line(sample::enrolment("north", "p1", at())),
            line(sample::dose("north", "p1", 1, at())),
            line(sample::monitoring("north", "p1", 1, at())),
            line(sample::adverse_event("north", "p1", "R1", at()))
        );
        let events = run(&body, Framing::Ndjson).expect("accepted");
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].kind(), EventKind::PatientEnrolment);
        assert!(events.iter().all(|e| e.received_at() == now()));
    }

    #[test]
    fn one_bad_event_rejects_the_request_and_names_its_index_and_line() {
        let mut bad = sample::dose("north", "p1", 2, at());
        bad.dose_mg = -1.0;
        let body = format!("{}\n{}\n", line(sample::dose("north", "p1", 1, at())), line(bad));
        let Err(Rejection::Invalid(errors)) = run(&body, Framing::Ndjson) else { panic!("must be invalid") };
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].index, errors[0].line, errors[0].field.as_str()), (1, Some(2), "dose_mg"));
    }

    #[test]
    fn malformed_lines_are_400_with_line_numbers() {
        let body = format!("{}\n{{\"type\": \n", line(sample::dose("north", "p1", 1, at())));
        let Err(Rejection::Malformed(errors)) = run(&body, Framing::Ndjson) else {
            panic!("must be malformed")
        };
        assert_eq!((errors[0].index, errors[0].line), (1, Some(2)));
        assert!(errors[0].reason.starts_with("malformed JSON"), "{}", errors[0].reason);
        assert!(matches!(run("{not json", Framing::Single), Err(Rejection::Malformed(_))));
        assert_eq!(run("  \n", Framing::Ndjson), Err(Rejection::Empty));
        assert_eq!(run("", Framing::Single), Err(Rejection::Empty));
    }

    #[test]
    fn another_clinics_event_is_forbidden_even_when_also_invalid() {
        let mut other = sample::dose("south", "p1", 1, at());
        other.dose_mg = 0.0;
        let body = format!("{}\n{}", line(sample::dose("north", "p1", 1, at())), line(other));
        let Err(Rejection::WrongClinic(errors)) = run(&body, Framing::Ndjson) else {
            panic!("must be forbidden")
        };
        assert_eq!((errors[0].index, errors[0].field.as_str()), (1, "clinic_id"));
        assert!(errors[0].reason.contains("`south`"));
    }

    #[test]
    fn duplicate_ids_within_a_request_are_invalid() {
        let d = sample::dose("north", "p1", 1, at());
        let body = format!("{}\n{}", line(d.clone()), line(d));
        let Err(Rejection::Invalid(errors)) = run(&body, Framing::Ndjson) else { panic!("must be invalid") };
        assert_eq!((errors[0].index, errors[0].field.as_str()), (1, "event_id"));
    }

    #[test]
    fn too_many_events_is_refused_before_parsing() {
        let body = "{}\n".repeat(101);
        assert_eq!(run(&body, Framing::Ndjson), Err(Rejection::TooManyEvents { found: 101, max: 100 }));
    }

    #[test]
    fn content_types_map_to_framings() {
        assert_eq!(
            Framing::from_content_type(Some("application/json; charset=utf-8")),
            Some(Framing::Single)
        );
        assert_eq!(Framing::from_content_type(Some("application/x-ndjson")), Some(Framing::Ndjson));
        assert_eq!(Framing::from_content_type(Some("text/plain")), None);
        assert_eq!(Framing::from_content_type(None), None);
    }
}
