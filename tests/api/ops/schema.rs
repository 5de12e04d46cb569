//! A JSON Schema check of the subset the OpenAPI document uses (`$ref` within the document,
//! `type` (one or several), `required`, `properties`, `items`, `enum`, `const`, `allOf`):
//! enough to hold sample responses to their documented shapes without another dependency.

use serde_json::Value;

/// Every place `value` breaks `schema`, as `path: why`; empty when it conforms.
pub fn violations(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(doc, schema, value, "$", &mut out);
    out
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
            resolve(doc, target)
        }
        None => schema,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

fn check(doc: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, v, at, out);
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, v) => {
            out.push(format!("{at}: expected {t}, got {v}"));
            return;
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_matches(t.as_str().unwrap_or(""), v)) => {
            out.push(format!("{at}: expected one of {ts:?}, got {v}"));
            return;
        }
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        out.push(format!("{at}: {v} is not one of {options:?}"));
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        out.push(format!("{at}: {v} is not {c}"));
    }
    if let Some(obj) = v.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                out.push(format!("{at}: missing {name}"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, s) in props {
                if let Some(value) = obj.get(name) {
                    check(doc, s, value, &format!("{at}.{name}"), out);
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, value) in arr.iter().enumerate() {
            check(doc, items, value, &format!("{at}[{i}]"), out);
        }
    }
}

#[test]
fn the_checker_finds_what_it_should() {
    let doc = serde_json::json!({"components": {"schemas": {"A": {
        "type": "object", "required": ["id"],
        "properties": {"id": {"type": "string"}, "n": {"type": ["integer", "null"]},
                       "s": {"enum": ["x", "y"]}, "list": {"type": "array", "items": {"type": "boolean"}}}
    }}}});
    let a = serde_json::json!({"$ref": "#/components/schemas/A"});
    assert!(
        violations(
            &doc,
            &a,
            &serde_json::json!({"id": "1", "n": null, "s": "x", "list": [true]})
        )
        .is_empty()
    );
    assert_eq!(violations(&doc, &a, &serde_json::json!({"n": 1})).len(), 1);
    assert_eq!(
        violations(
            &doc,
            &a,
            &serde_json::json!({"id": 1, "s": "z", "list": [1]})
        )
        .len(),
        3
    );
}
