//! Message templates of a WABA: creation with Meta's rules (name charset, language, category,
//! components, examples for variables, one per name+language), review (PENDING, then APPROVED or
//! REJECTED after a delay, with a `message_template_status_update` webhook), listing with cursor
//! paging, deletion by name / hsm_id, and the check of a template send (132001 when missing or
//! not approved, 132000 when the parameter count differs, 132012 when a parameter type does).
//!
//! Name rules of the simulated reviewer: a name starting with `reject_` is always REJECTED
//! (reason INVALID_FORMAT) and one starting with `pending_` stays PENDING forever; any other
//! name gets `GraphSimConfig::template_review_outcome`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;
use serde_json::{Map, Value, json};

use super::config::TemplateReviewOutcome;
use super::errors::GraphError;
use super::messages::TemplateRef;
use super::state::{Sim, unix_now};
use super::webhooks;

#[derive(Debug, Clone)]
pub struct Template {
    pub id: u64,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: Vec<Value>,
    pub rejected_reason: Option<String>,
}

impl Template {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": self.components,
        });
        if let Some(r) = &self.rejected_reason {
            v["rejected_reason"] = json!(r);
        }
        v
    }
}

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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn valid_language(code: &str) -> bool {
    let (lang, region) = match code.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (code, None),
    };
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()))
}

fn bad(details: impl Into<String>) -> GraphError {
    GraphError::param(details)
}

/// Checks the variables of one text: positional must be `1..=n` in order, named must be
/// lowercase identifiers; and an example with exactly that many values must be given.
fn check_vars(
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

fn example_len(c: &Map<String, Value>, key: &str, nested: bool) -> Option<usize> {
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

/// Creates a template (after the duplicate check) and schedules its review.
pub fn create(sim: &Arc<Sim>, waba_id: &str, body: &Value) -> Result<Value, GraphError> {
    let tpl = parse_create(waba_id, body)?;
    let reply = json!({"id": tpl.id.to_string(), "status": "PENDING", "category": tpl.category});
    {
        let mut st = sim.lock();
        if st
            .templates
            .iter()
            .any(|t| t.waba_id == waba_id && t.name == tpl.name && t.language == tpl.language)
        {
            let mut e = bad(format!(
                "Content in this language already exists: a template named \"{}\" in {} exists.",
                tpl.name, tpl.language
            ));
            e.subcode = Some(2388024);
            return Err(e);
        }
        st.templates.push(tpl.clone());
    }
    if !tpl.name.starts_with("pending_") {
        let sim2 = Arc::clone(sim);
        let delay = sim.config.template_review_delay;
        sim.spawn(async move {
            tokio::time::sleep(delay).await;
            review(&sim2, tpl.id);
        });
    }
    Ok(reply)
}

/// Decides a PENDING template and announces it.
fn review(sim: &Arc<Sim>, id: u64) {
    let decided = {
        let mut st = sim.lock();
        let Some(t) = st
            .templates
            .iter_mut()
            .find(|t| t.id == id && t.status == "PENDING")
        else {
            return;
        };
        let reject = t.name.starts_with("reject_")
            || sim.config.template_review_outcome == TemplateReviewOutcome::Rejected;
        if reject {
            t.status = "REJECTED".to_string();
            t.rejected_reason = Some("INVALID_FORMAT".to_string());
        } else {
            t.status = "APPROVED".to_string();
            t.rejected_reason = Some("NONE".to_string());
        }
        t.clone()
    };
    let mut value = json!({
        "event": decided.status,
        "message_template_id": decided.id,
        "message_template_name": decided.name,
        "message_template_language": decided.language,
        "reason": decided.rejected_reason.clone().unwrap_or_else(|| "NONE".into()),
        "message_template_category": decided.category,
    });
    if decided.status == "REJECTED" {
        value["rejection_info"] = json!({
            "reason": "The simulator rejected this template (name rule `reject_` or configuration).",
            "recommendation": "Use a name that does not start with `reject_`, or configure approval.",
        });
    }
    let entry = json!({
        "id": decided.waba_id,
        "time": unix_now(),
        "changes": [{"field": "message_template_status_update", "value": value}],
    });
    webhooks::emit_for_waba(sim, &decided.waba_id, entry);
}

fn cursor(i: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("idx:{i}"))
}

fn uncursor(c: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("idx:")?
        .parse()
        .ok()
}

/// `GET /{waba_id}/message_templates`: filters `name` (substring), `status`, `language`,
/// `category`; paging with `limit` (default 25) and `after` / `before` cursors.
pub fn list(
    sim: &Sim,
    waba_id: &str,
    query: &[(String, String)],
    self_url: &str,
) -> Result<Value, GraphError> {
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let limit = match q("limit") {
        None => 25,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(bad("Param limit must be a number between 1 and 1000.")),
        },
    };
    let all: Vec<Value> = {
        let st = sim.lock();
        st.templates
            .iter()
            .filter(|t| t.waba_id == waba_id)
            .filter(|t| q("name").is_none_or(|n| t.name.contains(n)))
            .filter(|t| q("status").is_none_or(|s| t.status.eq_ignore_ascii_case(s)))
            .filter(|t| q("language").is_none_or(|l| t.language == l))
            .filter(|t| q("category").is_none_or(|c| t.category.eq_ignore_ascii_case(c)))
            .map(Template::to_json)
            .collect()
    };
    let start = match (q("after"), q("before")) {
        (Some(a), _) => uncursor(a).ok_or_else(|| bad("Param after is not a valid cursor."))? + 1,
        (None, Some(b)) => {
            let b = uncursor(b).ok_or_else(|| bad("Param before is not a valid cursor."))?;
            b.saturating_sub(limit)
        }
        (None, None) => 0,
    };
    let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    if page.is_empty() {
        return Ok(json!({"data": []}));
    }
    let last = start + page.len() - 1;
    let mut paging = json!({"cursors": {"before": cursor(start), "after": cursor(last)}});
    if last + 1 < all.len() {
        let mut url = reqwest::Url::parse(self_url).map_err(|e| bad(e.to_string()))?;
        {
            let mut qp = url.query_pairs_mut();
            qp.clear();
            for (k, v) in query {
                if k != "after" && k != "before" && k != "access_token" {
                    qp.append_pair(k, v);
                }
            }
            qp.append_pair("limit", &limit.to_string());
            qp.append_pair("after", &cursor(last));
        }
        paging["next"] = json!(url.to_string());
    }
    Ok(json!({"data": page, "paging": paging}))
}

/// `DELETE /{waba_id}/message_templates?name=..[&hsm_id=..]`: name alone deletes every
/// language, with `hsm_id` only that one.
pub fn delete(sim: &Sim, waba_id: &str, query: &[(String, String)]) -> Result<Value, GraphError> {
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let name = q("name").ok_or_else(|| bad("The parameter name is required."))?;
    let hsm_id = q("hsm_id");
    let mut st = sim.lock();
    let before = st.templates.len();
    st.templates.retain(|t| {
        !(t.waba_id == waba_id
            && t.name == name
            && hsm_id.as_ref().is_none_or(|h| *h == t.id.to_string()))
    });
    if st.templates.len() == before {
        let mut e = bad(format!("Message template \"{name}\" not found."));
        e.subcode = Some(2593002);
        return Err(e);
    }
    Ok(json!({"success": true}))
}

fn component<'a>(tpl: &'a Template, ctype: &str) -> Option<&'a Map<String, Value>> {
    tpl.components
        .iter()
        .filter_map(Value::as_object)
        .find(|c| {
            c.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(ctype))
        })
}

fn sent_params<'a>(send: &'a TemplateRef, ctype: &str, index: Option<usize>) -> Vec<&'a Value> {
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

fn ptype(p: &Value) -> &str {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn approved(components: Value) -> Template {
        let mut t = parse_create(
            "w",
            &json!({"name":"order_update","language":"en_US","category":"UTILITY","components":components}),
        )
        .expect("valid template");
        t.status = "APPROVED".into();
        t
    }

    fn send(components: Value) -> TemplateRef {
        TemplateRef {
            name: "order_update".into(),
            language: "en_US".into(),
            components: components.as_array().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn creation_rules() {
        let ok = json!({"name":"a_1","language":"en_US","category":"marketing",
            "components":[{"type":"BODY","text":"Hi {{1}}","example":{"body_text":[["Ana"]]}}]});
        assert!(parse_create("w", &ok).is_ok());
        let mut upper = ok.clone();
        upper["name"] = json!("Bad-Name");
        assert_eq!(parse_create("w", &upper).unwrap_err().code, 100);
        let mut no_example = ok.clone();
        no_example["components"] = json!([{"type":"BODY","text":"Hi {{1}}"}]);
        assert!(parse_create("w", &no_example).is_err());
        let mut gap = ok.clone();
        gap["components"] =
            json!([{"type":"BODY","text":"Hi {{2}}","example":{"body_text":[["x"]]}}]);
        assert!(parse_create("w", &gap).is_err());
    }

    #[test]
    fn send_checks() {
        let t = approved(json!([
            {"type":"HEADER","format":"IMAGE"},
            {"type":"BODY","text":"Hi {{1}}, order {{2}}","example":{"body_text":[["Ana","7"]]}},
            {"type":"BUTTONS","buttons":[{"type":"URL","text":"Track","url":"https://x.io/{{1}}"}]}
        ]));
        let templates = vec![t];
        let good = send(json!([
            {"type":"header","parameters":[{"type":"image","image":{"link":"https://x.io/a.jpg"}}]},
            {"type":"body","parameters":[{"type":"text","text":"Ana"},{"type":"text","text":"7"}]},
            {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"o/7"}]}
        ]));
        assert!(check_send(&templates, "w", &good).is_ok());
        let short = send(json!([
            {"type":"header","parameters":[{"type":"image","image":{"link":"https://x.io/a.jpg"}}]},
            {"type":"body","parameters":[{"type":"text","text":"Ana"}]},
            {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"o/7"}]}
        ]));
        assert_eq!(
            check_send(&templates, "w", &short).unwrap_err().code,
            132000
        );
        let mut other_lang = good.clone();
        other_lang.language = "pt_BR".into();
        assert_eq!(
            check_send(&templates, "w", &other_lang).unwrap_err().code,
            132001
        );
    }
}
