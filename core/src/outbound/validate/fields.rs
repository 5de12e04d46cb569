//! The field-level checks every message kind is built from: an object with only the allowed
//! keys, a string within Meta's character limit, an http(s) URL, a number in a range.

use super::{Invalid, bad};
use serde_json::{Map, Value};

pub(super) fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Invalid> {
    v.as_object()
        .ok_or_else(|| bad(format!("{what} must be an object")))
}

pub(super) fn only(o: &Map<String, Value>, what: &str, allowed: &[&str]) -> Result<(), Invalid> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(format!(
            "{what}: unknown field {k:?} (allowed: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A string of 1..=max characters (Meta counts characters, not bytes).
pub(super) fn string<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    what: &str,
    max: usize,
    required: bool,
) -> Result<Option<&'a str>, Invalid> {
    match o.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n == 0 && required {
                Err(bad(format!("{what}.{key} must not be empty")))
            } else if n > max {
                Err(bad(format!(
                    "{what}.{key} is {n} characters; at most {max} allowed"
                )))
            } else {
                Ok(Some(s))
            }
        }
        None | Some(Value::Null) => Err(bad(format!("{what}.{key} is required"))),
        Some(_) => Err(bad(format!("{what}.{key} must be a string"))),
    }
}

pub(super) fn http_url(s: &str, what: &str) -> Result<(), Invalid> {
    if (s.starts_with("https://") || s.starts_with("http://"))
        && s.len() > 8
        && !s.contains(char::is_whitespace)
    {
        Ok(())
    } else {
        Err(bad(format!("{what} must be an http(s) URL")))
    }
}

pub(super) fn number(
    o: &Map<String, Value>,
    key: &str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<(), Invalid> {
    match o.get(key).and_then(Value::as_f64) {
        Some(x) if range.contains(&x) => Ok(()),
        _ => Err(bad(format!("location.{key} must be a number in {range:?}"))),
    }
}
