//! One cell: its text to the JSON value of its field, and back.

use serde_json::{Map, Number, Value};

use crate::layout::{CRITERIA, Cell};

/// The JSON value of a non-empty cell, or why its text is not of the column's type.
pub(crate) fn to_json(cell: Cell, text: &str) -> Result<Value, String> {
    match cell {
        Cell::Text | Cell::Time | Cell::Date | Cell::Uuid => Ok(Value::String(text.to_owned())),
        Cell::Integer => {
            text.parse::<i64>().map(Value::from).map_err(|_| format!("`{text}` is not a whole number"))
        }
        Cell::Number => number(text),
        Cell::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not `true` or `false`")),
        },
        Cell::Criteria => criteria(text),
    }
}

/// The JSON value of an empty cell: absent, except criteria (none met).
pub(crate) fn empty(cell: Cell) -> Option<Value> {
    (cell == Cell::Criteria).then(|| criteria("").unwrap_or(Value::Null))
}

fn number(text: &str) -> Result<Value, String> {
    let parsed = text.parse::<f64>().ok().filter(|x| x.is_finite()).and_then(Number::from_f64);
    match parsed {
        Some(n) => Ok(Value::Number(n)),
        None if text.contains(',') => {
            Err(format!("`{text}` is not a number (write decimals with a point: 12.5)"))
        }
        None => Err(format!("`{text}` is not a number")),
    }
}

fn criteria(text: &str) -> Result<Value, String> {
    let mut map: Map<String, Value> =
        CRITERIA.iter().map(|c| ((*c).to_owned(), Value::Bool(false))).collect();
    for name in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        match map.get_mut(name) {
            Some(v) => *v = Value::Bool(true),
            None => {
                return Err(format!(
                    "unknown seriousness criterion `{name}`; expected any of {}, separated by `;`",
                    CRITERIA.join(", ")
                ));
            }
        }
    }
    Ok(Value::Object(map))
}

/// The cell text of a field's JSON value (absent or null: empty).
pub(crate) fn from_json(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(map)) => CRITERIA
            .iter()
            .filter(|c| map.get(**c) == Some(&Value::Bool(true)))
            .copied()
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_cells_become_json_values() {
        assert_eq!(to_json(Cell::Integer, "42"), Ok(json!(42)));
        assert_eq!(to_json(Cell::Number, "12.5"), Ok(json!(12.5)));
        assert_eq!(to_json(Cell::Boolean, "TRUE"), Ok(json!(true)));
        assert_eq!(to_json(Cell::Time, "2026-05-04T09:30:00Z"), Ok(json!("2026-05-04T09:30:00Z")));
        assert_eq!(
            to_json(Cell::Criteria, "death; hospitalisation"),
            Ok(json!({"death": true, "life_threatening": false, "hospitalisation": true,
                "disability": false, "congenital_anomaly": false, "other_medically_important": false}))
        );
        assert_eq!(empty(Cell::Criteria), to_json(Cell::Criteria, "").ok());
        assert_eq!(empty(Cell::Number), None);
    }

    #[test]
    fn bad_cells_say_what_was_expected() {
        assert_eq!(to_json(Cell::Integer, "4.5"), Err("`4.5` is not a whole number".into()));
        assert!(to_json(Cell::Number, "12,5").expect_err("comma").contains("with a point"));
        assert!(to_json(Cell::Number, "NaN").is_err());
        assert_eq!(to_json(Cell::Boolean, "yes"), Err("`yes` is not `true` or `false`".into()));
        let e = to_json(Cell::Criteria, "death;fatal").expect_err("unknown");
        assert!(e.contains("`fatal`") && e.contains("other_medically_important"), "{e}");
    }

    #[test]
    fn json_values_become_cells_that_read_back() {
        for (cell, text) in [(Cell::Integer, "7"), (Cell::Number, "0.35"), (Cell::Boolean, "false")] {
            let v = to_json(cell, text).expect("valid");
            assert_eq!(from_json(Some(&v)), text);
        }
        let serious = to_json(Cell::Criteria, "hospitalisation;death").expect("valid");
        assert_eq!(from_json(Some(&serious)), "death;hospitalisation");
        assert_eq!(from_json(None), "");
        assert_eq!(from_json(Some(&Value::Null)), "");
    }
}
