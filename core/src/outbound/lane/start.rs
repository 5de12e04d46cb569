//! Starting a lane's granted sends: the rows are marked in flight in one task, then each is
//! handed to its connection actor with its departure and its outcome goes to the recorder; the
//! lane itself never waits on a send.

use super::Lane;
use super::held::LaneCtx;
use crate::connection::{ConnectionKind, Departure, OutboundMessage, SendOutcome};
use crate::outbound::claim::Claimed;
use crate::outbound::record::{Done, Outcome};
use crate::outbound::settings::ConnectionLimits;
use crate::rate_limiter;
use crate::seal::Purpose;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use uuid::Uuid;

impl Lane {
    /// Starts a task that marks the rows in flight, then one task per send; the lane goes on at
    /// once. Rows no longer held (cancelled, lease lost) are dropped unsent; if marking fails,
    /// the rows go back to the queue without an attempt.
    pub(super) fn start_sends(
        &mut self,
        conn: crate::connection::ConnectionRef,
        limits: &ConnectionLimits,
        granted: Vec<(Claimed, Instant)>,
    ) {
        let (rows, slots): (Vec<Claimed>, Vec<Instant>) = granted.into_iter().unzip();
        // Pacing and counts are taken now, so the lane's rhythm never waits on the store.
        if let Some((n, at, until)) = self.day {
            self.day = Some((n + rows.len() as u32, at, until));
        }
        if let Some((lo, hi)) = limits.gap {
            let gap = if hi > lo {
                rand::random_range(lo..=hi)
            } else {
                lo
            };
            self.next_send = Some(Instant::now() + gap);
        }
        let mut permits = Vec::with_capacity(rows.len());
        {
            let mut busy = self.busy.lock().expect("busy lock");
            for row in &rows {
                permits.push(self.sends.clone().try_acquire_owned().ok());
                busy.insert(row.recipient.clone());
            }
        }
        self.ctx.sending.fetch_add(rows.len(), Ordering::SeqCst);
        self.waiting.fetch_add(rows.len(), Ordering::SeqCst);
        let waiting = self.waiting.clone();
        let ctx = self.ctx.clone();
        let busy = self.busy.clone();
        let done = self.done.clone();
        let kind = self.kind;
        let timeout = self.ctx.shared.settings.outbound.send_timeout;
        let period = limits.period;
        let cap = rate_limiter::window_cap(limits.per_period, limits.period);
        // Sends that fell behind catch up at twice the rate at most.
        let min_gap = rate_limiter::interval(limits.per_period, limits.period) / 2;
        tokio::spawn(async move {
            let ids: Vec<Uuid> = rows.iter().map(|r| r.message_id).collect();
            let attempts: HashMap<Uuid, u32> = match ctx.marker.mark(ids).await {
                Ok(marked) => marked.iter().map(|m| (m.message_id, m.attempt)).collect(),
                Err(e) => {
                    // Never sent: back to the queue shortly, no attempt spent.
                    tracing::warn!(error = %e, "could not mark messages in flight");
                    HashMap::new()
                }
            };
            let failed_marking = attempts.is_empty();
            for ((row, permit), slot) in rows.into_iter().zip(permits).zip(slots) {
                let Some(&attempt) = attempts.get(&row.message_id) else {
                    if failed_marking {
                        ctx.recorder
                            .record(Done::released(&row, Some(Duration::from_millis(500))));
                    } else {
                        // Cancelled meanwhile, or the lease was lost: not ours to send.
                        ctx.held.remove([row.message_id]);
                    }
                    busy.lock().expect("busy lock").remove(&row.recipient);
                    ctx.sending.fetch_sub(1, Ordering::SeqCst);
                    waiting.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                    done.notify_one();
                    continue;
                };
                // Handed over at once, in slot order: the actor prepares the send while its
                // slot comes and lets it leave by its departure (slot, spacing, window cap).
                let pending = outbound_message(&ctx, &row, attempt).map(|mut msg| {
                    msg.departure = Some(Departure {
                        at: slot,
                        spacing: min_gap,
                        cap,
                        period,
                    });
                    conn.begin(msg)
                });
                let ctx = ctx.clone();
                let busy = busy.clone();
                let done = done.clone();
                let waiting = waiting.clone();
                let span = tracing::info_span!("send", message_id = %row.message_id);
                let send = async move {
                    let outcome = match pending {
                        Ok(pending) => {
                            tokio::time::sleep_until(slot.into()).await;
                            waiting.fetch_sub(1, Ordering::SeqCst);
                            let started = Instant::now();
                            let outcome = pending.outcome(timeout).await;
                            observe(kind, &outcome, started);
                            outcome
                        }
                        Err(outcome) => {
                            waiting.fetch_sub(1, Ordering::SeqCst);
                            outcome
                        }
                    };
                    busy.lock().expect("busy lock").remove(&row.recipient);
                    ctx.recorder.record(Done {
                        message_id: row.message_id,
                        usuario_id: row.usuario_id,
                        connection_id: row.connection_id,
                        attempt,
                        max_attempts: row.max_attempts,
                        outcome: Outcome::Send(outcome),
                    });
                    ctx.sending.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                    done.notify_one();
                };
                tokio::spawn(tracing::Instrument::instrument(send, span));
            }
        });
    }
}

/// The message as the connection actor takes it, or the failure if its stored body cannot be
/// opened.
fn outbound_message(
    ctx: &LaneCtx,
    row: &Claimed,
    attempt: u32,
) -> Result<OutboundMessage, SendOutcome> {
    let body = ctx
        .shared
        .sealer
        .open_str(Purpose::MessageBody, &row.payload)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .ok_or_else(|| SendOutcome::Failed {
            code: None,
            error: "the stored message cannot be opened (unknown ENCRYPTION_KEY id?)".into(),
        })?;
    Ok(OutboundMessage {
        message_id: row.message_id,
        usuario_id: row.usuario_id,
        connection_id: row.connection_id,
        to: row.recipient.clone(),
        kind: body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("text")
            .to_string(),
        body,
        attempt,
        departure: None,
    })
}

/// Send time by kind and outcome.
fn observe(kind: ConnectionKind, outcome: &SendOutcome, started: Instant) {
    let label = match outcome {
        SendOutcome::Sent { .. } | SendOutcome::SentTo { .. } => "sent",
        SendOutcome::Retry { .. } => "retry",
        SendOutcome::Failed { .. } => "failed",
        SendOutcome::Uncertain { .. } => "uncertain",
        SendOutcome::Unavailable { .. } => "unavailable",
    };
    let kind = match kind {
        ConnectionKind::Business => "business",
        ConnectionKind::Lite => "lite",
    };
    metrics::histogram!("sincro_outbound_send_seconds", "kind" => kind, "outcome" => label)
        .record(started.elapsed().as_secs_f64());
    let (outcome, error_class) = crate::telemetry::catalog::classify(outcome);
    metrics::counter!("sincro_sends_total", "kind" => kind, "outcome" => outcome, "error_class" => error_class)
        .increment(1);
}
