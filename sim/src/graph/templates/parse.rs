//! Creating a template the way Meta's reviewer takes it: name charset, language, category,
//! components, and the variables of each text with their examples.

use rand::RngExt;
use serde_json::{Map, Value};

use crate::graph::errors::GraphError;
use crate::graph::records::Template;

/// The `{{...}}` variables of a text, in order of appearance.
pub fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push(after[..end].trim().to_string());
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    out
}

// The daemon checks names like this too; the simulator checks on its own, not through it.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub(super) fn valid_language(code: &str) -> bool {
    let (lang, region) = match code.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (code, None),
    };
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()))
}

pub(super) fn bad(details: impl Into<String>) -> GraphError {
    GraphError::param(details)
}

/// Checks the variables of one text: positional must be `1..=n` in order, named must be
/// lowercase identifiers; and an example with exactly that many values must be given.
pub(super) fn check_vars(
    vars: &[String],
    named: bool,
    example_count: Option<usize>,
    what: &str,
) -> Result<(), GraphError> {
    if vars.is_empty() {
        return Ok(());
    }
    for (i, v) in vars.iter().enumerate() {
        let ok = if named {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        } else {
            v == &(i + 1).to_string()
        };
        if !ok {
            return Err(bad(format!(
                "{what}: variable {{{{{v}}}}} is not valid; {} parameters are expected.",
                if named {
                    "named (lowercase)"
                } else {
                    "sequential positional ({{1}}, {{2}}, ...)"
                }
            )));
        }
    }
    match example_count {
        Some(n) if n == vars.len() => Ok(()),
        Some(n) => Err(bad(format!(
            "{what}: the example has {n} values but the text has {} variables.",
            vars.len()
        ))),
        None => Err(bad(format!(
            "{what} has variables and is missing expected field(s) (example)."
        ))),
    }
}

pub(super) fn example_len(c: &Map<String, Value>, key: &str, nested: bool) -> Option<usize> {
    let ex = c.get("example")?.get(key)?;
    if nested {
        // body_text: [["Ana", "42"]]; body_text_named_params: [{param_name, example}].
        match ex.as_array()?.first()? {
            Value::Array(a) => Some(a.len()),
            _ => Some(ex.as_array()?.len()),
        }
    } else {
        Some(ex.as_array()?.len())
    }
}

/// Validates a creation body and builds the (PENDING) template.
pub fn parse_create(waba_id: &str, body: &Value) -> Result<Template, GraphError> {
    let m = body
        .as_object()
        .ok_or_else(|| bad("The request body must be a JSON object."))?;
    for k in m.keys() {
        if !matches!(
            k.as_str(),
            "name"
                | "language"
                | "category"
                | "components"
                | "parameter_format"
                | "allow_category_change"
                | "message_send_ttl_seconds"
        ) {
            return Err(bad(format!("Unexpected key \"{k}\" on param \"body\".")));
        }
    }
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("The parameter name is required."))?;
    if !valid_name(name) {
        return Err(bad(
            "Template name can only contain lowercase characters, numbers and underscores (max 512).",
        ));
    }
    let language = m
        .get("language")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("The parameter language is required."))?;
    if !valid_language(language) {
        return Err(bad(format!(
            "Param language \"{language}\" is not a supported language code."
        )));
    }
    let category = m
        .get("category")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("The parameter category is required."))?
        .to_ascii_uppercase();
    if !matches!(
        category.as_str(),
        "MARKETING" | "UTILITY" | "AUTHENTICATION"
    ) {
        return Err(bad(format!(
            "Param category must be one of {{MARKETING, UTILITY, AUTHENTICATION}} - got \"{category}\"."
        )));
    }
    let parameter_format = match m.get("parameter_format").and_then(Value::as_str) {
        None => "POSITIONAL".to_string(),
        Some(f) if f.eq_ignore_ascii_case("positional") => "POSITIONAL".to_string(),
        Some(f) if f.eq_ignore_ascii_case("named") => "NAMED".to_string(),
        Some(f) => {
            return Err(bad(format!(
                "Param parameter_format must be one of {{POSITIONAL, NAMED}} - got \"{f}\"."
            )));
        }
    };
    let named = parameter_format == "NAMED";
    let components = m
        .get("components")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("The parameter components is required."))?;
    let mut seen = Vec::new();
    for c in components {
        let c = c
            .as_object()
            .ok_or_else(|| bad("Each component must be a JSON object."))?;
        let ctype = c
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("Each component needs a type."))?
            .to_ascii_uppercase();
        if seen.contains(&ctype) {
            return Err(bad(format!("Only one {ctype} component is allowed.")));
        }
        seen.push(ctype.clone());
        match ctype.as_str() {
            "BODY" => {
                let text = c
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("The BODY component needs text."))?;
                if text.chars().count() > 1024 {
                    return Err(bad("BODY text is longer than 1024 characters."));
                }
                let key = if named {
                    "body_text_named_params"
                } else {
                    "body_text"
                };
                check_vars(&variables(text), named, example_len(c, key, true), "BODY")?;
            }
            "HEADER" => {
                let format = c
                    .get("format")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("The HEADER component needs a format."))?
                    .to_ascii_uppercase();
                match format.as_str() {
                    "TEXT" => {
                        let text = c
                            .get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad("A TEXT HEADER needs text."))?;
                        if text.chars().count() > 60 {
                            return Err(bad("HEADER text is longer than 60 characters."));
                        }
                        let vars = variables(text);
                        if vars.len() > 1 {
                            return Err(bad("HEADER text may have at most one variable."));
                        }
                        let key = if named {
                            "header_text_named_params"
                        } else {
                            "header_text"
                        };
                        check_vars(&vars, named, example_len(c, key, false), "HEADER")?;
                    }
                    "IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION" => {}
                    other => {
                        return Err(bad(format!("HEADER format \"{other}\" is not valid.")));
                    }
                }
            }
            "FOOTER" => {
                let text = c
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("The FOOTER component needs text."))?;
                if text.chars().count() > 60 || !variables(text).is_empty() {
                    return Err(bad(
                        "FOOTER text must be at most 60 characters with no variables.",
                    ));
                }
            }
            "BUTTONS" => {
                let buttons = c
                    .get("buttons")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("The BUTTONS component needs buttons."))?;
                if buttons.is_empty() || buttons.len() > 10 {
                    return Err(bad("A template has between 1 and 10 buttons."));
                }
                for b in buttons {
                    let btype = b
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    if !matches!(
                        btype.as_str(),
                        "QUICK_REPLY" | "URL" | "PHONE_NUMBER" | "COPY_CODE" | "OTP" | "FLOW"
                    ) {
                        return Err(bad(format!("Button type \"{btype}\" is not valid.")));
                    }
                    if btype != "COPY_CODE" && btype != "OTP" {
                        let text = b.get("text").and_then(Value::as_str).unwrap_or("");
                        if text.is_empty() || text.chars().count() > 25 {
                            return Err(bad("Button text must be 1 to 25 characters."));
                        }
                    }
                }
            }
            other => return Err(bad(format!("Component type \"{other}\" is not valid."))),
        }
    }
    if !seen.iter().any(|t| t == "BODY") {
        return Err(bad("A template needs exactly one BODY component."));
    }
    Ok(Template {
        id: rand::rng().random_range(1_000_000_000_000_000u64..9_000_000_000_000_000),
        waba_id: waba_id.to_string(),
        name: name.to_string(),
        language: language.to_string(),
        category,
        status: "PENDING".to_string(),
        parameter_format,
        components: components.clone(),
        rejected_reason: None,
    })
}
