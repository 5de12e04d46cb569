//! Hub: fans events out to the WebSocket subscribers of their user, on every node (docs/ARCHITECTURE.md
//! §1, §4 and §5).
//!
//! Every append to the event log `pg_notify`s `sincro_events` with `<usuario_id>:<seq>` at
//! commit, and every node's Hub LISTENs on its own connection ([`listen`]), so an event written
//! anywhere reaches every node. The Hub keeps, per user with subscribers here, a cursor (the
//! newest seq it fetched); a notification above the cursor starts ONE fetch of that user's new
//! events from the store (`read_after(cursor)`, in a task, at most one in flight per user so
//! events stay in order), and the result is serialised once and offered to every subscriber
//! whose `types` filter matches. Users without subscribers here cost a map lookup.
//!
//! Subscribers are bounded channels ([`subscription`]): the Hub never waits for a client. A
//! full channel means the client fell behind; the Hub tells it [`Closing::Overflow`] and lets
//! go (the connection closes with 4008 and the client resumes with `since`). On a graceful stop
//! (daemon shutdown) every subscriber is told [`Closing::Shutdown`] and the Hub waits a bounded
//! time for them to close. On a crash the channels just drop; connections then re-subscribe to
//! the restarted Hub and fill the hole from the store, so clients see nothing of it.
//!
//! The Hub also purges events older than `event_retention_hours` every [`PURGE_EVERY`]
//! ([`HubMessage::Purge`], also callable on demand), and probes its LISTEN connection every
//! [`PROBE_EVERY`]: a lost LISTEN fails the Hub so its supervisor restarts it.
//!
//! Connections and tests reach it through [`HubHandle`].

pub mod filter;
pub mod handle;
pub mod listen;
pub mod subscription;

pub use filter::{FilterError, TypeFilter};
pub use handle::{HubHandle, HubSubscriber};
pub use subscription::{
    Closing, ClosingSignal, Ended, Frame, Subscribed, Subscription, subscription,
};

use crate::shared::Shared;
use crate::store::events;
use listen::Listener;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Events read per fetch; a full page is followed by another fetch at once.
pub const FETCH_PAGE: i64 = 512;
/// How often events past retention are deleted.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How often the LISTEN connection is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);
/// After a failed fetch, how long before trying again (the subscribers just wait).
pub const FETCH_RETRY: Duration = Duration::from_secs(1);
/// On shutdown, how long the Hub waits for its connections to send their close frames.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("could not LISTEN: {0}")]
    Listen(#[from] listen::ListenError),
    #[error("the LISTEN connection was lost: {0}")]
    ListenLost(String),
    #[error("the hub is restarting")]
    NotRunning,
    #[error("the hub did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

pub enum HubMessage {
    /// Feed this user's live events into the subscription's channel; replies with the
    /// subscriber id (for [`HubMessage::Unsubscribe`]).
    Subscribe {
        subscription: Subscription,
        reply: RpcReplyPort<u64>,
    },
    /// The connection is gone; forget the subscriber.
    Unsubscribe { usuario_id: Uuid, id: u64 },
    /// A NOTIFY from the LISTEN connection: `usuario_id` has events up to `seq`.
    Notified { usuario_id: Uuid, seq: i64 },
    /// The result of a fetch task for `usuario_id` (ignored if the user's follow state was
    /// dropped and re-made since: `generation` tells).
    Fetched {
        usuario_id: Uuid,
        generation: u64,
        result: Result<Vec<Arc<Frame>>, String>,
    },
    /// Try a fetch again after an error.
    Refetch { usuario_id: Uuid },
    /// The LISTEN connection died: fail, so the supervisor restarts the Hub.
    ListenLost(String),
    /// Probe the LISTEN connection (sent to itself every [`PROBE_EVERY`]).
    Probe,
    /// Delete events older than the retention; replies with how many (sent to itself every
    /// [`PURGE_EVERY`] without a reply port).
    Purge(Option<RpcReplyPort<Result<u64, HubError>>>),
    /// How many users and subscribers this Hub serves (status, tests, benchmarks).
    Stats(RpcReplyPort<HubStats>),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(HubMessage);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HubStats {
    pub users: usize,
    pub subscribers: usize,
}

pub struct Hub;

struct Subscriber {
    id: u64,
    filter: Option<Arc<TypeFilter>>,
    frames: mpsc::Sender<Arc<Frame>>,
    closing: Option<oneshot::Sender<Closing>>,
}

impl Subscriber {
    fn close(&mut self, why: Closing) {
        if let Some(tx) = self.closing.take() {
            let _ = tx.send(why);
        }
    }
}

/// What the Hub follows for one user with subscribers on this node.
struct Follow {
    subscribers: Vec<Subscriber>,
    /// Newest seq fetched (or known to be covered by the subscribers' own replay).
    cursor: i64,
    /// Newest seq a notification announced.
    announced: i64,
    fetching: bool,
    generation: u64,
}

pub struct HubState {
    shared: Arc<Shared>,
    follows: HashMap<Uuid, Follow>,
    next_id: u64,
    next_generation: u64,
    listener: Listener,
}

impl Actor for Hub {
    type Msg = HubMessage;
    type State = HubState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = Listener::start(&shared.database_url, myself.clone())
            .await
            .map_err(HubError::from)?;
        myself.send_interval(PURGE_EVERY, || HubMessage::Purge(None));
        myself.send_interval(PROBE_EVERY, || HubMessage::Probe);
        tracing::debug!(node = %shared.node_id, "hub listening for events");
        Ok(HubState {
            shared,
            follows: HashMap::new(),
            next_id: 1,
            next_generation: 1,
            listener,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HubMessage::Subscribe {
                subscription,
                reply,
            } => {
                let id = state.subscribe(subscription);
                let _ = reply.send(id);
                state.update_gauge();
            }
            HubMessage::Unsubscribe { usuario_id, id } => {
                state.unsubscribe(usuario_id, id);
                state.update_gauge();
            }
            HubMessage::Notified { usuario_id, seq } => {
                if let Some(follow) = state.follows.get_mut(&usuario_id) {
                    follow.announced = follow.announced.max(seq);
                    state.maybe_fetch(&myself, usuario_id);
                }
            }
            HubMessage::Fetched {
                usuario_id,
                generation,
                result,
            } => state.fetched(&myself, usuario_id, generation, result),
            HubMessage::Refetch { usuario_id } => state.maybe_fetch(&myself, usuario_id),
            HubMessage::ListenLost(reason) => {
                metrics::counter!("sincro_hub_listen_lost_total").increment(1);
                return Err(HubError::ListenLost(reason).into());
            }
            HubMessage::Probe => {
                let probe = state.listener.probe();
                let hub = myself.clone();
                tokio::spawn(async move {
                    if let Err(e) = probe.await {
                        let _ = hub.cast(HubMessage::ListenLost(e.to_string()));
                    }
                });
            }
            HubMessage::Purge(reply) => {
                let shared = state.shared.clone();
                tokio::spawn(async move {
                    let result = purge(&shared).await;
                    match &result {
                        Ok(n) if *n > 0 => tracing::info!(deleted = n, "purged old events"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "could not purge old events"),
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                });
            }
            HubMessage::Stats(reply) => {
                let _ = reply.send(HubStats {
                    users: state.follows.len(),
                    subscribers: state.follows.values().map(|f| f.subscribers.len()).sum(),
                });
            }
            HubMessage::Panic => panic!("fault injection in hub"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A graceful stop is the daemon shutting down: tell every connection, then give them a
        // moment to send their close frames before the process goes on (and maybe exits).
        let mut waiting = Vec::new();
        for follow in state.follows.values_mut() {
            for sub in follow.subscribers.iter_mut() {
                sub.close(Closing::Shutdown);
                waiting.push(sub.frames.clone());
            }
        }
        let count = waiting.len();
        state.follows.clear();
        metrics::gauge!("sincro_hub_subscribers").set(0.0);
        if count > 0 {
            let all_closed = futures::future::join_all(waiting.iter().map(|tx| tx.closed()));
            if tokio::time::timeout(SHUTDOWN_GRACE, all_closed)
                .await
                .is_err()
            {
                tracing::warn!(
                    count,
                    "stream connections still open after the shutdown grace"
                );
            }
        }
        Ok(())
    }
}

async fn purge(shared: &Shared) -> Result<u64, HubError> {
    let client = shared
        .pool
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(events::purge_older_than(&client, shared.settings.event_retention_hours).await?)
}

impl HubState {
    fn subscribe(&mut self, s: Subscription) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let generation = self.next_generation;
        let follow = self.follows.entry(s.usuario_id).or_insert_with(|| {
            self.next_generation += 1;
            Follow {
                subscribers: Vec::new(),
                cursor: s.known_seq,
                announced: s.known_seq,
                fetching: false,
                generation,
            }
        });
        follow.subscribers.push(Subscriber {
            id,
            filter: s.filter,
            frames: s.frames,
            closing: Some(s.closing),
        });
        id
    }

    fn update_gauge(&self) {
        let subscribers: usize = self.follows.values().map(|f| f.subscribers.len()).sum();
        metrics::gauge!("sincro_hub_subscribers").set(subscribers as f64);
    }

    fn unsubscribe(&mut self, usuario_id: Uuid, id: u64) {
        let Some(follow) = self.follows.get_mut(&usuario_id) else {
            return;
        };
        follow.subscribers.retain(|s| s.id != id);
        if follow.subscribers.is_empty() {
            self.follows.remove(&usuario_id);
        }
    }

    /// Starts a fetch for the user if one is due and none is running.
    fn maybe_fetch(&mut self, myself: &ActorRef<HubMessage>, usuario_id: Uuid) {
        let Some(follow) = self.follows.get_mut(&usuario_id) else {
            return;
        };
        if follow.fetching || follow.announced <= follow.cursor {
            return;
        }
        follow.fetching = true;
        let (after, generation) = (follow.cursor, follow.generation);
        let shared = self.shared.clone();
        let hub = myself.clone();
        tokio::spawn(async move {
            let result = fetch(&shared, usuario_id, after).await;
            let _ = hub.cast(HubMessage::Fetched {
                usuario_id,
                generation,
                result,
            });
        });
    }

    fn fetched(
        &mut self,
        myself: &ActorRef<HubMessage>,
        usuario_id: Uuid,
        generation: u64,
        result: Result<Vec<Arc<Frame>>, String>,
    ) {
        let Some(follow) = self.follows.get_mut(&usuario_id) else {
            return;
        };
        if follow.generation != generation {
            return;
        }
        follow.fetching = false;
        let frames = match result {
            Ok(frames) => frames,
            Err(e) => {
                tracing::warn!(user_id = %usuario_id, error = %e, "could not read new events; retrying");
                metrics::counter!("sincro_hub_fetch_errors_total").increment(1);
                myself.send_after(FETCH_RETRY, move || HubMessage::Refetch { usuario_id });
                return;
            }
        };
        let full_page = frames.len() as i64 >= FETCH_PAGE;
        if let Some(last) = frames.last() {
            follow.cursor = follow.cursor.max(last.seq);
            follow.announced = follow.announced.max(last.seq);
        }
        if fan_out(follow, &frames) {
            if follow.subscribers.is_empty() {
                self.follows.remove(&usuario_id);
            }
            self.update_gauge();
            if !self.follows.contains_key(&usuario_id) {
                return;
            }
        }
        let Some(follow) = self.follows.get_mut(&usuario_id) else {
            return;
        };
        if full_page {
            // More may be stored than any notification said so far.
            follow.announced = follow.announced.max(follow.cursor + 1);
        }
        self.maybe_fetch(myself, usuario_id);
    }
}

async fn fetch(shared: &Shared, usuario_id: Uuid, after: i64) -> Result<Vec<Arc<Frame>>, String> {
    let client = shared.pool.get().await.map_err(|e| e.to_string())?;
    let events = events::read_after(&client, &shared.sealer, usuario_id, after, FETCH_PAGE)
        .await
        .map_err(|e| e.to_string())?;
    Ok(events
        .iter()
        .map(|e| Arc::new(Frame::from_event(e)))
        .collect())
}

/// Offers the frames to every subscriber; one whose buffer is full is told it overflowed and
/// dropped, one whose connection is gone is dropped. Returns whether any was dropped.
fn fan_out(follow: &mut Follow, frames: &[Arc<Frame>]) -> bool {
    let mut dropped = 0usize;
    follow.subscribers.retain_mut(|sub| {
        for frame in frames {
            if !filter::allows(sub.filter.as_deref(), &frame.kind) {
                continue;
            }
            match sub.frames.try_send(frame.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("sincro_stream_overflows_total").increment(1);
                    sub.close(Closing::Overflow);
                    dropped += 1;
                    return false;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    dropped += 1;
                    return false;
                }
            }
        }
        true
    });
    dropped > 0
}
