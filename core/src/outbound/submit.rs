//! `POST /v1/messages` as one call (docs/ARCHITECTURE.md §4, Outbound; §7 for the provider's
//! rules): the body validated, a repeated `Idempotency-Key` answered with its first message,
//! the connection checked (the user's, enabled, a Lite session or a Business number), the
//! recipient read to E.164 in the user's region, a Business free-form message refused outside
//! the 24 h customer-service window and a template refused unless approved, a media link
//! checked (and, for Lite, fetched and stored), a bulk or marketing send to an opted-out
//! contact refused ([`consent::send_refusal`]), then the message queued by [`enqueue`].
//! Each refusal is one [`SubmitError`] variant, whose message is written for the API's client.

use super::enqueue::{self, Enqueued, NewMessage, Prior};
use super::query::{self, MessageView};
use super::validate::{self, Invalid, SendRequest};
use crate::business::BusinessError;
use crate::connection::ConnectionKind;
use crate::media_store::{self, NewMedia};
use crate::net_guard::{FetchError, MediaFetcher};
use crate::phone::{self, NormalizedPhone, PhoneError};
use crate::privacy::consent;
use crate::seal::Sealer;
use crate::store::{Client, StoreError, users};
use deadpool_postgres::Pool;
use serde_json::{Value, json};
use std::path::Path;
use uuid::Uuid;

/// What a submission needs from the daemon.
pub struct Submit<'a> {
    pub sealer: &'a Sealer,
    pub fetcher: &'a MediaFetcher,
    /// Where fetched media are stored (sealed), as uploads are.
    pub data_dir: &'a Path,
    /// The daemon's `DEFAULT_REGION`, for users without their own.
    pub default_region: Option<&'a str>,
    pub max_attempts: i32,
}

/// One request: the user, the JSON body and its `Idempotency-Key` (already checked for shape).
pub struct Request<'a> {
    pub usuario_id: Uuid,
    pub body: &'a Value,
    pub idempotency_key: Option<&'a str>,
}

/// What a submission did.
#[derive(Debug)]
pub enum Submitted {
    /// Queued now.
    Queued {
        view: MessageView,
        connection_id: Uuid,
        /// The Cloud API type.
        kind: String,
    },
    /// The key was used before for this body: its first message, whatever changed since.
    Replayed(MessageView),
}

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The body is not a valid message (a 400: the request itself is wrong).
    #[error(transparent)]
    Malformed(Invalid),
    /// The message is valid but this connection's kind cannot send it.
    #[error(transparent)]
    NotForConnection(Invalid),
    #[error("this Idempotency-Key was already used with a different request body")]
    KeyReused,
    #[error("connection not found")]
    ConnectionNotFound,
    #[error("this connection is disabled")]
    ConnectionInactive,
    #[error("this connection is neither a Lite session nor a Business number")]
    ConnectionUnknownKind,
    /// The media link is refused by the SSRF guard, or could not be fetched.
    #[error("{0}")]
    Link(FetchError),
    #[error("the media link answered an empty file")]
    LinkEmpty,
    #[error("to is not a valid phone number ({0}); write it in E.164, e.g. +5511987654321")]
    InvalidPhone(PhoneError),
    #[error("template {name:?} ({language}) is {status}; only APPROVED templates can be sent")]
    TemplateNotApproved {
        name: String,
        language: String,
        status: String,
    },
    #[error(
        "this number has no template {name:?} in language {language:?} (POST /v1/templates/sync to refresh)"
    )]
    TemplateNotFound { name: String, language: String },
    #[error(
        "the contact has not written to this number in the last 24 hours, so WhatsApp only \
         allows an approved template now: send type \"template\" instead"
    )]
    OutsideWindow,
    /// The contact opted out; `bulk` sends and MARKETING templates are refused (the reason).
    #[error(
        "the contact opted out of {0} messages; only service replies (normal or high priority, \
         not a marketing template) may be sent to it"
    )]
    ContactOptedOut(&'static str),
    /// The key's first message no longer exists.
    #[error("message not found")]
    MessageGone,
    /// A fetched media file could not be stored.
    #[error(transparent)]
    Media(BusinessError),
    #[error("{0}")]
    Internal(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates, checks and queues one message (see the module's header for the order).
pub async fn submit(pool: &Pool, s: &Submit<'_>, r: Request<'_>) -> Result<Submitted, SubmitError> {
    let req = validate::validate(r.body).map_err(SubmitError::Malformed)?;
    let hash = enqueue::request_hash(&validate::canonical(r.body));
    let client = &mut pool.get().await.map_err(StoreError::from)?;
    if let Some(k) = r.idempotency_key {
        match enqueue::prior(&*client, r.usuario_id, k, &hash).await? {
            Prior::Same(id) => return replay(client, r.usuario_id, id).await,
            Prior::Different => return Err(SubmitError::KeyReused),
            Prior::None => {}
        }
    }
    let conn = enqueue::connection(&*client, req.connection_id)
        .await?
        .filter(|c| c.usuario_id == r.usuario_id)
        .ok_or(SubmitError::ConnectionNotFound)?;
    if !conn.activo {
        return Err(SubmitError::ConnectionInactive);
    }
    let kind = conn.kind.ok_or(SubmitError::ConnectionUnknownKind)?;
    validate::check_kind(&req, kind).map_err(SubmitError::NotForConnection)?;
    if let Some(link) = req.body[&req.kind]["link"].as_str() {
        s.fetcher.check_static(link).map_err(SubmitError::Link)?;
    }
    let region = users::region_for(&*client, r.usuario_id, None, s.default_region).await?;
    let phone = phone::normalize(&req.to, region.as_deref()).map_err(SubmitError::InvalidPhone)?;
    if kind == ConnectionKind::Business {
        provider_rules(client, r.usuario_id, conn.id, &req, &phone).await?;
    }
    let template = req.template.as_ref().map(|(n, l)| (n.as_str(), l.as_str()));
    let bulk = req.priority == super::PRIORITY_BULK;
    let recipient = phone::contact_key(&phone.e164, None);
    if let Some(why) =
        consent::send_refusal(&*client, r.usuario_id, conn.id, bulk, template, &recipient).await?
    {
        return Err(SubmitError::ContactOptedOut(why));
    }
    let req = media_link(client, s, r.usuario_id, conn.id, kind, req).await?;
    let outcome = enqueue::enqueue(
        client,
        s.sealer,
        NewMessage {
            usuario_id: r.usuario_id,
            region,
            connection_id: conn.id,
            phone: &phone,
            req: &req,
            idempotency: r.idempotency_key.map(|k| (k, hash.as_slice())),
            max_attempts: s.max_attempts,
        },
    )
    .await?;
    match outcome {
        Enqueued::Created { message_id, .. } => {
            let view = query::get(&*client, r.usuario_id, message_id)
                .await?
                .ok_or(SubmitError::Internal("queued message not found"))?;
            Ok(Submitted::Queued {
                view,
                connection_id: conn.id,
                kind: req.kind,
            })
        }
        Enqueued::Existing(id) => replay(client, r.usuario_id, id).await,
        Enqueued::KeyReused => Err(SubmitError::KeyReused),
    }
}

/// Meta's rules for a Business number (docs/ARCHITECTURE.md §7): a template must be approved;
/// a free-form message needs the contact to have written in the last 24 h.
async fn provider_rules(
    client: &Client,
    usuario_id: Uuid,
    connection_id: Uuid,
    req: &SendRequest,
    phone: &NormalizedPhone,
) -> Result<(), SubmitError> {
    if let Some((name, language)) = &req.template {
        return match enqueue::template_status(client, connection_id, name, language).await? {
            Some(s) if s == "APPROVED" => Ok(()),
            Some(status) => Err(SubmitError::TemplateNotApproved {
                name: name.clone(),
                language: language.clone(),
                status,
            }),
            None => Err(SubmitError::TemplateNotFound {
                name: name.clone(),
                language: language.clone(),
            }),
        };
    }
    if !enqueue::window_open(client, usuario_id, connection_id, &phone.e164).await? {
        return Err(SubmitError::OutsideWindow);
    }
    Ok(())
}

/// A media `link` goes through the SSRF guard ([`crate::net_guard`]), refused with
/// `link_not_allowed` when it points at a non-public address. Lite sessions send files
/// themselves, so for them the link is fetched now, through the guard (resolved, every
/// address and every redirect checked, 16 MB, 30 s), and stored sealed like an upload: the
/// queued message names the stored file, and no link is fetched later at send time. Business
/// numbers pass the link to Meta, which fetches it: only the URL itself is checked (in
/// [`submit`], with the request).
async fn media_link(
    client: &Client,
    s: &Submit<'_>,
    usuario_id: Uuid,
    connection_id: Uuid,
    kind: ConnectionKind,
    mut req: SendRequest,
) -> Result<SendRequest, SubmitError> {
    let media_kind = req.kind.clone();
    let Some(link) = req.body[&media_kind]["link"].as_str().map(String::from) else {
        return Ok(req);
    };
    if kind != ConnectionKind::Lite {
        return Ok(req);
    }
    let fetched = s.fetcher.fetch(&link).await.map_err(SubmitError::Link)?;
    if fetched.bytes.is_empty() {
        return Err(SubmitError::LinkEmpty);
    }
    let mime = fetched
        .mime_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let filename = req.body[&media_kind]["filename"].as_str().map(String::from);
    let row = media_store::store(
        client,
        s.sealer,
        s.data_dir,
        NewMedia {
            usuario_id,
            connection_id: Some(connection_id),
            direction: "outbound",
            mime_type: &mime,
            filename: filename.as_deref(),
            provider_id: None,
            message_id: None,
        },
        &fetched.bytes,
    )
    .await
    .map_err(|e| SubmitError::Media(e.into()))?;
    let obj = req.body[&media_kind]
        .as_object_mut()
        .ok_or(SubmitError::Internal("validated media is not an object"))?;
    obj.remove("link");
    obj.insert("id".into(), json!(row.id));
    Ok(req)
}

async fn replay(client: &Client, usuario_id: Uuid, id: Uuid) -> Result<Submitted, SubmitError> {
    query::get(client, usuario_id, id)
        .await?
        .map(Submitted::Replayed)
        .ok_or(SubmitError::MessageGone)
}
