//! Media files: `POST /v1/media` (the raw file as the body, its type in `Content-Type`, up
//! to 16 MB and WhatsApp's per-type limits; `?filename=`; `?connection_id=` of a Business
//! number also uploads it to Meta and answers Meta's id as `provider_id`) and
//! `GET /v1/media/{id}` (the bytes, opened and checked against their SHA-256). Files are sealed
//! under DATA_DIR. A message can name a stored file by its `id` (`{"image":{"id":"<uuid>"}}`):
//! the number uploads it when it sends. Another user's media is a 404.

use super::auth::principal;
use super::business::{ask_number, business_error, number_actor};
use super::error::ApiError;
use super::{json_reply, respond, with_ctx};
use crate::context::AppContext;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_actors::business::media::{self, MAX_MEDIA_BYTES, MediaRow, NewMedia};
use sincro_actors::business::number::BusinessNumberMessage;
use sincro_actors::store::api_keys::Principal;
use std::sync::Arc;
use std::time::Duration;
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
        .and(principal(ctx.clone()))
        .and(warp::query::<UploadQuery>())
        .and(warp::header::optional::<String>("content-type"))
        .and(super::capped::body(MAX_MEDIA_BYTES as u64))
        .and(with_ctx(ctx.clone()))
        .then(|p, q, ct, body: Option<Bytes>, ctx| async move {
            match body {
                None => super::capped::too_large(MAX_MEDIA_BYTES as u64),
                Some(body) => respond(upload(p, q, ct, body, ctx)).await,
            }
        });
    let get = warp::path!("v1" / "media" / Uuid)
        .and(warp::get())
        .and(principal(ctx.clone()))
        .and(with_ctx(ctx))
        .then(|id, p, ctx| respond(download(id, p, ctx)));
    upload.or(get).unify().boxed()
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
    let (kind, max) = media::kind_of(&mime).ok_or_else(|| {
        ApiError::unprocessable(
            "unsupported_media_type",
            format!("{mime} cannot be sent on WhatsApp (images: JPEG/PNG; audio, video, documents, WebP stickers)"),
        )
    })?;
    if body.is_empty() {
        return Err(ApiError::unprocessable("empty_file", "the file is empty"));
    }
    if body.len() > max {
        return Err(ApiError::unprocessable(
            "file_too_large",
            format!(
                "a {kind} ({mime}) may be at most {max} bytes; this one has {}",
                body.len()
            ),
        ));
    }
    if let Some(f) = &q.filename
        && (f.is_empty()
            || f.len() > 255
            || f.chars().any(|c| c.is_control() || c == '/' || c == '\\'))
    {
        return Err(ApiError::unprocessable(
            "invalid_filename",
            "filename is a plain file name of at most 255 characters",
        ));
    }
    // Check the connection before storing anything.
    let actor = match q.connection_id {
        Some(id) => Some(number_actor(&ctx, &p, id).await?),
        None => None,
    };
    let client = ctx.pool.get().await?;
    let mut row = media::store(
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
    .await
    .map_err(business_error)?;
    if let Some(actor) = actor {
        let media_id = row.id;
        let uploaded = ask_number(
            &actor,
            |reply| BusinessNumberMessage::UploadMedia { media_id, reply },
            Duration::from_secs(120),
        )
        .await;
        match uploaded {
            Ok(provider) => row.provider_id = Some(provider),
            Err(e) => {
                // Meta refused it: keep nothing of it.
                if let Err(cleanup) = media::remove(&client, &ctx.config.data_dir, &row).await {
                    tracing::error!(error = %cleanup, "could not remove a refused upload");
                }
                return Err(e);
            }
        }
    }
    super::audit::record(
        &ctx,
        &p,
        "media.upload",
        Some(row.id.to_string()),
        json!({"mime_type": mime, "size_bytes": row.size_bytes}),
    )
    .await;
    Ok(json_reply(StatusCode::CREATED, &media_json(&row)))
}

async fn download(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let row = media::get(&client, p.usuario_id, id)
        .await
        .map_err(business_error)?
        .ok_or(ApiError::NotFound("media"))?;
    let data = media::read(&ctx.sealer, &ctx.config.data_dir, &row)
        .await
        .map_err(business_error)?;
    let mut resp = Response::new(data.into());
    let headers = resp.headers_mut();
    if let Ok(v) = row.mime_type.parse() {
        headers.insert("content-type", v);
    }
    if let Ok(v) = row.sha256.parse() {
        headers.insert("x-sha256", v);
    }
    if let Some(f) = &row.filename
        && let Ok(v) = format!("attachment; filename=\"{}\"", f.replace('"', "_")).parse()
    {
        headers.insert("content-disposition", v);
    }
    Ok(resp)
}
