//! `GET /v1/stream`: the WebSocket event stream (docs/ARCHITECTURE.md §4, Stream).
//!
//! `?since=<seq>` replays what the client missed, then the stream goes live; `?types=a,b`
//! (exact names, or `prefix.*`) filters; the key comes by `Authorization: Bearer`, by the
//! subprotocols `sincro.stream, bearer.<key>` (browsers: no key in the URL) or
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
//!
//! Files: this one (routes, the upgrade), [`query`] (the query string), [`connection`] (one
//! client's subscribe / replay / live loop) and [`out`] (the socket's writing half).

mod connection;
mod out;
mod outcome;
mod query;

use super::auth::{self, Need};
use super::error::ApiError;
use super::{respond, with_ctx};
use crate::context::AppContext;
use connection::Connection;
use query::{StreamQuery, stream_query};
use sincro_core::store::api_keys::Principal;
use sincro_core::store::events;
use std::sync::Arc;
use std::time::Duration;
use warp::filters::ws::Ws;
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
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(with_ctx(ctx))
        .then(|p, q, ws, protocols: Option<String>, ctx| {
            let chosen = auth::offers_stream_protocol(protocols.as_deref());
            respond(async move {
                let mut resp = open(p, q, ws, ctx).await?;
                // A browser that offered subprotocols refuses an answer naming none.
                if chosen {
                    resp.headers_mut().insert(
                        "sec-websocket-protocol",
                        warp::http::HeaderValue::from_static(auth::STREAM_PROTOCOL),
                    );
                }
                Ok(resp)
            })
        })
        .boxed()
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
        admin: p.is_admin,
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
