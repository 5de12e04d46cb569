//! One endpoint's lane: a task that holds the endpoint's lease and delivers the user's events
//! after its cursor, in seq order. [`Lane::step`] is one round (testable alone): renew the
//! lease when due, read the next page of events from the log, skip what the endpoint's filter
//! does not take, send the next event (or up to `max_in_flight` at once when the endpoint opted
//! in), then move the cursor and record the attempts in one statement (shared with the other
//! lanes' rounds waiting then, [`super::progress`]; for an endpoint that takes several at
//! once, while its next round sends: [`Lane::write_behind`]). An event whose
//! attempt must be retried holds the lane (order first) until its backoff passes; a permanent
//! failure is recorded and passed. An endpoint failing longer than `disable_after` is disabled
//! and alerted. A cursor that fell behind the log's retention is moved to the oldest event
//! still stored, with an `expired` record and an alert saying which seqs were lost.

use super::HooksSettings;
use super::cursor::{self, Advance, AttemptRow, Progress, Target};
use super::progress::{ProgressWriter, Submitted};
use super::send::{self, Outcome};
use super::{alert, sign};
use crate::hub::Frame;
use crate::outbound::backoff::retry_delay;
use crate::shared::Shared;
use crate::store::StoreError;
use crate::store::events::{self, Event};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

/// Events read from the log per page.
pub const PAGE: i64 = 256;
/// After a store error, how long before the lane tries again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// What every lane of one Dispatcher incarnation shares.
pub struct LaneCtx {
    pub shared: Arc<Shared>,
    pub http: reqwest::Client,
    /// This incarnation's lease owner name.
    pub owner: String,
    /// Earlier incarnations of this node, whose leases it takes over at once.
    pub node_pattern: String,
    pub settings: HooksSettings,
    /// Writes the lanes' rounds, those waiting together in one commit.
    pub progress: ProgressWriter,
}

/// What a round left the lane to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More may be ready now.
    Busy,
    /// Nothing after the cursor: wait for a new event (or the poll).
    Idle,
    /// A delivery waits for its backoff until then.
    Wait(Instant),
    /// The lease is gone, or the endpoint was deleted or disabled.
    Stop,
}

/// One event in flight, with its attempt count.
struct Pending {
    event: Event,
    frame: Frame,
    attempt: u32,
}

pub struct Lane {
    ctx: Arc<LaneCtx>,
    pub id: Uuid,
    target: Option<Target>,
    renew_at: Instant,
    /// Events read after the cursor, not yet sent.
    buffer: VecDeque<Event>,
    /// The newest seq read into the buffer (the cursor when empty).
    read_upto: i64,
    /// Events sent whose delivery is not finished (a retry waits for `retry_at`).
    inflight: Vec<Pending>,
    retry_at: Option<Instant>,
    /// The last round's write, still committing while the next round sends (see
    /// [`Lane::write_behind`]).
    writing: Option<Writing>,
}

/// A round handed to the writer, its answer not taken yet.
struct Writing {
    submitted: Submitted,
    started: Instant,
}

impl Lane {
    pub fn new(ctx: Arc<LaneCtx>, id: Uuid) -> Lane {
        Lane {
            ctx,
            id,
            target: None,
            renew_at: Instant::now(),
            buffer: VecDeque::new(),
            read_upto: 0,
            inflight: Vec::new(),
            retry_at: None,
            writing: None,
        }
    }

    /// Forgets what it read: the next round reloads the endpoint and reads from its cursor.
    fn reset(&mut self) {
        // A round handed to the writer is still written; the reload reads what it left.
        self.writing = None;
        self.target = None;
        self.buffer.clear();
        self.inflight.clear();
        self.retry_at = None;
    }

    /// Takes or renews the lease when due; false when the lane must stop.
    async fn lease(&mut self) -> Result<bool, StoreError> {
        if self.target.is_some() && Instant::now() < self.renew_at {
            return Ok(true);
        }
        let s = &self.ctx;
        let client = s.shared.pool.get().await?;
        let loaded = cursor::take_lease(
            &client,
            &s.shared.sealer,
            self.id,
            &s.owner,
            &s.node_pattern,
            s.settings.lease,
        )
        .await?;
        let Some(mut loaded) = loaded else {
            return Ok(false);
        };
        self.renew_at = Instant::now() + s.settings.lease / 3;
        match self.target.as_ref() {
            // A write still committing may hold a later cursor than the row shows yet.
            Some(old) if old.version == loaded.version => {
                loaded.cursor = loaded.cursor.max(old.cursor)
            }
            _ => {
                self.reset();
                self.read_upto = loaded.cursor;
            }
        }
        self.target = Some(loaded);
        Ok(true)
    }

    /// One round; see the module's doc.
    pub async fn step(&mut self) -> Result<Step, StoreError> {
        if !self.lease().await? {
            return Ok(Step::Stop);
        }
        if let Some(at) = self.retry_at {
            if Instant::now() < at {
                return Ok(Step::Wait(at.min(self.renew_at)));
            }
            // A retry reloads the endpoint first: a change, a replay or a disable made while
            // it waited wins over it (a new version drops what is in flight).
            self.renew_at = Instant::now();
            if !self.lease().await? {
                return Ok(Step::Stop);
            }
            if self.retry_at.take().is_some() {
                return self.send_inflight().await;
            }
        }
        if self.buffer.is_empty() && !self.read_page().await? {
            // Idle with every round written: nothing delivered waits for its record.
            return Ok(if self.settle().await? {
                Step::Idle
            } else {
                Step::Busy
            });
        }
        let target = self.target.as_ref().expect("leased");
        let mut skipped_to = None;
        while self.inflight.len() < target.max_in_flight {
            let Some(event) = self.buffer.pop_front() else {
                break;
            };
            // A muted event (its connection has notifications off) goes to admins' streams
            // only; an endpoint is its user's, so it skips them like filtered ones.
            if !event.muted && crate::hub::filter::allows(target.filter.as_ref(), &event.kind) {
                let frame = Frame::from_event(&event);
                self.inflight.push(Pending {
                    event,
                    frame,
                    attempt: 0,
                });
            } else if self.inflight.is_empty() {
                skipped_to = Some(event.seq);
            } else {
                // After an event to send: the cursor passes it with that one.
                self.buffer.push_front(event);
                break;
            }
        }
        if self.inflight.is_empty() {
            // Only events the filter does not take: move past them.
            let cursor = skipped_to.unwrap_or(target.cursor);
            return self
                .write(Progress {
                    cursor,
                    ..Progress::default()
                })
                .await;
        }
        self.send_inflight().await
    }

    /// Reads the next page after what was read; false when there is nothing new. A gap
    /// between the cursor and the first event read means events left the log undelivered.
    async fn read_page(&mut self) -> Result<bool, StoreError> {
        let target = self.target.as_ref().expect("leased");
        let (usuario_id, cursor) = (target.usuario_id, target.cursor);
        let client = self.ctx.shared.pool.get().await?;
        let page = events::read_after(
            &client,
            &self.ctx.shared.sealer,
            usuario_id,
            self.read_upto,
            PAGE,
        )
        .await?;
        drop(client);
        let Some(first) = page.first() else {
            return Ok(false);
        };
        if self.read_upto == cursor && first.seq > cursor + 1 {
            self.expired(cursor + 1, first.seq - 1).await?;
        }
        self.read_upto = page.last().map(|e| e.seq).unwrap_or(self.read_upto);
        self.buffer.extend(page);
        Ok(true)
    }

    /// Records that seqs `from..=to` were purged before this endpoint got them, and moves on.
    async fn expired(&mut self, from: i64, to: i64) -> Result<(), StoreError> {
        let target = self.target.as_ref().expect("leased");
        metrics::counter!("sincro_webhook_events_expired_total").increment((to - from + 1) as u64);
        alert::raise(
            &self.ctx.shared,
            target.usuario_id,
            target.id,
            "webhook_events_expired",
            format!(
                "events {from} to {to} were removed by the event log's retention before this webhook received them; they cannot be delivered"
            ),
            serde_json::json!({"from_seq": from, "to_seq": to}),
        );
        let row = AttemptRow {
            delivery_id: sign::delivery_id(target.id, target.generation, to),
            seq: Some(to),
            event_type: "stream.gap".into(),
            attempt: 0,
            outcome: "expired",
            http_status: None,
            error: Some(format!("events {from}..{to} expired before delivery")),
            latency_ms: None,
        };
        let progress = Progress {
            cursor: to,
            failed: false,
            succeeded: false,
            attempts: vec![row],
        };
        self.write(progress).await.map(|_| ())
    }

    /// Sends every event in flight at once and settles what came back.
    async fn send_inflight(&mut self) -> Result<Step, StoreError> {
        let target = self.target.as_ref().expect("leased");
        let ctx = &self.ctx;
        let sends = self.inflight.iter_mut().map(|p| {
            p.attempt += 1;
            let delivery = send::Delivery {
                url: &target.url,
                allow: &ctx.settings.allow,
                headers: &target.headers,
                secrets: &target.secrets,
                webhook_id: target.id,
                delivery_id: sign::delivery_id(target.id, target.generation, p.event.seq),
                event_type: &p.event.kind,
                seq: Some(p.event.seq),
                body: &p.frame.json,
            };
            async move { send::attempt(&ctx.http, &delivery).await }
        });
        let results = futures::future::join_all(sends).await;
        let mut progress = Progress {
            cursor: target.cursor,
            ..Progress::default()
        };
        let mut wait: Option<Duration> = None;
        let mut remaining = Vec::new();
        let now = OffsetDateTime::now_utc();
        for (p, done) in std::mem::take(&mut self.inflight).into_iter().zip(results) {
            metrics::counter!("sincro_webhook_deliveries_total", "outcome" => done.outcome.label())
                .increment(1);
            progress.attempts.push(AttemptRow {
                delivery_id: sign::delivery_id(target.id, target.generation, p.event.seq),
                seq: Some(p.event.seq),
                event_type: p.event.kind.clone(),
                attempt: p.attempt as i32,
                outcome: done.outcome.label(),
                http_status: done.outcome.status().map(i32::from),
                error: done.outcome.error().map(str::to_string),
                latency_ms: Some(done.latency.as_millis().min(i32::MAX as u128) as i32),
            });
            match done.outcome {
                Outcome::Delivered { .. } => {
                    progress.succeeded = true;
                    let lag = (now - p.event.at).as_seconds_f64().max(0.0);
                    metrics::histogram!("sincro_webhook_delivery_lag_seconds").record(lag);
                }
                Outcome::Failed { .. } => progress.failed = true,
                Outcome::Retry { after, .. } => {
                    progress.failed = true;
                    let s = &ctx.settings;
                    let delay = retry_delay(
                        p.attempt,
                        s.retry_base,
                        s.retry_max,
                        after,
                        &mut rand::rng(),
                    );
                    wait = Some(wait.map_or(delay, |w| w.max(delay)));
                    remaining.push(p);
                }
            }
        }
        // The cursor passes every event before the first one still to deliver.
        progress.cursor = match remaining.first() {
            Some(first) => (first.event.seq - 1).max(target.cursor),
            None => self
                .buffer
                .front()
                .map(|next| next.seq - 1)
                .unwrap_or(self.read_upto),
        };
        let behind = target.max_in_flight > 1 && progress.succeeded && !progress.failed;
        self.inflight = remaining;
        self.retry_at = wait.map(|w| Instant::now() + w);
        if behind {
            return self.write_behind(progress).await;
        }
        let step = self.write(progress).await?;
        Ok(match (step, self.retry_at) {
            (Step::Busy, Some(at)) => Step::Wait(at.min(self.renew_at)),
            (step, _) => step,
        })
    }

    /// Starts writing a round where every delivery succeeded, and lets the next round send
    /// while it commits (endpoints that take several deliveries in flight only): the lane's
    /// rate is then bound by its sends, not by sends plus a commit. One write at a time, in
    /// order: the previous one is waited for first. A `kill -9` then repeats at most the
    /// deliveries of two rounds (the one being written and the one in flight), with the same
    /// delivery ids, where a strict endpoint repeats at most its one delivery in flight.
    async fn write_behind(&mut self, progress: Progress) -> Result<Step, StoreError> {
        if !self.settle().await? {
            return Ok(Step::Busy);
        }
        let target = self.target.as_mut().expect("leased");
        let (id, version) = (target.id, target.version);
        // The next round reads on from `read_upto`; the cursor the lane holds is the one this
        // write sets unless it finds the endpoint changed (then the lane reloads anyway).
        target.cursor = progress.cursor.max(target.cursor);
        let submitted = self.ctx.progress.submit(Advance {
            id,
            version,
            progress,
        });
        self.writing = Some(Writing {
            submitted,
            started: Instant::now(),
        });
        Ok(Step::Busy)
    }

    /// Waits for the write started by [`Lane::write_behind`], if any; false when it found the
    /// endpoint changed or its lease lost (the lane was reset: it reloads next round).
    async fn settle(&mut self) -> Result<bool, StoreError> {
        let Some(writing) = self.writing.take() else {
            return Ok(true);
        };
        let Some(failing_since) = self.ctx.progress.written(writing.submitted).await? else {
            self.reset();
            return Ok(false);
        };
        self.renew_at = self
            .renew_at
            .max(writing.started + self.ctx.settings.lease / 3);
        if let Some(target) = self.target.as_mut() {
            target.failing_since = failing_since;
        }
        self.record_lag();
        Ok(true)
    }

    /// Writes a round's progress; reloads when the endpoint changed, disables it when it has
    /// failed too long.
    async fn write(&mut self, progress: Progress) -> Result<Step, StoreError> {
        if !self.settle().await? {
            return Ok(Step::Busy);
        }
        let target = self.target.as_ref().expect("leased");
        let (id, version, usuario_id) = (target.id, target.version, target.usuario_id);
        let s = self.ctx.clone();
        let failed = progress.failed;
        let cursor = progress.cursor;
        let written = s
            .progress
            .write(Advance {
                id,
                version,
                progress,
            })
            .await?;
        let Some(failing_since) = written else {
            // Changed through the API, or the lease was lost: reload (or stop) next round.
            self.reset();
            return Ok(Step::Busy);
        };
        self.renew_at = Instant::now() + s.settings.lease / 3;
        let target = self.target.as_mut().expect("leased");
        target.cursor = cursor.max(target.cursor);
        target.failing_since = failing_since;
        self.record_lag();
        let too_long = failing_since
            .is_some_and(|since| OffsetDateTime::now_utc() - since >= s.settings.disable_after);
        if failed && too_long {
            let reason = format!(
                "deliveries kept failing for {} s",
                s.settings.disable_after.as_secs()
            );
            let client = s.shared.pool.get().await?;
            if cursor::disable(&client, id, &s.owner, &reason)
                .await?
                .is_some()
            {
                alert::raise(
                    &s.shared,
                    usuario_id,
                    id,
                    "webhook_disabled",
                    format!(
                        "webhook {id} was disabled: {reason}; enable it again with PATCH /v1/webhooks/{id} {{\"enabled\": true}} once it answers"
                    ),
                    serde_json::json!({"reason": reason}),
                );
                metrics::counter!("sincro_webhook_disabled_total").increment(1);
            }
            return Ok(Step::Stop);
        }
        Ok(Step::Busy)
    }

    /// The endpoint's lag: events read but not yet delivered, and the age of the oldest.
    fn record_lag(&self) {
        let Some(target) = self.target.as_ref() else {
            return;
        };
        let oldest = self
            .inflight
            .first()
            .map(|p| p.event.at)
            .or_else(|| self.buffer.front().map(|e| e.at));
        let seconds = oldest
            .map(|at| (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0))
            .unwrap_or(0.0);
        let label = target.id.to_string();
        metrics::gauge!("sincro_webhook_lag_seconds", "webhook" => label.clone()).set(seconds);
        metrics::gauge!("sincro_webhook_lag_events", "webhook" => label)
            .set((self.read_upto - target.cursor).max(0) as f64);
    }
}

/// How a lane is woken: `notify` for a new event of its user; `reload` is set as well when
/// the endpoint was changed through the API (on any node), so the lane reloads it before it
/// delivers anything more.
#[derive(Default)]
pub struct LaneWake {
    pub notify: Notify,
    pub reload: AtomicBool,
}

impl LaneWake {
    /// The endpoint changed: reload, then go on.
    pub fn changed(&self) {
        self.reload.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// Runs a lane until it stops: rounds back to back while busy; when idle, until `wake`
/// (a new event of the user, or a change) or the poll; while a retry waits, until its time.
/// A new event costs no lease write: the lease is renewed on its own schedule, and the
/// endpoint reloaded only when it changed (or at the poll, in case that notice was lost).
pub async fn run(mut lane: Lane, wake: Arc<LaneWake>) {
    let poll = lane.ctx.settings.poll.min(lane.ctx.settings.lease / 3);
    loop {
        if wake.reload.swap(false, Ordering::AcqRel) {
            lane.renew_at = Instant::now();
        }
        match lane.step().await {
            Ok(Step::Busy) => tokio::task::yield_now().await,
            Ok(Step::Idle) => {
                tokio::select! {
                    _ = wake.notify.notified() => {}
                    _ = tokio::time::sleep(poll) => lane.renew_at = Instant::now(),
                }
            }
            Ok(Step::Wait(until)) => tokio::time::sleep_until(until).await,
            Ok(Step::Stop) => {
                tracing::debug!(webhook_id = %lane.id, "webhook lane stopped");
                return;
            }
            Err(e) => {
                tracing::warn!(webhook_id = %lane.id, error = %e, "webhook lane: store error");
                lane.reset();
                tokio::time::sleep(STORE_RETRY).await;
            }
        }
    }
}
