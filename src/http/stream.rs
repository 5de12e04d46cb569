//! `GET /v1/stream`: the WebSocket event stream (docs/ARCHITECTURE.md §4, Stream).
//!
//! `?since=<seq>` replays what the client missed, then the stream goes live; `?types=a,b`
//! (exact names, or `prefix.*`) filters; the key comes by `Authorization: Bearer` or
//! `?access_token=`. Every text frame is one event:
//! `{"seq":123,"type":"message.received","at":"<RFC 3339>","data":{...}}`, seqs increasing.
//! Without `since` the stream starts at the user's newest event (live only).
//!
//! **The seam.** The connection subscribes to the Hub *first* (live events start queueing in
//! its bounded channel), *then* replays `seq > since` from the store in pages, then sends the
//! queued live events skipping every `seq <= position` (the newest seq already sent or filtered
//! out). Anything committed before the subscription is in the replay; anything after is
//! announced to the Hub after the subscription, so nothing falls between, and the skip removes
//! what both carry. The Hub is told the user's `last_seq` read before subscribing, so it starts
//! fetching from there.
//!
//! **Slow consumers.** The Hub never waits for a client: when a connection's channel
//! (`STREAM_BUFFER` frames) is full, the Hub drops it and the connection closes with **4008**,
//! reason `too slow: resume with since=<N>` where N is the newest seq written to the socket
//! before the close frame (all of them precede the close frame, so resuming with `since=N`
//! loses nothing and repeats nothing). During the replay an overflow is harmless (the replay
//! reads the store anyway): the connection re-subscribes and carries on.
//!
//! **Hub restarts** are invisible: a connection whose channel ends without a closing signal
//! re-subscribes to the new Hub and replays from its position.
//!
//! **Other closes** (reasons always end with `since=<N>`): **1001** the daemon shuts down;
//! **4000** no pong (or any frame) from the client for 60 s (pings every 20 s); **1013** the
//! Hub stayed unavailable; **1011** the store failed. A `since` older than retention is not an
//! error: the first frame is a notice
//! `{"seq":null,"type":"stream.gap","at":..,"data":{"since":S,"first_available":F,..}}`
//! and the replay continues from the oldest stored event. Bad `since`/`types`, a `since` ahead
//! of the user's newest event, a missing or invalid key: JSON errors before the upgrade.

use super::auth::{self, Need};
use super::error::ApiError;
use super::{respond, with_ctx};
use crate::context::AppContext;
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, StreamExt};
use ractor::ActorRef;
use ractor::rpc::CallResult;
use serde_json::json;
use sincro_core::hub::{
    Ended, Frame, HubMessage, Subscribed, TypeFilter, filter::allows, subscription,
};
use sincro_core::store::api_keys::Principal;
use sincro_core::store::events;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Ping the client this often.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// Close when nothing (pong or other) came from the client for this long.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(60);
/// Events read from the store per replay page.
pub const REPLAY_PAGE: i64 = 500;
/// Live frames written before one flush.
const BATCH: usize = 64;
/// How long a connection waits for a (restarting) Hub to take its subscription.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(15);
/// How long the close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The same for a slow consumer: its close frame queues behind the frames it has not read
/// yet, and it needs the `since` in it to resume without loss.
const SLOW_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message accepted from a client (it has nothing to say but pongs and close).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("v1" / "stream")
        .and(warp::get())
        .and(auth::principal_or_query_token(ctx.clone(), Need::Read))
        .and(stream_query())
        .and(websocket_required())
        .and(warp::ws())
        .and(with_ctx(ctx))
        .then(|p, q, ws, ctx| respond(open(p, q, ws, ctx)))
        .boxed()
}

/// The validated query.
#[derive(Debug, Default)]
pub struct StreamQuery {
    since: Option<i64>,
    types: Option<TypeFilter>,
}

fn stream_query() -> impl Filter<Extract = (StreamQuery,), Error = Rejection> + Clone {
    warp::query::<Vec<(String, String)>>().and_then(|pairs: Vec<(String, String)>| async move {
        parse_query(&pairs).map_err(warp::reject::custom)
    })
}

fn parse_query(pairs: &[(String, String)]) -> Result<StreamQuery, ApiError> {
    let mut q = StreamQuery::default();
    let mut seen_types = false;
    for (key, value) in pairs {
        match key.as_str() {
            "since" => {
                if q.since.is_some() {
                    return Err(ApiError::bad_request(
                        "invalid_since",
                        "since is given twice",
                    ));
                }
                let since = value
                    .parse::<i64>()
                    .ok()
                    .filter(|s| *s >= 0 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_since",
                            "since must be a seq: a non-negative integer",
                        )
                    })?;
                q.since = Some(since);
            }
            "types" => {
                if seen_types {
                    return Err(ApiError::bad_request(
                        "invalid_types",
                        "types is given twice; list the types comma-separated",
                    ));
                }
                seen_types = true;
                q.types = Some(
                    TypeFilter::parse(value)
                        .map_err(|e| ApiError::bad_request("invalid_types", e.to_string()))?,
                );
            }
            "access_token" => {}
            other => {
                let name: String = other.chars().take(40).collect();
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown query parameter {name:?} (expected since, types, access_token)"
                    ),
                ));
            }
        }
    }
    Ok(q)
}

/// A clear 400 for a plain GET (warp's own check would answer with an opaque rejection).
fn websocket_required() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("upgrade")
        .and_then(|upgrade: Option<String>| async move {
            if upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError::bad_request(
                    "websocket_required",
                    "GET /v1/stream is a WebSocket: connect with Upgrade: websocket",
                )))
            }
        })
        .untuple_one()
}

async fn open(
    p: Principal,
    q: StreamQuery,
    ws: Ws,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    if ctx.actors.children.hub.get().is_none() {
        return Err(ApiError::Unavailable(
            "the event hub is not running; retry shortly".into(),
        ));
    }
    let newest = {
        let client = ctx.pool.get().await?;
        events::last_seq(&client, p.usuario_id).await?
    };
    if let Some(since) = q.since
        && since > newest
    {
        return Err(ApiError::bad_request(
            "invalid_since",
            format!("since={since} is ahead of this user's newest event ({newest})"),
        ));
    }
    let conn = Connection {
        ctx,
        usuario_id: p.usuario_id,
        filter: q.types.map(Arc::new),
        gap_check: q.since,
        position: q.since.unwrap_or(newest),
        known_seq: newest,
        sent: 0,
    };
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| conn.run(socket))
        .into_response())
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    ClientGone,
    SlowConsumer,
    Shutdown,
    Keepalive,
    HubUnavailable,
    StoreFailed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::ClientGone => "client_closed",
            Outcome::SlowConsumer => "slow_consumer",
            Outcome::Shutdown => "shutdown",
            Outcome::Keepalive => "keepalive_timeout",
            Outcome::HubUnavailable => "hub_unavailable",
            Outcome::StoreFailed => "store_failed",
        }
    }

    /// The close code and the reason's prefix (the reason ends with `since=<N>`).
    fn close(self) -> Option<(u16, &'static str)> {
        match self {
            Outcome::ClientGone => None,
            Outcome::SlowConsumer => Some((4008, "too slow")),
            Outcome::Shutdown => Some((1001, "server shutting down")),
            Outcome::Keepalive => Some((4000, "no pong")),
            Outcome::HubUnavailable => Some((1013, "event hub unavailable")),
            Outcome::StoreFailed => Some((1011, "store unavailable")),
        }
    }
}

/// What interrupted a replay or the live phase.
enum Step {
    /// Subscribe again (the Hub restarted, or dropped us while we replayed) and carry on.
    Resubscribe,
    End(Outcome),
}

impl From<Outcome> for Step {
    fn from(o: Outcome) -> Self {
        Step::End(o)
    }
}

/// A live subscription; unsubscribes when dropped.
struct Live {
    rx: Subscribed,
    hub: ActorRef<HubMessage>,
    id: u64,
    usuario_id: Uuid,
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.hub.cast(HubMessage::Unsubscribe {
            usuario_id: self.usuario_id,
            id: self.id,
        });
    }
}

struct Connection {
    ctx: Arc<AppContext>,
    usuario_id: Uuid,
    filter: Option<Arc<TypeFilter>>,
    /// The client's `since`, until the retention gap check has run.
    gap_check: Option<i64>,
    /// Every event up to this seq was sent or filtered out.
    position: i64,
    /// The user's newest seq, read before (re)subscribing.
    known_seq: i64,
    sent: u64,
}

impl Connection {
    async fn run(mut self, socket: WebSocket) {
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

    async fn newest(&self) -> Result<i64, Outcome> {
        let client = self
            .ctx
            .pool
            .get()
            .await
            .map_err(|_| Outcome::StoreFailed)?;
        events::last_seq(&client, self.usuario_id)
            .await
            .map_err(|_| Outcome::StoreFailed)
    }

    /// Registers with whichever Hub runs now, waiting a bounded time for a restarting one.
    async fn subscribe(&mut self, out: &mut Out) -> Result<Live, Outcome> {
        let until = Instant::now() + SUBSCRIBE_WAIT;
        loop {
            if let Some(hub) = self.ctx.actors.children.hub.get() {
                let (subscription, rx) = subscription(
                    self.usuario_id,
                    self.filter.clone(),
                    self.known_seq,
                    self.stream_buffer(),
                );
                let asked = hub
                    .call(
                        |reply| HubMessage::Subscribe {
                            subscription,
                            reply,
                        },
                        Some(Duration::from_secs(5)),
                    )
                    .await;
                if let Ok(CallResult::Success(id)) = asked {
                    return Ok(Live {
                        rx,
                        hub,
                        id,
                        usuario_id: self.usuario_id,
                    });
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
                let client = self
                    .ctx
                    .pool
                    .get()
                    .await
                    .map_err(|_| Outcome::StoreFailed)?;
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
                if allows(self.filter.as_deref(), &event.kind) {
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
        let first_available = self
            .first_available()
            .await
            .map_err(|_| Outcome::StoreFailed)?;
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
    async fn first_available(&self) -> Result<i64, ApiError> {
        let mut client = self.ctx.pool.get().await?;
        Ok(events::first_available(&mut client, self.usuario_id).await?)
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
                if frame.seq > self.position {
                    let message = Message::text(&*frame.json);
                    if let Err(step) = out.feed(message, Some(&mut live.rx.closing)).await {
                        return step;
                    }
                    self.position = frame.seq;
                    self.sent += 1;
                    fed += 1;
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

fn ended_step(ended: Ended) -> Step {
    match ended {
        Ended::Overflow => Outcome::SlowConsumer.into(),
        Ended::Shutdown => Outcome::Shutdown.into(),
        Ended::HubGone => Step::Resubscribe,
    }
}

/// Resolves once the reader saw the client go (the watch guard is not held across awaits).
async fn client_gone(gone: &mut watch::Receiver<bool>) {
    let _ = gone.wait_for(|g| *g).await;
}

fn keepalive_deadline(epoch: Instant, last_heard_ms: &AtomicU64) -> Instant {
    epoch + Duration::from_millis(last_heard_ms.load(Ordering::Relaxed)) + PONG_TIMEOUT
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The writing half of the socket, with what the reading half learnt: when the client was
/// last heard from and whether it is gone.
struct Out {
    sink: SplitSink<WebSocket, Message>,
    epoch: Instant,
    last_heard_ms: Arc<AtomicU64>,
    gone: watch::Receiver<bool>,
    next_ping: Instant,
}

impl Out {
    /// Starts the reader task (pongs, the client's close) and returns the writer.
    fn new(
        sink: SplitSink<WebSocket, Message>,
        mut stream: SplitStream<WebSocket>,
    ) -> (Out, tokio::task::JoinHandle<()>) {
        let epoch = Instant::now();
        let last_heard_ms = Arc::new(AtomicU64::new(0));
        let (gone_tx, gone) = watch::channel(false);
        let heard = last_heard_ms.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                heard.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                if message.is_close() {
                    break;
                }
            }
            let _ = gone_tx.send(true);
        });
        let out = Out {
            sink,
            epoch,
            last_heard_ms,
            gone,
            next_ping: epoch + PING_EVERY,
        };
        (out, reader)
    }

    fn is_gone(&self) -> bool {
        *self.gone.borrow()
    }

    /// When the client counts as unresponsive if nothing more comes.
    fn keepalive_deadline(&self) -> Instant {
        keepalive_deadline(self.epoch, &self.last_heard_ms)
    }

    /// Sends a ping when one is due; fails when the client has been silent too long.
    async fn ping_if_due(&mut self) -> Result<(), Step> {
        let now = Instant::now();
        if now >= self.keepalive_deadline() {
            return Err(Outcome::Keepalive.into());
        }
        if now < self.next_ping {
            return Ok(());
        }
        self.next_ping = now + PING_EVERY;
        self.feed(Message::ping(Vec::new()), None).await?;
        self.flush(None).await
    }

    /// Hands one message to the socket once it accepts more (bounded by the client reading).
    /// While waiting, gives up if the client goes, falls silent, or (when `closing` is given)
    /// the Hub drops the subscription: then the message was not sent.
    async fn feed(
        &mut self,
        message: Message,
        closing: Option<&mut sincro_core::hub::ClosingSignal>,
    ) -> Result<(), Step> {
        self.wait(closing, |sink, cx| sink.poll_ready_unpin(cx))
            .await?;
        self.sink
            .start_send_unpin(message)
            .map_err(|_| Step::End(Outcome::ClientGone))
    }

    /// Pushes what was fed to the socket, with the same escape hatches as [`Out::feed`]
    /// (whatever was fed still goes out before anything sent later).
    async fn flush(
        &mut self,
        closing: Option<&mut sincro_core::hub::ClosingSignal>,
    ) -> Result<(), Step> {
        self.wait(closing, |sink, cx| sink.poll_flush_unpin(cx))
            .await
    }

    async fn wait<F>(
        &mut self,
        mut closing: Option<&mut sincro_core::hub::ClosingSignal>,
        mut poll: F,
    ) -> Result<(), Step>
    where
        F: FnMut(
            &mut SplitSink<WebSocket, Message>,
            &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), warp::Error>>,
    {
        // Fast path: a socket keeping up is ready at once, and needs no timer or wakers.
        let sink = &mut self.sink;
        if let Some(done) = futures::future::poll_fn(|cx| poll(sink, cx)).now_or_never() {
            return done.map_err(|_| Outcome::ClientGone.into());
        }
        loop {
            let deadline = self.keepalive_deadline();
            let mut gone = self.gone.clone();
            let (epoch, heard) = (self.epoch, self.last_heard_ms.clone());
            let sink = &mut self.sink;
            let ready = futures::future::poll_fn(|cx| poll(sink, cx));
            let hub_closing = async {
                match closing.as_deref_mut() {
                    Some(signal) => signal.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                done = ready => return done.map_err(|_| Outcome::ClientGone.into()),
                _ = client_gone(&mut gone) => return Err(Outcome::ClientGone.into()),
                ended = hub_closing => match ended {
                    // Dropped by the Hub while blocked on a slow client: stop here.
                    Ended::Overflow | Ended::Shutdown => return Err(ended_step(ended)),
                    // The Hub crashed: finish this write, re-subscribe afterwards.
                    Ended::HubGone => closing = None,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if Instant::now() >= keepalive_deadline(epoch, &heard) {
                        return Err(Outcome::Keepalive.into());
                    }
                }
            }
        }
    }

    /// Ends the connection: our close frame (code and `since=<N>`), or the echo of the
    /// client's own close, pushed out within a bound.
    async fn finish(&mut self, outcome: Outcome, position: i64) {
        let Some((code, prefix)) = outcome.close() else {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.sink.flush()).await;
            return;
        };
        let reason = format!("{prefix}: resume with since={position}");
        let close = async {
            self.sink.feed(Message::close_with(code, reason)).await?;
            self.sink.flush().await
        };
        let limit = if outcome == Outcome::SlowConsumer {
            SLOW_CLOSE_TIMEOUT
        } else {
            CLOSE_TIMEOUT
        };
        let _ = tokio::time::timeout(limit, close).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code(r: Result<StreamQuery, ApiError>) -> &'static str {
        r.expect_err("an error").code()
    }

    #[test]
    fn parses_since_and_types() {
        let q = parse_query(&pairs(&[
            ("since", "42"),
            ("types", "message.received,lead.*"),
            ("access_token", "x"),
        ]))
        .unwrap();
        assert_eq!(q.since, Some(42));
        assert!(q.types.as_ref().unwrap().matches("lead.created"));
        let q = parse_query(&[]).unwrap();
        assert_eq!(q.since, None);
        assert!(q.types.is_none());
    }

    #[test]
    fn rejects_bad_queries() {
        assert_eq!(
            code(parse_query(&pairs(&[("since", "abc")]))),
            "invalid_since"
        );
        assert_eq!(
            code(parse_query(&pairs(&[("since", "-1")]))),
            "invalid_since"
        );
        assert_eq!(
            code(parse_query(&pairs(&[("since", "+1")]))),
            "invalid_since"
        );
        assert_eq!(code(parse_query(&pairs(&[("since", "")]))), "invalid_since");
        assert_eq!(
            code(parse_query(&pairs(&[("since", "1"), ("since", "2")]))),
            "invalid_since"
        );
        assert_eq!(code(parse_query(&pairs(&[("types", "")]))), "invalid_types");
        assert_eq!(
            code(parse_query(&pairs(&[("types", "A B")]))),
            "invalid_types"
        );
        assert_eq!(
            code(parse_query(&pairs(&[("limit", "1")]))),
            "invalid_query"
        );
    }

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
