//! The inbox drain: turns inbox rows (Meta webhook bodies, Lite page events) into stored
//! messages. [`drain_once`] is one testable step: claim due rows with `FOR UPDATE SKIP LOCKED`
//! (any node may drain; none takes another's rows), open them, route Meta bodies to their
//! numbers (`business::inbox`), store every item (leads, conversations, messages, events),
//! apply template updates, record dead letters and mark the rows done, all in the claim's
//! transaction: one commit per step, however many rows and items it holds. A flood's step
//! (from [`lanes::LANES_FROM_ITEMS`] items) stores its items in parallel transactions by
//! contact instead ([`lanes`]), and the claim's transaction marks the rows once they committed.
//!
//! One bad item never holds up or loses the others: items are stored in chunks, each in a savepoint
//! ([`super::isolate`]); when the store refuses a chunk (a value it cannot hold, a constraint), it
//! is rolled back to its savepoint and split in halves, down to the single item at fault, which
//! becomes a dead letter with the store's reason while its neighbours are stored. Only an
//! unreachable store leaves the rows for a later step, with a growing pause. A row that cannot be
//! opened or parsed is a dead letter too: nothing leaves the inbox without being stored or
//! dead-lettered.
//!
//! [`InboxPoller`] is the actor that runs the step: on a timer, and when an inbox row is
//! committed ([`super::inbox::wake`]): at once after a quiet spell, else [`STEP_SPACING`] after
//! the last step, so that under load one step takes many webhooks.
//!
//! The statements every step runs (the claim, the stores of `batch.rs` and the event log, the
//! mark) are prepared once per pooled connection (`prepare_cached`): unprepared, each costs
//! PostgreSQL a parse and a plan and the step a round trip, every time.

use super::dead_letter::{self, NewDeadLetter};
use super::inbox::{LiteBody, SOURCE_LITE, SOURCE_META, Tagged};
use super::isolate::store_isolated;
use super::lanes;
use super::{InboundItem, IngestReport};
use crate::business::BusinessError;
use crate::business::inbox::{self as meta, MediaToFetch, MetaRow};
use crate::rate_limiter::RateLimiterMessage;
use crate::seal::Purpose;
use crate::shared::Shared;
use crate::store::alerts::{NewAlert, Severity};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// Rows per step: one commit per step, so a backlog drains in few, large transactions.
pub const BATCH_ROWS: i64 = 250;
/// How often the poller looks when nobody woke it.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// The least time between two steps a wake-up starts. A step costs PostgreSQL about the same
/// few statements and one commit whether it stores one message or fifty: at 1,000 webhooks a
/// second, a step per webhook spent 0.8 ms of PostgreSQL's CPU a message. A wake-up within
/// this time of the last step waits for the rest of it, and what commits meanwhile joins the
/// step; a message arriving after a quiet spell is drained at once. It adds at most this much
/// to when the CRM sees a message, and only under load.
pub const STEP_SPACING: Duration = Duration::from_millis(10);

/// Gauge: age in seconds of the oldest inbox row not drained yet (0 when the drain is caught
/// up), how late the CRM sees what arrives. Read after each full step, so only under backlog.
pub const LAG_GAUGE: &str = "sincro_inbox_lag_seconds";

/// The age of the oldest row waiting in the inbox (one indexed read).
pub async fn lag(shared: &Shared) -> Result<f64, crate::store::StoreError> {
    let client = shared.pool.get().await?;
    let row = client
        .query_one(
            "SELECT COALESCE(extract(epoch FROM now() - (SELECT received_at FROM webhook_inbox
                 WHERE processed_at IS NULL ORDER BY id LIMIT 1)), 0)::float8",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// What one step did.
#[derive(Debug, Default)]
pub struct DrainReport {
    pub rows: usize,
    pub templates_changed: usize,
    pub ingest: IngestReport,
    /// Items set aside with their reason (recorded in `inbound_dead_letters`).
    pub dead: Vec<NewDeadLetter>,
    pub media: Vec<MediaToFetch>,
    /// Inbound messages of the last two seconds by Business connection (send slots).
    pub recent_inbound: HashMap<Uuid, u32>,
}

/// One step over at most `limit` due rows.
pub async fn drain_once(shared: &Arc<Shared>, limit: i64) -> Result<DrainReport, BusinessError> {
    let mut client = shared.pool.get().await?;
    let mut tx = client.transaction().await?;
    // The claim walks the pending index in id order. Left to itself the planner takes a bitmap
    // scan, which visits the heap for every entry of a row drained since the last vacuum
    // (thousands under a flood: milliseconds per claim, growing) and never marks them dead;
    // a plain index scan marks them as it passes, so the next claim skips them.
    let claim = tx
        .prepare_cached(
            "SELECT id, source, body, usuario_id, connection_id, signed_by FROM webhook_inbox
             WHERE processed_at IS NULL AND next_attempt_at <= now()
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .await?;
    // The three go out together and are answered in order (tokio-postgres pipelines requests
    // polled together): one round trip, not three.
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&limit];
    let (_, rows, _) = futures::try_join!(
        tx.batch_execute("SET LOCAL enable_bitmapscan = off"),
        tx.query(&claim, &params),
        tx.batch_execute("SET LOCAL enable_bitmapscan TO DEFAULT"),
    )?;
    let mut report = DrainReport {
        rows: rows.len(),
        ..Default::default()
    };
    if rows.is_empty() {
        return Ok(report);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let mut items: Vec<Tagged> = Vec::new();
    let mut bodies: Vec<MetaRow> = Vec::new();
    for row in &rows {
        let inbox_id: i64 = row.get(0);
        let source: String = row.get(1);
        let opened = shared
            .sealer
            .open(Purpose::Webhook, row.get::<_, &str>(2))
            .map_err(|e| format!("the stored body cannot be opened: {e}"));
        let unreadable = |reason: String| NewDeadLetter {
            inbox_id,
            source: source.clone(),
            usuario_id: row.get(3),
            connection_id: row.get(4),
            external_id: None,
            reason,
        };
        match source.as_str() {
            SOURCE_LITE => match opened.and_then(|raw| {
                serde_json::from_slice::<LiteBody>(&raw).map_err(|e| format!("not Lite items: {e}"))
            }) {
                Ok(body) => {
                    let (usuario, connection): (Option<Uuid>, Option<Uuid>) =
                        (row.get(3), row.get(4));
                    for item in body.items {
                        let tagged = Tagged {
                            inbox_id,
                            source: SOURCE_LITE,
                            item,
                        };
                        let (u, c) = match &tagged.item {
                            InboundItem::Message(m) => (m.usuario_id, m.connection_id),
                            InboundItem::Status(s) => (s.usuario_id, s.connection_id),
                        };
                        // The row names its session; an item for another is never applied.
                        if usuario == Some(u) && connection == Some(c) {
                            items.push(tagged);
                        } else {
                            report.dead.push(tagged.dead_letter(
                                "the item names another connection than its inbox row".into(),
                            ));
                        }
                    }
                }
                Err(e) => report.dead.push(unreadable(e)),
            },
            SOURCE_META => match opened.and_then(|raw| {
                serde_json::from_slice::<serde_json::Value>(&raw)
                    .map_err(|e| format!("the body is not JSON: {e}"))
            }) {
                Ok(body) => bodies.push(MetaRow {
                    inbox_id,
                    body,
                    signed_by: row.get(5),
                }),
                Err(e) => report.dead.push(unreadable(e)),
            },
            other => report
                .dead
                .push(unreadable(format!("unknown inbox source {other:?}"))),
        }
    }

    let routed = meta::route(&tx, &shared.sealer, bodies).await?;
    items.extend(routed.items);
    // A large step goes to parallel lanes (`lanes.rs`), each on a pooled connection of its
    // own while this one holds the claim: never more than the pool has left.
    let lanes = shared
        .settings
        .ingest_concurrency
        .min(shared.pool.status().max_size.saturating_sub(1));
    let stored = if lanes > 1 && items.len() >= lanes::LANES_FROM_ITEMS {
        lanes::store(shared, items, lanes).await
    } else {
        // Taken once for the whole step, before its first chunk (`batch::ingest_in` leaves it
        // to the owner of the transaction): a later chunk waiting for it while an earlier one
        // holds message rows a send's answer is updating could deadlock.
        crate::store::status_order::lock(
            &tx,
            &super::batch::status_connections(items.iter().map(|t| &t.item)),
        )
        .await?;
        store_isolated(shared, &mut tx, &items).await
    };
    report.dead.extend(routed.dead);
    report.media = routed.media;
    report.recent_inbound = routed.recent_inbound;

    match stored {
        Ok((stored, dead)) => {
            report.ingest = stored;
            report.dead.extend(dead);
        }
        Err(e) => {
            tracing::error!(error = %e, rows = ids.len(), "inbox rows not stored; they will be retried");
            tx.execute(
                "UPDATE webhook_inbox SET attempts = attempts + 1, error = $2,
                     next_attempt_at = now() + least(interval '1 second' * power(2, attempts), interval '5 minutes')
                 WHERE id = ANY($1)",
                &[&ids, &e.to_string()],
            )
            .await?;
            tx.commit().await?;
            return Err(BusinessError::Io(format!("ingest failed: {e}")));
        }
    }
    report.templates_changed =
        meta::apply_templates(&tx, &shared.sealer, &routed.templates).await?;
    meta::apply_throughput(&tx, &shared.sealer, &routed.throughput).await?;
    dead_letter::record(&tx, &report.dead).await?;
    for d in &report.dead {
        tracing::warn!(inbox_id = d.inbox_id, source = %d.source, connection = ?d.connection_id, reason = %d.reason, "inbound item dead-lettered");
    }
    let mark = tx
        .prepare_cached(
            "UPDATE webhook_inbox SET processed_at = now(), attempts = attempts + 1, error = NULL WHERE id = ANY($1)",
        )
        .await?;
    tx.execute(&mark, &[&ids]).await?;
    tx.commit().await?;
    Ok(report)
}

pub enum InboxPollerMessage {
    /// Drain now (the timer, or a component that stored a row).
    Drain,
    /// Queue the automatic answers a stopped daemon decided but never queued (a timer).
    ResumeAnswers,
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
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// A wake-up's `Drain` is in the mailbox (cleared when a step starts).
    queued: Arc<AtomicBool>,
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
        let resume = myself.send_interval(crate::crm::auto_reply::RESUME_EVERY, || {
            InboxPollerMessage::ResumeAnswers
        });
        let wake = shared.inbox_wake.clone();
        let me = myself.clone();
        let queued = Arc::new(AtomicBool::new(false));
        let flag = queued.clone();
        let waker = tokio::spawn(async move {
            let mut pace = Pace::new(STEP_SPACING);
            loop {
                wake.notified().await;
                pace.wait().await;
                // One wake-up waits in the mailbox at most: under a flood every committed
                // batch notifies, and a message per notification would run a step (a claim
                // query) per batch, most finding the rows already taken by the step before.
                if !flag.swap(true, Ordering::AcqRel) && me.cast(InboxPollerMessage::Drain).is_err()
                {
                    break;
                }
            }
        });
        Ok(InboxPollerState {
            shared,
            media,
            tasks: vec![timer, resume, waker],
            queued,
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
                // Rows committed from here on wake a next step.
                state.queued.store(false, Ordering::Release);
                match drain_once(&state.shared, BATCH_ROWS).await {
                    Ok(mut r) => {
                        let full = r.rows >= BATCH_ROWS as usize;
                        // Automatic answers decided with the stored messages, queued now that
                        // they are committed.
                        let answers = std::mem::take(&mut r.ingest.auto_replies);
                        after_step(&state.shared, &state.media, r);
                        crate::crm::auto_reply::send_due(&state.shared, &answers).await;
                        if !full {
                            // Everything due was drained: no lag.
                            metrics::gauge!(LAG_GAUGE).set(0.0);
                            break;
                        }
                        match lag(&state.shared).await {
                            Ok(secs) => metrics::gauge!(LAG_GAUGE).set(secs),
                            Err(e) => tracing::warn!(error = %e, "could not read the inbox lag"),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "inbox step failed");
                        break;
                    }
                }
            },
            InboxPollerMessage::ResumeAnswers => {
                if let Err(e) = crate::crm::auto_reply::resume_pending(&state.shared).await {
                    tracing::warn!(error = %e, "could not look for pending automatic answers");
                }
            }
            InboxPollerMessage::Panic => panic!("fault injection in webhook_inbox"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for t in state.tasks.drain(..) {
            t.abort();
        }
        Ok(())
    }
}

/// Keeps the steps that wake-ups start at least `spacing` apart ([`STEP_SPACING`]).
struct Pace {
    spacing: Duration,
    last: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(spacing: Duration) -> Self {
        Pace {
            spacing,
            last: None,
        }
    }

    /// Returns when the next step may start: at once after a quiet spell, else `spacing`
    /// after the last one.
    async fn wait(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.spacing).await;
        }
        self.last = Some(tokio::time::Instant::now());
    }
}

/// What a step's report asks of others: send slots for received Business messages, media to
/// fetch, and one alert per user whose items were dead-lettered.
fn after_step(shared: &Arc<Shared>, media: &MediaSink, r: DrainReport) {
    if !r.recent_inbound.is_empty()
        && let Some(limiter) = shared.rate_limiter.get()
    {
        for (connection, count) in r.recent_inbound {
            let _ = limiter.cast(RateLimiterMessage::Inbound { connection, count });
        }
    }
    if !r.media.is_empty() {
        media(r.media);
    }
    let mut by_user: BTreeMap<Option<Uuid>, usize> = BTreeMap::new();
    for d in &r.dead {
        *by_user.entry(d.usuario_id).or_default() += 1;
    }
    for (usuario_id, count) in by_user {
        shared.raise_alert(NewAlert {
            usuario_id,
            kind: "inbound_dead_letter".into(),
            severity: Severity::Warning,
            source: "ingest".into(),
            message: format!(
                "{count} inbound item(s) could not be stored; see GET /v1/inbound/dead-letter and replay them once fixed"
            ),
            details: serde_json::json!({ "count": count }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{Instant, advance};

    /// Within `[at, at + 1 ms)`: the paused clock jumps to timers at the wheel's millisecond.
    fn near(at: Instant) -> bool {
        let now = Instant::now();
        now >= at && now < at + Duration::from_millis(1)
    }

    #[tokio::test(start_paused = true)]
    async fn woken_steps_are_spaced_and_one_after_a_quiet_spell_is_not() {
        let spacing = Duration::from_millis(5);
        let mut pace = Pace::new(spacing);
        let t0 = Instant::now();
        pace.wait().await;
        assert!(near(t0), "the first step starts at once");
        pace.wait().await;
        assert!(
            near(t0 + spacing),
            "a step right after the last waits the spacing"
        );
        advance(Duration::from_millis(2)).await;
        let second = t0 + spacing;
        pace.wait().await;
        assert!(
            near(second + spacing),
            "one 2 ms later waits the rest of it"
        );
        advance(Duration::from_millis(50)).await;
        let quiet = Instant::now();
        pace.wait().await;
        assert!(near(quiet), "after a quiet spell a step starts at once");
    }
}
