//! Media: upload (`POST /{phone_number_id}/media`, multipart) checked against Meta's MIME/size
//! table (131053 on violation), lookup (`GET /{media_id}`) that hands out a download URL valid
//! for `media_url_lifetime`, download of that URL (bearer token of the owning number required:
//! 401 without it, 404 once expired or deleted), deletion, and the media of inbound messages
//! (given as `data_base64` + `mime_type`, or generated), which download the same way.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use rand::RngExt;
use serde_json::{Map, Value, json};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::errors::{ControlError, GraphError};
use super::ids;
use super::multipart;
use super::records::Media;
use super::state::{Sim, State};

const MB: usize = 1024 * 1024;

/// The MIME type without parameters, lower-cased (`audio/ogg; codecs=opus` → `audio/ogg`).
fn base_mime(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Which message type a MIME type belongs to and its size limit (Meta's Cloud API documentation).
// The daemon has a table like this one; the simulator checks on its own, not through it.
pub fn mime_kind(mime: &str) -> Option<(&'static str, usize)> {
    Some(match base_mime(mime).as_str() {
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            ("document", 100 * MB)
        }
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", 500 * 1024),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        _ => return None,
    })
}

fn upload_error(details: impl Into<String>) -> GraphError {
    GraphError::new(131053, details)
}

/// `POST /{phone_number_id}/media`.
pub fn upload(
    sim: &Sim,
    phone_number_id: &str,
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<Value, GraphError> {
    let boundary = content_type
        .and_then(multipart::boundary)
        .ok_or_else(|| GraphError::param("The request must be multipart/form-data."))?;
    let parts = multipart::parse(body, &boundary).map_err(GraphError::param)?;
    let field = |name: &str| parts.iter().find(|p| p.name == name);
    let text = |name: &str| field(name).map(|p| String::from_utf8_lossy(&p.data).to_string());
    for p in &parts {
        if !matches!(p.name.as_str(), "messaging_product" | "file" | "type") {
            return Err(GraphError::param(format!(
                "Unexpected key \"{}\" on param \"body\".",
                p.name
            )));
        }
    }
    match text("messaging_product").as_deref() {
        Some("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::param(format!(
                "Param messaging_product must be one of {{WHATSAPP}} - got \"{other}\"."
            )));
        }
        None => {
            return Err(GraphError::param(
                "The parameter messaging_product is required.",
            ));
        }
    }
    let file =
        field("file").ok_or_else(|| GraphError::missing("The parameter file is required."))?;
    let declared =
        text("type").ok_or_else(|| GraphError::missing("The parameter type is required."))?;
    let part_type = file.content_type.clone().unwrap_or_default();
    if !part_type.is_empty() && base_mime(&part_type) != base_mime(&declared) {
        return Err(upload_error(format!(
            "The file's content type ({part_type}) does not match the type parameter ({declared})."
        )));
    }
    let (kind, max) = mime_kind(&declared).ok_or_else(|| {
        upload_error(format!("Param file must be a file with one of the supported types; \"{declared}\" is not supported."))
    })?;
    if file.data.is_empty() {
        return Err(upload_error("The uploaded file is empty."));
    }
    if file.data.len() > max {
        return Err(upload_error(format!(
            "{kind} file of {} bytes exceeds the maximum of {max} bytes for {}.",
            file.data.len(),
            base_mime(&declared)
        )));
    }
    let media = Media::new(
        phone_number_id,
        &base_mime(&declared),
        file.data.clone(),
        file.filename.clone(),
    );
    let id = media.id.clone();
    sim.lock().media.insert(id.clone(), media);
    Ok(json!({ "id": id }))
}

/// `GET /{media_id}`: the metadata and a fresh, expiring download URL.
pub fn info(sim: &Sim, media_id: &str) -> Value {
    let token = ids::token(24);
    let expires = Instant::now() + sim.config.media_url_lifetime;
    let exp_unix = super::state::unix_now() + sim.config.media_url_lifetime.as_secs() as i64;
    let mut st = sim.lock();
    let now = Instant::now();
    st.media_urls.retain(|_, (_, e)| *e > now);
    let Some(m) = st.media.get(media_id).cloned() else {
        return json!({});
    };
    st.media_urls
        .insert(token.clone(), (media_id.to_string(), expires));
    json!({
        "messaging_product": "whatsapp",
        "url": format!(
            "{}/whatsapp_business/attachments/?mid={}&ext={}&hash={}",
            sim.base_url, m.id, exp_unix, token
        ),
        "mime_type": m.mime_type,
        "sha256": m.sha256_hex(),
        "file_size": m.data.len().to_string(),
        "id": m.id,
    })
}

/// `GET <url>`: the bytes, for the owning number's bearer token only.
pub fn download(sim: &Sim, query: &[(String, String)], bearer: Option<&str>) -> Response {
    let plain = |status: StatusCode, msg: &str| {
        let mut r = Response::new(msg.to_string().into());
        *r.status_mut() = status;
        r
    };
    let Some(bearer) = bearer else {
        return plain(StatusCode::UNAUTHORIZED, "Authorization required");
    };
    let st = sim.lock();
    if !st.token_valid(bearer) {
        return plain(StatusCode::UNAUTHORIZED, "Invalid access token");
    }
    let hash = query
        .iter()
        .find(|(k, _)| k == "hash")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let Some((media_id, expires)) = st.media_urls.get(hash) else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    if *expires <= Instant::now() {
        return plain(StatusCode::NOT_FOUND, "URL expired");
    }
    let Some(m) = st.media.get(media_id) else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    if st.number_for(bearer, &m.owner).is_none() {
        return plain(
            StatusCode::UNAUTHORIZED,
            "Access token may not read this media",
        );
    }
    let mut r = Response::new(m.data.clone().into());
    if let Ok(v) = HeaderValue::from_str(&m.mime_type) {
        r.headers_mut().insert("content-type", v);
    }
    if let Ok(v) = HeaderValue::from_str(&m.data.len().to_string()) {
        r.headers_mut().insert("content-length", v);
    }
    if let Some(f) = &m.filename
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{f}\""))
    {
        r.headers_mut().insert("content-disposition", v);
    }
    r
}

/// Placeholder bytes that start with the format's magic number, so sniffers agree with the
/// MIME type.
fn generated_bytes(mime: &str) -> Vec<u8> {
    let mut rng = rand::rng();
    let (head, tail): (&[u8], &[u8]) = match base_mime(mime).as_str() {
        "image/jpeg" => (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\xff\xd9"),
        "image/png" => (b"\x89PNG\r\n\x1a\n", b""),
        "image/webp" => (b"RIFF\x00\x01\x00\x00WEBPVP8 ", b""),
        "audio/ogg" => (b"OggS\x00\x02", b""),
        "video/mp4" | "audio/mp4" => (b"\x00\x00\x00\x18ftypmp42", b""),
        "application/pdf" => (b"%PDF-1.4\n", b"\n%%EOF\n"),
        _ => (b"", b""),
    };
    let mut out = head.to_vec();
    out.extend((0..512).map(|_| rng.random::<u8>()));
    out.extend_from_slice(tail);
    out
}

/// Stores the media of an inbound message of type `kind` and returns the object the webhook
/// carries (`id`, `mime_type`, `sha256` in base64, plus caption/filename/voice/animated).
pub fn store_inbound(
    st: &mut State,
    phone_number_id: &str,
    kind: &str,
    obj: &Map<String, Value>,
) -> Result<Value, ControlError> {
    let default_mime = match kind {
        "image" => "image/jpeg",
        "audio" => "audio/ogg",
        "video" => "video/mp4",
        "document" => "application/pdf",
        _ => "image/webp",
    };
    let mime = obj
        .get("mime_type")
        .and_then(Value::as_str)
        .unwrap_or(default_mime)
        .to_string();
    let data = match obj.get("data_base64").and_then(Value::as_str) {
        Some(b64) => STANDARD
            .decode(b64.trim())
            .map_err(|e| ControlError::bad_request(format!("data_base64 is not base64: {e}")))?,
        None => generated_bytes(&mime),
    };
    let filename = obj
        .get("filename")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| (kind == "document").then(|| "document.pdf".to_string()));
    let media = Media::new(phone_number_id, &mime, Bytes::from(data), filename.clone());
    let mut out = Map::new();
    for (k, v) in obj {
        if !matches!(k.as_str(), "data_base64" | "mime_type" | "id" | "sha256") {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("mime_type".into(), json!(mime));
    out.insert("sha256".into(), json!(media.sha256_base64()));
    out.insert("id".into(), json!(media.id));
    if let Some(f) = filename {
        out.insert("filename".into(), json!(f));
    }
    if kind == "audio" && !out.contains_key("voice") {
        out.insert("voice".into(), json!(base_mime(&mime) == "audio/ogg"));
    }
    if kind == "sticker" && !out.contains_key("animated") {
        out.insert("animated".into(), json!(false));
    }
    st.media.insert(media.id.clone(), media);
    Ok(Value::Object(out))
}
