//! The field checks every message type shares: objects with only the allowed keys, required
//! and optional strings, lengths in characters, numbers and http(s) URLs, each failing with
//! Meta's code and the field's path.

use serde_json::{Map, Value};

use super::R;
use crate::graph::errors::GraphError;

pub(super) fn as_obj<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| GraphError::param(format!("Param {path} must be a JSON object.")))
}

pub(super) fn only_keys(m: &Map<String, Value>, allowed: &[&str], path: &str) -> R<()> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(GraphError::param(format!(
                "Unexpected key \"{k}\" on param \"{path}\"."
            )));
        }
    }
    Ok(())
}

pub(super) fn sub(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}['{key}']")
    }
}

pub(super) fn opt_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<Option<&'a str>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::invalid(format!(
            "Param {} must be a string.",
            sub(path, key)
        ))),
    }
}

pub(super) fn req_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<&'a str> {
    match opt_str(m, key, path)? {
        Some(s) => Ok(s),
        None => Err(GraphError::missing(format!(
            "The parameter {} is required.",
            sub(path, key)
        ))),
    }
}

/// A required, non-blank string of at most `max` characters.
pub(super) fn text_field<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
    max: usize,
) -> R<&'a str> {
    let s = req_str(m, key, path)?;
    check_len(s, &sub(path, key), max)?;
    Ok(s)
}

pub(super) fn check_len(s: &str, path: &str, max: usize) -> R<()> {
    if s.trim().is_empty() {
        return Err(GraphError::invalid(format!(
            "Param {path} must not be empty."
        )));
    }
    let n = s.chars().count();
    if n > max {
        return Err(GraphError::invalid(format!(
            "Param {path} is too long: {n} characters, at most {max} allowed."
        )));
    }
    Ok(())
}

pub(super) fn opt_text(m: &Map<String, Value>, key: &str, path: &str, max: usize) -> R<()> {
    if let Some(s) = opt_str(m, key, path)? {
        check_len(s, &sub(path, key), max)?;
    }
    Ok(())
}

pub(super) fn http_url(s: &str, path: &str) -> R<()> {
    let ok = (s.starts_with("https://") || s.starts_with("http://"))
        && reqwest::Url::parse(s).is_ok_and(|u| u.host_str().is_some());
    if ok {
        Ok(())
    } else {
        Err(GraphError::invalid(format!(
            "Param {path} must be a valid http(s) URL."
        )))
    }
}
