//! Recording outcomes. Sends finish one by one; their outcomes are gathered and written in one
//! transaction per batch (group commit: while one batch commits, the next gathers), so the
//! store's cost per message stays small at thousands of messages per second:
//! - sent: outbox `sent`, message estado `sent` with its external id, statuses that arrived
//!   before it (`pending_statuses`) applied forward-only, `message.status` events; the
//!   recipient's WhatsApp id the provider named kept on the message, its lead and
//!   conversation;
//! - retry: back to `pending`, due after a jittered exponential backoff; after the last
//!   attempt, failed;
//! - failed: outbox `failed` (the dead letter), message estado `failed` with the provider's
//!   code and reason, event;
//! - uncertain: outbox `uncertain` (never resent without a person's decision), alert event;
//! - unavailable / released: back to `pending`, no attempt spent.
//!
//! Every update is guarded by this incarnation's lease, so a row another node took over after
//! a lost lease is not overwritten.

use super::backoff::retry_delay;
use super::claim::Claimed;
use super::settings::OutboundSettings;
use crate::connection::SendOutcome;
use crate::seal::Sealer;
use crate::store::StoreError;
use crate::store::clean;
use crate::store::events::{self, NewEvent};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// A row marked in flight, with the number of this attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marked {
    pub message_id: Uuid,
    pub attempt: u32,
}

/// What happened to a claimed row.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The connection actor answered.
    Send(SendOutcome),
    /// Handed back without an attempt (lane stopping, pair-rate wait, daily cap), due again
    /// after `after` if given.
    Release { after: Option<Duration> },
}

/// One finished row.
#[derive(Debug, Clone)]
pub struct Done {
    pub message_id: Uuid,
    pub usuario_id: Uuid,
    pub connection_id: Uuid,
    /// The attempt this outcome belongs to (0 for a release).
    pub attempt: u32,
    pub max_attempts: i32,
    pub outcome: Outcome,
}

impl Done {
    pub fn released(row: &Claimed, after: Option<Duration>) -> Done {
        Done {
            message_id: row.message_id,
            usuario_id: row.usuario_id,
            connection_id: row.connection_id,
            attempt: 0,
            max_attempts: row.max_attempts,
            outcome: Outcome::Release { after },
        }
    }
}

/// Counts of what a batch did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub uncertain: Vec<(Uuid, Uuid)>,
    pub released: usize,
    /// Outcomes for rows this incarnation no longer held (lease lost, cancelled).
    pub stale: usize,
}

fn code_text(code: Option<i64>, error: &str) -> String {
    match code {
        Some(c) => format!("(#{c}) {error}"),
        None => error.to_string(),
    }
}

/// Applies a batch of outcomes in one transaction.
pub async fn apply(
    client: &mut deadpool_postgres::Client,
    sealer: &Sealer,
    owner: &str,
    settings: &OutboundSettings,
    batch: &[Done],
) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    let (mut sent_ids, mut sent_ext, mut sent_wa) = (
        Vec::new(),
        Vec::<String>::new(),
        Vec::<Option<String>>::new(),
    );
    let mut sent_connections: Vec<Uuid> = Vec::new();
    let (mut back_ids, mut back_secs, mut back_err, mut back_code, mut back_undo) = (
        Vec::new(),
        Vec::<f64>::new(),
        Vec::<Option<String>>::new(),
        Vec::<Option<i64>>::new(),
        Vec::<i32>::new(),
    );
    let (mut fail_ids, mut fail_err, mut fail_code) =
        (Vec::new(), Vec::<String>::new(), Vec::<Option<i64>>::new());
    let (mut unc_ids, mut unc_err) = (Vec::new(), Vec::<String>::new());
    for d in batch {
        match &d.outcome {
            Outcome::Send(SendOutcome::Sent { external_id }) => {
                sent_ids.push(d.message_id);
                sent_connections.push(d.connection_id);
                sent_ext.push(external_id.clone());
                sent_wa.push(None);
            }
            Outcome::Send(SendOutcome::SentTo { external_id, wa_id }) => {
                sent_ids.push(d.message_id);
                sent_connections.push(d.connection_id);
                sent_ext.push(external_id.clone());
                sent_wa.push(Some(clean::text(wa_id).into_owned()));
            }
            Outcome::Send(SendOutcome::Retry { code, error, after }) => {
                if d.attempt as i32 >= d.max_attempts {
                    fail_ids.push(d.message_id);
                    fail_err.push(format!(
                        "{} (gave up after {} attempts)",
                        code_text(*code, error),
                        d.attempt
                    ));
                    fail_code.push(*code);
                } else {
                    let delay = retry_delay(
                        d.attempt,
                        settings.retry_base,
                        settings.retry_max,
                        *after,
                        &mut rand::rng(),
                    );
                    back_ids.push(d.message_id);
                    back_secs.push(delay.as_secs_f64());
                    back_err.push(Some(code_text(*code, error)));
                    back_code.push(*code);
                    back_undo.push(0);
                }
            }
            Outcome::Send(SendOutcome::Failed { code, error }) => {
                fail_ids.push(d.message_id);
                fail_err.push(code_text(*code, error));
                fail_code.push(*code);
            }
            Outcome::Send(SendOutcome::Uncertain { error }) => {
                unc_ids.push(d.message_id);
                unc_err.push(error.clone());
            }
            Outcome::Send(SendOutcome::Unavailable { reason }) => {
                // Not an attempt: the request never left. Due again shortly.
                back_ids.push(d.message_id);
                back_secs.push(2.0);
                back_err.push(Some(format!("connection unavailable: {reason}")));
                back_code.push(None);
                back_undo.push(1);
            }
            Outcome::Release { after } => {
                back_ids.push(d.message_id);
                back_secs.push(after.map(|a| a.as_secs_f64()).unwrap_or(-1.0));
                back_err.push(None);
                back_code.push(None);
                back_undo.push(0);
            }
        }
    }
    let tx = client.transaction().await?;
    // The statuses of these messages may be on their way in: see `status_order`.
    crate::store::status_order::lock(&tx, &sent_connections).await?;
    let mut new_events: Vec<NewEvent> = Vec::new();

    if !sent_ids.is_empty() {
        let rows = tx
            .query(
                "UPDATE outbox o SET state = 'sent', sent_at = now(), inflight_at = NULL, lease_owner = NULL,
                     last_error = NULL, last_code = NULL, updated_at = now()
                 FROM unnest($1::uuid[]) AS s(id)
                 WHERE o.message_id = s.id AND o.lease_owner = $2 AND o.state = 'sending'
                 RETURNING o.message_id",
                &[&sent_ids, &owner],
            )
            .await?;
        let held: std::collections::HashSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        applied.stale += sent_ids.len() - held.len();
        let mut ids = Vec::new();
        let mut exts = Vec::new();
        let mut was = Vec::new();
        for ((id, e), w) in sent_ids.iter().zip(&sent_ext).zip(&sent_wa) {
            if held.contains(id) {
                ids.push(*id);
                exts.push(e.clone());
                was.push(w.clone());
            }
        }
        // An external id already used on the connection (never expected) is not set twice.
        let rows = tx
            .query(
                "UPDATE mensajes_conversacion m SET estado = 'sent', error = NULL, updated_at = now(),
                     external_id = CASE WHEN EXISTS (SELECT 1 FROM mensajes_conversacion x
                         WHERE x.connection_id = m.connection_id AND x.external_id = s.ext AND x.id <> m.id)
                         THEN m.external_id ELSE s.ext END,
                     metadata = CASE WHEN s.wa IS NULL THEN m.metadata
                         ELSE m.metadata || jsonb_build_object('wa_id', s.wa) END
                 FROM unnest($1::uuid[], $2::text[], $3::text[]) AS s(id, ext, wa)
                 WHERE m.id = s.id
                 RETURNING m.id, m.usuario_id, m.conversacion_id, m.connection_id, m.external_id,
                           m.estado, m.error",
                &[&ids, &exts, &was],
            )
            .await?;
        applied.sent = rows.len();
        new_events.extend(rows.iter().map(NewEvent::message_status));
        // The recipient's WhatsApp id, on its lead, then its conversation (the order Ingest
        // locks them in), only where it is new: replies come from that id.
        let (wa_msgs, wa_ids): (Vec<Uuid>, Vec<String>) = ids
            .iter()
            .zip(&was)
            .filter_map(|(id, w)| Some((*id, w.clone()?)))
            .unzip();
        if !wa_msgs.is_empty() {
            tx.execute(
                "UPDATE leads l SET metadata = l.metadata || jsonb_build_object('wa_id', s.wa), updated_at = now()
                 FROM unnest($1::uuid[], $2::text[]) AS s(id, wa)
                 JOIN mensajes_conversacion m ON m.id = s.id
                 JOIN conversaciones c ON c.id = m.conversacion_id
                 WHERE l.id = c.lead_id AND l.metadata->>'wa_id' IS DISTINCT FROM s.wa",
                &[&wa_msgs, &wa_ids],
            )
            .await?;
            tx.execute(
                "UPDATE conversaciones c SET metadata = c.metadata || jsonb_build_object('wa_id', s.wa), updated_at = now()
                 FROM unnest($1::uuid[], $2::text[]) AS s(id, wa)
                 JOIN mensajes_conversacion m ON m.id = s.id
                 WHERE c.id = m.conversacion_id AND c.metadata->>'wa_id' IS DISTINCT FROM s.wa",
                &[&wa_msgs, &wa_ids],
            )
            .await?;
        }
        // Statuses that beat the send's answer (a webhook can): applied now, forward only.
        let rows = tx
            .query(
                "WITH p AS (
                     DELETE FROM pending_statuses ps USING mensajes_conversacion m
                     WHERE m.id = ANY($1) AND ps.connection_id = m.connection_id AND ps.external_id = m.external_id
                     RETURNING ps.connection_id, ps.external_id, ps.estado, ps.error)
                 UPDATE mensajes_conversacion m SET estado = p.estado, error = COALESCE(p.error, m.error), updated_at = now()
                 FROM p
                 WHERE m.connection_id = p.connection_id AND m.external_id = p.external_id
                   AND (CASE p.estado WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2
                          WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE -1 END) > 1
                 RETURNING m.id, m.usuario_id, m.conversacion_id, m.connection_id, m.external_id, m.estado, m.error",
                &[&ids],
            )
            .await?;
        new_events.extend(rows.iter().map(NewEvent::message_status));
    }

    if !back_ids.is_empty() {
        // due offset < 0: keep the row's due time (a release without a wait).
        let n = tx
            .execute(
                "UPDATE outbox o SET state = 'pending', inflight_at = NULL, lease_owner = NULL,
                     attempts = GREATEST(o.attempts - b.undo, 0),
                     due_at = CASE WHEN b.secs < 0 THEN o.due_at ELSE now() + make_interval(secs => b.secs) END,
                     last_error = COALESCE(b.err, o.last_error), last_code = CASE WHEN b.err IS NULL THEN o.last_code ELSE b.code END,
                     updated_at = now()
                 FROM unnest($1::uuid[], $2::float8[], $3::text[], $4::int8[], $5::int4[]) AS b(id, secs, err, code, undo)
                 WHERE o.message_id = b.id AND o.lease_owner = $6 AND o.state = 'sending'",
                &[&back_ids, &back_secs, &back_err, &back_code, &back_undo, &owner],
            )
            .await? as usize;
        applied.stale += back_ids.len() - n;
        let released = batch
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Release { .. }))
            .count();
        applied.released = released.min(n);
        applied.retried = n - applied.released;
    }

    if !fail_ids.is_empty() {
        let rows = tx
            .query(
                "UPDATE outbox o SET state = 'failed', inflight_at = NULL, lease_owner = NULL,
                     last_error = f.err, last_code = f.code, updated_at = now()
                 FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS f(id, err, code)
                 WHERE o.message_id = f.id AND o.lease_owner = $4 AND o.state = 'sending'
                 RETURNING o.message_id",
                &[&fail_ids, &fail_err, &fail_code, &owner],
            )
            .await?;
        let held: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
        applied.stale += fail_ids.len() - held.len();
        let rows = tx
            .query(
                "UPDATE mensajes_conversacion m SET estado = 'failed', error = f.err, updated_at = now()
                 FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS f(id, err, code)
                 WHERE m.id = f.id AND m.id = ANY($4) AND m.estado IN ('queued', 'failed')
                 RETURNING m.id, m.usuario_id, m.conversacion_id, m.connection_id, f.err, f.code",
                &[&fail_ids, &fail_err, &fail_code, &held],
            )
            .await?;
        applied.failed = rows.len();
        for r in &rows {
            new_events.push(NewEvent {
                usuario_id: r.get(1),
                kind: "message.status",
                data: json!({
                    "message_id": r.get::<_, Uuid>(0),
                    "conversation_id": r.get::<_, Uuid>(2),
                    "connection_id": r.get::<_, Option<Uuid>>(3),
                    "status": "failed",
                    "error": r.get::<_, String>(4),
                    "code": r.get::<_, Option<i64>>(5),
                }),
            });
        }
    }

    if !unc_ids.is_empty() {
        // The answer was lost, but the provider's status (callback data) already named the
        // message: it was accepted.
        let resolved = tx
            .execute(
            "UPDATE outbox o SET state = 'sent', sent_at = now(), inflight_at = NULL, lease_owner = NULL,
                 updated_at = now()
             FROM mensajes_conversacion m
             WHERE o.message_id = ANY($1) AND o.lease_owner = $2 AND o.state = 'sending'
               AND m.id = o.message_id AND m.external_id IS NOT NULL",
            &[&unc_ids, &owner],
        )
        .await?;
        let rows = tx
            .query(
                "UPDATE outbox o SET state = 'uncertain', inflight_at = NULL, lease_owner = NULL,
                     last_error = u.err, updated_at = now()
                 FROM unnest($1::uuid[], $2::text[]) AS u(id, err)
                 WHERE o.message_id = u.id AND o.lease_owner = $3 AND o.state = 'sending'
                 RETURNING o.message_id, o.usuario_id, o.connection_id",
                &[&unc_ids, &unc_err, &owner],
            )
            .await?;
        applied.sent += resolved as usize;
        applied.stale += unc_ids.len() - rows.len() - resolved as usize;
        for r in &rows {
            applied.uncertain.push((r.get(0), r.get(1)));
            new_events.push(uncertain_alert(
                r,
                "the provider's answer was lost after the message left; it may or may not have been delivered. Re-queue it to send it again.",
            ));
        }
    }

    events::append_many(&tx, sealer, &new_events).await?;
    tx.commit().await?;
    Ok(applied)
}

enum Item {
    Done(Done),
    /// Reply once everything queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Outcomes waiting to be written, and the task that writes them in batches.
#[derive(Clone)]
pub struct Recorder {
    tx: tokio::sync::mpsc::UnboundedSender<Item>,
}

/// Largest number of outcomes written by one transaction.
const MAX_RECORD_BATCH: usize = 2000;
/// A batch that cannot be written for this long is given up (logged): its rows keep their
/// lease and are recovered when it expires (in-flight ones as uncertain).
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

impl Recorder {
    /// Starts the task; it ends once every `Recorder` handle is dropped and the queue is
    /// written. `after` runs once per written batch (releases the rows from the lanes'
    /// bookkeeping). A batch that fails to commit is retried with backoff.
    pub fn start(
        pool: deadpool_postgres::Pool,
        sealer: std::sync::Arc<Sealer>,
        owner: String,
        settings: OutboundSettings,
        after: impl Fn(&[Done], &Applied) + Send + 'static,
    ) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Item>();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = Vec::new();
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(item) = next.take() {
                    match item {
                        Item::Done(d) => batch.push(d),
                        Item::Flush(f) => flushes.push(f),
                    }
                    if batch.len() < MAX_RECORD_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                let started = std::time::Instant::now();
                let mut wait = Duration::from_millis(100);
                while !batch.is_empty() {
                    let result = async {
                        let mut client = pool.get().await?;
                        apply(&mut client, &sealer, &owner, &settings, &batch).await
                    }
                    .await;
                    match result {
                        Ok(applied) => {
                            metrics::counter!("sincro_outbound_sent_total")
                                .increment(applied.sent as u64);
                            metrics::counter!("sincro_outbound_retried_total")
                                .increment(applied.retried as u64);
                            metrics::counter!("sincro_outbound_failed_total")
                                .increment(applied.failed as u64);
                            metrics::counter!("sincro_outbound_uncertain_total")
                                .increment(applied.uncertain.len() as u64);
                            if applied.stale > 0 {
                                tracing::warn!(
                                    stale = applied.stale,
                                    "outcomes for rows this node no longer held (lease lost or cancelled)"
                                );
                            }
                            after(&batch, &applied);
                            break;
                        }
                        Err(e) if started.elapsed() > GIVE_UP_AFTER => {
                            tracing::error!(error = %e, rows = batch.len(), "giving up recording send outcomes; their leases will expire");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, rows = batch.len(), "could not record send outcomes; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                for f in flushes {
                    let _ = f.send(());
                }
            }
        });
        (Recorder { tx }, task)
    }

    /// Queues an outcome; false when the task is gone.
    pub fn record(&self, done: Done) -> bool {
        self.tx.send(Item::Done(done)).is_ok()
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Item::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The `message_uncertain` alert for an outbox row that became uncertain, from a row of
/// `RETURNING message_id, usuario_id, connection_id`; `message` says how it came to be.
pub(super) fn uncertain_alert(r: &tokio_postgres::Row, message: &str) -> NewEvent {
    NewEvent {
        usuario_id: r.get(1),
        kind: "alert",
        data: json!({
            "kind": "message_uncertain",
            "message_id": r.get::<_, Uuid>(0),
            "connection_id": r.get::<_, Uuid>(2),
            "message": message,
        }),
    }
}
