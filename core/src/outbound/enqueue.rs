//! The store side of `POST /v1/messages`: the checks that need the database (the connection
//! and its owner, the 24 h customer-service window, template approval, a repeated
//! `Idempotency-Key`) and the one transaction that writes the message (estado `queued`), its
//! lead and conversation, its outbox row, its `message.status` event and the NOTIFY that wakes
//! a Dispatcher. Nothing is acknowledged before that transaction commits.

use super::CHANNEL;
use super::validate::SendRequest;
use crate::connection::ConnectionKind;
use crate::leads::store::{self as leads, Contact};
use crate::phone::NormalizedPhone;
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use crate::store::events::{self, NewEvent};
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use std::collections::HashMap;
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

/// The WhatsApp connection `id`, whoever owns it.
pub async fn connection(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<Connection>, StoreError> {
    let row = client
        .query_opt(
            "SELECT usuario_id, configuracion, activo FROM configuracion_mensajeria_usuario
             WHERE id = $1 AND plataforma = 'whatsapp'",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| {
        let configuracion: Value = r.get(1);
        Connection {
            id,
            usuario_id: r.get(0),
            kind: kind_of(&configuracion),
            activo: r.get(2),
            configuracion,
        }
    }))
}

/// Whether the contact wrote to this connection in the last 24 h (Meta's customer-service
/// window, inside which free-form messages are allowed). `e164`: any spelling of the number.
pub async fn window_open(
    client: &impl GenericClient,
    usuario_id: Uuid,
    connection_id: Uuid,
    e164: &str,
) -> Result<bool, StoreError> {
    let key = crate::phone::contact_key(e164, None).key;
    Ok(client
        .query_opt(
            "SELECT 1 FROM conversaciones
             WHERE usuario_id = $1 AND connection_id = $2 AND remitente = $3
               AND servicio_origen = 'whatsapp' AND last_inbound_at > now() - interval '24 hours'",
            &[&usuario_id, &connection_id, &key],
        )
        .await?
        .is_some())
}

/// The status of a template of the connection (`APPROVED`, `PENDING`, ...), None if unknown.
pub async fn template_status(
    client: &impl GenericClient,
    connection_id: Uuid,
    name: &str,
    language: &str,
) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT status FROM whatsapp_templates WHERE connection_id = $1 AND name = $2 AND language = $3",
            &[&connection_id, &name, &language],
        )
        .await?
        .map(|r| r.get(0)))
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

/// Looks a key up (committed rows only).
pub async fn prior(
    client: &impl GenericClient,
    usuario_id: Uuid,
    key: &str,
    hash: &[u8],
) -> Result<Prior, StoreError> {
    let row = client
        .query_opt(
            "SELECT request_hash, message_id FROM idempotency_keys WHERE usuario_id = $1 AND key = $2",
            &[&usuario_id, &key],
        )
        .await?;
    Ok(match row {
        None => Prior::None,
        Some(r) => {
            let stored: Vec<u8> = r.get(0);
            match (stored == hash, r.get::<_, Option<Uuid>>(1)) {
                (true, Some(id)) => Prior::Same(id),
                (true, None) => Prior::None, // its message was deleted
                (false, _) => Prior::Different,
            }
        }
    })
}

/// One message to write.
pub struct NewMessage<'a> {
    pub usuario_id: Uuid,
    pub region: Option<String>,
    pub connection_id: Uuid,
    pub phone: &'a NormalizedPhone,
    pub req: &'a SendRequest,
    /// `(key, request hash)` when the client sent an `Idempotency-Key`.
    pub idempotency: Option<(&'a str, &'a [u8])>,
    pub max_attempts: i32,
}

/// What [`enqueue`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    Created {
        message_id: Uuid,
        conversation_id: Uuid,
        lead_id: Uuid,
    },
    /// A concurrent request with the same key and body committed first: its message.
    Existing(Uuid),
    /// A concurrent request used the key for another body.
    KeyReused,
}

/// Writes the message, its outbox row and its event in one transaction.
pub async fn enqueue(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    m: NewMessage<'_>,
) -> Result<Enqueued, StoreError> {
    let tx = client.transaction().await?;
    let message_id = Uuid::now_v7();
    if let Some((key, hash)) = m.idempotency {
        // A concurrent holder of the key makes this insert wait for its commit, then do
        // nothing: the committed row then tells which message the key stands for.
        let inserted = tx
            .query_opt(
                "INSERT INTO idempotency_keys (usuario_id, key, request_hash) VALUES ($1, $2, $3)
                 ON CONFLICT (usuario_id, key) DO NOTHING RETURNING 1",
                &[&m.usuario_id, &key, &hash],
            )
            .await?;
        if inserted.is_none() {
            let found = prior(&tx, m.usuario_id, key, hash).await?;
            tx.rollback().await?;
            return Ok(match found {
                Prior::Same(id) => Enqueued::Existing(id),
                Prior::Different => Enqueued::KeyReused,
                Prior::None => Enqueued::KeyReused,
            });
        }
    }
    // The contact's key finds the lead and conversation its inbound messages use, whatever
    // spelling WhatsApp gives them (the message leaves for the number as written).
    let key = crate::phone::contact_key(&m.phone.e164, None);
    let contact = Contact {
        usuario_id: m.usuario_id,
        key: key.clone(),
        wa_id: None,
        profile_name: None,
        profile_picture_url: None,
    };
    let regions = HashMap::from([(m.usuario_id, m.region.clone())]);
    let resolved = leads::resolve(&tx, std::slice::from_ref(&contact), &regions).await?;
    let lead_id = resolved.leads[&(m.usuario_id, key.key.clone())];
    let conversation_id: Uuid = tx
        .query_one(
            "INSERT INTO conversaciones AS c (id, usuario_id, lead_id, servicio_origen, tipo, remitente,
                 connection_id, metadata, last_message_at)
             VALUES ($1, $2, $3, 'whatsapp', 'saliente', $4, $5, jsonb_build_object('connection_id', $5::uuid), now())
             ON CONFLICT (usuario_id, connection_id, remitente)
                 WHERE servicio_origen = 'whatsapp' AND connection_id IS NOT NULL
             DO UPDATE SET lead_id = EXCLUDED.lead_id, last_message_at = now(), updated_at = now()
             RETURNING id",
            &[&Uuid::now_v7(), &m.usuario_id, &lead_id, &key.key, &m.connection_id],
        )
        .await?
        .get(0);
    let req = m.req;
    let body_text = req.body.to_string();
    let contenido = req
        .preview()
        .map(|t| sealer.seal_str(Purpose::MessageBody, &t));
    let metadata = json!({
        "connection_id": m.connection_id,
        "to": m.phone.e164,
        "priority": super::priority_name(req.priority),
        "payload_sealed": sealer.seal_str(Purpose::MessageBody, &body_text),
    });
    tx.execute(
        "INSERT INTO mensajes_conversacion (id, conversacion_id, usuario_id, connection_id, tipo, contenido,
             remitente, canal, metadata, direccion, estado)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'whatsapp', $8, 'saliente', 'queued')",
        &[&message_id, &conversation_id, &m.usuario_id, &m.connection_id, &req.tipo(), &contenido, &key.key, &metadata],
    )
    .await?;
    let payload = sealer.seal_str(Purpose::MessageBody, &body_text);
    tx.execute(
        "INSERT INTO outbox (message_id, usuario_id, connection_id, recipient, payload, priority, state,
             due_at, max_attempts, kind)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', COALESCE($7, now()), $8, $9)",
        &[&message_id, &m.usuario_id, &m.connection_id, &m.phone.e164, &payload, &req.priority, &req.send_at, &m.max_attempts, &req.kind],
    )
    .await?;
    if let Some((key, _)) = m.idempotency {
        tx.execute(
            "UPDATE idempotency_keys SET message_id = $3 WHERE usuario_id = $1 AND key = $2",
            &[&m.usuario_id, &key, &message_id],
        )
        .await?;
    }
    let mut new_events: Vec<NewEvent> = resolved
        .events
        .into_iter()
        .map(|e| NewEvent {
            usuario_id: e.usuario_id,
            kind: e.kind,
            data: e.data,
        })
        .collect();
    new_events.push(NewEvent {
        usuario_id: m.usuario_id,
        kind: "message.status",
        data: json!({
            "message_id": message_id,
            "conversation_id": conversation_id,
            "connection_id": m.connection_id,
            "to": m.phone.e164,
            "status": "queued",
        }),
    });
    events::append_many(&tx, sealer, &new_events).await?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &m.connection_id.to_string()],
    )
    .await?;
    tx.commit().await?;
    Ok(Enqueued::Created {
        message_id,
        conversation_id,
        lead_id,
    })
}
