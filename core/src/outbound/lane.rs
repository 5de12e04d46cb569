//! One lane per connection running on this node: it claims that connection's due rows (a
//! buffer of about one second of sending), takes RateLimiter permits, applies Lite pacing (a
//! jittered gap between sends, a daily cap), marks attempts in flight, hands each message to
//! the connection actor a little before its slot with its departure (slot, catch-up spacing,
//! window cap: [`crate::connection::Departures`] keeps them when the request leaves), and
//! passes the outcome to the recorder. [`Lane::step`] does one round
//! and says what to wait for; [`run`] loops over it.
//!
//! Order: rows are taken by priority then age; two messages to one recipient are never in
//! flight at once, so a conversation's messages leave in order (a retried one can still fall
//! behind a later one).

use super::claim::{self, Claimed};
use super::fairness;
use super::inflight::Marker;
use super::record::{Done, Outcome, Recorder};
use super::settings::{ConnectionLimits, LIMITS_REFRESH};
use crate::connection::{ConnectionKind, Departure, OutboundMessage, SendOutcome};
use crate::rate_limiter::{self, LimitScope, Permit, RateLimiterMessage, SendLimit};
use crate::seal::Purpose;
use crate::shared::Shared;
use crate::store::alerts::{NewAlert, Severity};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

/// A recipient over its pair rate for longer than this goes back to the queue (due then)
/// instead of waiting in memory.
const PARK_MAX: Duration = Duration::from_secs(2);
/// Most messages asked permits for in one RateLimiter call.
const PERMIT_BATCH: usize = 64;
/// Concurrent sends per Business lane (one per Lite lane: one browser page).
const BUSINESS_CONCURRENCY: usize = 64;
/// How often a rate-limit alert may be raised per connection.
const ALERT_EVERY: Duration = Duration::from_secs(600);

/// Rows claimed by this node and not yet recorded, by connection: the fair-share bookkeeping.
#[derive(Default)]
pub struct Held {
    inner: Mutex<HeldInner>,
}

#[derive(Default)]
struct HeldInner {
    rows: HashMap<Uuid, Uuid>,
    per_connection: HashMap<Uuid, usize>,
}

impl Held {
    pub fn add(&self, connection: Uuid, ids: impl IntoIterator<Item = Uuid>) {
        let mut h = self.inner.lock().expect("held lock");
        for id in ids {
            if h.rows.insert(id, connection).is_none() {
                *h.per_connection.entry(connection).or_default() += 1;
            }
        }
    }

    pub fn remove(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut h = self.inner.lock().expect("held lock");
        for id in ids {
            if let Some(c) = h.rows.remove(&id)
                && let Some(n) = h.per_connection.get_mut(&c)
            {
                *n -= 1;
                if *n == 0 {
                    h.per_connection.remove(&c);
                }
            }
        }
    }

    pub fn of(&self, connection: Uuid) -> usize {
        self.inner
            .lock()
            .expect("held lock")
            .per_connection
            .get(&connection)
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.inner.lock().expect("held lock").rows.len()
    }
}

/// What every lane of one Dispatcher incarnation shares.
pub struct LaneCtx {
    pub shared: Arc<Shared>,
    /// This incarnation's lease owner name.
    pub owner: String,
    pub held: Arc<Held>,
    pub marker: Marker,
    pub recorder: Recorder,
    /// Lanes running (for fair shares).
    pub lanes: AtomicUsize,
    /// Sends started and not yet answered, over all lanes (shutdown waits for them).
    pub sending: Arc<AtomicUsize>,
    /// Rate-limit alerts raised, per connection (debounce).
    pub alerted: Mutex<HashMap<(Uuid, &'static str), Instant>>,
}

impl LaneCtx {
    /// Raises an alert at most every [`ALERT_EVERY`] per connection and kind.
    pub fn alert_once(
        &self,
        connection: Uuid,
        usuario_id: Option<Uuid>,
        kind: &'static str,
        message: String,
    ) {
        let mut alerted = self.alerted.lock().expect("alert lock");
        let due = alerted
            .get(&(connection, kind))
            .is_none_or(|t| t.elapsed() > ALERT_EVERY);
        if due {
            alerted.insert((connection, kind), Instant::now());
            self.shared.raise_alert(NewAlert {
                usuario_id,
                kind: kind.into(),
                severity: Severity::Info,
                source: "dispatcher".into(),
                message,
                details: json!({"connection_id": connection}),
            });
        }
    }
}

/// What a lane waits for after a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Go on at once.
    Again,
    /// Sleep at most this long; `on_new`: also wake when new rows are announced (NOTIFY);
    /// `on_done`: also wake when one of its sends finishes.
    Wait {
        at_most: Duration,
        on_new: bool,
        on_done: bool,
    },
    /// The connection is gone from this node or its lease was lost: the lane ends (its rows
    /// were handed back).
    Stop,
}

pub struct Lane {
    ctx: Arc<LaneCtx>,
    pub connection_id: Uuid,
    kind: ConnectionKind,
    usuario_id: Option<Uuid>,
    limits: Option<ConnectionLimits>,
    limits_at: Instant,
    buffer: VecDeque<Claimed>,
    parked: Vec<(Instant, Claimed)>,
    next_send: Option<Instant>,
    /// Sends in the last 24 h (daily cap) and when it was counted.
    day: Option<(u32, Instant, Option<Duration>)>,
    busy: Arc<Mutex<HashSet<String>>>,
    sends: Arc<Semaphore>,
    concurrency: usize,
    /// Sends being marked or marked in flight that have not reached their start yet (bounded
    /// by the room computed in [`Lane::step`]).
    waiting: Arc<AtomicUsize>,
    /// Signalled when one of this lane's sends finishes.
    pub done: Arc<Notify>,
}

impl Lane {
    pub fn new(ctx: Arc<LaneCtx>, connection_id: Uuid, kind: ConnectionKind) -> Lane {
        let concurrency = match kind {
            ConnectionKind::Business => BUSINESS_CONCURRENCY,
            ConnectionKind::Lite => 1,
        };
        Lane {
            ctx,
            connection_id,
            kind,
            usuario_id: None,
            limits: None,
            limits_at: Instant::now(),
            buffer: VecDeque::new(),
            parked: Vec::new(),
            next_send: None,
            day: None,
            busy: Arc::default(),
            sends: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            waiting: Arc::new(AtomicUsize::new(0)),
            done: Arc::new(Notify::new()),
        }
    }

    /// The connection's limits, re-read every [`LIMITS_REFRESH`].
    async fn limits(&mut self) -> Result<ConnectionLimits, String> {
        if let Some(l) = &self.limits
            && self.limits_at.elapsed() < LIMITS_REFRESH
        {
            return Ok(l.clone());
        }
        let client = self
            .ctx
            .shared
            .pool
            .get()
            .await
            .map_err(|e| e.to_string())?;
        let row = client
            .query_opt(
                "SELECT usuario_id, configuracion FROM configuracion_mensajeria_usuario WHERE id = $1",
                &[&self.connection_id],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (usuario, cfg) = match row {
            Some(r) => (Some(r.get::<_, Uuid>(0)), r.get::<_, Value>(1)),
            None => (None, Value::Null),
        };
        let limits =
            ConnectionLimits::from_config(self.kind, &cfg, &self.ctx.shared.settings.outbound);
        self.usuario_id = usuario;
        self.limits = Some(limits.clone());
        self.limits_at = Instant::now();
        Ok(limits)
    }

    fn insert_sorted(&mut self, row: Claimed) {
        let key = row.order_key();
        let at = self.buffer.partition_point(|r| r.order_key() <= key);
        self.buffer.insert(at, row);
    }

    /// Hands every row not in flight back to the queue (no attempt spent).
    pub fn release_all(&mut self) {
        let rows: Vec<Claimed> = self
            .buffer
            .drain(..)
            .chain(self.parked.drain(..).map(|(_, r)| r))
            .collect();
        for row in rows {
            self.release(&row, None);
        }
    }

    fn release(&self, row: &Claimed, after: Option<Duration>) {
        self.ctx.recorder.record(Done::released(row, after));
    }

    /// Sends in the last 24 h, re-counted every minute (sends of this lane are added as they go).
    async fn sent_today(&mut self) -> Result<(u32, Option<Duration>), String> {
        if let Some((n, at, until)) = self.day
            && at.elapsed() < Duration::from_secs(60)
        {
            return Ok((n, until));
        }
        let client = self
            .ctx
            .shared
            .pool
            .get()
            .await
            .map_err(|e| e.to_string())?;
        let (n, until) = claim::sent_last_day(&client, self.connection_id)
            .await
            .map_err(|e| e.to_string())?;
        self.day = Some((n, Instant::now(), until));
        Ok((n, until))
    }

    /// One round: refill, pace, take permits, mark, send. Never blocks on a send.
    pub async fn step(&mut self) -> Step {
        let retry_soon = Step::Wait {
            at_most: Duration::from_millis(500),
            on_new: false,
            on_done: false,
        };
        // Gone from this node, its lease lost (another node sends for it now), or being handed
        // over (its sends in flight finish; the rest goes back to the queue for the next node).
        let conn = self
            .ctx
            .shared
            .connections
            .get(self.connection_id)
            .filter(|_| {
                self.ctx
                    .shared
                    .ownership
                    .may_send(self.kind, self.connection_id)
            });
        let Some(conn) = conn else {
            self.release_all();
            return Step::Stop;
        };
        let limits = match self.limits().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(connection = %self.connection_id, error = %e, "could not read the connection's limits");
                return retry_soon;
            }
        };
        let now = Instant::now();
        // Parked rows whose recipient may be written to again.
        if !self.parked.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) =
                self.parked.drain(..).partition(|(t, _)| *t <= now);
            self.parked = waiting;
            for (_, row) in ready {
                self.insert_sorted(row);
            }
        }
        // Daily cap (Lite pacing): messages wait in the queue until the window moves.
        if let Some(cap) = limits.daily_cap {
            match self.sent_today().await {
                Ok((n, until)) if n >= cap => {
                    self.release_all();
                    self.ctx.alert_once(
                        self.connection_id,
                        self.usuario_id,
                        "daily_cap_reached",
                        format!(
                            "connection reached its daily cap of {cap} messages; the rest wait"
                        ),
                    );
                    let at_most = until
                        .unwrap_or(Duration::from_secs(60))
                        .clamp(Duration::from_secs(1), Duration::from_secs(60));
                    return Step::Wait {
                        at_most,
                        on_new: false,
                        on_done: false,
                    };
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(connection = %self.connection_id, error = %e, "could not count today's sends");
                    return retry_soon;
                }
            }
        }
        // Refill at half the target, within this lane's fair share of the node's budget.
        // About a second of sending, but no more than a few rounds of this lane's concurrent
        // sends: what a lane holds, other nodes cannot take.
        let target = limits.buffer_target().min(4 * self.concurrency);
        if self.buffer.len() < target.div_ceil(2) {
            let n = fairness::claim_limit(
                target,
                self.buffer.len(),
                self.ctx.held.total(),
                self.ctx.lanes.load(Ordering::Relaxed),
                self.ctx.shared.settings.outbound.held_budget,
            );
            if n > 0 {
                match self.claim(n).await {
                    Ok(rows) => {
                        self.ctx
                            .held
                            .add(self.connection_id, rows.iter().map(|r| r.message_id));
                        metrics::counter!("sincro_outbound_claimed_total")
                            .increment(rows.len() as u64);
                        for row in rows {
                            self.insert_sorted(row);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(connection = %self.connection_id, error = %e, "claim failed");
                        return retry_soon;
                    }
                }
            }
        }
        if self.buffer.is_empty() {
            let poll = self.ctx.shared.settings.outbound.poll;
            let mut at_most = poll;
            if let Some((t, _)) = self.parked.iter().min_by_key(|(t, _)| *t) {
                at_most = at_most.min(t.saturating_duration_since(now));
            }
            if let Ok(client) = self.ctx.shared.pool.get().await
                && let Ok(Some(due)) = claim::next_due(&client, self.connection_id).await
            {
                at_most = at_most.min(due.max(Duration::from_millis(5)));
            }
            return Step::Wait {
                at_most,
                on_new: true,
                on_done: false,
            };
        }
        // Pacing gap (Lite).
        if let Some(t) = self.next_send
            && t > now
        {
            return Step::Wait {
                at_most: t - now,
                on_new: false,
                on_done: false,
            };
        }
        // Candidates: in queue order, free send slots, one per recipient, none already in flight.
        let free = self.sends.available_permits();
        if free == 0 {
            return Step::Wait {
                at_most: Duration::from_millis(200),
                on_new: false,
                on_done: true,
            };
        }
        let spacing = rate_limiter::interval(limits.per_period, limits.period);
        // Room for the slots ahead plus the time marking takes on a busy store (up to 400 ms),
        // so a slow mark does not stop the lane asking for its slots on time. Rows wait marked
        // only for their slot (at most HORIZON ahead): a crash leaves few uncertain rows.
        let pipeline = rate_limiter::HORIZON + Duration::from_millis(400);
        let ahead = (pipeline.as_nanos() / spacing.as_nanos().max(1)) as usize + 2;
        let room = ahead.saturating_sub(self.waiting.load(Ordering::SeqCst));
        if room == 0 {
            return Step::Wait {
                at_most: spacing.clamp(Duration::from_millis(1), Duration::from_millis(50)),
                on_new: false,
                on_done: false,
            };
        }
        let max = free
            .min(room)
            .min(PERMIT_BATCH)
            .min(if limits.gap.is_some() { 1 } else { usize::MAX });
        let mut picked: Vec<Claimed> = Vec::new();
        {
            let busy = self.busy.lock().expect("busy lock");
            let mut seen: HashSet<&str> = HashSet::new();
            let mut keep: VecDeque<Claimed> = VecDeque::with_capacity(self.buffer.len());
            let mut taken_idx = Vec::new();
            for (i, row) in self.buffer.iter().enumerate() {
                if taken_idx.len() >= max {
                    break;
                }
                if busy.contains(&row.recipient) || !seen.insert(row.recipient.as_str()) {
                    continue;
                }
                taken_idx.push(i);
            }
            let mut next = taken_idx.into_iter().peekable();
            for (i, row) in self.buffer.drain(..).enumerate() {
                if next.peek() == Some(&i) {
                    next.next();
                    picked.push(row);
                } else {
                    keep.push_back(row);
                }
            }
            self.buffer = keep;
        }
        if picked.is_empty() {
            return Step::Wait {
                at_most: Duration::from_millis(200),
                on_new: false,
                on_done: true,
            };
        }
        // Permits first.
        let Some(limiter) = rate_limiter::find(&self.ctx.shared) else {
            for row in picked.into_iter().rev() {
                self.buffer.push_front(row);
            }
            return Step::Wait {
                at_most: Duration::from_millis(100),
                on_new: false,
                on_done: false,
            };
        };
        let send_limit = SendLimit {
            kind: self.kind,
            per_period: limits.per_period,
            period: limits.period,
            pair_rate: limits.pair_rate,
        };
        let recipients: Vec<String> = picked.iter().map(|r| r.recipient.clone()).collect();
        let connection = self.connection_id;
        let permits = match limiter
            .call(
                |reply| RateLimiterMessage::AcquireSend {
                    connection,
                    limit: send_limit,
                    recipients,
                    reply,
                },
                Some(Duration::from_secs(2)),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(p)) => p,
            _ => {
                for row in picked.into_iter().rev() {
                    self.buffer.push_front(row);
                }
                return Step::Wait {
                    at_most: Duration::from_millis(100),
                    on_new: false,
                    on_done: false,
                };
            }
        };
        let mut granted: Vec<(Claimed, Instant)> = Vec::new();
        let mut back: Vec<Claimed> = Vec::new();
        let mut throttled: Option<(Duration, LimitScope)> = None;
        for (row, permit) in picked.into_iter().zip(permits) {
            match permit {
                Permit::Granted { at } => granted.push((row, at)),
                Permit::Wait {
                    after,
                    scope: LimitScope::Recipient,
                } => {
                    if after > PARK_MAX {
                        self.ctx.held.remove([row.message_id]);
                        self.release(&row, Some(after));
                    } else {
                        self.parked.push((now + after, row));
                    }
                }
                Permit::Wait { after, scope } => {
                    throttled.get_or_insert((after, scope));
                    back.push(row);
                }
            }
        }
        for row in back.into_iter().rev() {
            self.insert_sorted(row);
        }
        if let Some((_, scope)) = throttled
            && !self.buffer.is_empty()
        {
            self.ctx.alert_once(
                self.connection_id,
                self.usuario_id,
                "rate_limit_reached",
                format!(
                    "the {} rate limit was reached; messages wait for their turn",
                    scope.as_str()
                ),
            );
        }
        if !granted.is_empty() {
            self.start_sends(conn, &limits, granted);
        }
        match throttled {
            Some((after, _)) => Step::Wait {
                at_most: after,
                on_new: false,
                on_done: false,
            },
            None => Step::Again,
        }
    }

    async fn claim(&self, n: usize) -> Result<Vec<Claimed>, String> {
        let client = self
            .ctx
            .shared
            .pool
            .get()
            .await
            .map_err(|e| e.to_string())?;
        claim::claim(&client, self.connection_id, &self.ctx.owner, n)
            .await
            .map_err(|e| e.to_string())
    }

    /// Starts a task that marks the rows in flight, then one task per send; the lane goes on at
    /// once. Rows no longer held (cancelled, lease lost) are dropped unsent; if marking fails,
    /// the rows go back to the queue without an attempt.
    fn start_sends(
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
                tokio::spawn(async move {
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
                });
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
}

/// Runs a lane until its connection leaves this node or `stop` is signalled.
pub async fn run(mut lane: Lane, wake: Arc<Notify>) {
    loop {
        match lane.step().await {
            Step::Again => tokio::task::yield_now().await,
            Step::Wait {
                at_most,
                on_new,
                on_done,
            } => {
                let sleep = tokio::time::sleep(at_most);
                tokio::select! {
                    _ = sleep => {}
                    _ = wake.notified(), if on_new => {}
                    _ = lane.done.notified(), if on_done => {}
                }
            }
            Step::Stop => break,
        }
    }
    lane.ctx.lanes.fetch_sub(1, Ordering::Relaxed);
}
