//! The webhook inbox: raw bodies the HTTP route stored (sealed) before answering Meta, drained
//! here in batches. [`drain_once`] is one testable step: claim due rows with
//! `FOR UPDATE SKIP LOCKED` (any node may drain; none takes another's rows), open and parse
//! them, route each change to its number, hand messages and statuses to Ingest as one batch
//! (its own transaction; Ingest dedupes by wamid, statuses only move forward, so a batch
//! replayed after a crash changes nothing), apply template updates, then mark the rows done.
//! A failing batch leaves its rows for later with a growing pause; a row that can never be
//! read is marked done with its error.
//!
//! [`InboxPoller`] is the actor that runs the step: on a timer, and at once when the webhook
//! route reports a new row.

use super::BusinessError;
use super::store::{self, Route};
use super::templates;
use super::webhook::{self, Change};
use crate::ingest::{InboundItem, IngestReport};
use crate::rate_limiter::{self, RateLimiterMessage};
use crate::seal::Purpose;
use crate::shared::Shared;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Rows per step.
pub const BATCH_ROWS: i64 = 100;
/// How often the poller looks when nobody woke it.
pub const POLL_EVERY: Duration = Duration::from_millis(500);

/// An inbound media file to fetch once its message is stored.
#[derive(Debug, Clone)]
pub struct MediaToFetch {
    pub connection_id: Uuid,
    pub external_id: String,
    pub details: Value,
}

/// What one step did.
#[derive(Debug, Default)]
pub struct DrainReport {
    pub rows: usize,
    pub unreadable: usize,
    /// Changes for numbers not (or no longer) connected here.
    pub unrouted: usize,
    pub templates_changed: usize,
    pub ingest: IngestReport,
    pub media: Vec<MediaToFetch>,
    /// Inbound messages of the last two seconds by connection: Meta counts them in the
    /// number's throughput, so they take send slots ([`RateLimiterMessage::Inbound`]).
    pub recent_inbound: HashMap<Uuid, u32>,
}

/// Ingest as a function (the real one: [`crate::ingest::run`]; tests may pass another).
pub trait IngestFn: Fn(Vec<InboundItem>) -> Self::Fut {
    type Fut: Future<Output = Result<IngestReport, String>>;
}
impl<F, Fut> IngestFn for F
where
    F: Fn(Vec<InboundItem>) -> Fut,
    Fut: Future<Output = Result<IngestReport, String>>,
{
    type Fut = Fut;
}

/// One step over at most `limit` due rows.
pub async fn drain_once<I: IngestFn>(
    shared: &Shared,
    limit: i64,
    ingest: I,
) -> Result<DrainReport, BusinessError> {
    let mut client = shared.pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT id, body FROM webhook_inbox WHERE processed_at IS NULL AND next_attempt_at <= now()
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&limit],
        )
        .await?;
    let mut report = DrainReport {
        rows: rows.len(),
        ..Default::default()
    };
    if rows.is_empty() {
        return Ok(report);
    }
    let mut ids: Vec<i64> = Vec::new();
    let mut all_changes: Vec<Change> = Vec::new();
    for row in &rows {
        let id: i64 = row.get(0);
        let parsed = shared
            .sealer
            .open(Purpose::Webhook, row.get::<_, &str>(1))
            .map_err(|e| e.to_string())
            .and_then(|raw| webhook::envelope(&raw).map_err(|e| e.to_string()));
        match parsed {
            Ok((v, _)) => {
                all_changes.extend(webhook::changes(&v));
                ids.push(id);
            }
            Err(e) => {
                report.unreadable += 1;
                tracing::error!(inbox_id = id, error = %e, "webhook inbox row cannot be read; dropping it");
                tx.execute(
                    "UPDATE webhook_inbox SET processed_at = now(), error = $2, attempts = attempts + 1 WHERE id = $1",
                    &[&id, &e],
                )
                .await?;
            }
        }
    }

    // Route every change to its number(s).
    let mut phone_ids: Vec<String> = Vec::new();
    let mut waba_ids: Vec<String> = Vec::new();
    for c in &all_changes {
        match c {
            Change::Message {
                phone_number_id, ..
            }
            | Change::Status {
                phone_number_id, ..
            } => phone_ids.push(phone_number_id.clone()),
            Change::Template(t) => waba_ids.push(t.waba_id.clone()),
            Change::Ignored(_) => {}
        }
    }
    phone_ids.sort();
    phone_ids.dedup();
    waba_ids.sort();
    waba_ids.dedup();
    let routes = store::routes(&tx, &shared.sealer, &phone_ids, &waba_ids, false).await?;
    let by_phone: HashMap<&str, &Route> = routes
        .iter()
        .map(|r| (r.phone_number_id.as_str(), r))
        .collect();

    let mut items = Vec::new();
    let mut template_updates = Vec::new();
    // Provider timestamps are whole seconds.
    let recent = time::OffsetDateTime::now_utc() - time::Duration::seconds(2);
    for c in all_changes {
        match c {
            Change::Message {
                phone_number_id,
                name,
                message,
            } => {
                let Some(r) = by_phone.get(phone_number_id.as_str()) else {
                    report.unrouted += 1;
                    continue;
                };
                match webhook::inbound_message(r.usuario_id, r.connection_id, name, &message) {
                    Some(m) => {
                        if m.details.get("media_id").is_some() {
                            report.media.push(MediaToFetch {
                                connection_id: r.connection_id,
                                external_id: m.external_id.clone(),
                                details: m.details.clone(),
                            });
                        }
                        if m.timestamp >= recent {
                            *report.recent_inbound.entry(r.connection_id).or_default() += 1;
                        }
                        items.push(InboundItem::Message(m));
                    }
                    None => report.unrouted += 1,
                }
            }
            Change::Status {
                phone_number_id,
                status,
            } => {
                let Some(r) = by_phone.get(phone_number_id.as_str()) else {
                    report.unrouted += 1;
                    continue;
                };
                match webhook::status_update(r.usuario_id, r.connection_id, &status) {
                    Some(s) => items.push(InboundItem::Status(s)),
                    None => report.unrouted += 1,
                }
            }
            Change::Template(t) => template_updates.push(t),
            Change::Ignored(field) => tracing::debug!(field = %field, "webhook field not handled"),
        }
    }

    match ingest(items).await {
        Ok(r) => report.ingest = r,
        Err(e) => {
            tracing::error!(error = %e, rows = ids.len(), "ingest of webhook rows failed; they will be retried");
            tx.execute(
                "UPDATE webhook_inbox SET attempts = attempts + 1, error = $2,
                     next_attempt_at = now() + least(interval '1 second' * power(2, attempts), interval '5 minutes')
                 WHERE id = ANY($1)",
                &[&ids, &e],
            )
            .await?;
            tx.commit().await?;
            return Err(BusinessError::Io(format!("ingest failed: {e}")));
        }
    }
    for t in &template_updates {
        let targets: Vec<(Uuid, Uuid)> = routes
            .iter()
            .filter(|r| r.waba_id == t.waba_id)
            .map(|r| (r.usuario_id, r.connection_id))
            .collect();
        if targets.is_empty() {
            report.unrouted += 1;
            continue;
        }
        report.templates_changed +=
            templates::apply_update(&tx, &shared.sealer, &targets, t).await?;
    }
    tx.execute(
        "UPDATE webhook_inbox SET processed_at = now(), attempts = attempts + 1, error = NULL WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

pub enum InboxPollerMessage {
    /// Drain now (the timer, or the webhook route after storing a row).
    Drain,
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(InboxPollerMessage);

/// Where the poller sends the inbound media it found, for the owning number to fetch.
pub type MediaSink = Arc<dyn Fn(Vec<MediaToFetch>) + Send + Sync>;

pub struct InboxPoller;

pub struct InboxPollerState {
    shared: Arc<Shared>,
    media: MediaSink,
    timer: Option<tokio::task::JoinHandle<()>>,
    waker: Option<tokio::task::JoinHandle<()>>,
}

impl Actor for InboxPoller {
    type Msg = InboxPollerMessage;
    type State = InboxPollerState;
    type Arguments = (Arc<Shared>, MediaSink);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (shared, media): (Arc<Shared>, MediaSink),
    ) -> Result<Self::State, ActorProcessingErr> {
        let timer = myself.send_interval(POLL_EVERY, || InboxPollerMessage::Drain);
        let wake = shared.inbox_wake.clone();
        let me = myself.clone();
        let waker = tokio::spawn(async move {
            loop {
                wake.notified().await;
                if me.cast(InboxPollerMessage::Drain).is_err() {
                    break;
                }
            }
        });
        Ok(InboxPollerState {
            shared,
            media,
            timer: Some(timer),
            waker: Some(waker),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            InboxPollerMessage::Drain => loop {
                let shared = state.shared.clone();
                let step = drain_once(&state.shared, BATCH_ROWS, |items| {
                    let shared = shared.clone();
                    async move { crate::ingest::run(&shared, &items).await }
                })
                .await;
                match step {
                    Ok(r) => {
                        if !r.recent_inbound.is_empty()
                            && let Some(limiter) = rate_limiter::find(&state.shared)
                        {
                            for (connection, count) in r.recent_inbound {
                                let _ =
                                    limiter.cast(RateLimiterMessage::Inbound { connection, count });
                            }
                        }
                        if !r.media.is_empty() {
                            (state.media)(r.media);
                        }
                        if r.rows < BATCH_ROWS as usize {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook inbox step failed");
                        break;
                    }
                }
            },
            InboxPollerMessage::Panic => panic!("fault injection in webhook_inbox"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for t in [state.timer.take(), state.waker.take()]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
        Ok(())
    }
}
