//! One ingest batch, one transaction: contacts → leads (LeadSync's store side, merging
//! duplicates; every sender is kept, keyed by [`phone::contact_key`], its WhatsApp id as
//! given on the message, conversation and lead) → conversation upserts → message inserts (idempotent on connection +
//! external id) → status updates (forward only) → events. Set-based SQL (`unnest`), so a batch
//! costs a fixed number of round trips whatever its size. Nothing is acknowledged to the caller
//! before the commit.

use super::model::{InboundItem, InboundMessage, IngestReport, StatusUpdate};
use crate::crm::after_ingest::{CrmBatch, Stored};
use crate::leads::store::{self as leads, Contact};
use crate::phone;
use crate::privacy::consent;
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use crate::store::clean;
use crate::store::events::{self, NewEvent};
use serde_json::{Value, json};
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// Runs one batch in its own transaction. `default_region` applies to users without one; a
/// contact's message that is exactly one of `opt_out` opts it out.
pub async fn ingest_batch(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    default_region: Option<&str>,
    opt_out: &consent::Keywords,
    items: &[InboundItem],
) -> Result<IngestReport, StoreError> {
    let tx = client.transaction().await?;
    // Statuses, and echoes of messages the user sent from their phone, wait for whoever is
    // making their messages findable (`status_order`): taken first, before any row lock.
    crate::store::status_order::lock(&tx, &status_connections(items)).await?;
    let items: Vec<&InboundItem> = items.iter().collect();
    let report = ingest_in(&tx, sealer, default_region, opt_out, &items).await?;
    tx.commit().await?;
    Ok(report)
}

/// Runs one batch inside the caller's transaction (or savepoint): the inbox drain stores its
/// rows' items and marks the rows done in one commit. The caller holds the `status_order`
/// locks of [`status_connections`] of `items`, taken once for its whole transaction.
pub async fn ingest_in(
    tx: &deadpool_postgres::Transaction<'_>,
    sealer: &Sealer,
    default_region: Option<&str>,
    opt_out: &consent::Keywords,
    items: &[&InboundItem],
) -> Result<IngestReport, StoreError> {
    let mut report = IngestReport::default();
    let mut messages: Vec<&InboundMessage> = Vec::new();
    let mut statuses: Vec<&StatusUpdate> = Vec::new();
    for item in items {
        match *item {
            InboundItem::Message(m) => messages.push(m),
            InboundItem::Status(s) => statuses.push(s),
        }
    }
    let mut new_events: Vec<NewEvent> = Vec::new();

    // The batch's users: their regions (read below) place numbers typed in national format in
    // the CRM.
    let mut users: Vec<Uuid> = messages.iter().map(|m| m.usuario_id).collect();
    users.sort();
    users.dedup();

    // Contacts: the sender's WhatsApp id is its identity, whatever libphonenumber thinks of
    // it: no message is left out for its sender's number. WhatsApp ids are international.
    let mut accepted: Vec<(&InboundMessage, String)> = Vec::new();
    let mut contacts: Vec<Contact> = Vec::new();
    // A batch repeats its contacts; key each once.
    let mut keyed: HashMap<&str, phone::ContactKey> = HashMap::new();
    for m in &messages {
        keyed
            .entry(m.from.as_str())
            .or_insert_with(|| phone::contact_key(&m.from, None));
    }
    let pairs: Vec<(Uuid, String)> = messages
        .iter()
        .map(|m| (m.usuario_id, keyed[m.from.as_str()].key.clone()))
        .collect();
    // The regions, the CRM side (connections' settings) and the keys of contacts that changed
    // number do not depend on each other: the three reads go out together and come back in one
    // round trip (tokio-postgres pipelines requests polled together).
    let (regions, crm, changed) = futures::try_join!(
        crate::store::users::regions(tx, &users, default_region),
        CrmBatch::load(tx, &messages),
        crate::crm::identity::current_keys(tx, &pairs),
    )?;
    // Messages from a number the contact left: their lead and conversation are the new
    // number's, whose WhatsApp id they must not overwrite with the old one (WhatsApp Web
    // reports its number-change notice twice, and old-number messages can come late).
    for m in messages {
        let key = keyed[m.from.as_str()].clone();
        let (key, moved) = match changed.get(&(m.usuario_id, key.key.clone())) {
            Some(now) => (phone::contact_key(now, None), true),
            None => (key, false),
        };
        let k = clean::owned_text(key.key.clone());
        contacts.push(Contact {
            usuario_id: m.usuario_id,
            key,
            wa_id: (!moved).then(|| wa_id(m)),
            profile_name: crm.profile_name(m),
            profile_picture_url: m.profile_picture_url.clone(),
        });
        accepted.push((m, k));
    }
    let resolved = leads::resolve(tx, &contacts, &regions).await?;
    report.leads_created = resolved.created;
    report.leads_merged = resolved.merged;
    for e in resolved.events {
        new_events.push(NewEvent {
            usuario_id: e.usuario_id,
            kind: e.kind,
            data: e.data,
        });
    }

    // Conversations: one per (usuario, connection, contact). Only the contact's own messages
    // move `last_inbound_at` (the 24 h window); a conversation the user's phone opened is
    // `saliente`.
    let mut conv_keys: HashMap<(Uuid, Uuid, String), ConvKey> = HashMap::new();
    for ((m, e164), contact) in accepted.iter().zip(&contacts) {
        let lead = resolved.leads[&(m.usuario_id, e164.clone())];
        // None for a message from a number the contact left (see above).
        let own = contact.wa_id.clone();
        let entry = conv_keys
            .entry((m.usuario_id, m.connection_id, e164.clone()))
            .or_insert(ConvKey {
                lead,
                last_inbound: None,
                last_message: m.timestamp,
                opened_by_us: true,
                wa_id: own.clone(),
            });
        if m.timestamp >= entry.last_message && own.is_some() {
            entry.wa_id = own;
        }
        entry.last_message = entry.last_message.max(m.timestamp);
        if !m.outgoing {
            entry.opened_by_us = false;
            entry.last_inbound = Some(
                entry
                    .last_inbound
                    .map_or(m.timestamp, |t| t.max(m.timestamp)),
            );
        }
    }
    let conversations = upsert_conversations(tx, &conv_keys).await?;

    // Messages, idempotent on (connection, external id); duplicates in the batch count once.
    let mut firsts: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut rows_in: Vec<usize> = Vec::new();
    for (i, (m, _)) in accepted.iter().enumerate() {
        if firsts
            .insert((m.connection_id, m.external_id.as_str()), i)
            .is_none()
        {
            rows_in.push(i);
        } else {
            report.messages_duplicate += 1;
        }
    }
    if !rows_in.is_empty() {
        let mut ids = Vec::new();
        let mut convs = Vec::new();
        let mut us = Vec::new();
        let mut cs = Vec::new();
        let mut tipos = Vec::new();
        let mut bodies: Vec<Option<String>> = Vec::new();
        let mut froms = Vec::new();
        let mut metas = Vec::new();
        let mut exts = Vec::new();
        let mut dirs = Vec::new();
        let mut estados = Vec::new();
        for &i in &rows_in {
            let (m, e164) = &accepted[i];
            ids.push(Uuid::now_v7());
            convs.push(conversations[&(m.usuario_id, m.connection_id, e164.clone())]);
            us.push(m.usuario_id);
            cs.push(m.connection_id);
            tipos.push(m.kind.as_str());
            bodies.push(
                m.text
                    .as_deref()
                    .map(|t| sealer.seal_str(Purpose::MessageBody, t)),
            );
            froms.push(e164.clone());
            metas.push(message_metadata(sealer, m));
            exts.push(clean::owned_text(m.external_id.clone()));
            dirs.push(if m.outgoing { "saliente" } else { "entrante" });
            estados.push(if m.outgoing { "sent" } else { "received" });
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO mensajes_conversacion (id, conversacion_id, usuario_id, connection_id, tipo,
                     contenido, remitente, canal, metadata, direccion, external_id, estado)
                 SELECT i, v, u, k, t, b, f, 'whatsapp', m, d, e, s
                 FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                             $7::text[], $8::jsonb[], $9::text[], $10::text[], $11::text[])
                      AS x(i, v, u, k, t, b, f, m, e, d, s)
                 ON CONFLICT (connection_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
                 RETURNING id",
            )
            .await?;
        let inserted = tx
            .query(
                &insert,
                &[
                    &ids, &convs, &us, &cs, &tipos, &bodies, &froms, &metas, &exts, &dirs, &estados,
                ],
            )
            .await?;
        let fresh: std::collections::HashSet<Uuid> = inserted.iter().map(|r| r.get(0)).collect();
        // Opt-outs first: an automatic answer decided below must see this batch's.
        let texts: Vec<consent::Inbound> = rows_in
            .iter()
            .enumerate()
            .filter(|(n, i)| fresh.contains(&ids[*n]) && !accepted[**i].0.outgoing)
            .filter_map(|(n, &i)| {
                let (m, key) = &accepted[i];
                Some(consent::Inbound {
                    usuario_id: m.usuario_id,
                    contact: key,
                    text: m.text.as_deref()?,
                    message_id: ids[n],
                })
            })
            .collect();
        new_events.extend(consent::detect_opt_outs(tx, opt_out, &texts).await?);
        let stored: Vec<Stored> = rows_in
            .iter()
            .enumerate()
            .filter(|(n, _)| fresh.contains(&ids[*n]))
            .map(|(n, &i)| {
                let (m, e164) = &accepted[i];
                let lead_id = resolved.leads[&(m.usuario_id, e164.clone())];
                Stored {
                    message_id: ids[n],
                    conversation_id: convs[n],
                    lead_id,
                    contact: e164.as_str(),
                    message: m,
                    lead_sourced: resolved.sourced.contains(&lead_id),
                }
            })
            .collect();
        report.auto_replies = crm.after_messages(tx, &stored, &mut new_events).await?;
        for (n, &i) in rows_in.iter().enumerate() {
            if !fresh.contains(&ids[n]) {
                report.messages_duplicate += 1;
                continue;
            }
            report.messages_inserted += 1;
            let (m, e164) = &accepted[i];
            new_events.push(NewEvent {
                usuario_id: m.usuario_id,
                kind: "message.received",
                data: json!({
                    "message_id": ids[n],
                    "conversation_id": convs[n],
                    "lead_id": resolved.leads[&(m.usuario_id, e164.clone())],
                    "connection_id": m.connection_id,
                    "external_id": m.external_id,
                    "from": e164,
                    "wa_id": wa_id(m),
                    "direction": if m.outgoing { "saliente" } else { "entrante" },
                    "name": m.profile_name,
                    "type": m.kind.as_str(),
                    "text": m.text,
                    "payload": m.payload,
                    "details": m.details,
                    "timestamp": m.timestamp.unix_timestamp(),
                }),
            });
        }
        // Statuses that came before the echo of a message the user sent from their phone or
        // Business app: applied now, forward only.
        let sent_here: Vec<Uuid> = rows_in
            .iter()
            .enumerate()
            .filter(|(n, i)| accepted[**i].0.outgoing && fresh.contains(&ids[*n]))
            .map(|(n, _)| ids[n])
            .collect();
        if !sent_here.is_empty() {
            let rows = tx
                .query(
                    &format!(
                        "WITH p AS (
                             DELETE FROM pending_statuses ps USING mensajes_conversacion m
                             WHERE m.id = ANY($1) AND ps.connection_id = m.connection_id
                               AND ps.external_id = m.external_id
                             RETURNING ps.connection_id, ps.external_id, ps.estado, ps.error)
                         UPDATE mensajes_conversacion m SET estado = p.estado,
                             error = COALESCE(p.error, m.error), updated_at = now()
                         FROM p
                         WHERE m.connection_id = p.connection_id AND m.external_id = p.external_id
                           AND (CASE p.estado WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2
                                  WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE -1 END) > {RANK_SQL}
                         RETURNING m.id, m.usuario_id, m.conversacion_id, m.connection_id, m.external_id,
                                   m.estado, m.error"
                    ),
                    &[&sent_here],
                )
                .await?;
            report.statuses_applied += rows.len();
            new_events.extend(rows.iter().map(NewEvent::message_status));
        }
    }

    // Statuses: forward only; unknown messages wait in pending_statuses.
    apply_statuses(tx, &statuses, &mut report, &mut new_events).await?;

    report.events = new_events.len();
    events::append_many(tx, sealer, &new_events).await?;
    Ok(report)
}

/// The connections whose statuses `items` apply, or whose messages they insert as sent by the
/// user (echoes): what must hold `store::status_order` before writing them.
pub fn status_connections<'a>(items: impl IntoIterator<Item = &'a InboundItem>) -> Vec<Uuid> {
    items
        .into_iter()
        .filter_map(|item| match item {
            InboundItem::Status(s) => Some(s.connection_id),
            InboundItem::Message(m) if m.outgoing => Some(m.connection_id),
            InboundItem::Message(_) => None,
        })
        .collect()
}

/// Updates the existing conversation of each `($1[i], $2[i], $3[i])` (user, connection, contact)
/// with its lead, last inbound and last message times and `wa_id`; returns the rows updated. A
/// probe of the conversations' partial key per contact, given statistics of the table
/// (`store::planner_stats` keeps them where autovacuum does not).
pub const UPDATE_CONVERSATIONS_SQL: &str = "UPDATE conversaciones AS c SET lead_id = x.l,
         last_inbound_at = GREATEST(c.last_inbound_at, x.t),
         last_message_at = GREATEST(c.last_message_at, x.lm),
         metadata = c.metadata || jsonb_build_object('connection_id', c.connection_id,
             'last_inbound_at', GREATEST(c.last_inbound_at, x.t))
             || jsonb_strip_nulls(jsonb_build_object('wa_id', x.w)),
         updated_at = now()
     FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::timestamptz[],
                 $6::timestamptz[], $7::text[]) AS x(u, k, r, l, t, lm, w)
     WHERE c.usuario_id = x.u AND c.connection_id = x.k AND c.remitente = x.r
       AND c.servicio_origen = 'whatsapp'
     RETURNING c.id, c.usuario_id, c.connection_id, c.remitente";

/// Conversations of a batch, one per (usuario, connection, contact), by that key: existing ones
/// updated (their lead, last message and last inbound times, `metadata`), new ones inserted.
/// Most messages are for a conversation that exists, so those are updated first with a plain
/// `UPDATE` (a fraction of an upsert's cost per row: no insertion attempted, no arbiter), and
/// only the keys it did not find go through the upsert, which also covers a conversation
/// another transaction created meanwhile. Keys are passed sorted, the order the upsert locks
/// in, so concurrent batches mostly lock rows in one order; a deadlock that still happens is
/// retried by the caller.
async fn upsert_conversations(
    tx: &deadpool_postgres::Transaction<'_>,
    conv_keys: &HashMap<(Uuid, Uuid, String), ConvKey>,
) -> Result<HashMap<(Uuid, Uuid, String), Uuid>, StoreError> {
    let mut conversations: HashMap<(Uuid, Uuid, String), Uuid> = HashMap::new();
    if conv_keys.is_empty() {
        return Ok(conversations);
    }
    let mut keys: Vec<(&(Uuid, Uuid, String), &ConvKey)> = conv_keys.iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let all = ConvColumns::of(&keys);
    let update = tx.prepare_cached(UPDATE_CONVERSATIONS_SQL).await?;
    for row in tx
        .query(
            &update,
            &[
                &all.us, &all.cs, &all.rs, &all.ls, &all.ts, &all.ms, &all.was,
            ],
        )
        .await?
    {
        conversations.insert((row.get(1), row.get(2), row.get(3)), row.get(0));
    }
    let new: Vec<_> = keys
        .into_iter()
        .filter(|(k, _)| !conversations.contains_key(*k))
        .collect();
    if new.is_empty() {
        return Ok(conversations);
    }
    let ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
    let tipos: Vec<&str> = new
        .iter()
        .map(|(_, k)| {
            if k.opened_by_us {
                "saliente"
            } else {
                "entrante"
            }
        })
        .collect();
    let c = ConvColumns::of(&new);
    let upsert = tx
        .prepare_cached(
            "INSERT INTO conversaciones AS c (id, usuario_id, lead_id, servicio_origen, tipo, remitente,
                 connection_id, metadata, last_inbound_at, last_message_at)
             SELECT i, u, l, 'whatsapp', o, r, k,
                    jsonb_build_object('connection_id', k, 'last_inbound_at', t)
                        || jsonb_strip_nulls(jsonb_build_object('wa_id', w)), t, lm
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::uuid[], $6::timestamptz[],
                         $7::timestamptz[], $8::text[], $9::text[])
                  AS x(i, u, k, r, l, t, lm, o, w)
             ORDER BY u, k, r
             ON CONFLICT (usuario_id, connection_id, remitente)
                 WHERE servicio_origen = 'whatsapp' AND connection_id IS NOT NULL
             DO UPDATE SET lead_id = EXCLUDED.lead_id,
                 last_inbound_at = GREATEST(c.last_inbound_at, EXCLUDED.last_inbound_at),
                 last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at),
                 metadata = c.metadata || jsonb_build_object('connection_id', c.connection_id,
                     'last_inbound_at', GREATEST(c.last_inbound_at, EXCLUDED.last_inbound_at))
                     || jsonb_strip_nulls(jsonb_build_object('wa_id', EXCLUDED.metadata->'wa_id')),
                 updated_at = now()
             RETURNING id, usuario_id, connection_id, remitente",
        )
        .await?;
    let rows = tx
        .query(
            &upsert,
            &[
                &ids, &c.us, &c.cs, &c.rs, &c.ls, &c.ts, &c.ms, &tipos, &c.was,
            ],
        )
        .await?;
    for row in rows {
        conversations.insert((row.get(1), row.get(2), row.get(3)), row.get(0));
    }
    Ok(conversations)
}

/// The columns both conversation statements take, one entry per key.
struct ConvColumns<'a> {
    us: Vec<Uuid>,
    cs: Vec<Uuid>,
    rs: Vec<&'a str>,
    ls: Vec<Uuid>,
    ts: Vec<Option<OffsetDateTime>>,
    ms: Vec<OffsetDateTime>,
    was: Vec<Option<&'a str>>,
}

impl<'a> ConvColumns<'a> {
    fn of(keys: &[(&'a (Uuid, Uuid, String), &'a ConvKey)]) -> Self {
        ConvColumns {
            us: keys.iter().map(|(k, _)| k.0).collect(),
            cs: keys.iter().map(|(k, _)| k.1).collect(),
            rs: keys.iter().map(|(k, _)| k.2.as_str()).collect(),
            ls: keys.iter().map(|(_, v)| v.lead).collect(),
            ts: keys.iter().map(|(_, v)| v.last_inbound).collect(),
            ms: keys.iter().map(|(_, v)| v.last_message).collect(),
            was: keys.iter().map(|(_, v)| v.wa_id.as_deref()).collect(),
        }
    }
}

/// What one conversation of a batch needs.
struct ConvKey {
    lead: Uuid,
    /// Newest message from the contact (None: only the user's own phone wrote).
    last_inbound: Option<OffsetDateTime>,
    last_message: OffsetDateTime,
    /// Every message of the batch for it is `outgoing`: a new row is `saliente`.
    opened_by_us: bool,
    /// The contact's WhatsApp id on its newest message (None: only messages from a number
    /// the contact left, which keep the conversation's id as it is).
    wa_id: Option<String>,
}

/// The contact's WhatsApp id exactly as the provider gave it (`wa_id` digits; Lite's id),
/// made storable in clear.
fn wa_id(m: &InboundMessage) -> String {
    clean::owned_text(m.from.trim().trim_start_matches('+').to_string())
}

/// The message's clear metadata (every contact-controlled string made storable); the payload
/// is sealed as given.
fn message_metadata(sealer: &Sealer, m: &InboundMessage) -> Value {
    let mut meta = json!({
        "connection_id": m.connection_id,
        "provider_timestamp": m.timestamp.unix_timestamp(),
        "wa_id": wa_id(m),
        "details": clean::json(m.details.clone()),
    });
    if !m.payload.is_null() {
        meta["payload_sealed"] =
            Value::String(sealer.seal(Purpose::MessageBody, m.payload.to_string().as_bytes()));
    }
    meta
}

/// Statuses that name our message (the send's callback data) while the message has no
/// provider id yet: the send's answer was lost (`uncertain`) or has not come back (`sending`,
/// or the daemon was killed meanwhile). The provider did accept it, so the message takes the
/// provider id and counts as sent; an `uncertain` outbox row becomes `sent`. The status itself
/// is applied right after, like any other.
async fn resolve_lost_answers(
    tx: &deadpool_postgres::Transaction<'_>,
    statuses: &[&StatusUpdate],
    new_events: &mut Vec<NewEvent>,
) -> Result<(), StoreError> {
    let named: Vec<&&StatusUpdate> = statuses.iter().filter(|s| s.message_id.is_some()).collect();
    if named.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = named.iter().filter_map(|s| s.message_id).collect();
    let cs: Vec<Uuid> = named.iter().map(|s| s.connection_id).collect();
    let es: Vec<String> = named.iter().map(|s| s.external_id.clone()).collect();
    let rows = tx
        .query(
            &format!(
                "WITH m AS (
                     UPDATE mensajes_conversacion m
                     SET external_id = u.e, updated_at = now(),
                         estado = CASE WHEN {RANK_SQL} < 1 THEN 'sent' ELSE m.estado END
                     FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS u(id, c, e), outbox o
                     WHERE m.id = u.id AND m.connection_id = u.c AND m.external_id IS NULL
                       AND o.message_id = m.id AND o.state IN ('sending', 'uncertain')
                       AND NOT EXISTS (SELECT 1 FROM mensajes_conversacion x
                                       WHERE x.connection_id = u.c AND x.external_id = u.e)
                     RETURNING m.id, m.usuario_id, m.conversacion_id, m.connection_id, m.external_id,
                               m.estado, m.error),
                 o AS (
                     UPDATE outbox o SET state = 'sent', sent_at = now(), updated_at = now(),
                         last_error = 'the answer was lost; the provider''s status confirmed the send'
                     FROM m WHERE o.message_id = m.id AND o.state = 'uncertain')
                 SELECT id, usuario_id, conversacion_id, connection_id, external_id, estado, error FROM m"
            ),
            &[&ids, &cs, &es],
        )
        .await?;
    new_events.extend(rows.iter().map(NewEvent::message_status));
    Ok(())
}

/// The SQL rank of a stored `estado`; inbound and cancelled messages never move.
const RANK_SQL: &str =
    "CASE m.estado WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2
     WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE 99 END";

async fn apply_statuses(
    tx: &deadpool_postgres::Transaction<'_>,
    statuses: &[&StatusUpdate],
    report: &mut IngestReport,
    new_events: &mut Vec<NewEvent>,
) -> Result<(), StoreError> {
    if statuses.is_empty() {
        return Ok(());
    }
    // The highest status per message wins; the order of arrival does not matter.
    let mut best: HashMap<(Uuid, &str), &StatusUpdate> = HashMap::new();
    for s in statuses {
        let key = (s.connection_id, s.external_id.as_str());
        match best.get(&key) {
            Some(b) if b.estado >= s.estado => report.statuses_ignored += 1,
            Some(_) => {
                report.statuses_ignored += 1;
                best.insert(key, s);
            }
            None => {
                best.insert(key, s);
            }
        }
    }
    let list: Vec<&StatusUpdate> = best.into_values().collect();
    resolve_lost_answers(tx, &list, new_events).await?;
    let cs: Vec<Uuid> = list.iter().map(|s| s.connection_id).collect();
    let es: Vec<String> = list.iter().map(|s| s.external_id.clone()).collect();
    let st: Vec<&str> = list.iter().map(|s| s.estado.as_str()).collect();
    let rk: Vec<i32> = list.iter().map(|s| s.estado.rank()).collect();
    let er: Vec<Option<String>> = list.iter().map(|s| s.error.clone()).collect();
    let applied = tx
        .query(
            &format!(
                "UPDATE mensajes_conversacion m SET estado = u.s, error = COALESCE(u.err, m.error), updated_at = now()
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[]) AS u(c, e, s, r, err)
                 WHERE m.connection_id = u.c AND m.external_id = u.e AND u.r > {RANK_SQL}
                 RETURNING m.id, m.usuario_id, m.conversacion_id, m.connection_id, m.external_id, m.estado, m.error"
            ),
            &[&cs, &es, &st, &rk, &er],
        )
        .await?;
    report.statuses_applied += applied.len();
    new_events.extend(applied.iter().map(NewEvent::message_status));
    // Statuses of messages not stored (yet): kept, highest first, for when they are.
    let pending = tx
        .execute(
            "INSERT INTO pending_statuses AS p (connection_id, external_id, estado, error)
             SELECT u.c, u.e, u.s, u.err
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[]) AS u(c, e, s, r, err)
             WHERE NOT EXISTS (SELECT 1 FROM mensajes_conversacion m WHERE m.connection_id = u.c AND m.external_id = u.e)
               AND EXISTS (SELECT 1 FROM configuracion_mensajeria_usuario k WHERE k.id = u.c)
             ON CONFLICT (connection_id, external_id) DO UPDATE SET estado = EXCLUDED.estado, error = EXCLUDED.error
             WHERE (CASE p.estado WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE 4 END)
                 < (CASE EXCLUDED.estado WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE 4 END)",
            &[&cs, &es, &st, &rk, &er],
        )
        .await?;
    report.statuses_pending += pending as usize;
    report.statuses_ignored += list.len() - applied.len() - pending as usize;
    Ok(())
}
