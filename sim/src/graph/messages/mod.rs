//! Validation of a `POST /{phone_number_id}/messages` body on its own (no state): every message
//! type of Meta's Cloud API documentation with Meta's documented limits, and mark-as-read. Unknown keys
//! are refused with code 100 (Meta rejects unexpected parameters), missing required ones with
//! 131008 and bad values with 131009. What needs state (media ids, templates, window, limits) is
//! checked afterwards in `send.rs`.

use serde_json::{Map, Value};

use super::errors::GraphError;
use super::state::normalize_phone;

/// A media object referenced by id that must exist and be of `kind` (image, audio, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRef {
    pub kind: String,
    pub id: String,
}

/// The template part of a template send.
#[derive(Debug, Clone)]
pub struct TemplateRef {
    pub name: String,
    pub language: String,
    pub components: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub to: String,
    pub wa_id: String,
    pub kind: String,
    pub media: Vec<MediaRef>,
    pub template: Option<TemplateRef>,
    pub biz_opaque: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Request {
    MarkRead { message_id: String },
    Send(SendRequest),
}

const TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
];

type R<T> = Result<T, GraphError>;

fn as_obj<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| GraphError::param(format!("Param {path} must be a JSON object.")))
}

fn only_keys(m: &Map<String, Value>, allowed: &[&str], path: &str) -> R<()> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(GraphError::param(format!(
                "Unexpected key \"{k}\" on param \"{path}\"."
            )));
        }
    }
    Ok(())
}

fn sub(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}['{key}']")
    }
}

fn opt_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<Option<&'a str>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::invalid(format!(
            "Param {} must be a string.",
            sub(path, key)
        ))),
    }
}

fn req_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> R<&'a str> {
    match opt_str(m, key, path)? {
        Some(s) => Ok(s),
        None => Err(GraphError::missing(format!(
            "The parameter {} is required.",
            sub(path, key)
        ))),
    }
}

/// A required, non-blank string of at most `max` characters.
fn text_field<'a>(m: &'a Map<String, Value>, key: &str, path: &str, max: usize) -> R<&'a str> {
    let s = req_str(m, key, path)?;
    check_len(s, &sub(path, key), max)?;
    Ok(s)
}

fn check_len(s: &str, path: &str, max: usize) -> R<()> {
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

fn opt_text(m: &Map<String, Value>, key: &str, path: &str, max: usize) -> R<()> {
    if let Some(s) = opt_str(m, key, path)? {
        check_len(s, &sub(path, key), max)?;
    }
    Ok(())
}

fn http_url(s: &str, path: &str) -> R<()> {
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

/// Validates a whole request body.
pub fn validate(body: &Value) -> R<Request> {
    let m = as_obj(body, "body")?;
    match m.get("messaging_product") {
        None | Some(Value::Null) => {
            return Err(GraphError::param(
                "The parameter messaging_product is required.",
            ));
        }
        Some(Value::String(s)) if s == "whatsapp" => {}
        Some(other) => {
            return Err(GraphError::param(format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got {other}."
            )));
        }
    }
    if m.contains_key("status") {
        return validate_mark_read(m);
    }
    let kind = match opt_str(m, "type", "")? {
        None => "text",
        Some(t) if TYPES.contains(&t) => t,
        Some(t) => {
            return Err(GraphError::param(format!(
                "Param type must be one of {{{}}} - got \"{t}\".",
                TYPES.join(", ")
            )));
        }
    };
    let mut allowed = vec![
        "messaging_product",
        "recipient_type",
        "to",
        "type",
        "context",
        "biz_opaque_callback_data",
    ];
    allowed.push(kind);
    only_keys(m, &allowed, "body")?;
    if let Some(rt) = opt_str(m, "recipient_type", "")?
        && rt != "individual"
    {
        return Err(GraphError::invalid(format!(
            "Param recipient_type must be \"individual\" - got \"{rt}\"."
        )));
    }
    let to = req_str(m, "to", "")?;
    let wa_id = normalize_phone(to).ok_or_else(|| {
        GraphError::invalid(format!(
            "Param to is not a valid WhatsApp phone number: \"{to}\"."
        ))
    })?;
    if let Some(ctx) = m.get("context") {
        let c = as_obj(ctx, "context")?;
        only_keys(c, &["message_id"], "context")?;
        let id = req_str(c, "message_id", "context")?;
        if !id.starts_with("wamid.") {
            return Err(GraphError::invalid(
                "Param context['message_id'] is not a valid message id.",
            ));
        }
    }
    let biz_opaque = opt_str(m, "biz_opaque_callback_data", "")?;
    if let Some(b) = biz_opaque
        && b.chars().count() > 512
    {
        return Err(GraphError::invalid(
            "Param biz_opaque_callback_data is too long: at most 512 characters allowed.",
        ));
    }
    let payload = m
        .get(kind)
        .ok_or_else(|| GraphError::missing(format!("The parameter {kind} is required.")))?;
    let mut media = Vec::new();
    let mut template = None;
    match kind {
        "text" => validate_text(payload)?,
        "image" | "audio" | "video" | "document" | "sticker" => {
            if let Some(r) = validate_media(kind, payload, kind)? {
                media.push(r);
            }
        }
        "location" => validate_location(payload)?,
        "contacts" => validate_contacts(payload)?,
        "reaction" => validate_reaction(payload)?,
        "interactive" => validate_interactive(payload, &mut media)?,
        "template" => template = Some(validate_template(payload, &mut media)?),
        _ => unreachable!("type checked above"),
    }
    Ok(Request::Send(SendRequest {
        to: to.to_string(),
        wa_id,
        kind: kind.to_string(),
        media,
        template,
        biz_opaque: biz_opaque.map(str::to_string),
    }))
}

fn validate_mark_read(m: &Map<String, Value>) -> R<Request> {
    only_keys(
        m,
        &[
            "messaging_product",
            "status",
            "message_id",
            "typing_indicator",
        ],
        "body",
    )?;
    let status = req_str(m, "status", "")?;
    if status != "read" {
        return Err(GraphError::invalid(format!(
            "Param status must be \"read\" - got \"{status}\"."
        )));
    }
    let message_id = req_str(m, "message_id", "")?;
    if let Some(t) = m.get("typing_indicator") {
        let t = as_obj(t, "typing_indicator")?;
        only_keys(t, &["type"], "typing_indicator")?;
        if req_str(t, "type", "typing_indicator")? != "text" {
            return Err(GraphError::invalid(
                "Param typing_indicator['type'] must be \"text\".",
            ));
        }
    }
    Ok(Request::MarkRead {
        message_id: message_id.to_string(),
    })
}

fn validate_text(v: &Value) -> R<()> {
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
fn validate_media(kind: &str, v: &Value, path: &str) -> R<Option<MediaRef>> {
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

fn number(m: &Map<String, Value>, key: &str, path: &str) -> R<f64> {
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

fn validate_location(v: &Value) -> R<()> {
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

fn validate_contacts(v: &Value) -> R<()> {
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

fn validate_reaction(v: &Value) -> R<()> {
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

fn validate_interactive(v: &Value, media: &mut Vec<MediaRef>) -> R<()> {
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

fn validate_header(h: &Value, text_only: bool, media: &mut Vec<MediaRef>) -> R<()> {
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

fn validate_template(v: &Value, media: &mut Vec<MediaRef>) -> R<TemplateRef> {
    let path = "template";
    let m = as_obj(v, path)?;
    only_keys(m, &["name", "language", "components", "namespace"], path)?;
    let name = req_str(m, "name", path)?;
    let lang = m
        .get("language")
        .ok_or_else(|| GraphError::missing("The parameter template['language'] is required."))?;
    let lm = as_obj(lang, "template['language']")?;
    only_keys(lm, &["code", "policy"], "template['language']")?;
    let code = req_str(lm, "code", "template['language']")?;
    if let Some(p) = opt_str(lm, "policy", "template['language']")?
        && p != "deterministic"
    {
        return Err(GraphError::invalid(
            "Param template['language']['policy'] must be \"deterministic\".",
        ));
    }
    let components = match m.get("components") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(GraphError::invalid(
                "Param template['components'] must be an array.",
            ));
        }
    };
    for (i, c) in components.iter().enumerate() {
        let cp = format!("template['components'][{i}]");
        let cm = as_obj(c, &cp)?;
        only_keys(cm, &["type", "sub_type", "index", "parameters"], &cp)?;
        let ctype = req_str(cm, "type", &cp)?;
        if !matches!(ctype, "header" | "body" | "button") {
            return Err(GraphError::invalid(format!(
                "Param {cp}['type'] must be one of {{header, body, button}} - got \"{ctype}\"."
            )));
        }
        if ctype == "button" {
            let st = req_str(cm, "sub_type", &cp)?;
            if !matches!(st, "quick_reply" | "url" | "catalog" | "flow" | "copy_code") {
                return Err(GraphError::invalid(format!(
                    "Param {cp}['sub_type'] is not a valid button sub_type - got \"{st}\"."
                )));
            }
            match cm.get("index") {
                Some(Value::String(s)) if s.parse::<u32>().is_ok() => {}
                Some(Value::Number(n)) if n.as_u64().is_some() => {}
                None => {
                    return Err(GraphError::missing(format!(
                        "The parameter {cp}['index'] is required."
                    )));
                }
                _ => {
                    return Err(GraphError::invalid(format!(
                        "Param {cp}['index'] must be a number."
                    )));
                }
            }
        }
        if let Some(params) = cm.get("parameters") {
            let params = params.as_array().ok_or_else(|| {
                GraphError::invalid(format!("Param {cp}['parameters'] must be an array."))
            })?;
            for (j, p) in params.iter().enumerate() {
                let pp = format!("{cp}['parameters'][{j}]");
                let pm = as_obj(p, &pp)?;
                let ptype = req_str(pm, "type", &pp)?;
                match ptype {
                    "text" => {
                        only_keys(pm, &["type", "text", "parameter_name"], &pp)?;
                        text_field(pm, "text", &pp, 32768)?;
                    }
                    "payload" => {
                        only_keys(pm, &["type", "payload"], &pp)?;
                        req_str(pm, "payload", &pp)?;
                    }
                    "currency" => {
                        only_keys(pm, &["type", "currency", "parameter_name"], &pp)?;
                        let c = pm.get("currency").ok_or_else(|| {
                            GraphError::missing(format!(
                                "The parameter {pp}['currency'] is required."
                            ))
                        })?;
                        let c = as_obj(c, &sub(&pp, "currency"))?;
                        req_str(c, "fallback_value", &sub(&pp, "currency"))?;
                        req_str(c, "code", &sub(&pp, "currency"))?;
                        if !c.get("amount_1000").is_some_and(Value::is_i64) {
                            return Err(GraphError::missing(format!(
                                "The parameter {pp}['currency']['amount_1000'] is required."
                            )));
                        }
                    }
                    "date_time" => {
                        only_keys(pm, &["type", "date_time", "parameter_name"], &pp)?;
                        let d = pm.get("date_time").ok_or_else(|| {
                            GraphError::missing(format!(
                                "The parameter {pp}['date_time'] is required."
                            ))
                        })?;
                        let d = as_obj(d, &sub(&pp, "date_time"))?;
                        req_str(d, "fallback_value", &sub(&pp, "date_time"))?;
                    }
                    "image" | "video" | "document" => {
                        only_keys(pm, &["type", ptype], &pp)?;
                        let mp = sub(&pp, ptype);
                        let obj = pm.get(ptype).ok_or_else(|| {
                            GraphError::missing(format!("The parameter {mp} is required."))
                        })?;
                        if let Some(r) = validate_media(ptype, obj, &mp)? {
                            media.push(r);
                        }
                    }
                    "coupon_code" | "action" => {}
                    other => {
                        return Err(GraphError::invalid(format!(
                            "Param {pp}['type'] is not a valid parameter type - got \"{other}\"."
                        )));
                    }
                }
            }
        }
    }
    Ok(TemplateRef {
        name: name.to_string(),
        language: code.to_string(),
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(v: Value) -> i64 {
        match validate(&v) {
            Ok(_) => 0,
            Err(e) => e.code,
        }
    }

    fn base(kind: &str, payload: Value) -> Value {
        let mut v = json!({"messaging_product":"whatsapp","to":"+15551230001","type":kind});
        v[kind] = payload;
        v
    }

    #[test]
    fn text_limits() {
        assert_eq!(code(base("text", json!({"body":"hi"}))), 0);
        assert_eq!(code(base("text", json!({"body":"x".repeat(4096)}))), 0);
        assert_eq!(code(base("text", json!({"body":"x".repeat(4097)}))), 131009);
        assert_eq!(code(base("text", json!({}))), 131008);
        assert_eq!(code(base("text", json!({"body":"hi","bogus":1}))), 100);
        assert_eq!(code(json!({"to":"+15551230001","text":{"body":"x"}})), 100);
        assert_eq!(
            code(json!({"messaging_product":"whatsapp","to":"abc","text":{"body":"x"}})),
            131009
        );
    }

    #[test]
    fn media_rules() {
        assert_eq!(code(base("image", json!({"id":"123","caption":"c"}))), 0);
        assert_eq!(
            code(base("image", json!({"id":"1","link":"https://x.io/a.jpg"}))),
            131009
        );
        assert_eq!(code(base("image", json!({"caption":"c"}))), 131008);
        assert_eq!(code(base("audio", json!({"id":"1","caption":"c"}))), 100);
        assert_eq!(code(base("document", json!({"link":"ftp://x"}))), 131009);
        assert_eq!(
            code(base("image", json!({"id":"1","caption":"c".repeat(1025)}))),
            131009
        );
    }

    #[test]
    fn interactive_rules() {
        let btn = |n: usize| {
            let buttons: Vec<Value> = (0..n)
                .map(|i| json!({"type":"reply","reply":{"id":format!("b{i}"),"title":format!("T{i}")}}))
                .collect();
            base(
                "interactive",
                json!({"type":"button","body":{"text":"pick"},"action":{"buttons":buttons}}),
            )
        };
        assert_eq!(code(btn(3)), 0);
        assert_eq!(code(btn(4)), 131009);
        assert_eq!(code(btn(0)), 131009);
        let rows: Vec<Value> = (0..11)
            .map(|i| json!({"id":format!("r{i}"),"title":"Row"}))
            .collect();
        let list = |rows: Vec<Value>| {
            base(
                "interactive",
                json!({"type":"list","body":{"text":"b"},"action":{"button":"Options",
                    "sections":[{"title":"A","rows":rows[..5].to_vec()},{"title":"B","rows":rows[5..].to_vec()}]}}),
            )
        };
        assert_eq!(code(list(rows.clone())), 131009);
        assert_eq!(code(list(rows[..10].to_vec())), 0);
        let long_title = base(
            "interactive",
            json!({"type":"button","body":{"text":"b"},"action":{"buttons":[
                {"type":"reply","reply":{"id":"a","title":"x".repeat(21)}}]}}),
        );
        assert_eq!(code(long_title), 131009);
        let cta = base(
            "interactive",
            json!({"type":"cta_url","body":{"text":"b"},"action":{"name":"cta_url",
                "parameters":{"display_text":"See","url":"https://x.io"}}}),
        );
        assert_eq!(code(cta), 0);
    }

    #[test]
    fn mark_read_and_template() {
        assert!(matches!(
            validate(
                &json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.X"})
            ),
            Ok(Request::MarkRead { .. })
        ));
        assert_eq!(
            code(json!({"messaging_product":"whatsapp","status":"read"})),
            131008
        );
        assert_eq!(
            code(base(
                "template",
                json!({"name":"t","language":{"code":"en_US"}})
            )),
            0
        );
        assert_eq!(code(base("template", json!({"name":"t"}))), 131008);
    }
}
