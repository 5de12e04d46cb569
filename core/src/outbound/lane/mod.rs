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

mod decide;
mod held;
mod start;

pub use held::{Held, LaneCtx};

use super::claim::{self, Claimed};
use super::fairness;
use super::record::Done;
use super::settings::{ConnectionLimits, LIMITS_REFRESH};
use crate::connection::ConnectionKind;
use crate::rate_limiter::{self, Permit, RateLimiterHandle, SendLimit};
use decide::Fate;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
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
/// Concurrent sends of a Business lane until its limits are read (then
/// [`ConnectionLimits::concurrency`]); one per Lite lane: one browser page.
const BUSINESS_CONCURRENCY: usize = 64;

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

    /// A store connection, or why there is none (the step retries soon).
    async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        self.ctx.shared.pool.get().await.map_err(|e| e.to_string())
    }

    /// The connection's limits, re-read every [`LIMITS_REFRESH`].
    async fn limits(&mut self) -> Result<ConnectionLimits, String> {
        if let Some(l) = &self.limits
            && self.limits_at.elapsed() < LIMITS_REFRESH
        {
            return Ok(l.clone());
        }
        let client = self.client().await?;
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
        // Only ever grown: a lower level paces sends by its slots anyway, and permits held by
        // sends in flight cannot be taken back.
        let wanted = limits.concurrency();
        if wanted > self.concurrency {
            self.sends.add_permits(wanted - self.concurrency);
            self.concurrency = wanted;
        }
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
        let client = self.client().await?;
        let (n, until) = claim::sent_last_day(&client, self.connection_id)
            .await
            .map_err(|e| e.to_string())?;
        self.day = Some((n, Instant::now(), until));
        Ok((n, until))
    }

    /// One round: refill, pace, take permits, mark, send. Never blocks on a send. Each
    /// decision is in [`decide`]; this only gathers its inputs and applies it.
    pub async fn step(&mut self) -> Step {
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
                return Step::sleep(decide::RETRY_SOON);
            }
        };
        let now = Instant::now();
        self.unpark(now);
        if let Some(cap) = limits.daily_cap
            && let Err(step) = self.daily_cap(cap).await
        {
            return step;
        }
        if let Err(step) = self.refill(&limits).await {
            return step;
        }
        if self.buffer.is_empty() {
            return self.idle(now).await;
        }
        let max = match decide::batch_size(decide::Capacity {
            now,
            next_send: self.next_send,
            free: self.sends.available_permits(),
            spacing: rate_limiter::interval(limits.per_period, limits.period),
            waiting: self.waiting.load(Ordering::SeqCst),
            paced: limits.gap.is_some(),
            batch: PERMIT_BATCH,
        }) {
            Ok(max) => max,
            Err(step) => return step,
        };
        let picked = self.take(max);
        if picked.is_empty() {
            return Step::until_done(Duration::from_millis(200));
        }
        let Some(permits) = self.permits(&limits, &picked).await else {
            for row in picked.into_iter().rev() {
                self.buffer.push_front(row);
            }
            return Step::sleep(Duration::from_millis(100));
        };
        let (fates, throttled) = decide::sort_permits(&permits, now, PARK_MAX);
        let mut granted: Vec<(Claimed, Instant)> = Vec::new();
        let mut back: Vec<Claimed> = Vec::new();
        for (row, fate) in picked.into_iter().zip(fates) {
            match fate {
                Fate::Send(at) => granted.push((row, at)),
                Fate::Park(until) => self.parked.push((until, row)),
                Fate::Release(after) => {
                    self.ctx.held.remove([row.message_id]);
                    self.release(&row, Some(after));
                }
                Fate::Back => back.push(row),
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
        decide::after_permits(throttled)
    }

    /// Parked rows whose recipient may be written to again go back into the buffer.
    fn unpark(&mut self, now: Instant) {
        if self.parked.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) =
            self.parked.drain(..).partition(|(t, _)| *t <= now);
        self.parked = waiting;
        for (_, row) in ready {
            self.insert_sorted(row);
        }
    }

    /// Daily cap (Lite pacing): once reached, messages wait in the queue until the window
    /// moves.
    async fn daily_cap(&mut self, cap: u32) -> Result<(), Step> {
        let (sent, until) = self.sent_today().await.map_err(|e| {
            tracing::warn!(connection = %self.connection_id, error = %e, "could not count today's sends");
            Step::sleep(decide::RETRY_SOON)
        })?;
        let Some(at_most) = decide::daily_cap_wait(cap, sent, until) else {
            return Ok(());
        };
        self.release_all();
        self.ctx.alert_once(
            self.connection_id,
            self.usuario_id,
            "daily_cap_reached",
            format!("connection reached its daily cap of {cap} messages; the rest wait"),
        );
        Err(Step::sleep(at_most))
    }

    /// Refills at half the target, within this lane's fair share of the node's budget.
    async fn refill(&mut self, limits: &ConnectionLimits) -> Result<(), Step> {
        let target = decide::hold_target(limits.buffer_target(), self.concurrency);
        if !decide::wants_refill(target, self.buffer.len()) {
            return Ok(());
        }
        let n = fairness::claim_limit(
            target,
            self.buffer.len(),
            self.ctx.held.total(),
            self.ctx.lanes.load(Ordering::Relaxed),
            self.ctx.shared.settings.outbound.held_budget,
        );
        if n == 0 {
            return Ok(());
        }
        let rows = self.claim(n).await.map_err(|e| {
            tracing::warn!(connection = %self.connection_id, error = %e, "claim failed");
            Step::sleep(decide::RETRY_SOON)
        })?;
        self.ctx
            .held
            .add(self.connection_id, rows.iter().map(|r| r.message_id));
        metrics::counter!("sincro_outbound_claimed_total").increment(rows.len() as u64);
        for row in rows {
            self.insert_sorted(row);
        }
        Ok(())
    }

    /// Nothing buffered: wait for new rows, the first parked row or the next row due.
    async fn idle(&self, now: Instant) -> Step {
        let first_parked = self.parked.iter().map(|(t, _)| *t).min();
        let mut next_due = None;
        if let Ok(client) = self.ctx.shared.pool.get().await
            && let Ok(due) = claim::next_due(&client, self.connection_id).await
        {
            next_due = due;
        }
        Step::until_new(decide::idle_wait(
            self.ctx.shared.settings.outbound.poll,
            now,
            first_parked,
            next_due,
        ))
    }

    /// Takes the rows to send now out of the buffer (see [`decide::pick`]).
    fn take(&mut self, max: usize) -> Vec<Claimed> {
        let taken = {
            let busy = self.busy.lock().expect("busy lock");
            decide::pick(self.buffer.iter().map(|r| r.recipient.as_str()), &busy, max)
        };
        let mut picked = Vec::with_capacity(taken.len());
        let mut keep = VecDeque::with_capacity(self.buffer.len());
        let mut next = taken.into_iter().peekable();
        for (i, row) in self.buffer.drain(..).enumerate() {
            if next.peek() == Some(&i) {
                next.next();
                picked.push(row);
            } else {
                keep.push_back(row);
            }
        }
        self.buffer = keep;
        picked
    }

    /// One permit per picked row from the RateLimiter; None when it is restarting or did not
    /// answer in time (the messages go back and the lane asks again shortly).
    async fn permits(&self, limits: &ConnectionLimits, picked: &[Claimed]) -> Option<Vec<Permit>> {
        let limit = SendLimit {
            kind: self.kind,
            per_period: limits.per_period,
            period: limits.period,
            pair_rate: limits.pair_rate,
        };
        let recipients: Vec<String> = picked.iter().map(|r| r.recipient.clone()).collect();
        let connection = self.connection_id;
        RateLimiterHandle::new(self.ctx.shared.rate_limiter.clone())
            .acquire_send(connection, limit, recipients)
            .await
            .ok()
    }

    async fn claim(&self, n: usize) -> Result<Vec<Claimed>, String> {
        let client = self.client().await?;
        claim::claim(&client, self.connection_id, &self.ctx.owner, n)
            .await
            .map_err(|e| e.to_string())
    }
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
