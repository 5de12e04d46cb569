//! Automatic answers (`settings.auto_reply`, off by default). A contact's first message on a
//! connection, or any message while the business is closed (`auto_reply_config.business_hours`),
//! is answered with the configured text or approved template, at most once per contact per
//! `auto_reply_config.window_minutes`. Never to the user's own messages (phone or Business
//! app: `outgoing`) and never to the daemon's (they are not inbound). The decision is
//! [`decide`], one function, run inside the ingest transaction, which also claims the
//! contact's window slot (`auto_replies`, `pending` until queued); the answer is queued after
//! the commit by [`send_due`] through `POST /v1/messages`' own path, so it is a normal outbound
//! message (validated, queued, sent on the connection's lane, with its statuses). A daemon
//! killed between that commit and the queueing leaves the slot pending: [`resume_pending`]
//! (run by the inbox poller every [`RESUME_EVERY`]) queues the answers still pending after
//! [`RESUME_AFTER`], with the same idempotency key, so none is lost and none is sent twice.

use super::reply::Due;
use super::settings::CrmSettings;
use crate::ingest::model::{InboundMessage, MessageKind};
use crate::outbound::submit::{self, Request, Submit, Submitted};
use crate::shared::Shared;
use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use std::time::Duration;
use time::PrimitiveDateTime;
use uuid::Uuid;

/// How often the inbox poller looks for answers decided but never queued.
pub const RESUME_EVERY: Duration = Duration::from_secs(30);
/// How long an answer stays pending before the sweep queues it: the normal path queues it
/// milliseconds after its decision commits, so one still pending after this was cut off.
pub const RESUME_AFTER: Duration = Duration::from_secs(60);

/// What the rule needs to know about one stored message.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub outgoing: bool,
    pub kind: MessageKind,
    /// The contact had not written on this connection before.
    pub first_message: bool,
    /// Now, in the business hours' time zone (None: no business hours, or a zone PostgreSQL
    /// does not know).
    pub local_now: Option<PrimitiveDateTime>,
}

/// The rule without the store: answered when enabled, with something to say, for a
/// contact's own message that is its first or comes while the business is closed.
pub fn rule(s: &CrmSettings, f: &Facts) -> bool {
    let c = &s.auto_reply_config;
    if !s.auto_reply || f.outgoing || (c.text.is_none() && c.template.is_none()) {
        return false;
    }
    if matches!(f.kind, MessageKind::Sistema | MessageKind::Reaccion) {
        return false;
    }
    let closed = match (&c.business_hours, f.local_now) {
        (Some(h), Some(now)) => !h.is_open(now),
        _ => false,
    };
    f.first_message || closed
}

/// The answer's Cloud API type and object: the template when one is set, else the text.
pub fn answer(s: &CrmSettings) -> Option<Value> {
    let c = &s.auto_reply_config;
    if let Some(t) = &c.template {
        return Some(json!({"type": "template", "template": t}));
    }
    c.text
        .as_ref()
        .map(|t| json!({"type": "text", "text": {"body": t}}))
}

/// Whether `m` (stored as `message_id`, from `contact`) is answered automatically: the one
/// decision, with the contact's once-per-window slot claimed in `tx` when it is.
pub async fn decide(
    tx: &impl GenericClient,
    s: &CrmSettings,
    m: &InboundMessage,
    message_id: Uuid,
    contact: &str,
    first_message: bool,
) -> Result<Option<Due>, StoreError> {
    let local_now = match &s.auto_reply_config.business_hours {
        Some(h) if s.auto_reply => local_now(tx, &h.time_zone).await?,
        _ => None,
    };
    let facts = Facts {
        outgoing: m.outgoing,
        kind: m.kind,
        first_message,
        local_now,
    };
    if !rule(s, &facts) {
        return Ok(None);
    }
    let Some(answer) = answer(s) else {
        return Ok(None);
    };
    // An opted-out contact is never answered (its opt-out may be in this very batch: the
    // ingest records opt-outs before deciding automatic answers).
    if crate::privacy::consent::state(tx, m.usuario_id, contact).await? == Some(true) {
        return Ok(None);
    }
    let claimed = tx
        .query_opt(
            "INSERT INTO auto_replies AS a (connection_id, contact, replied_at, in_reply_to, pending)
             VALUES ($1, $2, now(), $4, true)
             ON CONFLICT (connection_id, contact) DO UPDATE
                 SET replied_at = now(), message_id = NULL, in_reply_to = $4, pending = true
             WHERE a.replied_at <= now() - make_interval(mins => $3::int)
             RETURNING 1",
            &[
                &m.connection_id,
                &contact,
                &(s.auto_reply_config.window_minutes.min(i32::MAX as i64) as i32),
                &message_id,
            ],
        )
        .await?;
    Ok(claimed.map(|_| Due {
        usuario_id: m.usuario_id,
        connection_id: m.connection_id,
        to: contact.to_string(),
        in_reply_to: message_id,
        answer,
    }))
}

/// Now in `zone`, by PostgreSQL's time zone table; None for a name it does not know.
async fn local_now(
    tx: &impl GenericClient,
    zone: &str,
) -> Result<Option<PrimitiveDateTime>, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT (now() AT TIME ZONE z.name)::timestamp FROM pg_timezone_names z WHERE z.name = $1",
            &[&zone],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Queues each decided answer as a message of its connection (high priority; the inbound
/// message's id is the idempotency key, so a repeated call queues nothing twice) and marks
/// it `metadata.auto_reply`. A refusal (e.g. a Business text outside the 24 h window, a
/// template no longer approved) is logged with its reason and the contact stays unanswered;
/// a store that does not answer leaves the answer pending for [`resume_pending`].
pub async fn send_due(shared: &Shared, due: &[Due]) {
    for d in due {
        let Err(e) = send_one(shared, d).await else {
            continue;
        };
        tracing::warn!(
            connection_id = %d.connection_id,
            in_reply_to = %d.in_reply_to,
            error = %e,
            "automatic answer not queued"
        );
        if !matches!(e, submit::SubmitError::Store(_))
            && let Err(e) = settle(shared, d).await
        {
            tracing::warn!(connection_id = %d.connection_id, error = %e, "automatic answer left pending");
        }
    }
}

/// Marks the answer of `d` no longer pending (queued, or refused for good).
async fn settle(shared: &Shared, d: &Due) -> Result<(), StoreError> {
    shared
        .pool
        .get()
        .await?
        .execute(
            "UPDATE auto_replies SET pending = false
             WHERE connection_id = $1 AND contact = $2 AND in_reply_to = $3",
            &[&d.connection_id, &d.to, &d.in_reply_to],
        )
        .await?;
    Ok(())
}

/// One sweep: queues the answers decided more than [`RESUME_AFTER`] ago and still pending
/// (their daemon stopped between the decision's commit and the queueing), at most 100, with
/// the connection's answer as configured now. Returns how many it handled.
pub async fn resume_pending(shared: &Shared) -> Result<usize, StoreError> {
    let rows = shared
        .pool
        .get()
        .await?
        .query(
            "SELECT a.connection_id, a.contact, a.in_reply_to, c.usuario_id, c.configuracion
             FROM auto_replies a JOIN configuracion_mensajeria_usuario c ON c.id = a.connection_id
             WHERE a.pending AND a.in_reply_to IS NOT NULL
               AND a.replied_at < now() - make_interval(secs => $1)
             ORDER BY a.replied_at LIMIT 100",
            &[&RESUME_AFTER.as_secs_f64()],
        )
        .await?;
    let mut due = Vec::with_capacity(rows.len());
    for r in &rows {
        let d = Due {
            connection_id: r.get(0),
            to: r.get(1),
            in_reply_to: r.get(2),
            usuario_id: r.get(3),
            answer: Value::Null,
        };
        match answer(&CrmSettings::from_configuracion(&r.get::<_, Value>(4))) {
            Some(answer) => due.push(Due { answer, ..d }),
            // Nothing to say any more (the answer was removed from the settings).
            None => settle(shared, &d).await?,
        }
    }
    if !due.is_empty() {
        tracing::info!(
            count = due.len(),
            "queueing automatic answers a stopped daemon left pending"
        );
        send_due(shared, &due).await;
    }
    Ok(rows.len())
}

async fn send_one(shared: &Shared, d: &Due) -> Result<(), submit::SubmitError> {
    let mut body = d.answer.clone();
    body["connection_id"] = json!(d.connection_id);
    body["to"] = json!(d.to);
    body["priority"] = json!("high");
    let key = format!("auto-reply:{}", d.in_reply_to);
    let daemon = Submit {
        sealer: &shared.sealer,
        fetcher: &shared.media_fetcher,
        data_dir: &shared.settings.data_dir,
        default_region: shared.settings.default_region.as_deref(),
        max_attempts: shared.settings.outbound.max_attempts,
    };
    let request = Request {
        usuario_id: d.usuario_id,
        body: &body,
        idempotency_key: Some(&key),
    };
    let view = match submit::submit(&shared.pool, &daemon, request).await? {
        Submitted::Queued { view, .. } | Submitted::Replayed(view) => view,
    };
    let client = shared.pool.get().await.map_err(StoreError::from)?;
    client
        .execute(
            "UPDATE mensajes_conversacion SET metadata = metadata
                 || jsonb_build_object('auto_reply', true, 'in_reply_to', $2::uuid)
             WHERE id = $1",
            &[&view.id, &d.in_reply_to],
        )
        .await
        .map_err(StoreError::from)?;
    client
        .execute(
            "UPDATE auto_replies SET message_id = $3, pending = false
             WHERE connection_id = $1 AND contact = $2",
            &[&d.connection_id, &d.to, &view.id],
        )
        .await
        .map_err(StoreError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn settings(extra: Value) -> CrmSettings {
        let mut s = json!({"auto_reply": true, "auto_reply_config": {"text": "We are closed",
            "business_hours": {"time_zone": "UTC", "weekly": {"mon": [["09:00", "18:00"]]}}}});
        if let (Some(o), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        CrmSettings::from_configuracion(&json!({ "settings": s }))
    }

    fn facts(first: bool, at: PrimitiveDateTime) -> Facts {
        Facts {
            outgoing: false,
            kind: MessageKind::Texto,
            first_message: first,
            local_now: Some(at),
        }
    }

    #[test]
    fn first_message_or_closed_hours() {
        let s = settings(json!({}));
        let open = datetime!(2026-12-07 10:00);
        let closed = datetime!(2026-12-07 20:00);
        assert!(rule(&s, &facts(true, open)));
        assert!(!rule(&s, &facts(false, open)));
        assert!(rule(&s, &facts(false, closed)));
    }

    #[test]
    fn never_when_off_or_for_own_messages() {
        let closed = datetime!(2026-12-07 20:00);
        assert!(!rule(
            &settings(json!({"auto_reply": false})),
            &facts(true, closed)
        ));
        let mut own = facts(true, closed);
        own.outgoing = true;
        assert!(!rule(&settings(json!({})), &own));
        let mut system = facts(true, closed);
        system.kind = MessageKind::Sistema;
        assert!(!rule(&settings(json!({})), &system));
        assert!(!rule(
            &CrmSettings::from_configuracion(&json!({})),
            &facts(true, closed)
        ));
    }

    #[test]
    fn template_wins_over_text() {
        let s = settings(json!({"auto_reply_config": {"text": "x",
            "template": {"name": "hello", "language": {"code": "en"}}}}));
        assert_eq!(answer(&s).unwrap()["type"], "template");
    }
}
