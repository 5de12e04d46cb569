//! The store side of `POST /v1/messages` and `POST /v1/messages/batch`: the checks that need
//! the database (the connections and their owner, the 24 h customer-service window, template
//! approval, repeated `Idempotency-Key`s), each one statement for a whole batch however many
//! items repeat a contact or template, and the one transaction that writes every message
//! (estado `queued`) with its lead and conversation, its outbox row, its `message.status`
//! event, and the NOTIFY that wakes a Dispatcher, as multi-row inserts. Nothing is
//! acknowledged before that transaction commits.

use super::CHANNEL;
use super::validate::SendRequest;
use crate::connection::ConnectionKind;
use crate::leads::store::{self as leads, Contact};
use crate::phone::{ContactKey, NormalizedPhone};
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use crate::store::events::{self, NewEvent};
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use time::OffsetDateTime;
use uuid::Uuid;

/// A connection row as the queue sees it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: Uuid,
    pub usuario_id: Uuid,
    pub kind: Option<ConnectionKind>,
    pub activo: bool,
    pub configuracion: Value,
}

/// `tipo_conexion` → kind.
pub fn kind_of(configuracion: &Value) -> Option<ConnectionKind> {
    match configuracion.get("tipo_conexion").and_then(Value::as_str) {
        Some("lite") => Some(ConnectionKind::Lite),
        Some("business") => Some(ConnectionKind::Business),
        _ => None,
    }
}

/// The WhatsApp connections among `ids`, whoever owns them (one statement).
pub async fn connections(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Connection>, StoreError> {
    let rows = client
        .query(
            "SELECT id, usuario_id, configuracion, activo FROM configuracion_mensajeria_usuario
             WHERE id = ANY($1) AND plataforma = 'whatsapp'",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let configuracion: Value = r.get(2);
            let id: Uuid = r.get(0);
            let c = Connection {
                id,
                usuario_id: r.get(1),
                kind: kind_of(&configuracion),
                activo: r.get(3),
                configuracion,
            };
            (id, c)
        })
        .collect())
}

/// Which of the `(connection, contact key)` pairs have their 24 h window open: the contact
/// wrote to that connection in the last 24 h (Meta's customer-service window, inside which
/// free-form messages are allowed). One statement for all pairs.
pub async fn open_windows(
    client: &impl GenericClient,
    usuario_id: Uuid,
    pairs: &[(Uuid, String)],
) -> Result<HashSet<(Uuid, String)>, StoreError> {
    if pairs.is_empty() {
        return Ok(HashSet::new());
    }
    let conns: Vec<Uuid> = pairs.iter().map(|p| p.0).collect();
    let keys: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    let rows = client
        .query(
            "SELECT c.connection_id, c.remitente FROM conversaciones c
             JOIN unnest($2::uuid[], $3::text[]) AS k(conn, rem)
               ON c.connection_id = k.conn AND c.remitente = k.rem
             WHERE c.usuario_id = $1 AND c.servicio_origen = 'whatsapp'
               AND c.last_inbound_at > now() - interval '24 hours'",
            &[&usuario_id, &conns, &keys],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The status of a template of the connection (`APPROVED`, `PENDING`, ...), None if unknown.
pub async fn template_status(
    client: &impl GenericClient,
    connection_id: Uuid,
    name: &str,
    language: &str,
) -> Result<Option<String>, StoreError> {
    let wanted = [(connection_id, name.to_string(), language.to_string())];
    Ok(template_statuses(client, &wanted).await?.remove(&wanted[0]))
}

/// `(connection, name, language)` → status of every known template among `wanted` (one
/// statement).
pub async fn template_statuses(
    client: &impl GenericClient,
    wanted: &[(Uuid, String, String)],
) -> Result<HashMap<(Uuid, String, String), String>, StoreError> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let conns: Vec<Uuid> = wanted.iter().map(|w| w.0).collect();
    let names: Vec<&str> = wanted.iter().map(|w| w.1.as_str()).collect();
    let langs: Vec<&str> = wanted.iter().map(|w| w.2.as_str()).collect();
    let rows = client
        .query(
            "SELECT t.connection_id, t.name, t.language, t.status FROM whatsapp_templates t
             JOIN unnest($1::uuid[], $2::text[], $3::text[]) AS w(c, n, l)
               ON t.connection_id = w.c AND t.name = w.n AND t.language = w.l",
            &[&conns, &names, &langs],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
        .collect())
}

/// SHA-256 of the canonical request, stored with an `Idempotency-Key`.
pub fn request_hash(canonical: &str) -> Vec<u8> {
    crate::digest::sha256(canonical).to_vec()
}

/// What an `Idempotency-Key` already stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    /// Unused key.
    None,
    /// Used for the same request: this message.
    Same(Uuid),
    /// Used for another request body.
    Different,
}

/// Looks keys up (committed rows only, one statement): `(key, request hash)` → what each
/// stands for.
pub async fn priors(
    client: &impl GenericClient,
    usuario_id: Uuid,
    keys: &[(&str, &[u8])],
) -> Result<Vec<Prior>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let rows = client
        .query(
            "SELECT key, request_hash, message_id FROM idempotency_keys WHERE usuario_id = $1 AND key = ANY($2)",
            &[&usuario_id, &names],
        )
        .await?;
    let stored: HashMap<String, (Vec<u8>, Option<Uuid>)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    Ok(keys
        .iter()
        .map(|(key, hash)| match stored.get(*key) {
            None => Prior::None,
            Some((h, id)) => match (h.as_slice() == *hash, id) {
                (true, Some(id)) => Prior::Same(*id),
                (true, None) => Prior::None, // its message was deleted
                (false, _) => Prior::Different,
            },
        })
        .collect())
}

/// One message to write.
pub struct NewMessage<'a> {
    pub connection_id: Uuid,
    pub phone: &'a NormalizedPhone,
    /// The recipient's contact key ([`crate::phone::contact_key`] of `phone`): it finds the
    /// lead and conversation its inbound messages use, whatever spelling WhatsApp gives them
    /// (the message leaves for the number as written).
    pub contact: &'a ContactKey,
    pub req: &'a SendRequest,
    /// `(key, request hash)` when the client gave an idempotency key.
    pub idempotency: Option<(&'a str, &'a [u8])>,
}

/// What [`enqueue`] did with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    Created(Uuid),
    /// A concurrent request with the same key and body committed first: its message.
    Existing(Uuid),
    /// A concurrent request used the key for another body.
    KeyReused,
}

/// Writes the messages of one user (one batch), in one transaction: their leads and
/// conversations, messages, outbox rows and events, one multi-row statement per table.
/// Returns what happened to each, in order. `region` reads CRM-typed numbers for the leads.
pub async fn enqueue(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    usuario_id: Uuid,
    region: Option<String>,
    max_attempts: i32,
    messages: &[NewMessage<'_>],
) -> Result<Vec<Enqueued>, StoreError> {
    let tx = client.transaction().await?;
    let ids: Vec<Uuid> = messages.iter().map(|_| Uuid::now_v7()).collect();
    let mut outcome: Vec<Option<Enqueued>> = vec![None; messages.len()];
    claim_keys(&tx, usuario_id, messages, &mut outcome).await?;
    let write: Vec<usize> = (0..messages.len())
        .filter(|&i| outcome[i].is_none())
        .collect();
    if write.is_empty() {
        tx.rollback().await?;
        return Ok(outcome.into_iter().map(|o| o.expect("decided")).collect());
    }
    let keys: Vec<String> = messages.iter().map(|m| m.contact.key.clone()).collect();
    let contacts: Vec<Contact> = write
        .iter()
        .map(|&i| Contact {
            usuario_id,
            key: messages[i].contact.clone(),
            wa_id: None,
            profile_name: None,
            profile_picture_url: None,
        })
        .collect();
    let regions = HashMap::from([(usuario_id, region)]);
    let resolved = leads::resolve(&tx, &contacts, &regions).await?;
    let conversations =
        conversations(&tx, usuario_id, &resolved.leads, &write, messages, &keys).await?;
    let mut rows = Rows::default();
    let mut new_events: Vec<NewEvent> = resolved
        .events
        .into_iter()
        .map(|e| NewEvent {
            usuario_id: e.usuario_id,
            kind: e.kind,
            data: e.data,
        })
        .collect();
    for &i in &write {
        let m = &messages[i];
        let conversation_id = conversations[&(m.connection_id, keys[i].clone())];
        rows.push(sealer, ids[i], conversation_id, m, &keys[i]);
        new_events.push(NewEvent {
            usuario_id,
            kind: "message.status",
            data: json!({
                "message_id": ids[i],
                "conversation_id": conversation_id,
                "connection_id": m.connection_id,
                "to": m.phone.e164,
                "status": "queued",
            }),
        });
        outcome[i] = Some(Enqueued::Created(ids[i]));
    }
    rows.insert(&tx, usuario_id, max_attempts).await?;
    let keyed: Vec<(&str, Uuid)> = write
        .iter()
        .filter_map(|&i| messages[i].idempotency.map(|(k, _)| (k, ids[i])))
        .collect();
    if !keyed.is_empty() {
        let (names, ids): (Vec<&str>, Vec<Uuid>) = keyed.into_iter().unzip();
        tx.execute(
            "UPDATE idempotency_keys k SET message_id = x.m FROM unnest($2::text[], $3::uuid[]) AS x(k, m)
             WHERE k.usuario_id = $1 AND k.key = x.k",
            &[&usuario_id, &names, &ids],
        )
        .await?;
    }
    let woken: Vec<String> = write
        .iter()
        .map(|&i| messages[i].connection_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    tx.execute(
        "SELECT pg_notify($1, c) FROM unnest($2::text[]) AS c",
        &[&CHANNEL, &woken],
    )
    .await?;
    // Last: from the event counter on, the user's other appends wait for this commit.
    events::append_many(&tx, sealer, &new_events).await?;
    tx.commit().await?;
    Ok(outcome.into_iter().map(|o| o.expect("decided")).collect())
}

/// Takes the messages' idempotency keys (one statement, in key order so concurrent batches
/// cannot deadlock). A concurrent holder of a key makes the insert wait for its commit, then
/// skip it: the committed row then tells which message the key stands for, and that message's
/// outcome is decided here.
async fn claim_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    usuario_id: Uuid,
    messages: &[NewMessage<'_>],
    outcome: &mut [Option<Enqueued>],
) -> Result<(), StoreError> {
    let keyed: Vec<(usize, &str, &[u8])> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.idempotency.map(|(k, h)| (i, k, h)))
        .collect();
    if keyed.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = keyed.iter().map(|k| k.1).collect();
    let hashes: Vec<&[u8]> = keyed.iter().map(|k| k.2).collect();
    let taken: HashSet<String> = tx
        .query(
            "INSERT INTO idempotency_keys (usuario_id, key, request_hash)
             SELECT $1, k, h FROM unnest($2::text[], $3::bytea[]) AS x(k, h) ORDER BY k
             ON CONFLICT (usuario_id, key) DO NOTHING RETURNING key",
            &[&usuario_id, &names, &hashes],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let held: Vec<(usize, &str, &[u8])> =
        keyed.into_iter().filter(|k| !taken.contains(k.1)).collect();
    let lookup: Vec<(&str, &[u8])> = held.iter().map(|k| (k.1, k.2)).collect();
    for ((i, _, _), prior) in held.iter().zip(priors(tx, usuario_id, &lookup).await?) {
        outcome[*i] = Some(match prior {
            Prior::Same(id) => Enqueued::Existing(id),
            Prior::Different | Prior::None => Enqueued::KeyReused,
        });
    }
    Ok(())
}

/// Finds or opens the conversation of every `(connection, contact key)` written (one
/// statement, in a stable order so concurrent batches cannot deadlock).
async fn conversations(
    tx: &deadpool_postgres::Transaction<'_>,
    usuario_id: Uuid,
    leads: &HashMap<(Uuid, String), Uuid>,
    write: &[usize],
    messages: &[NewMessage<'_>],
    keys: &[String],
) -> Result<HashMap<(Uuid, String), Uuid>, StoreError> {
    let pairs: BTreeMap<(Uuid, String), Uuid> = write
        .iter()
        .map(|&i| {
            let lead = leads[&(usuario_id, keys[i].clone())];
            ((messages[i].connection_id, keys[i].clone()), lead)
        })
        .collect();
    let ids: Vec<Uuid> = pairs.keys().map(|_| Uuid::now_v7()).collect();
    let conns: Vec<Uuid> = pairs.keys().map(|k| k.0).collect();
    let rems: Vec<&str> = pairs.keys().map(|k| k.1.as_str()).collect();
    let lead_ids: Vec<Uuid> = pairs.values().copied().collect();
    let rows = tx
        .query(
            "INSERT INTO conversaciones AS c (id, usuario_id, lead_id, servicio_origen, tipo, remitente,
                 connection_id, metadata, last_message_at)
             SELECT i, $1, l, 'whatsapp', 'saliente', r, cn, jsonb_build_object('connection_id', cn), now()
             FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::uuid[]) AS x(i, l, r, cn)
             ORDER BY cn, r
             ON CONFLICT (usuario_id, connection_id, remitente)
                 WHERE servicio_origen = 'whatsapp' AND connection_id IS NOT NULL
             DO UPDATE SET lead_id = EXCLUDED.lead_id, last_message_at = now(), updated_at = now()
             RETURNING id, connection_id, remitente",
            &[&usuario_id, &ids, &lead_ids, &rems, &conns],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(1), r.get(2)), r.get(0)))
        .collect())
}

/// The message and outbox columns of a batch, one array per column.
#[derive(Default)]
struct Rows {
    ids: Vec<Uuid>,
    conversations: Vec<Uuid>,
    connections: Vec<Uuid>,
    tipos: Vec<&'static str>,
    contenidos: Vec<Option<String>>,
    remitentes: Vec<String>,
    metadata: Vec<Value>,
    recipients: Vec<String>,
    payloads: Vec<String>,
    priorities: Vec<i16>,
    due: Vec<Option<OffsetDateTime>>,
    kinds: Vec<String>,
}

impl Rows {
    fn push(&mut self, sealer: &Sealer, id: Uuid, conversation: Uuid, m: &NewMessage, key: &str) {
        let req = m.req;
        // Sealed once: the message's metadata and its outbox row hold the same sealed body.
        let payload = sealer.seal_str(Purpose::MessageBody, &req.body.to_string());
        self.ids.push(id);
        self.conversations.push(conversation);
        self.connections.push(m.connection_id);
        self.tipos.push(req.tipo());
        self.contenidos.push(
            req.preview()
                .map(|t| sealer.seal_str(Purpose::MessageBody, &t)),
        );
        self.remitentes.push(key.to_string());
        self.metadata.push(json!({
            "connection_id": m.connection_id,
            "to": m.phone.e164,
            "priority": super::priority_name(req.priority),
            "payload_sealed": &payload,
        }));
        self.recipients.push(m.phone.e164.clone());
        self.payloads.push(payload);
        self.priorities.push(req.priority);
        self.due.push(req.send_at);
        self.kinds.push(req.kind.clone());
    }

    async fn insert(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        usuario_id: Uuid,
        max_attempts: i32,
    ) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO mensajes_conversacion (id, conversacion_id, usuario_id, connection_id, tipo, contenido,
                 remitente, canal, metadata, direccion, estado)
             SELECT i, cv, $1, cn, t, ct, r, 'whatsapp', md, 'saliente', 'queued'
             FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::jsonb[])
                 AS x(i, cv, cn, t, ct, r, md)",
            &[&usuario_id, &self.ids, &self.conversations, &self.connections, &self.tipos,
              &self.contenidos, &self.remitentes, &self.metadata],
        )
        .await?;
        tx.execute(
            "INSERT INTO outbox (message_id, usuario_id, connection_id, recipient, payload, priority, state,
                 due_at, max_attempts, kind)
             SELECT i, $1, cn, rc, pl, pr, 'pending', COALESCE(d, now()), $2, k
             FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::int2[], $8::timestamptz[], $9::text[])
                 AS x(i, cn, rc, pl, pr, d, k)",
            &[&usuario_id, &max_attempts, &self.ids, &self.connections, &self.recipients,
              &self.payloads, &self.priorities, &self.due, &self.kinds],
        )
        .await?;
        Ok(())
    }
}
