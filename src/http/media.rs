//! Media files: `POST /v1/media` (the raw file as the body, its type in `Content-Type`, up
//! to 16 MB and WhatsApp's per-type limits; `?filename=`; `?connection_id=` of a Business
//! number also uploads it to Meta and answers Meta's id as `provider_id`),
//! `GET /v1/media/{id}` (the bytes, opened and checked against their SHA-256, served so a
//! browser never runs them: see [`serve`]) and `GET /v1/media/{id}/url` (a short-lived signed
//! link that needs no key). Files are sealed under DATA_DIR. A message can name a stored file
//! by its `id` (`{"image":{"id":"<uuid>"}}`): the number uploads it when it sends. Another
//! user's media is a 404.

use super::audit;
use super::auth::{self, Need};
use super::business::number_actor;
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_core::business::media::{self, kind_of};
use sincro_core::media_store::{self, MAX_MEDIA_BYTES, MediaRow, NewMedia};
use sincro_core::store::api_keys::Principal;
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    filename: Option<String>,
    connection_id: Option<Uuid>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let upload = warp::path!("v1" / "media")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(warp::query::<UploadQuery>())
        .and(warp::header::optional::<String>("content-type"))
        .and(super::capped::body(MAX_MEDIA_BYTES as u64))
        .and(with_ctx(ctx.clone()))
        .then(
            |p: Principal, q, ct, body: Option<Bytes>, ctx: Arc<AppContext>| async move {
                match body {
                    None => super::capped::too_large(MAX_MEDIA_BYTES as u64),
                    Some(body) => {
                        audit::respond(
                            ctx.clone(),
                            p.clone(),
                            "media.upload",
                            None,
                            upload(p, q, ct, body, ctx),
                        )
                        .await
                    }
                }
            },
        );
    // A signed link (`?expires=&sig=`) needs no key; anything else is the keyed route.
    let signed = warp::path!("v1" / "media" / Uuid)
        .and(warp::get())
        .and(signed_query())
        .and(warp::addr::remote())
        .and(with_ctx(ctx.clone()))
        .then(|id, q: SignedQuery, remote: Option<SocketAddr>, ctx| {
            respond(download_signed(id, q, remote.map(|a| a.ip()), ctx))
        });
    let get = warp::path!("v1" / "media" / Uuid)
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(download(id, p, ctx)));
    let url = warp::path!("v1" / "media" / Uuid / "url")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::header::optional::<String>("host"))
        .and(with_ctx(ctx))
        .then(|id: Uuid, p: Principal, host, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "media.url",
                Some(id.to_string()),
                signed_url(id, p, host, ctx),
            )
        });
    upload
        .or(signed)
        .unify()
        .or(get)
        .unify()
        .or(url)
        .unify()
        .boxed()
}

#[derive(Debug)]
struct SignedQuery {
    /// None when missing or not a number, or when the query has anything else: not valid.
    expires: Option<i64>,
    sig: String,
}

/// Matches only a query naming `sig` (then this route answers, 403 for anything wrong);
/// a valid one is `expires` and `sig`, nothing else.
fn signed_query() -> impl Filter<Extract = (SignedQuery,), Error = warp::Rejection> + Clone {
    warp::query::raw().and_then(|raw: String| async move {
        let mut expires = None;
        let mut sig = None;
        let mut other = false;
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("expires", v) => expires = v.parse::<i64>().ok(),
                ("sig", v) => sig = Some(v.to_string()),
                _ => other = true,
            }
        }
        match sig {
            None => Err(warp::reject::not_found()),
            Some(sig) => Ok(SignedQuery {
                expires: expires.filter(|_| !other),
                sig,
            }),
        }
    })
}

/// The key media links are signed with: derived from the sealing key, so every node with the
/// same `ENCRYPTION_KEY` accepts the links of every other.
fn url_key(ctx: &AppContext) -> [u8; 32] {
    ctx.sealer.derive_key("media-url-v1")
}

fn signature(key: &[u8; 32], id: Uuid, expires: i64) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("media:{id}:{expires}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Whether `sig` signs (`id`, `expires`), in constant time.
fn signature_valid(key: &[u8; 32], id: Uuid, expires: i64, sig: &str) -> bool {
    use base64::Engine;
    let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let want = signature(key, id, expires);
    given.len() == want.len() && given.iter().zip(&want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

async fn signed_url(
    id: Uuid,
    p: Principal,
    host: Option<String>,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    use base64::Engine;
    let client = ctx.pool.get().await?;
    media_store::get(&client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("media"))?;
    let now = time::OffsetDateTime::now_utc();
    let expires_at = now + ctx.config.media_url_ttl;
    let expires = expires_at.unix_timestamp();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature(
        &url_key(&ctx),
        id,
        expires,
    ));
    let path = format!("/v1/media/{id}?expires={expires}&sig={sig}");
    let base = match (&ctx.config.public_base_url, host) {
        (Some(base), _) => base.clone(),
        (None, Some(h)) if h.bytes().all(|b| b.is_ascii_graphic()) && !h.contains('/') => {
            format!("http://{h}")
        }
        _ => String::new(),
    };
    Ok(json_reply(
        StatusCode::OK,
        &json!({
            "url": format!("{base}{path}"),
            "path": path,
            "expires_at": expires_at
                .replace_nanosecond(0)
                .unwrap_or(expires_at)
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
        }),
    ))
}

async fn download_signed(
    id: Uuid,
    q: SignedQuery,
    ip: Option<std::net::IpAddr>,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    // A flood of forged links is refused like a flood of bad keys: before any lookup.
    ctx.preauth.check(ip)?;
    super::auth::check_ip_rate(&ctx, ip).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let valid = q
        .expires
        .filter(|e| signature_valid(&url_key(&ctx), id, *e, &q.sig));
    let Some(expires) = valid else {
        if let Some(ip) = ip {
            ctx.preauth.failed(ip);
        }
        return Err(ApiError::Forbidden("this media link is not valid".into()));
    };
    if expires < now {
        return Err(ApiError::Forbidden(
            "this media link has expired; ask for a new one (GET /v1/media/{id}/url)".into(),
        ));
    }
    let client = ctx.pool.get().await?;
    let row = media_store::get_by_id(&client, id)
        .await?
        .ok_or(ApiError::NotFound("media"))?;
    serve(&ctx, &row).await
}

fn media_json(m: &MediaRow) -> Value {
    json!({
        "id": m.id,
        "connection_id": m.connection_id,
        "direction": m.direction,
        "mime_type": m.mime_type,
        "filename": m.filename,
        "size_bytes": m.size_bytes,
        "sha256": m.sha256,
        "provider_id": m.provider_id,
        "message_id": m.message_id,
        "created_at": m.created_at.format(&time::format_description::well_known::Rfc3339).ok(),
    })
}

async fn upload(
    p: Principal,
    q: UploadQuery,
    content_type: Option<String>,
    body: Bytes,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let mime = content_type
        .as_deref()
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_content_type",
                "send the file's type in Content-Type",
            )
        })?;
    media::check_upload(&mime, body.len(), q.filename.as_deref())?;
    // Check the connection before storing anything.
    let actor = match q.connection_id {
        Some(id) => Some(number_actor(&ctx, &p, id).await?),
        None => None,
    };
    let client = ctx.pool.get().await?;
    let mut row = media_store::store(
        &client,
        &ctx.sealer,
        &ctx.config.data_dir,
        NewMedia {
            usuario_id: p.usuario_id,
            connection_id: q.connection_id,
            direction: "outbound",
            mime_type: &mime,
            filename: q.filename.as_deref(),
            provider_id: None,
            message_id: None,
        },
        &body,
    )
    .await?;
    if let Some(actor) = actor {
        let media_id = row.id;
        let uploaded = actor.upload_media(media_id).await;
        match uploaded {
            Ok(provider) => row.provider_id = Some(provider),
            Err(e) => {
                // Meta refused it: keep nothing of it.
                if let Err(cleanup) = media_store::remove(&client, &ctx.config.data_dir, &row).await
                {
                    tracing::error!(error = %cleanup, "could not remove a refused upload");
                }
                return Err(e.into());
            }
        }
    }
    Ok(audit::note(
        json_reply(StatusCode::CREATED, &media_json(&row)),
        row.id,
        json!({"mime_type": mime, "size_bytes": row.size_bytes}),
    ))
}

async fn download(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let row = media_store::get(&client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("media"))?;
    serve(&ctx, &row).await
}

/// The stored bytes, with headers that keep a browser from running them: a type from the
/// allowlist of WhatsApp's media types (anything else `application/octet-stream`), no
/// sniffing, always an attachment, and a sandbox should it be rendered anyway.
async fn serve(ctx: &AppContext, row: &MediaRow) -> Result<Response, ApiError> {
    let data = media_store::read(&ctx.sealer, &ctx.config.data_dir, row).await?;
    let mut resp = Response::new(data.into());
    let headers = resp.headers_mut();
    let static_header = |v: &'static str| warp::http::HeaderValue::from_static(v);
    headers.insert(
        "content-type",
        served_type(&row.mime_type)
            .parse()
            .unwrap_or_else(|_| static_header("application/octet-stream")),
    );
    headers.insert("x-content-type-options", static_header("nosniff"));
    headers.insert("content-security-policy", static_header("sandbox"));
    headers.insert("cache-control", static_header("private, no-store"));
    headers.insert(
        "content-disposition",
        content_disposition(row.filename.as_deref(), row.id)
            .parse()
            .unwrap_or_else(|_| static_header("attachment")),
    );
    if let Ok(v) = row.sha256.parse() {
        headers.insert("x-sha256", v);
    }
    Ok(resp)
}

/// The type a stored file is served as: one of WhatsApp's media types, or
/// `application/octet-stream` (an `text/html` or `image/svg+xml` "document" is never served
/// as such).
pub fn served_type(stored: &str) -> String {
    let base = stored
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match kind_of(&base) {
        Some(_) if base == "text/plain" => "text/plain; charset=utf-8".into(),
        Some(_) => base,
        None => "application/octet-stream".into(),
    }
}

/// `attachment` with an ASCII `filename` fallback and the exact name in RFC 5987 `filename*`.
pub fn content_disposition(filename: Option<&str>, id: Uuid) -> String {
    let name: String = filename
        .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f))
        .filter(|f| !f.trim().is_empty())
        .map(String::from)
        .unwrap_or_else(|| format!("media-{id}"));
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != ';' && c != '%' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_types_and_names() {
        assert_eq!(served_type("text/html"), "application/octet-stream");
        assert_eq!(served_type("image/svg+xml"), "application/octet-stream");
        assert_eq!(served_type("IMAGE/PNG"), "image/png");
        assert_eq!(served_type("audio/ogg; codecs=opus"), "audio/ogg");
        assert_eq!(served_type("text/plain"), "text/plain; charset=utf-8");
        let id = Uuid::nil();
        assert_eq!(
            content_disposition(Some("a\"b;c\r\n.html"), id),
            "attachment; filename=\"a_b_c__.html\"; filename*=UTF-8''a%22b%3Bc%0D%0A.html"
        );
        assert_eq!(
            content_disposition(Some("../../etc/pässwd"), id),
            "attachment; filename=\"p_sswd\"; filename*=UTF-8''p%C3%A4sswd"
        );
        assert!(content_disposition(None, id).contains("media-00000000"));
        for v in [
            content_disposition(Some("x\u{0}y"), id),
            content_disposition(Some("名前.pdf"), id),
        ] {
            assert!(v.parse::<warp::http::HeaderValue>().is_ok(), "{v}");
        }
    }

    #[test]
    fn signatures() {
        let key = [7u8; 32];
        let id = Uuid::now_v7();
        use base64::Engine;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature(&key, id, 100));
        assert!(signature_valid(&key, id, 100, &sig));
        assert!(!signature_valid(&key, id, 101, &sig));
        assert!(!signature_valid(&key, Uuid::now_v7(), 100, &sig));
        assert!(!signature_valid(&[8u8; 32], id, 100, &sig));
        assert!(!signature_valid(&key, id, 100, "not base64!"));
    }
}
