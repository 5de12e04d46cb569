//! The `template` content object: its name, language and components, giving back the
//! (name, language) pair that [`super::super::enqueue`] checks for approval.

use super::fields::{object, only, string};
use super::{Invalid, bad};
use serde_json::Value;

pub(super) fn template(v: &Value) -> Result<(String, String), Invalid> {
    let o = object(v, "template")?;
    only(o, "template", &["name", "language", "components"])?;
    let name = string(o, "name", "template", 512, true)?
        .unwrap_or_default()
        .to_string();
    let language = o
        .get("language")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("template.language is required, e.g. {\"code\": \"en_US\"}"))?;
    only(language, "template.language", &["code", "policy"])?;
    let code = string(language, "code", "template.language", 20, true)?
        .unwrap_or_default()
        .to_string();
    if let Some(components) = o.get("components") {
        let list = components
            .as_array()
            .ok_or_else(|| bad("template.components must be an array"))?;
        for (i, c) in list.iter().enumerate() {
            let what = format!("template.components[{i}]");
            let c = object(c, &what)?;
            match c.get("type").and_then(Value::as_str) {
                Some("header" | "body") => {}
                Some("button") => {
                    if !matches!(
                        c.get("sub_type").and_then(Value::as_str),
                        Some("quick_reply" | "url" | "catalog" | "flow" | "copy_code")
                    ) {
                        return Err(bad(format!(
                            "{what}.sub_type must be quick_reply, url, catalog, flow or copy_code"
                        )));
                    }
                    if c.get("index").is_none() {
                        return Err(bad(format!("{what}.index is required for a button")));
                    }
                }
                _ => return Err(bad(format!("{what}.type must be header, body or button"))),
            }
            if c.get("parameters").is_some_and(|p| !p.is_array()) {
                return Err(bad(format!("{what}.parameters must be an array")));
            }
        }
    }
    Ok((name, code))
}
