//! The plain message types: text, media by id or link, location, contacts and reactions.

use serde_json::{Map, Value};

use super::MediaRef;
use super::R;
use super::fields::*;
use crate::graph::errors::GraphError;

pub(super) fn validate_text(v: &Value) -> R<()> {
    let m = as_obj(v, "text")?;
    only_keys(m, &["body", "preview_url"], "text")?;
    text_field(m, "body", "text", 4096)?;
    if let Some(p) = m.get("preview_url")
        && !p.is_boolean()
    {
        return Err(GraphError::invalid(
            "Param text['preview_url'] must be a boolean.",
        ));
    }
    Ok(())
}

/// A media object by `id` or `link`; returns the id reference to check against the store.
// The daemon checks media objects like this too; the simulator checks on its own, not through it.
pub(super) fn validate_media(kind: &str, v: &Value, path: &str) -> R<Option<MediaRef>> {
    let m = as_obj(v, path)?;
    let allowed: &[&str] = match kind {
        "image" | "video" => &["id", "link", "caption"],
        "document" => &["id", "link", "caption", "filename"],
        _ => &["id", "link"],
    };
    only_keys(m, allowed, path)?;
    let id = opt_str(m, "id", path)?;
    let link = opt_str(m, "link", path)?;
    opt_text(m, "caption", path, 1024)?;
    opt_text(m, "filename", path, 240)?;
    match (id, link) {
        (None, None) => Err(GraphError::missing(format!(
            "Param {path} must have either id or link."
        ))),
        (Some(_), Some(_)) => Err(GraphError::invalid(format!(
            "Param {path} must have either id or link, not both."
        ))),
        (None, Some(l)) => {
            http_url(l, &sub(path, "link"))?;
            Ok(None)
        }
        (Some(i), None) => {
            if i.is_empty() || !i.chars().all(|c| c.is_ascii_digit()) {
                return Err(GraphError::invalid(format!(
                    "Param {} is not a valid media id.",
                    sub(path, "id")
                )));
            }
            Ok(Some(MediaRef {
                kind: kind.to_string(),
                id: i.to_string(),
            }))
        }
    }
}

pub(super) fn number(m: &Map<String, Value>, key: &str, path: &str) -> R<f64> {
    match m.get(key) {
        None | Some(Value::Null) => Err(GraphError::missing(format!(
            "The parameter {} is required.",
            sub(path, key)
        ))),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| GraphError::invalid("bad number")),
        Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| {
            GraphError::invalid(format!("Param {} must be a number.", sub(path, key)))
        }),
        Some(_) => Err(GraphError::invalid(format!(
            "Param {} must be a number.",
            sub(path, key)
        ))),
    }
}

pub(super) fn validate_location(v: &Value) -> R<()> {
    let m = as_obj(v, "location")?;
    only_keys(m, &["latitude", "longitude", "name", "address"], "location")?;
    let lat = number(m, "latitude", "location")?;
    let lon = number(m, "longitude", "location")?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(GraphError::invalid(
            "Param location latitude/longitude is out of range.",
        ));
    }
    opt_text(m, "name", "location", 1000)?;
    opt_text(m, "address", "location", 1000)?;
    Ok(())
}

pub(super) fn validate_contacts(v: &Value) -> R<()> {
    let arr = v
        .as_array()
        .ok_or_else(|| GraphError::param("Param contacts must be an array."))?;
    if arr.is_empty() || arr.len() > 5 {
        return Err(GraphError::invalid(
            "Param contacts must hold between 1 and 5 contacts.",
        ));
    }
    for (i, c) in arr.iter().enumerate() {
        let path = format!("contacts[{i}]");
        let m = as_obj(c, &path)?;
        only_keys(
            m,
            &[
                "name",
                "phones",
                "emails",
                "org",
                "addresses",
                "urls",
                "birthday",
            ],
            &path,
        )?;
        let name_path = sub(&path, "name");
        let name = m.get("name").ok_or_else(|| {
            GraphError::missing(format!("The parameter {name_path} is required."))
        })?;
        let n = as_obj(name, &name_path)?;
        text_field(n, "formatted_name", &name_path, 1000)?;
        for key in ["phones", "emails", "addresses", "urls"] {
            if let Some(list) = m.get(key) {
                let items = list.as_array().ok_or_else(|| {
                    GraphError::invalid(format!("Param {} must be an array.", sub(&path, key)))
                })?;
                for item in items {
                    as_obj(item, &sub(&path, key))?;
                }
            }
        }
    }
    Ok(())
}

pub(super) fn validate_reaction(v: &Value) -> R<()> {
    let m = as_obj(v, "reaction")?;
    only_keys(m, &["message_id", "emoji"], "reaction")?;
    let id = req_str(m, "message_id", "reaction")?;
    if !id.starts_with("wamid.") {
        return Err(GraphError::invalid(
            "Param reaction['message_id'] is not a valid message id.",
        ));
    }
    // An empty emoji removes the reaction.
    let emoji = req_str(m, "emoji", "reaction")?;
    if emoji.chars().count() > 10 {
        return Err(GraphError::invalid(
            "Param reaction['emoji'] must be a single emoji.",
        ));
    }
    Ok(())
}
