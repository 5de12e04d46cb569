//! The `interactive` content object: buttons, lists and call-to-action URLs with their
//! header, body and footer sub-objects.

use super::fields::{http_url, object, only, string};
use super::{Invalid, bad};
use serde_json::{Map, Value};

pub(super) fn sub_text(
    o: &Map<String, Value>,
    key: &str,
    what: &str,
    max: usize,
    required: bool,
) -> Result<(), Invalid> {
    match o.get(key) {
        None if !required => Ok(()),
        None => Err(bad(format!("{what}.{key} is required"))),
        Some(v) => {
            let inner = object(v, &format!("{what}.{key}"))?;
            only(inner, &format!("{what}.{key}"), &["text"])?;
            string(inner, "text", &format!("{what}.{key}"), max, true).map(|_| ())
        }
    }
}

pub(super) fn interactive(v: &Value) -> Result<(), Invalid> {
    let o = object(v, "interactive")?;
    only(
        o,
        "interactive",
        &["type", "header", "body", "footer", "action"],
    )?;
    let kind = string(o, "type", "interactive", 20, true)?.unwrap_or_default();
    let action = o
        .get("action")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("interactive.action is required"))?;
    sub_text(o, "footer", "interactive", 60, false)?;
    match kind {
        "button" => {
            sub_text(o, "body", "interactive", 1024, true)?;
            if let Some(h) = o.get("header") {
                let h = object(h, "interactive.header")?;
                match h.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        string(h, "text", "interactive.header", 60, true)?;
                    }
                    Some("image" | "video" | "document") => {}
                    _ => {
                        return Err(bad(
                            "interactive.header.type must be text, image, video or document",
                        ));
                    }
                }
            }
            only(action, "interactive.action", &["buttons"])?;
            let buttons = action
                .get("buttons")
                .and_then(Value::as_array)
                .filter(|b| (1..=3).contains(&b.len()))
                .ok_or_else(|| bad("interactive.action.buttons must hold 1 to 3 buttons"))?;
            let mut titles = std::collections::HashSet::new();
            for (i, b) in buttons.iter().enumerate() {
                let what = format!("interactive.action.buttons[{i}]");
                let b = object(b, &what)?;
                if b.get("type").and_then(Value::as_str) != Some("reply") {
                    return Err(bad(format!("{what}.type must be \"reply\"")));
                }
                let reply = b
                    .get("reply")
                    .and_then(Value::as_object)
                    .ok_or_else(|| bad(format!("{what}.reply is required")))?;
                string(reply, "id", &format!("{what}.reply"), 256, true)?;
                let title =
                    string(reply, "title", &format!("{what}.reply"), 20, true)?.unwrap_or_default();
                if !titles.insert(title.to_string()) {
                    return Err(bad("interactive button titles must be unique"));
                }
            }
        }
        "list" => {
            sub_text(o, "body", "interactive", 4096, true)?;
            if let Some(h) = o.get("header") {
                let h = object(h, "interactive.header")?;
                if h.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(bad("a list message's header must be of type text"));
                }
                string(h, "text", "interactive.header", 60, true)?;
            }
            only(action, "interactive.action", &["button", "sections"])?;
            string(action, "button", "interactive.action", 20, true)?;
            let sections = action
                .get("sections")
                .and_then(Value::as_array)
                .filter(|s| (1..=10).contains(&s.len()))
                .ok_or_else(|| bad("interactive.action.sections must hold 1 to 10 sections"))?;
            let mut rows_total = 0;
            for (i, s) in sections.iter().enumerate() {
                let what = format!("interactive.action.sections[{i}]");
                let s = object(s, &what)?;
                string(s, "title", &what, 24, sections.len() > 1)?;
                let rows = s
                    .get("rows")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad(format!("{what}.rows is required")))?;
                for (j, r) in rows.iter().enumerate() {
                    let what = format!("{what}.rows[{j}]");
                    let r = object(r, &what)?;
                    string(r, "id", &what, 200, true)?;
                    string(r, "title", &what, 24, true)?;
                    string(r, "description", &what, 72, false)?;
                }
                rows_total += rows.len();
            }
            if !(1..=10).contains(&rows_total) {
                return Err(bad("a list message holds 1 to 10 rows across all sections"));
            }
        }
        "cta_url" => {
            sub_text(o, "body", "interactive", 1024, true)?;
            if action.get("name").and_then(Value::as_str) != Some("cta_url") {
                return Err(bad("interactive.action.name must be \"cta_url\""));
            }
            let p = action
                .get("parameters")
                .and_then(Value::as_object)
                .ok_or_else(|| bad("interactive.action.parameters is required"))?;
            string(p, "display_text", "interactive.action.parameters", 20, true)?;
            let url =
                string(p, "url", "interactive.action.parameters", 2048, true)?.unwrap_or_default();
            http_url(url, "interactive.action.parameters.url")?;
        }
        other => {
            return Err(bad(format!(
                "interactive.type {other:?} must be button, list or cta_url"
            )));
        }
    }
    Ok(())
}
