//! Meta webhook bodies taken from the inbound inbox: every entry × change routed to the number
//! it names, under the authority of the signature the HTTP route checked. A body is applied only
//! to numbers of the users whose app secret signed it (`webhook_inbox.signed_by`), and only where
//! the entry's WABA id and the change's phone number id both belong to that number: a tenant
//! who signs a body for its own number cannot reach another tenant's number or templates by
//! naming them. What cannot be routed becomes a dead letter with the reason, never a silent skip.
//! The generic drain (claiming rows, storing items, dead letters) is `crate::ingest::drain`.

use super::BusinessError;
use super::store::{self, Route};
use super::templates;
use super::throughput;
use super::webhook::{self, Change, NumberUpdate, TemplateUpdate};
use crate::ingest::InboundItem;
use crate::ingest::dead_letter::NewDeadLetter;
use crate::ingest::inbox::{SOURCE_META, Tagged};
use crate::seal::Sealer;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// An inbound media file to fetch once its message is stored.
#[derive(Debug, Clone)]
pub struct MediaToFetch {
    pub connection_id: Uuid,
    pub external_id: String,
    pub details: Value,
}

/// One Meta body of the inbox, opened and parsed.
pub struct MetaRow {
    pub inbox_id: i64,
    pub body: Value,
    /// Users whose app secret verified the signature; None for rows stored before the inbox
    /// kept it (their numbers were checked by phone number id alone).
    pub signed_by: Option<Vec<Uuid>>,
}

/// A template status change for the numbers it may touch.
pub struct TemplateChange {
    pub inbox_id: i64,
    pub targets: Vec<(Uuid, Uuid)>,
    pub update: TemplateUpdate,
    /// The entry's `time`: an update older than the last applied one is a replay.
    pub at: Option<OffsetDateTime>,
}

/// A throughput level Meta gave a connected number (`phone_number_quality_update`).
pub struct ThroughputChange {
    pub connection_id: Uuid,
    pub level: &'static str,
    /// The entry's `time` (when Meta changed it); the drain's time when absent.
    pub at: OffsetDateTime,
}

/// What the bodies of one drain step say, routed.
#[derive(Default)]
pub struct Routed {
    pub items: Vec<Tagged>,
    pub templates: Vec<TemplateChange>,
    pub throughput: Vec<ThroughputChange>,
    pub dead: Vec<NewDeadLetter>,
    pub media: Vec<MediaToFetch>,
    /// Inbound messages of the last two seconds by connection: Meta counts them in the
    /// number's throughput, so they take send slots.
    pub recent_inbound: HashMap<Uuid, u32>,
}

/// One change with the entry it came in.
struct EntryChange {
    inbox_id: i64,
    signed_by: Option<Vec<Uuid>>,
    waba_id: String,
    at: Option<OffsetDateTime>,
    change: Change,
}

/// Routes every change of `rows` (one query for all the numbers they name).
pub async fn route(
    client: &impl GenericClient,
    sealer: &Sealer,
    rows: Vec<MetaRow>,
) -> Result<Routed, BusinessError> {
    let mut changes = Vec::new();
    for mut row in rows {
        for entry in webhook::take_array(&mut row.body, "entry") {
            let waba_id = entry.get("id").map(id_text).unwrap_or_default();
            let at = entry
                .get("time")
                .and_then(Value::as_i64)
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            // The entry's messages move into its changes, not copied: a body of a flood
            // holds hundreds of them.
            for change in webhook::entry_changes(entry) {
                changes.push(EntryChange {
                    inbox_id: row.inbox_id,
                    signed_by: row.signed_by.clone(),
                    waba_id: waba_id.clone(),
                    at,
                    change,
                });
            }
        }
    }
    let mut phone_ids: Vec<String> = Vec::new();
    let mut waba_ids: Vec<String> = Vec::new();
    for c in &changes {
        match &c.change {
            Change::Message {
                phone_number_id, ..
            }
            | Change::Status {
                phone_number_id, ..
            } => phone_ids.push(phone_number_id.clone()),
            Change::Template(_) | Change::NumberUpdate(_) | Change::Ignored(_) => {}
        }
        waba_ids.push(c.waba_id.clone());
    }
    phone_ids.sort();
    phone_ids.dedup();
    waba_ids.sort();
    waba_ids.dedup();
    let routes = store::routes(client, sealer, &phone_ids, &waba_ids, false).await?;
    let by_phone: HashMap<&str, &Route> = routes
        .iter()
        .map(|r| (r.phone_number_id.as_str(), r))
        .collect();

    let mut out = Routed::default();
    // Provider timestamps are whole seconds.
    let recent = OffsetDateTime::now_utc() - time::Duration::seconds(2);
    for c in changes {
        // A change that cannot be applied is shown to the owner of the entry's WABA when the
        // body was theirs (e.g. a second number of their account, not connected here), else
        // to admins only.
        let owner = routes
            .iter()
            .find(|r| r.waba_id == c.waba_id && signed(&c.signed_by, r.usuario_id))
            .map(|r| r.usuario_id);
        let dead = |usuario_id: Option<Uuid>,
                    connection_id: Option<Uuid>,
                    external_id: Option<String>,
                    reason: String| {
            NewDeadLetter {
                inbox_id: c.inbox_id,
                source: SOURCE_META.into(),
                usuario_id,
                connection_id,
                external_id,
                reason,
            }
        };
        match &c.change {
            Change::Message {
                phone_number_id,
                name,
                message,
            } => {
                let external_id = message.get("id").and_then(Value::as_str).map(String::from);
                let r = match authorised(&by_phone, phone_number_id, &c) {
                    Ok(r) => r,
                    Err(reason) => {
                        out.dead.push(dead(owner, None, external_id, reason));
                        continue;
                    }
                };
                match webhook::inbound_message(r.usuario_id, r.connection_id, name.clone(), message)
                {
                    Some(m) => {
                        if m.details.get("media_id").is_some() {
                            out.media.push(MediaToFetch {
                                connection_id: r.connection_id,
                                external_id: m.external_id.clone(),
                                details: m.details.clone(),
                            });
                        }
                        if !m.outgoing && m.timestamp >= recent {
                            *out.recent_inbound.entry(r.connection_id).or_default() += 1;
                        }
                        out.items.push(Tagged {
                            inbox_id: c.inbox_id,
                            source: SOURCE_META,
                            item: InboundItem::Message(m),
                        });
                    }
                    None => out.dead.push(dead(
                        Some(r.usuario_id),
                        Some(r.connection_id),
                        external_id,
                        "the message has no id or no sender".into(),
                    )),
                }
            }
            Change::Status {
                phone_number_id,
                status,
            } => {
                let external_id = status.get("id").and_then(Value::as_str).map(String::from);
                let r = match authorised(&by_phone, phone_number_id, &c) {
                    Ok(r) => r,
                    Err(reason) => {
                        out.dead.push(dead(owner, None, external_id, reason));
                        continue;
                    }
                };
                match webhook::status_update(r.usuario_id, r.connection_id, status) {
                    Some(s) => out.items.push(Tagged {
                        inbox_id: c.inbox_id,
                        source: SOURCE_META,
                        item: InboundItem::Status(s),
                    }),
                    None => out.dead.push(dead(
                        Some(r.usuario_id),
                        Some(r.connection_id),
                        external_id,
                        "the status has no message id or no known status".into(),
                    )),
                }
            }
            Change::Template(t) => {
                let of_waba: Vec<&Route> =
                    routes.iter().filter(|r| r.waba_id == c.waba_id).collect();
                let targets: Vec<(Uuid, Uuid)> = of_waba
                    .iter()
                    .filter(|r| signed(&c.signed_by, r.usuario_id))
                    .map(|r| (r.usuario_id, r.connection_id))
                    .collect();
                if targets.is_empty() {
                    let reason = if of_waba.is_empty() {
                        format!(
                            "template update for business account {} that is not connected here",
                            c.waba_id
                        )
                    } else {
                        tracing::warn!(waba = %c.waba_id, "template update signed by another tenant refused");
                        format!(
                            "template update for business account {} not signed by its owner",
                            c.waba_id
                        )
                    };
                    out.dead
                        .push(dead(None, None, t.template_id.clone(), reason));
                    continue;
                }
                out.templates.push(TemplateChange {
                    inbox_id: c.inbox_id,
                    targets,
                    update: t.clone(),
                    at: c.at,
                });
            }
            Change::NumberUpdate(u) => {
                if let Err(reason) = number_update(&routes, &c, u, &mut out.throughput) {
                    out.dead.push(dead(owner, None, None, reason));
                }
            }
            Change::Ignored(field) => tracing::debug!(field = %field, "webhook field not handled"),
        }
    }
    Ok(out)
}

/// A number-level update for the numbers of the entry's WABA, signed by their owner, whose
/// display number it names. One that moves no throughput (`ONBOARDING`, messaging limits) is
/// only logged; one that does but names no such number is the caller's dead letter.
fn number_update(
    routes: &[Route],
    c: &EntryChange,
    u: &NumberUpdate,
    out: &mut Vec<ThroughputChange>,
) -> Result<(), String> {
    let Some(level) = throughput::level_after(&u.event) else {
        tracing::debug!(event = %u.event, "number update without a throughput change");
        return Ok(());
    };
    let before = out.len();
    out.extend(
        routes
            .iter()
            .filter(|r| {
                r.waba_id == c.waba_id
                    && r.display_digits == u.display_phone_number
                    && signed(&c.signed_by, r.usuario_id)
            })
            .map(|r| ThroughputChange {
                connection_id: r.connection_id,
                level,
                at: c.at.unwrap_or_else(OffsetDateTime::now_utc),
            }),
    );
    if out.len() == before {
        return Err(format!(
            "throughput update for number {} of business account {}, which is not connected here for the body's signer",
            u.display_phone_number, c.waba_id
        ));
    }
    Ok(())
}

/// Stores the throughput levels of a step's number updates (inside its transaction).
pub async fn apply_throughput(
    tx: &impl GenericClient,
    sealer: &Sealer,
    changes: &[ThroughputChange],
) -> Result<usize, BusinessError> {
    let mut changed = 0;
    for t in changes {
        changed += throughput::store_level(
            tx,
            sealer,
            t.connection_id,
            t.level,
            t.at,
            throughput::Source::Webhook,
        )
        .await? as usize;
    }
    Ok(changed)
}

/// The number a message or status change names, if the body may touch it: connected here,
/// signed by its owner, and named under its own WABA.
fn authorised<'a>(
    by_phone: &HashMap<&str, &'a Route>,
    phone_number_id: &str,
    c: &EntryChange,
) -> Result<&'a Route, String> {
    let Some(r) = by_phone.get(phone_number_id).copied() else {
        return Err(format!(
            "phone number id {phone_number_id} is not connected here"
        ));
    };
    if !signed(&c.signed_by, r.usuario_id) {
        tracing::warn!(
            phone_number_id,
            "webhook change signed by another tenant refused"
        );
        return Err(format!(
            "change for phone number id {phone_number_id} not signed by its owner"
        ));
    }
    if !c.waba_id.is_empty() && !r.waba_id.is_empty() && c.waba_id != r.waba_id {
        tracing::warn!(phone_number_id, waba = %c.waba_id, "webhook change under another business account refused");
        return Err(format!(
            "change for phone number id {phone_number_id} under business account {}, which is not the number's",
            c.waba_id
        ));
    }
    Ok(r)
}

fn signed(signed_by: &Option<Vec<Uuid>>, usuario_id: Uuid) -> bool {
    signed_by.as_ref().is_none_or(|s| s.contains(&usuario_id))
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Applies the template changes in the drain's transaction; returns how many rows changed.
pub async fn apply_templates(
    tx: &impl GenericClient,
    sealer: &Sealer,
    changes: &[TemplateChange],
) -> Result<usize, BusinessError> {
    let mut changed = 0;
    for t in changes {
        changed += templates::apply_update(tx, sealer, &t.targets, &t.update, t.at).await?;
    }
    Ok(changed)
}
