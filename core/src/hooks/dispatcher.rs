//! HookDispatcher: runs this node's event-webhook lanes (docs/ARCHITECTURE.md §4, Event
//! webhooks). Every [`TICK`] ([`HookDispatcherState::tick`], the testable body of its loop) it
//! looks for enabled endpoints whose lease is free, expired, its own or an earlier incarnation's
//! of this node, and starts a [`lane`] for each (the lane takes the lease, or finds another
//! node took it first and stops). A LISTEN on the event log's channel wakes the lanes of the
//! user who got an event, so a delivery starts at once; one on endpoint changes has the
//! changed endpoint's lane reload it first; an idle lane also polls. On a graceful
//! stop the lanes end and the leases are handed back, so another node takes over at once; after
//! a crash they expire (`WEBHOOK_LEASE_SECS`), or come back at once to this node's next start.

use super::cursor;
use super::lane::{self, Lane, LaneCtx, LaneWake};
use super::progress::ProgressWriter;
use super::send;
use super::store::CHANGED_CHANNEL;
use crate::outbound::lease::owner_name;
use crate::outbound::listen::Listener;
use crate::shared::Shared;
use crate::store::events;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How often the dispatcher looks for endpoints to run.
pub const TICK: Duration = Duration::from_secs(1);
/// How often old attempt records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub enum HookDispatcherMessage {
    /// Start lanes for endpoints this node may run, drop finished ones, keep LISTEN alive.
    /// Sent to itself every [`TICK`].
    Tick,
    /// The lanes running now (tests, operators).
    Stats(RpcReplyPort<HookDispatcherStats>),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(HookDispatcherMessage);

/// A snapshot of the dispatcher.
#[derive(Debug, Clone, PartialEq)]
pub struct HookDispatcherStats {
    pub owner: String,
    pub lanes: Vec<Uuid>,
    pub listening: bool,
}

pub struct HookDispatcher;

struct LaneEntry {
    task: JoinHandle<()>,
}

impl Drop for LaneEntry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Lane wake-ups per user, shared with the LISTEN task.
type Wakes = Arc<Mutex<HashMap<Uuid, Vec<(Uuid, Arc<LaneWake>)>>>>;

pub struct HookDispatcherState {
    ctx: Arc<LaneCtx>,
    lanes: HashMap<Uuid, LaneEntry>,
    wakes: Wakes,
    listener: Option<Listener>,
    last_prune: Option<Instant>,
}

impl HookDispatcherState {
    /// One tick; see the module's doc.
    pub async fn tick(&mut self) {
        self.lanes.retain(|_, entry| !entry.task.is_finished());
        let shared = self.ctx.shared.clone();
        match shared.pool.get().await {
            Ok(client) => {
                match cursor::candidates(&client, &self.ctx.owner, &self.ctx.node_pattern).await {
                    Ok(found) => {
                        for (id, usuario_id) in found {
                            self.start_lane(id, usuario_id);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not look for webhooks to run"),
                }
                if self.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    self.last_prune = Some(Instant::now());
                    let hours = shared.settings.event_retention_hours;
                    if let Err(e) = cursor::prune_attempts(&client, hours).await {
                        tracing::warn!(error = %e, "could not prune webhook attempts");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not look for webhooks to run"),
        }
        let lanes = &self.lanes;
        self.wakes
            .lock()
            .expect("wakes lock")
            .retain(|_, user_lanes| {
                user_lanes.retain(|(id, _)| lanes.contains_key(id));
                !user_lanes.is_empty()
            });
        metrics::gauge!("sincro_webhook_lanes").set(self.lanes.len() as f64);
        if !self.listener.as_ref().is_some_and(Listener::alive) {
            self.listener = start_listener(&shared, &self.wakes).await;
        }
    }

    fn start_lane(&mut self, id: Uuid, usuario_id: Uuid) {
        if self.lanes.contains_key(&id) {
            return;
        }
        let wake = Arc::new(LaneWake::default());
        self.wakes
            .lock()
            .expect("wakes lock")
            .entry(usuario_id)
            .or_default()
            .push((id, wake.clone()));
        let task = tokio::spawn(lane::run(Lane::new(self.ctx.clone(), id), wake));
        self.lanes.insert(id, LaneEntry { task });
    }
}

async fn start_listener(shared: &Arc<Shared>, wakes: &Wakes) -> Option<Listener> {
    let wakes = wakes.clone();
    Listener::start_or_warn(
        &shared.database_url,
        &[events::CHANNEL, CHANGED_CHANNEL],
        "webhook lanes poll until it is back",
        move |channel, payload| {
            let wakes = wakes.lock().expect("wakes lock");
            if channel == CHANGED_CHANNEL {
                let Ok(id) = payload.parse::<Uuid>() else {
                    return;
                };
                for (_, wake) in wakes.values().flatten().filter(|(lane, _)| *lane == id) {
                    wake.changed();
                }
            } else if let Some((usuario_id, _)) = events::parse_notification(payload)
                && let Some(lanes) = wakes.get(&usuario_id)
            {
                for (_, wake) in lanes {
                    wake.notify.notify_one();
                }
            }
        },
    )
    .await
}

impl Actor for HookDispatcher {
    type Msg = HookDispatcherMessage;
    type State = HookDispatcherState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let settings = shared.settings.hooks.clone();
        let owner = owner_name(&shared.node_id);
        let ctx = Arc::new(LaneCtx {
            http: send::client(settings.allow.clone(), settings.timeout),
            progress: ProgressWriter::start(shared.pool.clone(), &owner, settings.lease),
            owner,
            node_pattern: cursor::node_pattern(&shared.node_id),
            shared: shared.clone(),
            settings,
        });
        let wakes: Wakes = Arc::default();
        let listener = start_listener(&shared, &wakes).await;
        let mut state = HookDispatcherState {
            ctx,
            lanes: HashMap::new(),
            wakes,
            listener,
            last_prune: None,
        };
        state.tick().await;
        myself.send_interval(TICK, || HookDispatcherMessage::Tick);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HookDispatcherMessage::Tick => state.tick().await,
            HookDispatcherMessage::Stats(reply) => {
                let _ = reply.send(HookDispatcherStats {
                    owner: state.ctx.owner.clone(),
                    lanes: state.lanes.keys().copied().collect(),
                    listening: state.listener.as_ref().is_some_and(Listener::alive),
                });
            }
            HookDispatcherMessage::Panic => panic!("fault injection in hook dispatcher"),
        }
        Ok(())
    }

    /// Graceful stop: the lanes end (a delivery cut short is repeated, with the same delivery
    /// id, by whoever runs the endpoint next) and the leases go back at once.
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.lanes.clear();
        state.listener = None;
        match state.ctx.shared.pool.get().await {
            Ok(client) => {
                if let Err(e) = cursor::release(&client, &state.ctx.owner).await {
                    tracing::warn!(error = %e, "could not hand webhook leases back; they will expire");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not hand webhook leases back; they will expire")
            }
        }
        Ok(())
    }
}
