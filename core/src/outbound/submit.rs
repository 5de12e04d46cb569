//! `POST /v1/messages` and `POST /v1/messages/batch` as one path (docs/ARCHITECTURE.md §4,
//! Outbound; §7 for the provider's rules): a single message is a batch of one, so both routes
//! apply the same rules in the same order. Each body validated, a repeated idempotency key
//! answered with its first message, the connection checked (the user's, enabled, a Lite
//! session or a Business number), the recipient read to E.164 in the user's region, a Business
//! free-form message refused outside the 24 h customer-service window and a template refused
//! unless approved, a bulk send or a marketing template to a contact who opted out refused
//! ([`consent_rules`]), a media link checked (and, for Lite, fetched and stored), then the
//! messages queued together by [`enqueue`]. The checks that need the database run once per
//! batch, not once per message, however often a contact, template or link repeats.
//! Each refusal is one [`SubmitError`] variant, whose message is written for the API's client.
use super::enqueue::{self, Enqueued, NewMessage, Prior};
use super::query::{self, MessageView};
use super::validate::{self, Invalid, SendRequest};
use crate::business::BusinessError;
use crate::connection::ConnectionKind;
use crate::media_store::{self, NewMedia};
use crate::net_guard::{FetchError, MediaFetcher};
use crate::phone::{self, ContactKey, NormalizedPhone, PhoneError};
use crate::privacy::consent;
use crate::seal::Sealer;
use crate::store::{Client, StoreError, users};
use deadpool_postgres::Pool;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
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

/// One message of a batch: its body and its own idempotency key (already checked for shape).
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub body: &'a Value,
    pub idempotency_key: Option<&'a str>,
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
    #[error("idempotency_key must be 1 to 255 visible ASCII characters")]
    InvalidKey,
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
    let item = Item {
        body: r.body,
        idempotency_key: r.idempotency_key,
    };
    submit_many(pool, s, r.usuario_id, std::slice::from_ref(&item))
        .await?
        .pop()
        .unwrap_or(Err(SubmitError::Internal("no outcome for the message")))
}

/// A message still in the running, with what the checks learnt about it.
struct Pending<'a> {
    index: usize,
    key: Option<&'a str>,
    /// The request's hash, which a repeated key is checked against (empty without a key).
    hash: Vec<u8>,
    req: SendRequest,
    /// Set once the connection is checked.
    kind: ConnectionKind,
    /// Set once the recipient is read, with its contact key.
    phone: Option<(NormalizedPhone, ContactKey)>,
}

/// Where each item stands.
enum Outcome {
    Failed(SubmitError),
    /// Answered with this earlier message (its key was used before for the same body).
    Replay(Uuid),
    Created {
        id: Uuid,
        connection_id: Uuid,
        kind: String,
    },
}

/// Applies one check to every pending message: those it refuses leave with their error.
fn sift<'a>(
    pending: Vec<Pending<'a>>,
    out: &mut [Option<Outcome>],
    mut check: impl FnMut(&mut Pending<'a>) -> Result<(), SubmitError>,
) -> Vec<Pending<'a>> {
    let mut kept = Vec::with_capacity(pending.len());
    for mut p in pending {
        match check(&mut p) {
            Ok(()) => kept.push(p),
            Err(e) => out[p.index] = Some(Outcome::Failed(e)),
        }
    }
    kept
}

/// Validates, checks and queues the messages of one user in one transaction; one result per
/// item, in order. A store failure fails the whole call (nothing is queued).
pub async fn submit_many(
    pool: &Pool,
    s: &Submit<'_>,
    usuario_id: Uuid,
    items: &[Item<'_>],
) -> Result<Vec<Result<Submitted, SubmitError>>, StoreError> {
    let mut out: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();
    let mut pending = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match validate::validate(item.body) {
            Ok(req) => pending.push(Pending {
                index,
                key: item.idempotency_key,
                hash: item
                    .idempotency_key
                    .map(|_| enqueue::request_hash(&validate::canonical(item.body)))
                    .unwrap_or_default(),
                req,
                kind: ConnectionKind::Business,
                phone: None,
            }),
            Err(e) => out[index] = Some(Outcome::Failed(SubmitError::Malformed(e))),
        }
    }
    let client = &mut pool.get().await?;
    let pending = replays(&*client, usuario_id, pending, &mut out).await?;
    let ids: Vec<Uuid> = pending
        .iter()
        .map(|p| p.req.connection_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let connections = enqueue::connections(&*client, &ids).await?;
    let pending = sift(pending, &mut out, |p| {
        let conn = connections
            .get(&p.req.connection_id)
            .filter(|c| c.usuario_id == usuario_id)
            .ok_or(SubmitError::ConnectionNotFound)?;
        if !conn.activo {
            return Err(SubmitError::ConnectionInactive);
        }
        p.kind = conn.kind.ok_or(SubmitError::ConnectionUnknownKind)?;
        validate::check_kind(&p.req, p.kind).map_err(SubmitError::NotForConnection)?;
        if let Some(link) = p.req.body[&p.req.kind]["link"].as_str() {
            s.fetcher.check_static(link).map_err(SubmitError::Link)?;
        }
        Ok(())
    });
    let region = users::region_for(&*client, usuario_id, None, s.default_region).await?;
    let pending = sift(pending, &mut out, |p| {
        let phone =
            phone::normalize(&p.req.to, region.as_deref()).map_err(SubmitError::InvalidPhone)?;
        let contact = phone::contact_key(&phone.e164, None);
        p.phone = Some((phone, contact));
        Ok(())
    });
    let pending = provider_rules(&*client, usuario_id, pending, &mut out).await?;
    let pending = consent_rules(&*client, usuario_id, pending, &mut out).await?;
    let pending = media_links(client, s, usuario_id, pending, &mut out).await;
    queue(client, s, usuario_id, region, pending, &mut out).await?;
    answers(&*client, usuario_id, out).await
}

/// Keys used before (committed) answer with their first message, or refuse another body.
async fn replays<'a>(
    client: &Client,
    usuario_id: Uuid,
    pending: Vec<Pending<'a>>,
    out: &mut [Option<Outcome>],
) -> Result<Vec<Pending<'a>>, StoreError> {
    let keyed: Vec<(&str, &[u8])> = pending
        .iter()
        .filter_map(|p| p.key.map(|k| (k, p.hash.as_slice())))
        .collect();
    let mut priors = enqueue::priors(client, usuario_id, &keyed)
        .await?
        .into_iter();
    let mut kept = Vec::with_capacity(pending.len());
    for p in pending {
        if p.key.is_none() {
            kept.push(p);
            continue;
        }
        match priors.next().unwrap_or(Prior::None) {
            Prior::Same(id) => out[p.index] = Some(Outcome::Replay(id)),
            Prior::Different => out[p.index] = Some(Outcome::Failed(SubmitError::KeyReused)),
            Prior::None => kept.push(p),
        }
    }
    Ok(kept)
}

/// Meta's rules for a Business number (docs/ARCHITECTURE.md §7): a template must be approved;
/// a free-form message needs the contact to have written in the last 24 h. One lookup of
/// each kind for the whole batch.
async fn provider_rules<'a>(
    client: &Client,
    usuario_id: Uuid,
    pending: Vec<Pending<'a>>,
    out: &mut [Option<Outcome>],
) -> Result<Vec<Pending<'a>>, StoreError> {
    let business = |p: &&Pending| p.kind == ConnectionKind::Business;
    let wanted: Vec<(Uuid, String, String)> = pending
        .iter()
        .filter(business)
        .filter_map(|p| {
            let (name, language) = p.req.template.clone()?;
            Some((p.req.connection_id, name, language))
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let templates = enqueue::template_statuses(client, &wanted).await?;
    let pairs: Vec<(Uuid, String)> = pending
        .iter()
        .filter(business)
        .filter(|p| p.req.template.is_none())
        .map(|p| (p.req.connection_id, contact(p)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let open = enqueue::open_windows(client, usuario_id, &pairs).await?;
    Ok(sift(pending, out, |p| {
        if p.kind != ConnectionKind::Business {
            return Ok(());
        }
        if let Some((name, language)) = &p.req.template {
            let at = (p.req.connection_id, name.clone(), language.clone());
            return match templates.get(&at) {
                Some(s) if s == "APPROVED" => Ok(()),
                Some(status) => Err(SubmitError::TemplateNotApproved {
                    name: name.clone(),
                    language: language.clone(),
                    status: status.clone(),
                }),
                None => Err(SubmitError::TemplateNotFound {
                    name: name.clone(),
                    language: language.clone(),
                }),
            };
        }
        if !open.contains(&(p.req.connection_id, contact(p))) {
            return Err(SubmitError::OutsideWindow);
        }
        Ok(())
    }))
}

/// Consent: a contact who opted out gets no `bulk` priority message and no MARKETING
/// template; service replies (normal or high priority, other templates) still go. One lookup
/// of the contacts and one of the templates for the whole batch.
async fn consent_rules<'a>(
    client: &Client,
    usuario_id: Uuid,
    pending: Vec<Pending<'a>>,
    out: &mut [Option<Outcome>],
) -> Result<Vec<Pending<'a>>, StoreError> {
    let bulk = |p: &Pending| p.req.priority == super::PRIORITY_BULK;
    let asked: Vec<String> = pending
        .iter()
        .filter(|p| bulk(p) || p.req.template.is_some())
        .map(contact)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if asked.is_empty() {
        return Ok(pending);
    }
    let opted_out = consent::opted_out_among(client, usuario_id, &asked).await?;
    let templates: Vec<(Uuid, String, String)> = pending
        .iter()
        .filter(|p| !bulk(p) && opted_out.contains(&contact(p)))
        .filter_map(|p| {
            let (name, language) = p.req.template.clone()?;
            Some((p.req.connection_id, name, language))
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let marketing = consent::marketing_templates(client, &templates).await?;
    Ok(sift(pending, out, |p| {
        if !opted_out.contains(&contact(p)) {
            return Ok(());
        }
        if bulk(p) {
            return Err(SubmitError::ContactOptedOut("bulk"));
        }
        match &p.req.template {
            Some((name, language))
                if marketing.contains(&(p.req.connection_id, name.clone(), language.clone())) =>
            {
                Err(SubmitError::ContactOptedOut("marketing"))
            }
            _ => Ok(()),
        }
    }))
}

/// The contact key of a message's recipient (its conversation's `remitente`).
fn contact(p: &Pending) -> String {
    p.phone
        .as_ref()
        .map(|(_, c)| c.key.clone())
        .unwrap_or_default()
}

/// Why a link could not become a stored file; kept per link so a link repeated in a batch is
/// fetched once.
#[derive(Clone)]
enum LinkFailure {
    Fetch(FetchError),
    Empty,
}

/// A media `link` goes through the SSRF guard ([`crate::net_guard`]), refused with
/// `link_not_allowed` when it points at a non-public address. Lite sessions send files
/// themselves, so for them the link is fetched now, through the guard (resolved, every
/// address and every redirect checked, 16 MB, 30 s), and stored sealed like an upload: the
/// queued message names the stored file, and no link is fetched later at send time. A link
/// repeated in a batch is fetched and stored once. Business numbers pass the link to Meta,
/// which fetches it: only the URL itself is checked (with the connection).
async fn media_links<'a>(
    client: &Client,
    s: &Submit<'_>,
    usuario_id: Uuid,
    pending: Vec<Pending<'a>>,
    out: &mut [Option<Outcome>],
) -> Vec<Pending<'a>> {
    let mut stored: HashMap<(Uuid, String), Result<Uuid, LinkFailure>> = HashMap::new();
    let mut kept = Vec::with_capacity(pending.len());
    for mut p in pending {
        let media_kind = p.req.kind.clone();
        let link = match p.req.body[&media_kind]["link"].as_str() {
            Some(link) if p.kind == ConnectionKind::Lite => link.to_string(),
            _ => {
                kept.push(p);
                continue;
            }
        };
        let at = (p.req.connection_id, link.clone());
        let id = match stored.get(&at) {
            Some(known) => known.clone(),
            None => match fetch_and_store(client, s, usuario_id, &p, &link).await {
                Ok(found) => {
                    stored.insert(at, found.clone());
                    found
                }
                Err(e) => {
                    out[p.index] = Some(Outcome::Failed(e));
                    continue;
                }
            },
        };
        let replaced = id.and_then(|id| {
            let obj = p.req.body[&media_kind]
                .as_object_mut()
                .ok_or(LinkFailure::Empty)?;
            obj.remove("link");
            obj.insert("id".into(), json!(id));
            Ok(())
        });
        match replaced {
            Ok(()) => kept.push(p),
            Err(LinkFailure::Fetch(f)) => {
                out[p.index] = Some(Outcome::Failed(SubmitError::Link(f)))
            }
            Err(LinkFailure::Empty) => out[p.index] = Some(Outcome::Failed(SubmitError::LinkEmpty)),
        }
    }
    kept
}

/// Fetches a link and stores the file sealed: its media id, or why the link gave none. A
/// failure to store is the message's own error (not kept for the link).
async fn fetch_and_store(
    client: &Client,
    s: &Submit<'_>,
    usuario_id: Uuid,
    p: &Pending<'_>,
    link: &str,
) -> Result<Result<Uuid, LinkFailure>, SubmitError> {
    let fetched = match s.fetcher.fetch(link).await {
        Ok(f) => f,
        Err(e) => return Ok(Err(LinkFailure::Fetch(e))),
    };
    if fetched.bytes.is_empty() {
        return Ok(Err(LinkFailure::Empty));
    }
    let mime = fetched
        .mime_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let filename = p.req.body[&p.req.kind]["filename"]
        .as_str()
        .map(String::from);
    let row = media_store::store(
        client,
        s.sealer,
        s.data_dir,
        NewMedia {
            usuario_id,
            connection_id: Some(p.req.connection_id),
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
    Ok(Ok(row.id))
}

/// Writes every message that passed, in one transaction. A key given to two items of the
/// batch belongs to the first that passed: a later item with the same body answers with its
/// message, one with another body is refused.
async fn queue(
    client: &mut deadpool_postgres::Client,
    s: &Submit<'_>,
    usuario_id: Uuid,
    region: Option<String>,
    pending: Vec<Pending<'_>>,
    out: &mut [Option<Outcome>],
) -> Result<(), StoreError> {
    let mut first: HashMap<&str, (usize, &[u8])> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut writes: Vec<&Pending> = Vec::with_capacity(pending.len());
    for p in &pending {
        match p.key.map(|k| (k, first.get(k))) {
            Some((_, Some(&(j, hash)))) if hash == p.hash.as_slice() => repeats.push((p.index, j)),
            Some((_, Some(_))) => out[p.index] = Some(Outcome::Failed(SubmitError::KeyReused)),
            Some((k, None)) => {
                first.insert(k, (p.index, p.hash.as_slice()));
                writes.push(p);
            }
            None => writes.push(p),
        }
    }
    let phones: Vec<(NormalizedPhone, ContactKey)> = writes
        .iter()
        .map(|p| p.phone.clone().expect("read before queueing"))
        .collect();
    let messages: Vec<NewMessage> = writes
        .iter()
        .zip(&phones)
        .map(|(p, (phone, contact))| NewMessage {
            connection_id: p.req.connection_id,
            phone,
            contact,
            req: &p.req,
            idempotency: p.key.map(|k| (k, p.hash.as_slice())),
        })
        .collect();
    let done = if messages.is_empty() {
        Vec::new()
    } else {
        enqueue::enqueue(
            client,
            s.sealer,
            usuario_id,
            region,
            s.max_attempts,
            &messages,
        )
        .await?
    };
    for (p, e) in writes.iter().zip(done) {
        out[p.index] = Some(match e {
            Enqueued::Created(id) => Outcome::Created {
                id,
                connection_id: p.req.connection_id,
                kind: p.req.kind.clone(),
            },
            Enqueued::Existing(id) => Outcome::Replay(id),
            Enqueued::KeyReused => Outcome::Failed(SubmitError::KeyReused),
        });
    }
    for (later, earlier) in repeats {
        out[later] = Some(match &out[earlier] {
            Some(Outcome::Created { id, .. }) | Some(Outcome::Replay(id)) => Outcome::Replay(*id),
            _ => Outcome::Failed(SubmitError::KeyReused),
        });
    }
    Ok(())
}

/// Each item's answer, the messages read back in one statement.
async fn answers(
    client: &Client,
    usuario_id: Uuid,
    out: Vec<Option<Outcome>>,
) -> Result<Vec<Result<Submitted, SubmitError>>, StoreError> {
    let ids: Vec<Uuid> = out
        .iter()
        .filter_map(|o| match o {
            Some(Outcome::Created { id, .. }) | Some(Outcome::Replay(id)) => Some(*id),
            _ => None,
        })
        .collect();
    let views = query::get_many(client, usuario_id, &ids).await?;
    Ok(out
        .into_iter()
        .map(|o| match o {
            Some(Outcome::Failed(e)) => Err(e),
            Some(Outcome::Created {
                id,
                connection_id,
                kind,
            }) => views
                .get(&id)
                .cloned()
                .map(|view| Submitted::Queued {
                    view,
                    connection_id,
                    kind,
                })
                .ok_or(SubmitError::Internal("queued message not found")),
            Some(Outcome::Replay(id)) => views
                .get(&id)
                .cloned()
                .map(Submitted::Replayed)
                .ok_or(SubmitError::MessageGone),
            None => Err(SubmitError::Internal("message left unanswered")),
        })
        .collect())
}
