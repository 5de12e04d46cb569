//! Dispatcher: drains the durable outbox (docs/ARCHITECTURE.md §4, Outbound). One lane per
//! connection running on this node ([`crate::outbound::lane`]) claims that connection's due
//! rows under this incarnation's lease, takes RateLimiter permits, marks attempts in flight and
//! hands messages to the connection actor; outcomes are written in batches
//! ([`crate::outbound::record`]). Lanes are woken by LISTEN/NOTIFY and poll slowly as a safety
//! net. A tick (every [`TICK`]) starts and stops lanes as connections come and go, hands Business
//! numbers over to nodes below their fair share ([`DispatcherState::hand_over`]), renews this
//! incarnation's lease on its claims and recovers the claims of crashed nodes ([`DispatcherState::tick`],
//! callable alone from tests through [`DispatcherMessage::Tick`]).

use crate::connection::ConnectionKind;
use crate::nodes::rebalance;
use crate::outbound::error::DispatcherError;
use crate::outbound::inflight::{Marker, MarkerTask};
use crate::outbound::lane::{self, Held, Lane, LaneCtx};
use crate::outbound::lease::{self, Recovered};
use crate::outbound::listen::Listener;
use crate::outbound::record::Recorder;
use crate::shared::Shared;
use crate::store::StoreError;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How often the Dispatcher looks at the connections running here.
pub const TICK: Duration = Duration::from_millis(250);
/// How often expired leases are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

pub enum DispatcherMessage {
    /// Start/stop lanes, renew leases, recover expired ones when due, keep LISTEN alive.
    /// Sent to itself every [`TICK`].
    Tick,
    /// Recover expired leases now; replies with what came back (tests, operators).
    Sweep(RpcReplyPort<Result<Recovered, DispatcherError>>),
    /// What the Dispatcher holds now.
    Stats(RpcReplyPort<DispatcherStats>),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(DispatcherMessage);

/// A snapshot of the Dispatcher.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatcherStats {
    pub owner: String,
    pub lanes: Vec<Uuid>,
    pub held: usize,
    pub sending: usize,
    pub listening: bool,
}

pub struct Dispatcher;

struct LaneEntry {
    task: JoinHandle<()>,
}

impl Drop for LaneEntry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct DispatcherState {
    ctx: Arc<LaneCtx>,
    lanes: HashMap<Uuid, LaneEntry>,
    /// Lane wake-ups by connection, shared with the LISTEN task.
    wakes: Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>,
    listener: Option<Listener>,
    _marker: MarkerTask,
    last_sweep: Instant,
    /// When this incarnation's lease on its claims was last renewed (None: never, or the last
    /// attempt failed: tried again on the next tick).
    last_renew: Option<Instant>,
    /// When each registered connection's ownership lease was last asked for.
    lease_tried: HashMap<Uuid, Instant>,
    /// Business numbers being handed over to another node, since when.
    handing: HashMap<Uuid, Instant>,
    /// When this node last weighed its Business numbers against the other nodes'.
    last_rebalance: Instant,
}

impl DispatcherState {
    /// One tick: the testable body of the Dispatcher's background loop.
    pub async fn tick(&mut self) {
        // Lanes follow the connections registered on this node whose lease it holds.
        let registered = self.ctx.shared.connections.kinds();
        self.own(&registered).await;
        let shared = &self.ctx.shared.clone();
        let running: Vec<Uuid> = registered
            .iter()
            .filter(|(id, kind)| shared.ownership.may_send(*kind, *id))
            .map(|(id, _)| *id)
            .collect();
        // A lane ends by itself when its connection leaves, its lease is lost or it is being
        // handed over.
        self.lanes.retain(|_, entry| !entry.task.is_finished());
        self.hand_over(&registered).await;
        for id in running {
            if self.lanes.contains_key(&id) {
                continue;
            }
            let Some(conn) = shared.connections.get(id) else {
                continue;
            };
            let wake = Arc::new(Notify::new());
            self.wakes
                .lock()
                .expect("wakes lock")
                .insert(id, wake.clone());
            self.ctx.lanes.fetch_add(1, Ordering::Relaxed);
            let lane = Lane::new(self.ctx.clone(), id, conn.kind);
            let task = tokio::spawn(lane::run(lane, wake));
            self.lanes.insert(id, LaneEntry { task });
        }
        self.wakes
            .lock()
            .expect("wakes lock")
            .retain(|id, _| self.lanes.contains_key(id));
        metrics::gauge!("sincro_outbound_lanes").set(self.lanes.len() as f64);
        metrics::gauge!("sincro_outbound_held").set(self.ctx.held.total() as f64);
        let lease = shared.settings.outbound.lease;
        if self.last_renew.is_none_or(|t| t.elapsed() >= lease / 4) {
            self.renew().await;
        }
        if self.last_sweep.elapsed() >= SWEEP_EVERY {
            self.last_sweep = Instant::now();
            if let Err(e) = self.sweep(false).await {
                tracing::warn!(error = %e, "outbox lease recovery failed");
            }
        }
        if !self.listener.as_ref().is_some_and(Listener::alive) {
            self.listener = start_listener(shared, &self.wakes).await;
        }
    }

    /// Takes the ownership leases of connections registered here and not held yet (a
    /// Business number's actor runs on every node, its lane only on one), within this node's
    /// fair share; tries each connection when first seen, then every renewal period. Gives
    /// back the leases of Business numbers no longer registered here. A Lite session holds
    /// its lease already: the LiteSupervisor takes it before it starts a browser.
    async fn own(&mut self, registered: &[(Uuid, ConnectionKind)]) {
        let shared = self.ctx.shared.clone();
        let ownership = &shared.ownership;
        let now = Instant::now();
        let every = ownership.renew_every();
        self.lease_tried
            .retain(|id, _| registered.iter().any(|(r, _)| r == id));
        let gone: Vec<Uuid> = ownership
            .held(ConnectionKind::Business)
            .into_iter()
            .filter(|id| !registered.iter().any(|(r, _)| r == id))
            .collect();
        let wanted: Vec<(Uuid, ConnectionKind)> = registered
            .iter()
            .copied()
            .filter(|(id, kind)| {
                !ownership.holds(*kind, *id)
                    && self
                        .lease_tried
                        .get(id)
                        .is_none_or(|t| now.duration_since(*t) >= every)
            })
            .collect();
        if gone.is_empty() && wanted.is_empty() {
            return;
        }
        let client = match shared.pool.get().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not take connection leases");
                return;
            }
        };
        if !gone.is_empty()
            && let Err(e) = ownership
                .release(&client, ConnectionKind::Business, &gone)
                .await
        {
            tracing::warn!(error = %e, "could not give back connection leases");
        }
        for kind in [ConnectionKind::Business, ConnectionKind::Lite] {
            let ids: Vec<Uuid> = wanted
                .iter()
                .filter(|(_, k)| *k == kind)
                .map(|(id, _)| *id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            for id in &ids {
                self.lease_tried.insert(*id, now);
            }
            let total = registered.iter().filter(|(_, k)| *k == kind).count();
            match ownership.acquire_share(&client, kind, &ids, total).await {
                Ok(got) if !got.is_empty() => {
                    tracing::info!(connections = got.len(), "took over connections' sending");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not take connection leases"),
            }
        }
    }

    /// Hands Business numbers over to nodes below their fair share (docs/ARCHITECTURE.md §5).
    /// Every renewal period, when this node holds more than its share, it marks a few as
    /// leaving: their lanes stop and hand their unsent rows back. Each lease is given back
    /// once the lane ended and this node holds none of the number's rows (its sends were
    /// answered and recorded), or after the send timeout; the next node takes it then and
    /// claims the rows, so none is sent twice. One batch at a time.
    async fn hand_over(&mut self, registered: &[(Uuid, ConnectionKind)]) {
        let shared = self.ctx.shared.clone();
        let ownership = &shared.ownership;
        const BUSINESS: ConnectionKind = ConnectionKind::Business;
        if !self.handing.is_empty() {
            let Ok(client) = shared.pool.get().await else {
                return;
            };
            let limit = shared.settings.outbound.send_timeout;
            let mut done = Vec::new();
            for (id, since) in &self.handing {
                let over = since.elapsed() >= limit;
                let drained = !self.lanes.contains_key(id)
                    && rebalance::drained(&client, &shared.node_id, *id)
                        .await
                        .unwrap_or(false);
                if drained || over || !ownership.holds(BUSINESS, *id) {
                    done.push(*id);
                }
            }
            if done.is_empty() {
                return;
            }
            self.handing.retain(|id, _| !done.contains(id));
            match ownership.release(&client, BUSINESS, &done).await {
                Ok(()) => {
                    tracing::info!(numbers = ?done, "handed Business numbers over to another node")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not give Business numbers' leases back; they expire")
                }
            }
            return;
        }
        if self.last_rebalance.elapsed() < ownership.renew_every() {
            return;
        }
        self.last_rebalance = Instant::now();
        let total = registered.iter().filter(|(_, k)| *k == BUSINESS).count();
        let n = match shared.pool.get().await {
            Ok(client) => rebalance::surplus(&client, ownership, BUSINESS, total)
                .await
                .unwrap_or(0),
            Err(_) => 0,
        };
        if n == 0 {
            return;
        }
        use rand::seq::SliceRandom;
        let mut picked = ownership.held(BUSINESS);
        picked.shuffle(&mut rand::rng());
        picked.truncate(n);
        tracing::info!(numbers = ?picked, "handing Business numbers over to a node with room");
        for id in picked {
            ownership.leave(BUSINESS, id);
            self.handing.insert(id, Instant::now());
        }
    }

    /// Renews this incarnation's lease on its claims, well before it expires (one row).
    async fn renew(&mut self) {
        let shared = &self.ctx.shared;
        let result = match shared.pool.get().await {
            Ok(client) => lease::renew(
                &client,
                &self.ctx.owner,
                &shared.node_id,
                shared.settings.outbound.lease,
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => self.last_renew = Some(Instant::now()),
            Err(e) => {
                self.last_renew = None;
                tracing::warn!(error = %e, "could not renew the lease on claimed outbox rows");
            }
        }
    }

    /// Recovers expired leases (and, at start, this node's earlier claims).
    pub async fn sweep(&self, own_node: bool) -> Result<Recovered, DispatcherError> {
        let shared = &self.ctx.shared;
        let mut client = shared.pool.get().await.map_err(StoreError::from)?;
        let prefix = format!("{}/", shared.node_id);
        let recovered = lease::recover(
            &mut client,
            &shared.sealer,
            own_node.then_some(prefix.as_str()),
            &self.ctx.owner,
        )
        .await?;
        if recovered.returned > 0 || !recovered.uncertain.is_empty() {
            tracing::info!(
                returned = recovered.returned,
                uncertain = recovered.uncertain.len(),
                "recovered outbox rows from expired leases"
            );
            for wake in self.wakes.lock().expect("wakes lock").values() {
                wake.notify_one();
            }
        }
        if !recovered.uncertain.is_empty() {
            shared.raise_alert(crate::store::alerts::NewAlert {
                usuario_id: None,
                kind: "messages_uncertain".into(),
                severity: crate::store::alerts::Severity::Warning,
                source: "dispatcher".into(),
                message: format!(
                    "{} message(s) were being sent when their daemon stopped; they may or may not have been delivered",
                    recovered.uncertain.len()
                ),
                details: serde_json::json!({"message_ids": recovered.uncertain}),
            });
        }
        Ok(recovered)
    }
}

async fn start_listener(
    shared: &Arc<Shared>,
    wakes: &Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>,
) -> Option<Listener> {
    let wakes = wakes.clone();
    Listener::start_or_warn(
        &shared.database_url,
        &[crate::outbound::CHANNEL],
        "lanes poll until it is back",
        move |_, payload| {
            if let Ok(connection) = payload.parse::<Uuid>()
                && let Some(w) = wakes.lock().expect("wakes lock").get(&connection)
            {
                w.notify_one();
            }
        },
    )
    .await
}

impl Actor for Dispatcher {
    type Msg = DispatcherMessage;
    type State = DispatcherState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let owner = lease::owner_name(&shared.node_id);
        let held = Arc::new(Held::default());
        let (marker, marker_task) = Marker::start(shared.pool.clone(), owner.clone());
        let released = held.clone();
        let alerting = shared.clone();
        let (recorder, _recorder_task) = Recorder::start(
            shared.pool.clone(),
            shared.sealer.clone(),
            owner.clone(),
            shared.settings.outbound.clone(),
            move |batch, applied| {
                released.remove(batch.iter().map(|d| d.message_id));
                for (message, user) in &applied.uncertain {
                    let condition = crate::alerts::conditions::message_uncertain(*user, *message);
                    crate::alerts::raise(&alerting, condition);
                }
            },
        );
        let ctx = Arc::new(LaneCtx {
            shared: shared.clone(),
            owner,
            held,
            marker,
            recorder,
            lanes: AtomicUsize::new(0),
            sending: Arc::new(AtomicUsize::new(0)),
            alerted: Mutex::new(HashMap::new()),
        });
        let wakes = Arc::new(Mutex::new(HashMap::new()));
        let listener = start_listener(&shared, &wakes).await;
        let mut state = DispatcherState {
            ctx,
            lanes: HashMap::new(),
            wakes,
            listener,
            _marker: marker_task,
            last_sweep: Instant::now(),
            last_renew: None,
            lease_tried: HashMap::new(),
            handing: HashMap::new(),
            last_rebalance: Instant::now(),
        };
        // Claims need a live lease; claims of this node's earlier incarnations come back now,
        // not at lease expiry.
        state.renew().await;
        if let Err(e) = state.sweep(true).await {
            tracing::warn!(error = %e, "outbox recovery at start failed; retried on the next sweep");
        }
        myself.send_interval(TICK, || DispatcherMessage::Tick);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DispatcherMessage::Tick => state.tick().await,
            DispatcherMessage::Sweep(reply) => {
                let _ = reply.send(state.sweep(false).await);
            }
            DispatcherMessage::Stats(reply) => {
                let _ = reply.send(DispatcherStats {
                    owner: state.ctx.owner.clone(),
                    lanes: state.lanes.keys().copied().collect(),
                    held: state.ctx.held.total(),
                    sending: state.ctx.sending.load(Ordering::SeqCst),
                    listening: state.listener.as_ref().is_some_and(Listener::alive),
                });
            }
            DispatcherMessage::Panic => panic!("fault injection in dispatcher"),
        }
        Ok(())
    }

    /// Graceful stop: lanes stop taking rows, sends already started finish (bounded by the
    /// send timeout, at most 10 s), their outcomes are written, and rows claimed but never
    /// attempted go back to the queue for any node to take.
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.lanes.clear();
        state.listener = None;
        let shared = state.ctx.shared.clone();
        let deadline = Instant::now()
            + shared
                .settings
                .outbound
                .send_timeout
                .min(Duration::from_secs(10));
        while state.ctx.sending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), state.ctx.recorder.flush()).await;
        match shared.pool.get().await {
            Ok(client) => match lease::release_owned(&client, &state.ctx.owner).await {
                Ok(n) if n > 0 => tracing::info!(released = n, "handed claimed outbox rows back"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not hand claimed outbox rows back; their leases will expire")
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not hand claimed outbox rows back; their leases will expire")
            }
        }
        Ok(())
    }
}
