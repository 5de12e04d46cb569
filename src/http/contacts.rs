//! A contact's personal data: `GET /v1/contacts/{phone}/export` (a zip, streamed),
//! `DELETE /v1/contacts/{phone}` (erasure; `?lead=delete` deletes the lead instead of
//! clearing it), `GET` and `POST /v1/contacts/{phone}/consent` (opt-out and opt-in with their
//! source). `{phone}` is any spelling of the number (URL-encoded). Scoped to the key's user.
//! The number is personal data: the access log names the route template, never the path, and
//! the audit rows name the lead. An export is audited too (`contact.export`).

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use sincro_core::privacy::erase::{self, LeadErasure};
use sincro_core::privacy::{consent, export};
use sincro_core::store::api_keys::Principal;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

/// A path segment with its `%XX` escapes decoded (a number may be written `%2B55…`).
fn decode(segment: &str) -> Result<String, ApiError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_phone", "bad %-escape in the number")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("invalid_phone", "the number is not UTF-8"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseQuery {
    lead: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// `opt_in` or `opt_out`.
    consent: String,
    /// Where it was given (`web_form`, `phone_call`...).
    source: String,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    let export = warp::path!("v1" / "contacts" / String / "export")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx.clone()))
        .then(|phone, p, ctx| respond(export(phone, p, ctx)));
    let erase = warp::path!("v1" / "contacts" / String)
        .and(warp::delete())
        .and(auth::principal(ctx.clone(), Need::Full))
        .and(warp::query::<EraseQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|phone, p: Principal, q, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "contact.erase",
                None,
                erase(phone, p, q, ctx),
            )
        });
    let consent_get = warp::path!("v1" / "contacts" / String / "consent")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(with_ctx(ctx.clone()))
        .then(|phone, p, ctx| respond(consent_status(phone, p, ctx)));
    let consent_post = warp::path!("v1" / "contacts" / String / "consent")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(json_body::<ConsentBody>(limit))
        .and(with_ctx(ctx))
        .then(|phone, p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "contact.consent",
                None,
                give_consent(phone, p, body, ctx),
            )
        });
    export
        .or(erase)
        .unify()
        .or(consent_get)
        .unify()
        .or(consent_post)
        .unify()
        .boxed()
}

/// The archive's chunks as the HTTP body reads them.
struct Chunks(tokio::sync::mpsc::Receiver<Bytes>);

impl futures::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

async fn export(phone: String, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let phone = decode(&phone)?;
    let region = ctx.shared.settings.default_region.as_deref();
    let prepared =
        export::prepare(&ctx.pool, &ctx.shared.sealer, p.usuario_id, &phone, region).await?;
    // Who read a contact's data is kept, like every change.
    let details = json!({"media_files": prepared.media.len()});
    audit::record(&ctx, &p, "contact.export", None, details).await;
    let chunks = export::stream(
        ctx.shared.sealer.clone(),
        ctx.shared.settings.data_dir.clone(),
        prepared,
    );
    use warp::Reply;
    let mut resp = warp::reply::stream(Chunks(chunks)).into_response();
    let headers = resp.headers_mut();
    headers.insert("content-type", "application/zip".parse().expect("header"));
    headers.insert(
        "content-disposition",
        "attachment; filename=\"contact-export.zip\""
            .parse()
            .expect("header"),
    );
    Ok(resp)
}

async fn erase(
    phone: String,
    p: Principal,
    q: EraseQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let phone = decode(&phone)?;
    let mode = LeadErasure::parse(q.lead.as_deref())?;
    let erased = erase::erase_contact(
        &ctx.pool,
        &ctx.shared.sealer,
        &ctx.shared.settings.data_dir,
        p.usuario_id,
        &phone,
        ctx.shared.settings.default_region.as_deref(),
        mode,
    )
    .await?;
    let target = erased
        .lead_ids
        .first()
        .map_or_else(|| "contact".to_string(), ToString::to_string);
    let details = json!(erased);
    Ok(audit::note(
        json_reply(StatusCode::OK, &details),
        target,
        details,
    ))
}

async fn consent_status(
    phone: String,
    p: Principal,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let phone = decode(&phone)?;
    let region = ctx.shared.settings.default_region.as_deref();
    let status = consent::status(&ctx.pool, p.usuario_id, &phone, region).await?;
    Ok(json_reply(StatusCode::OK, &status))
}

async fn give_consent(
    phone: String,
    p: Principal,
    body: ConsentBody,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let phone = decode(&phone)?;
    let opted_out = match body.consent.as_str() {
        "opt_out" => true,
        "opt_in" => false,
        other => {
            return Err(ApiError::bad_request(
                "invalid_consent",
                format!("consent={other:?} must be opt_in or opt_out"),
            ));
        }
    };
    let region = ctx.shared.settings.default_region.as_deref();
    let status = consent::give(
        &ctx.pool,
        &ctx.shared.sealer,
        p.usuario_id,
        &phone,
        region,
        opted_out,
        &body.source,
    )
    .await?;
    let details = json!({"consent": body.consent, "source": body.source.trim()});
    Ok(audit::note(
        json_reply(StatusCode::OK, &status),
        "contact",
        details,
    ))
}
