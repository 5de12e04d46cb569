//! The check of a template send against the stored template: missing or not approved
//! (132001), parameter count (132000) and parameter type (132012), component by component.

use serde_json::{Map, Value};

use super::parse::*;
use crate::graph::errors::GraphError;
use crate::graph::messages::TemplateRef;
use crate::graph::records::Template;

pub(super) fn component<'a>(tpl: &'a Template, ctype: &str) -> Option<&'a Map<String, Value>> {
    tpl.components
        .iter()
        .filter_map(Value::as_object)
        .find(|c| {
            c.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(ctype))
        })
}

pub(super) fn sent_params<'a>(
    send: &'a TemplateRef,
    ctype: &str,
    index: Option<usize>,
) -> Vec<&'a Value> {
    send.components
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some(ctype))
        .filter(|c| {
            index.is_none_or(|i| match c.get("index") {
                Some(Value::String(s)) => s.parse::<usize>().ok() == Some(i),
                Some(Value::Number(n)) => n.as_u64() == Some(i as u64),
                _ => false,
            })
        })
        .flat_map(|c| {
            c.get("parameters")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect()
}

pub(super) fn ptype(p: &Value) -> &str {
    p.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Checks a template send against the stored, approved template.
pub fn check_send(
    templates: &[Template],
    waba_id: &str,
    send: &TemplateRef,
) -> Result<(), GraphError> {
    let tpl = templates
        .iter()
        .find(|t| t.waba_id == waba_id && t.name == send.name && t.language == send.language)
        .ok_or_else(|| {
            GraphError::new(
                132001,
                format!(
                    "template name ({}) does not exist in {}",
                    send.name, send.language
                ),
            )
        })?;
    match tpl.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => {
            return Err(GraphError::new(
                132015,
                format!("template {} is paused", tpl.name),
            ));
        }
        "DISABLED" => {
            return Err(GraphError::new(
                132016,
                format!("template {} is disabled", tpl.name),
            ));
        }
        other => {
            return Err(GraphError::new(
                132001,
                format!(
                    "template name ({}) in {} is not approved (status {other})",
                    send.name, send.language
                ),
            ));
        }
    }
    let mismatch = |what: &str, want: usize, got: usize| {
        GraphError::new(
            132000,
            format!(
                "number of localizable_params ({got}) does not match the expected number of params ({want}) in {what}"
            ),
        )
    };
    // Header.
    let header_params = sent_params(send, "header", None);
    match component(tpl, "HEADER") {
        None => {
            if !header_params.is_empty() {
                return Err(mismatch("header", 0, header_params.len()));
            }
        }
        Some(h) => {
            let format = h
                .get("format")
                .and_then(Value::as_str)
                .unwrap_or("TEXT")
                .to_ascii_lowercase();
            let want = if format == "text" {
                variables(h.get("text").and_then(Value::as_str).unwrap_or("")).len()
            } else {
                1
            };
            if header_params.len() != want {
                return Err(mismatch("header", want, header_params.len()));
            }
            for p in &header_params {
                if ptype(p) != format {
                    return Err(GraphError::new(
                        132012,
                        format!(
                            "header parameter of type {} does not match the template's {format} header",
                            ptype(p)
                        ),
                    ));
                }
            }
        }
    }
    // Body.
    let body_vars = component(tpl, "BODY")
        .and_then(|b| b.get("text").and_then(Value::as_str))
        .map(variables)
        .unwrap_or_default();
    let body_params = sent_params(send, "body", None);
    if body_params.len() != body_vars.len() {
        return Err(mismatch("body", body_vars.len(), body_params.len()));
    }
    for p in &body_params {
        if !matches!(ptype(p), "text" | "currency" | "date_time") {
            return Err(GraphError::new(
                132012,
                format!("body parameter of type {} is not allowed", ptype(p)),
            ));
        }
    }
    if tpl.parameter_format == "NAMED" {
        for p in &body_params {
            let name = p
                .get("parameter_name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !body_vars.iter().any(|v| v == name) {
                return Err(GraphError::new(
                    132000,
                    format!("parameter_name \"{name}\" is not a parameter of this template"),
                ));
            }
        }
    }
    // Buttons.
    let buttons: Vec<&Value> = component(tpl, "BUTTONS")
        .and_then(|b| b.get("buttons").and_then(Value::as_array))
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    for c in send
        .components
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("button"))
    {
        let idx = match c.get("index") {
            Some(Value::String(s)) => s.parse::<usize>().unwrap_or(usize::MAX),
            Some(Value::Number(n)) => n.as_u64().unwrap_or(u64::MAX) as usize,
            _ => usize::MAX,
        };
        if idx >= buttons.len() {
            return Err(GraphError::new(
                132000,
                format!("button index {idx} does not exist in the template"),
            ));
        }
    }
    for (i, b) in buttons.iter().enumerate() {
        let btype = b
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase();
        let got = sent_params(send, "button", Some(i)).len();
        let want = match btype.as_str() {
            "URL" => variables(b.get("url").and_then(Value::as_str).unwrap_or("")).len(),
            "COPY_CODE" => 1,
            _ => got.min(1),
        };
        if got != want {
            return Err(mismatch(&format!("button {i}"), want, got));
        }
    }
    Ok(())
}
