//! One stream client's connection: subscribe to the Hub, replay from the store, go live, and
//! again after a Hub restart; how it ends ([`Outcome`]) and the close code that tells the client
//! (the seam and the closes are described in [`super`]).

use super::out::{Out, client_gone};
use super::outcome::{Outcome, Step, ended_step};
use super::{BATCH, REPLAY_PAGE, SUBSCRIBE_WAIT};
use crate::context::AppContext;
use futures::StreamExt;
use serde_json::json;
use sincro_core::hub::{
    Ended, Frame, HubSubscriber, Subscribed, TypeFilter, filter::allows, subscription,
};
use sincro_core::store::events;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;
use warp::filters::ws::{Message, WebSocket};

/// A live subscription; unsubscribes when dropped.
struct Live {
    rx: Subscribed,
    subscriber: HubSubscriber,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.subscriber.unsubscribe();
    }
}

pub(super) struct Connection {
    pub(super) ctx: Arc<AppContext>,
    pub(super) usuario_id: Uuid,
    /// An admin key: also receives events of connections with notifications off.
    pub(super) admin: bool,
    pub(super) filter: Option<Arc<TypeFilter>>,
    /// The client's `since`, until the retention gap check has run.
    pub(super) gap_check: Option<i64>,
    /// Every event up to this seq was sent or filtered out.
    pub(super) position: i64,
    /// The user's newest seq, read before (re)subscribing.
    pub(super) known_seq: i64,
    pub(super) sent: u64,
}

impl Connection {
    pub(super) async fn run(mut self, socket: WebSocket) {
        metrics::gauge!("sincro_stream_connections").increment(1.0);
        let started = Instant::now();
        let (sink, stream) = socket.split();
        let (mut out, reader) = Out::new(sink, stream);
        tracing::debug!(user_id = %self.usuario_id, since = self.position, "stream opened");
        let outcome = self.serve(&mut out).await;
        reader.abort();
        metrics::gauge!("sincro_stream_connections").decrement(1.0);
        metrics::counter!("sincro_stream_closed_total", "reason" => outcome.label()).increment(1);
        tracing::info!(
            user_id = %self.usuario_id,
            outcome = outcome.label(),
            last_seq = self.position,
            frames = self.sent,
            secs = started.elapsed().as_secs_f64(),
            "stream closed"
        );
    }

    /// Subscribe, replay, go live; again after a Hub restart. Closes the socket before the
    /// subscription is dropped, so a stopping Hub waits for the close frame to go out.
    async fn serve(&mut self, out: &mut Out) -> Outcome {
        loop {
            let mut live = match self.subscribe(out).await {
                Ok(live) => live,
                Err(outcome) => {
                    out.finish(outcome, self.position).await;
                    return outcome;
                }
            };
            let step = match self.replay(out, &mut live).await {
                Ok(()) => self.live(out, &mut live).await,
                Err(step) => step,
            };
            match step {
                Step::End(outcome) => {
                    out.finish(outcome, self.position).await;
                    return outcome;
                }
                Step::Resubscribe => {
                    drop(live);
                    match self.newest().await {
                        Ok(n) => self.known_seq = n,
                        Err(outcome) => {
                            out.finish(outcome, self.position).await;
                            return outcome;
                        }
                    }
                }
            }
        }
    }

    /// A pooled store connection; failing to get one ends the stream (1011).
    async fn store(&self) -> Result<deadpool_postgres::Client, Outcome> {
        self.ctx.pool.get().await.map_err(|_| Outcome::StoreFailed)
    }

    async fn newest(&self) -> Result<i64, Outcome> {
        events::last_seq(&self.store().await?, self.usuario_id)
            .await
            .map_err(|_| Outcome::StoreFailed)
    }

    /// Registers with whichever Hub runs now, waiting a bounded time for a restarting one.
    async fn subscribe(&mut self, out: &mut Out) -> Result<Live, Outcome> {
        let until = Instant::now() + SUBSCRIBE_WAIT;
        loop {
            let hub = self.ctx.actors.children.hub_handle();
            if hub.is_running() {
                let (subscription, rx) = subscription(
                    self.usuario_id,
                    self.filter.clone(),
                    self.known_seq,
                    self.stream_buffer(),
                );
                if let Ok(subscriber) = hub.subscribe(subscription).await {
                    return Ok(Live { rx, subscriber });
                }
            }
            if out.is_gone() {
                return Err(Outcome::ClientGone);
            }
            if Instant::now() >= until {
                return Err(Outcome::HubUnavailable);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stream_buffer(&self) -> usize {
        self.ctx.config.stream_buffer.max(1)
    }

    /// Sends every stored event after `position`, page by page, until caught up.
    async fn replay(&mut self, out: &mut Out, live: &mut Live) -> Result<(), Step> {
        if let Some(since) = self.gap_check.take() {
            self.gap_notice(out, since).await?;
        }
        loop {
            match live.rx.closing.try_get() {
                Some(Ended::Shutdown) => return Err(Outcome::Shutdown.into()),
                Some(Ended::Overflow | Ended::HubGone) => return Err(Step::Resubscribe),
                None => {}
            }
            if out.is_gone() {
                return Err(Outcome::ClientGone.into());
            }
            out.ping_if_due().await?;
            let page = {
                let client = self.store().await?;
                events::read_after(
                    &client,
                    &self.ctx.sealer,
                    self.usuario_id,
                    self.position,
                    REPLAY_PAGE,
                )
                .await
                .map_err(|_| Outcome::StoreFailed)?
            };
            for event in &page {
                if allows(self.filter.as_deref(), &event.kind) && (self.admin || !event.muted) {
                    let frame = Frame::from_event(event);
                    out.feed(Message::text(&*frame.json), None).await?;
                    self.sent += 1;
                }
                self.position = event.seq;
            }
            out.flush(None).await?;
            if (page.len() as i64) < REPLAY_PAGE {
                return Ok(());
            }
        }
    }

    /// The first frame when events after `since` were already deleted by retention.
    async fn gap_notice(&mut self, out: &mut Out, since: i64) -> Result<(), Step> {
        let first_available = self.first_available().await?;
        if first_available <= since + 1 {
            return Ok(());
        }
        let notice = json!({
            "seq": null,
            "type": "stream.gap",
            "at": now_rfc3339(),
            "data": {
                "since": since,
                "first_available": first_available,
                "retention_hours": self.ctx.config.event_retention_hours,
                "message": "events after since and before first_available were deleted by retention and cannot be replayed",
            }
        });
        out.feed(Message::text(notice.to_string()), None).await?;
        out.flush(None).await?;
        Ok(())
    }

    /// Where a replay can start (see [`events::first_available`]).
    async fn first_available(&self) -> Result<i64, Outcome> {
        events::first_available(&mut self.store().await?, self.usuario_id)
            .await
            .map_err(|_| Outcome::StoreFailed)
    }

    /// Sends live events as the Hub hands them over, skipping what the replay already sent.
    async fn live(&mut self, out: &mut Out, live: &mut Live) -> Step {
        // One timer and one watch for the whole phase, not one per frame.
        let mut gone = out.gone.clone();
        let ping = tokio::time::sleep_until(out.next_ping);
        tokio::pin!(ping);
        loop {
            let frame = tokio::select! {
                biased;
                _ = client_gone(&mut gone) => return Outcome::ClientGone.into(),
                ended = live.rx.closing.wait() => return ended_step(ended),
                frame = live.rx.frames.recv() => match frame {
                    Some(frame) => frame,
                    None => return ended_step(live.rx.closing.wait().await),
                },
                _ = &mut ping => {
                    if let Err(step) = out.ping_if_due().await {
                        return step;
                    }
                    ping.as_mut().reset(out.next_ping);
                    continue;
                }
            };
            let mut frame = frame;
            let mut fed = 0;
            loop {
                if frame.seq > self.position && frame.muted && !self.admin {
                    self.position = frame.seq;
                } else if frame.seq > self.position {
                    let message = Message::text(&*frame.json);
                    if let Err(step) = out.feed(message, Some(&mut live.rx.closing)).await {
                        return step;
                    }
                    self.position = frame.seq;
                    self.sent += 1;
                    fed += 1;
                    let delay = time::OffsetDateTime::now_utc() - frame.at;
                    self.ctx.probes.stream_latency(delay.unsigned_abs());
                }
                if fed >= BATCH {
                    break;
                }
                match live.rx.frames.try_recv() {
                    Ok(next) => frame = next,
                    Err(_) => break,
                }
            }
            metrics::counter!("sincro_stream_frames_total").increment(fed as u64);
            if let Err(step) = out.flush(Some(&mut live.rx.closing)).await {
                return step;
            }
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        for outcome in [
            Outcome::SlowConsumer,
            Outcome::Shutdown,
            Outcome::Keepalive,
            Outcome::HubUnavailable,
            Outcome::StoreFailed,
        ] {
            let (_, prefix) = outcome.close().unwrap();
            let reason = format!("{prefix}: resume with since={}", i64::MAX);
            assert!(reason.len() <= 123, "{reason}");
        }
        assert_eq!(Outcome::SlowConsumer.close().unwrap().0, 4008);
    }
}
