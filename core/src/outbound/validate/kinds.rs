//! The content object of the simple message kinds: `text`, the media kinds, `location`,
//! `contacts` and `reaction`, each with Meta's documented fields and sizes.

use super::fields::{http_url, number, object, only, string};
use super::{Invalid, bad};
use serde_json::Value;

pub(super) fn text(v: &Value) -> Result<(), Invalid> {
    let o = object(v, "text")?;
    only(o, "text", &["body", "preview_url"])?;
    string(o, "body", "text", 4096, true)?;
    if o.get("preview_url").is_some_and(|p| !p.is_boolean()) {
        return Err(bad("text.preview_url must be true or false"));
    }
    Ok(())
}

pub(super) fn media(kind: &str, v: &Value) -> Result<(), Invalid> {
    let o = object(v, kind)?;
    let allowed: &[&str] = match kind {
        "image" | "video" => &["id", "link", "caption"],
        "document" => &["id", "link", "caption", "filename"],
        _ => &["id", "link"],
    };
    only(o, kind, allowed)?;
    let id = string(o, "id", kind, 256, false)?;
    let link = string(o, "link", kind, 2048, false)?;
    match (id, link) {
        (Some(_), None) => {}
        (None, Some(l)) => http_url(l, &format!("{kind}.link"))?,
        _ => {
            return Err(bad(format!(
                "{kind} needs exactly one of id (uploaded media) or link"
            )));
        }
    }
    string(o, "caption", kind, 1024, false)?;
    string(o, "filename", kind, 240, false)?;
    Ok(())
}

pub(super) fn location(v: &Value) -> Result<(), Invalid> {
    let o = object(v, "location")?;
    only(o, "location", &["latitude", "longitude", "name", "address"])?;
    number(o, "latitude", -90.0..=90.0)?;
    number(o, "longitude", -180.0..=180.0)?;
    string(o, "name", "location", 1000, false)?;
    string(o, "address", "location", 1000, false)?;
    Ok(())
}

pub(super) fn contacts(v: &Value) -> Result<(), Invalid> {
    let list = v
        .as_array()
        .ok_or_else(|| bad("contacts must be an array of contact cards"))?;
    if list.is_empty() || list.len() > 5 {
        return Err(bad("contacts must hold 1 to 5 contact cards"));
    }
    for (i, c) in list.iter().enumerate() {
        let o = object(c, &format!("contacts[{i}]"))?;
        only(
            o,
            &format!("contacts[{i}]"),
            &[
                "name",
                "phones",
                "emails",
                "org",
                "addresses",
                "urls",
                "birthday",
            ],
        )?;
        let name = o
            .get("name")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(format!("contacts[{i}].name is required")))?;
        string(
            name,
            "formatted_name",
            &format!("contacts[{i}].name"),
            1000,
            true,
        )?;
        for list_key in ["phones", "emails", "addresses", "urls"] {
            if o.get(list_key).is_some_and(|l| !l.is_array()) {
                return Err(bad(format!("contacts[{i}].{list_key} must be an array")));
            }
        }
    }
    Ok(())
}

pub(super) fn reaction(v: &Value) -> Result<(), Invalid> {
    let o = object(v, "reaction")?;
    only(o, "reaction", &["message_id", "emoji"])?;
    string(o, "message_id", "reaction", 512, true)?;
    match o.get("emoji") {
        // An empty emoji removes the reaction.
        Some(Value::String(e)) if e.chars().count() <= 10 => Ok(()),
        _ => Err(bad(
            "reaction.emoji must be an emoji (or \"\" to remove the reaction)",
        )),
    }
}
