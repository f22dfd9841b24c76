//! Avro's Parsing Canonical Form and its CRC-64-AVRO fingerprint, as the specification defines
//! them ("Schema Resolution" > "Parsing Canonical Form for Schemas"), so that our single-object
//! headers carry the fingerprint every conforming client computes.
//!
//! The apache-avro crate (0.22) keeps a primitive with a logical type as `{"type":"string"}`
//! where the specification reduces it to `"string"` (STRIP removes `logicalType`, then
//! PRIMITIVES applies), so its fingerprints of our schemas with `uuid`, `timestamp-millis` or
//! `date` differ from fastavro's and Java's. Those are the legacy fingerprints: still accepted
//! by readers (messages already in the topics), never written.
//!
//! The transformations: PRIMITIVES (simple form), FULLNAMES (names and references qualified with
//! the namespace in force), STRIP (only `type`, `name`, `fields`, `symbols`, `items`, `values`,
//! `size` stay), ORDER (in that order, `name` first), STRINGS (UTF-8, no needless escapes),
//! INTEGERS (no quotes, no leading zeros) and WHITESPACE (none outside strings).

use serde_json::Value;

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

/// The Parsing Canonical Form of the schema `text`, or why it is not an Avro schema.
pub fn canonical_form(text: &str) -> Result<String, String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = String::with_capacity(text.len());
    write(&schema, None, &mut out)?;
    Ok(out)
}

/// CRC-64-AVRO (Rabin) fingerprint of `bytes`.
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    let table = table();
    bytes.iter().fold(EMPTY, |fp, &b| (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xff) as usize])
}

/// The 8 bytes a single-object header carries: the fingerprint of the canonical form, little-endian.
pub fn single_object_fingerprint(text: &str) -> Result<[u8; 8], String> {
    Ok(crc64_avro(canonical_form(text)?.as_bytes()).to_le_bytes())
}

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

fn table() -> [u64; 256] {
    let mut table = [0u64; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut fp = i as u64;
        for _ in 0..8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
        }
        *slot = fp;
    }
    table
}

fn quoted(s: &str, out: &mut String) {
    // serde_json escapes only what JSON requires and writes other characters as UTF-8 (STRINGS).
    out.push_str(&Value::String(s.to_owned()).to_string());
}

/// The full name of a named type, and the namespace it sets for what it encloses.
fn full_name(name: &str, namespace: Option<&str>, enclosing: Option<&str>) -> String {
    if name.contains('.') {
        return name.to_owned();
    }
    match namespace.filter(|n| !n.is_empty()).or(enclosing.filter(|n| !n.is_empty())) {
        Some(ns) => format!("{ns}.{name}"),
        None => name.to_owned(),
    }
}

fn namespace_of(full: &str) -> Option<&str> {
    full.rsplit_once('.').map(|(ns, _)| ns)
}

fn write(schema: &Value, enclosing: Option<&str>, out: &mut String) -> Result<(), String> {
    match schema {
        Value::String(name) if PRIMITIVES.contains(&name.as_str()) => quoted(name, out),
        Value::String(reference) => quoted(&full_name(reference, None, enclosing), out),
        Value::Array(branches) => {
            out.push('[');
            for (i, b) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(b, enclosing, out)?;
            }
            out.push(']');
        }
        Value::Object(o) => write_complex(o, enclosing, out)?,
        other => return Err(format!("{other} is not a schema")),
    }
    Ok(())
}

fn write_complex(
    o: &serde_json::Map<String, Value>,
    enclosing: Option<&str>,
    out: &mut String,
) -> Result<(), String> {
    let ty = o.get("type").ok_or("a schema object without \"type\"")?;
    let Value::String(ty) = ty else {
        // {"type": {...}} or {"type": [...]}: the inner schema is the schema.
        return write(ty, enclosing, out);
    };
    match ty.as_str() {
        t if PRIMITIVES.contains(&t) => quoted(t, out),
        "record" | "error" | "enum" | "fixed" => write_named(o, ty, enclosing, out)?,
        "array" => {
            out.push_str("{\"type\":\"array\",\"items\":");
            write(o.get("items").ok_or("an array without \"items\"")?, enclosing, out)?;
            out.push('}');
        }
        "map" => {
            out.push_str("{\"type\":\"map\",\"values\":");
            write(o.get("values").ok_or("a map without \"values\"")?, enclosing, out)?;
            out.push('}');
        }
        reference => quoted(&full_name(reference, None, enclosing), out),
    }
    Ok(())
}

fn write_named(
    o: &serde_json::Map<String, Value>,
    ty: &str,
    enclosing: Option<&str>,
    out: &mut String,
) -> Result<(), String> {
    let name = o.get("name").and_then(Value::as_str).ok_or_else(|| format!("a {ty} without a \"name\""))?;
    let full = full_name(name, o.get("namespace").and_then(Value::as_str), enclosing);
    out.push_str("{\"name\":");
    quoted(&full, out);
    out.push_str(",\"type\":");
    quoted(ty, out);
    match ty {
        "enum" => {
            out.push_str(",\"symbols\":");
            let symbols = o.get("symbols").and_then(Value::as_array).ok_or("an enum without \"symbols\"")?;
            out.push_str(&Value::Array(symbols.clone()).to_string());
        }
        "fixed" => {
            let size = o.get("size").ok_or("a fixed without \"size\"")?;
            let size = match size {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or("a fixed whose \"size\" is not a whole number")?;
            out.push_str(&format!(",\"size\":{size}"));
        }
        _ => write_fields(o, namespace_of(&full), out)?,
    }
    out.push('}');
    Ok(())
}

fn write_fields(
    o: &serde_json::Map<String, Value>,
    namespace: Option<&str>,
    out: &mut String,
) -> Result<(), String> {
    let fields = o.get("fields").and_then(Value::as_array).ok_or("a record without \"fields\"")?;
    out.push_str(",\"fields\":[");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let name = f.get("name").and_then(Value::as_str).ok_or("a field without a \"name\"")?;
        out.push_str("{\"name\":");
        quoted(name, out);
        out.push_str(",\"type\":");
        write(f.get("type").ok_or_else(|| format!("field {name} without a \"type\""))?, namespace, out)?;
        out.push('}');
    }
    out.push(']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's test vectors (Avro's `share/test/data/schema-tests.txt`): input,
    /// canonical form, and the fingerprint as a signed 64-bit integer where the file gives one.
    const VECTORS: &[(&str, &str, Option<i64>)] = &[
        (r#""null""#, r#""null""#, Some(7195948357588979594)),
        (r#"{"type":"null"}"#, r#""null""#, None),
        (r#""boolean""#, r#""boolean""#, Some(-6970731678124411036)),
        (r#"{"type":"boolean"}"#, r#""boolean""#, None),
        (r#""int""#, r#""int""#, Some(8247732601305521295)),
        (r#"{"type":"int"}"#, r#""int""#, None),
        (r#""long""#, r#""long""#, Some(-3434872931120570953)),
        (r#"{"type":"long"}"#, r#""long""#, None),
        (r#""float""#, r#""float""#, Some(5583340709985441680)),
        (r#"{"type":"float"}"#, r#""float""#, None),
        (r#""double""#, r#""double""#, Some(-8181574048448539266)),
        (r#"{"type":"double"}"#, r#""double""#, None),
        (r#""bytes""#, r#""bytes""#, Some(5746618253357095269)),
        (r#"{"type":"bytes"}"#, r#""bytes""#, None),
        (r#""string""#, r#""string""#, Some(-8142146995180207161)),
        (r#"{"type":"string"}"#, r#""string""#, None),
        ("[  ]", "[]", Some(-1241056759729112623)),
        (r#"[ "int"  ]"#, r#"["int"]"#, Some(-5232228896498058493)),
        (r#"[ "int" , {"type":"boolean"} ]"#, r#"["int","boolean"]"#, Some(5392556393470105090)),
        (
            r#"{"fields":[], "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
            r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
            Some(5916914534497305771),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
            r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
            Some(-4616218487480524110),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}"#,
            r#"{"name":"foo","type":"record","fields":[]}"#,
            Some(-4824392279771201922),
        ),
        (
            r#"{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}"#,
            Some(7843277075252814651),
        ),
        (
            r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},
                {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
                "type":"record", "name":"foo" }"#,
            r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
            Some(-4860222112080293046),
        ),
        (
            r#"{"type":"enum", "name":"foo", "symbols":["A1"]}"#,
            r#"{"name":"foo","type":"enum","symbols":["A1"]}"#,
            Some(-6342190197741309591),
        ),
        (
            r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
            r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
            Some(-4448647247586288245),
        ),
        (
            r#"{"name":"foo","type":"fixed","size":15}"#,
            r#"{"name":"foo","type":"fixed","size":15}"#,
            Some(1756455273707447556),
        ),
        (
            r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
            r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
            Some(-3064184465700546786),
        ),
        (
            r#"{ "items":{"type":"null"}, "type":"array"}"#,
            r#"{"type":"array","items":"null"}"#,
            Some(-589620603366471059),
        ),
        (
            r#"{ "values":"string", "type":"map"}"#,
            r#"{"type":"map","values":"string"}"#,
            Some(-8732877298790414990),
        ),
        (
            r#"{"name":"PigValue","type":"record",
                "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
            r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
            Some(-1759257747318642341),
        ),
    ];

    #[test]
    fn the_specification_test_vectors_hold() {
        for (input, canonical, fingerprint) in VECTORS {
            let form = canonical_form(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&form, canonical, "{input}");
            if let Some(fp) = fingerprint {
                assert_eq!(crc64_avro(form.as_bytes()) as i64, *fp, "{input}");
            }
        }
    }

    #[test]
    fn a_logical_type_reduces_to_its_primitive_and_nested_names_take_the_namespace() {
        let schema = r#"{"type":"record","name":"R","namespace":"pv.x","doc":"d","fields":[
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
            {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["a","b"]}},
            {"name":"again","type":["null","Kind"]}]}"#;
        assert_eq!(
            canonical_form(schema).expect("schema"),
            r#"{"name":"pv.x.R","type":"record","fields":[{"name":"id","type":"string"},{"name":"at","type":"long"},{"name":"kind","type":{"name":"pv.x.Kind","type":"enum","symbols":["a","b"]}},{"name":"again","type":["null","pv.x.Kind"]}]}"#
        );
    }

    #[test]
    fn the_readme_worked_example_holds() {
        // README "The encoding on the wire"; fastavro 1.13.1 gives the same header bytes.
        let schema = r#"{"type":"record","name":"Ex","namespace":"pv.demo","doc":"an example",
            "fields":[{"name":"id","type":{"type":"string","logicalType":"uuid"}}]}"#;
        assert_eq!(
            canonical_form(schema).expect("schema"),
            r#"{"name":"pv.demo.Ex","type":"record","fields":[{"name":"id","type":"string"}]}"#
        );
        let header = single_object_fingerprint(schema).expect("schema");
        assert_eq!(header, [0xdc, 0x14, 0x08, 0x62, 0x0d, 0x77, 0xf6, 0x4c]);
    }

    #[test]
    fn not_a_schema_is_an_error_naming_what_is_missing() {
        assert!(canonical_form(r#"{"type":"record","fields":[]}"#).expect_err("no name").contains("name"));
        assert!(canonical_form("42").is_err());
        assert!(canonical_form("{").expect_err("not JSON").contains("JSON"));
    }
}
