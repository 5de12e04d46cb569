//! Interactive messages (buttons, lists, CTA URL, flows, products) and their headers.

use serde_json::Value;

use super::MediaRef;
use super::R;
use super::fields::*;
use super::kinds::validate_media;
use crate::graph::errors::GraphError;

pub(super) fn validate_interactive(v: &Value, media: &mut Vec<MediaRef>) -> R<()> {
    let m = as_obj(v, "interactive")?;
    only_keys(
        m,
        &["type", "header", "body", "footer", "action"],
        "interactive",
    )?;
    let kind = req_str(m, "type", "interactive")?;
    let body_max = match kind {
        "button" | "cta_url" => 1024,
        "list" => 4096,
        other => {
            return Err(GraphError::invalid(format!(
                "Param interactive['type'] must be one of {{button, list, cta_url}} - got \"{other}\"."
            )));
        }
    };
    let body = m
        .get("body")
        .ok_or_else(|| GraphError::missing("The parameter interactive['body'] is required."))?;
    let b = as_obj(body, "interactive['body']")?;
    only_keys(b, &["text"], "interactive['body']")?;
    text_field(b, "text", "interactive['body']", body_max)?;
    if let Some(f) = m.get("footer") {
        let f = as_obj(f, "interactive['footer']")?;
        only_keys(f, &["text"], "interactive['footer']")?;
        text_field(f, "text", "interactive['footer']", 60)?;
    }
    if let Some(h) = m.get("header") {
        validate_header(h, kind == "list", media)?;
    }
    let action = m
        .get("action")
        .ok_or_else(|| GraphError::missing("The parameter interactive['action'] is required."))?;
    let a = as_obj(action, "interactive['action']")?;
    let ap = "interactive['action']";
    match kind {
        "button" => {
            only_keys(a, &["buttons"], ap)?;
            let buttons = a
                .get("buttons")
                .ok_or_else(|| {
                    GraphError::missing(format!("The parameter {ap}['buttons'] is required."))
                })?
                .as_array()
                .ok_or_else(|| {
                    GraphError::invalid(format!("Param {ap}['buttons'] must be an array."))
                })?;
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(GraphError::invalid(format!(
                    "Param {ap}['buttons'] must have between 1 and 3 buttons - got {}.",
                    buttons.len()
                )));
            }
            let mut titles = Vec::new();
            let mut ids = Vec::new();
            for (i, btn) in buttons.iter().enumerate() {
                let path = format!("{ap}['buttons'][{i}]");
                let bm = as_obj(btn, &path)?;
                only_keys(bm, &["type", "reply"], &path)?;
                if req_str(bm, "type", &path)? != "reply" {
                    return Err(GraphError::invalid(format!(
                        "Param {path}['type'] must be \"reply\"."
                    )));
                }
                let rp = sub(&path, "reply");
                let reply = bm.get("reply").ok_or_else(|| {
                    GraphError::missing(format!("The parameter {rp} is required."))
                })?;
                let r = as_obj(reply, &rp)?;
                only_keys(r, &["id", "title"], &rp)?;
                let id = text_field(r, "id", &rp, 256)?;
                let title = text_field(r, "title", &rp, 20)?;
                if titles.contains(&title) {
                    return Err(GraphError::invalid(format!(
                        "Button titles must be unique - \"{title}\" repeats."
                    )));
                }
                if ids.contains(&id) {
                    return Err(GraphError::invalid(format!(
                        "Button ids must be unique - \"{id}\" repeats."
                    )));
                }
                titles.push(title);
                ids.push(id);
            }
        }
        "list" => {
            only_keys(a, &["button", "sections"], ap)?;
            text_field(a, "button", ap, 20)?;
            let sections = a
                .get("sections")
                .ok_or_else(|| {
                    GraphError::missing(format!("The parameter {ap}['sections'] is required."))
                })?
                .as_array()
                .ok_or_else(|| {
                    GraphError::invalid(format!("Param {ap}['sections'] must be an array."))
                })?;
            if sections.is_empty() || sections.len() > 10 {
                return Err(GraphError::invalid(format!(
                    "Param {ap}['sections'] must have between 1 and 10 sections - got {}.",
                    sections.len()
                )));
            }
            let mut total_rows = 0usize;
            let mut row_ids = Vec::new();
            for (i, s) in sections.iter().enumerate() {
                let path = format!("{ap}['sections'][{i}]");
                let sm = as_obj(s, &path)?;
                only_keys(sm, &["title", "rows"], &path)?;
                if sections.len() > 1 {
                    text_field(sm, "title", &path, 24)?;
                } else {
                    opt_text(sm, "title", &path, 24)?;
                }
                let rows = sm
                    .get("rows")
                    .ok_or_else(|| {
                        GraphError::missing(format!("The parameter {path}['rows'] is required."))
                    })?
                    .as_array()
                    .ok_or_else(|| {
                        GraphError::invalid(format!("Param {path}['rows'] must be an array."))
                    })?;
                if rows.is_empty() {
                    return Err(GraphError::invalid(format!(
                        "Param {path}['rows'] must have at least one row."
                    )));
                }
                for (j, row) in rows.iter().enumerate() {
                    let rp = format!("{path}['rows'][{j}]");
                    let rm = as_obj(row, &rp)?;
                    only_keys(rm, &["id", "title", "description"], &rp)?;
                    let id = text_field(rm, "id", &rp, 200)?;
                    text_field(rm, "title", &rp, 24)?;
                    opt_text(rm, "description", &rp, 72)?;
                    if row_ids.contains(&id) {
                        return Err(GraphError::invalid(format!(
                            "Row ids must be unique - \"{id}\" repeats."
                        )));
                    }
                    row_ids.push(id);
                }
                total_rows += rows.len();
            }
            if total_rows > 10 {
                return Err(GraphError::invalid(format!(
                    "Total row count across all sections exceeded the maximum of 10 - got {total_rows}."
                )));
            }
        }
        "cta_url" => {
            only_keys(a, &["name", "parameters"], ap)?;
            if req_str(a, "name", ap)? != "cta_url" {
                return Err(GraphError::invalid(format!(
                    "Param {ap}['name'] must be \"cta_url\"."
                )));
            }
            let pp = sub(ap, "parameters");
            let params = a
                .get("parameters")
                .ok_or_else(|| GraphError::missing(format!("The parameter {pp} is required.")))?;
            let p = as_obj(params, &pp)?;
            only_keys(p, &["display_text", "url"], &pp)?;
            text_field(p, "display_text", &pp, 20)?;
            let url = req_str(p, "url", &pp)?;
            http_url(url, &sub(&pp, "url"))?;
        }
        _ => unreachable!("interactive type checked above"),
    }
    Ok(())
}

pub(super) fn validate_header(h: &Value, text_only: bool, media: &mut Vec<MediaRef>) -> R<()> {
    let path = "interactive['header']";
    let m = as_obj(h, path)?;
    let kind = req_str(m, "type", path)?;
    match kind {
        "text" => {
            only_keys(m, &["type", "text"], path)?;
            text_field(m, "text", path, 60)?;
        }
        "image" | "video" | "document" if !text_only => {
            only_keys(m, &["type", kind], path)?;
            let mp = sub(path, kind);
            let obj = m
                .get(kind)
                .ok_or_else(|| GraphError::missing(format!("The parameter {mp} is required.")))?;
            if let Some(r) = validate_media(kind, obj, &mp)? {
                media.push(r);
            }
        }
        other => {
            return Err(GraphError::invalid(format!(
                "Param {path}['type'] \"{other}\" is not allowed here."
            )));
        }
    }
    Ok(())
}
