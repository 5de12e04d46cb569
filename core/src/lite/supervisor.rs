//! LiteSupervisor: supervises the LiteSession actors, one per active `whatsapp_lite_sessions`
//! row, each owning one headless Chromium ([`crate::lite`]).
//!
//! - On start it first kills Chromium trees a killed daemon left behind ([`reaper`]), then
//!   starts again every session that was wanted (reached WORKING and was not stopped since).
//! - A session that fails (browser crash, OOM, `kill -9`, a page that stops answering) is
//!   restarted after the daemon's backoff and comes back from the same profile; one that fails
//!   more than the policy allows within the window is marked FAILED in the tables, raises an
//!   alert for its user, and is left down.
//! - A session that ends on purpose (stopped, logged out, QR never scanned) stops with a
//!   `final:` reason and is forgotten, not restarted.
//! - On stop it stops its sessions first (each closes its browser and stays wanted, so the
//!   next start resumes it).
//! - A session runs only on the node holding its lease ([`crate::nodes::ownership`]): taken before
//!   the browser starts, given back when the session ends on purpose or FAILED. After each
//!   heartbeat it takes over wanted sessions whose lease is free (a stopped or dead node's),
//!   within its fair share, restoring their profiles from the sealed snapshot; every second it
//!   stops sessions whose lease it no longer holds. A stop asked on a node that does not run
//!   the session is sent to the node that does.
//! - A node running more than its fair share hands a few WORKING sessions at a time to nodes
//!   with room ([`handover`]): sends finished first, then stopped with a fresh snapshot.

use crate::connection::ConnectionKind;
use crate::lite::error::LiteSupervisorError;
use crate::lite::session::FINAL;
use crate::lite::session::handle::LiteSessionHandle;
use crate::lite::{
    LiteSession, LiteSessionMessage, SessionArgs, Status, handover, profile, reaper, reason, store,
};
use crate::nodes::control::{Control, broadcast};
use crate::nodes::ownership::Ownership;
use crate::nodes::rebalance;
use crate::shared::Shared;
use crate::store::StoreError;
use crate::supervision::{ChildSpec, Children, Decision, RestartPolicy, Slot, StatusNode, react};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub enum LiteSupervisorMessage {
    /// The status of every LiteSession, for `GET /v1/status`.
    Status(RpcReplyPort<Vec<StatusNode>>),
    /// Restart the named LiteSession; sent to itself once the backoff has passed.
    Restart(String),
    /// Start the actor of a session whose row is STARTING (no-op if it already runs).
    Start {
        id: Uuid,
        usuario_id: Uuid,
        reply: RpcReplyPort<Result<(), LiteSupervisorError>>,
    },
    /// Stop a session on purpose (`logout`: unlink and wipe its profile); replies when done.
    Stop {
        id: Uuid,
        logout: bool,
        reply: RpcReplyPort<()>,
    },
    /// The running actor of a session, if any (pairing codes go straight to it).
    Session {
        id: Uuid,
        reply: RpcReplyPort<Option<ActorRef<LiteSessionMessage>>>,
    },
    /// Start every session that should run and whose lease is free, within this node's fair
    /// share (sent to itself at start, retried while the database is unreachable; and by the
    /// Membership after every heartbeat).
    ResumeAll,
    /// Stop the sessions whose lease this node no longer holds, hand some over if this node
    /// runs more than its fair share, then [`Self::ResumeAll`].
    Reconcile,
    /// Stop the sessions whose lease this node no longer holds (local check, every second).
    Fence,
    /// Stop a session being handed over to another node, its sends finished (§5).
    HandOver(Uuid),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(LiteSupervisorMessage, status);

/// What the LiteSupervisor is started with.
#[derive(Clone)]
pub struct LiteSupervisorArgs {
    pub shared: Arc<Shared>,
}

pub struct LiteSupervisor;

struct SessionEntry {
    usuario_id: Uuid,
    slot: Slot<LiteSessionMessage>,
}

pub struct LiteSupervisorState {
    args: LiteSupervisorArgs,
    children: Children,
    sessions: HashMap<Uuid, SessionEntry>,
    /// Sessions being handed over to another node, until stopped here.
    handing: HashSet<Uuid>,
}

impl LiteSupervisorState {
    fn session_of(&self, cell: &ractor::ActorCell) -> Option<Uuid> {
        let id = cell.get_id();
        self.sessions
            .iter()
            .find(|(_, e)| e.slot.get().is_some_and(|r| r.get_id() == id))
            .map(|(k, _)| *k)
    }

    fn forget(&mut self, id: Uuid) {
        self.children.forget(&id.to_string());
        self.sessions.remove(&id);
    }

    /// Forgets a session that ended here (for good, or handed to another node) and gives its
    /// lease back.
    fn end(&mut self, id: Uuid) {
        self.forget(id);
        let shared = self.args.shared.clone();
        tokio::spawn(async move {
            handover::give_back(&shared, id).await;
        });
    }

    /// Starts handing a few sessions over when this node runs more than its fair share (one
    /// batch at a time): their lanes stop at once; each is stopped by [`Self::hand_over`]
    /// once its sends finished.
    async fn rebalance(&mut self, myself: &ActorRef<LiteSupervisorMessage>) {
        if !self.handing.is_empty() {
            return;
        }
        let shared = self.args.shared.clone();
        let running: Vec<Uuid> = self
            .sessions
            .keys()
            .copied()
            .filter(|id| shared.ownership.holds(ConnectionKind::Lite, *id))
            .collect();
        let picked = match handover::pick(&shared, running).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not weigh this node's Lite sessions against the others'");
                return;
            }
        };
        for id in picked {
            tracing::info!(session = %id, "handing the Lite session over to a node with room");
            shared.ownership.leave(ConnectionKind::Lite, id);
            self.handing.insert(id);
            let (me, shared) = (myself.clone(), shared.clone());
            tokio::spawn(async move {
                let limit = shared.settings.outbound.send_timeout;
                rebalance::wait_drained(&shared, id, limit).await;
                let _ = me.cast(LiteSupervisorMessage::HandOver(id));
            });
        }
    }

    /// Stops a session being handed over (it saves its snapshot and closes its browser, as on
    /// a graceful stop, and stays wanted), then gives its lease to whichever node has room.
    async fn hand_over(&mut self, id: Uuid) {
        self.handing.remove(&id);
        if !self.sessions.contains_key(&id) {
            return; // It ended meanwhile; its lease went with it.
        }
        let shared = self.args.shared.clone();
        let before = handover::snapshot_before(&shared, id).await;
        if let Some(index) = self.children.index_by_name(&id.to_string()) {
            self.children.stop_one(index, Duration::from_secs(15)).await;
        }
        self.forget(id);
        tokio::spawn(handover::finish(shared, id, before));
    }

    /// Stops (without ending them: they stay wanted) the sessions whose lease this node no
    /// longer holds, so another node may run them.
    async fn fence(&mut self) {
        let lost: Vec<Uuid> = self
            .sessions
            .keys()
            .copied()
            .filter(|id| !self.args.shared.ownership.holds(ConnectionKind::Lite, *id))
            .collect();
        for id in lost {
            tracing::warn!(session = %id, "lost the session's lease; closing its browser here");
            if let Some(index) = self.children.index_by_name(&id.to_string()) {
                self.children.stop_one(index, Duration::from_secs(15)).await;
            }
            self.end(id);
        }
    }

    /// Wanted sessions not running here whose lease is free or expired, at most this node's
    /// fair share less what it runs; their leases are taken here.
    async fn resumable(&self) -> Result<Vec<(Uuid, Uuid)>, String> {
        let shared = &self.args.shared;
        let wanted = store::autostart(&shared.pool)
            .await
            .map_err(|e| e.to_string())?;
        // Sessions leaving this node are not taken back while their lease is still held.
        let leaving = shared.ownership.leaving(ConnectionKind::Lite);
        let candidates: Vec<Uuid> = wanted
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !self.sessions.contains_key(id) && !leaving.contains(id))
            .collect();
        let client = shared.pool.get().await.map_err(|e| e.to_string())?;
        let got = shared
            .ownership
            .acquire_share(&client, ConnectionKind::Lite, &candidates, wanted.len())
            .await
            .map_err(|e| e.to_string())?;
        Ok(wanted
            .into_iter()
            .filter(|(id, _)| got.contains(id))
            .collect())
    }

    async fn start(
        &mut self,
        myself: &ActorRef<LiteSupervisorMessage>,
        id: Uuid,
        usuario_id: Uuid,
    ) -> Result<(), LiteSupervisorError> {
        if self.children.index_by_name(&id.to_string()).is_some() {
            return Ok(());
        }
        let shared = &self.args.shared;
        let client = shared.pool.get().await.map_err(StoreError::from)?;
        let got = shared
            .ownership
            .acquire(&client, ConnectionKind::Lite, &[id])
            .await
            .map_err(StoreError::from)?;
        if got.is_empty() {
            // Another live node runs it.
            tracing::info!(session = %id, "Lite session runs on another node");
            return Ok(());
        }
        let slot: Slot<LiteSessionMessage> = Slot::default();
        let args = SessionArgs {
            shared: self.args.shared.clone(),
            id,
            usuario_id,
        };
        let spec = ChildSpec::new(id.to_string(), false, slot.clone(), move || {
            (LiteSession, args.clone())
        });
        self.sessions.insert(id, SessionEntry { usuario_id, slot });
        if let Err(e) = self.children.add_and_start(spec, &myself.get_cell()).await {
            self.end(id);
            return Err(LiteSupervisorError::Spawn(e.to_string()));
        }
        Ok(())
    }
}

impl Actor for LiteSupervisor {
    type Msg = LiteSupervisorMessage;
    type State = LiteSupervisorState;
    type Arguments = LiteSupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: LiteSupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let lite_dir = args.shared.settings.lite.lite_dir();
        reaper::reap(&lite_dir).await;
        myself.cast(LiteSupervisorMessage::ResumeAll)?;
        myself.send_interval(Duration::from_secs(1), || LiteSupervisorMessage::Fence);
        Ok(LiteSupervisorState {
            args,
            children: Children::new(RestartPolicy::default()),
            sessions: HashMap::new(),
            handing: HashSet::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LiteSupervisorMessage::Status(reply) => {
                let _ = reply.send(state.children.status().await);
            }
            LiteSupervisorMessage::Restart(name) => {
                let decision = state.children.restart(&name, &myself.get_cell()).await;
                self.decide(&myself, state, decision);
            }
            LiteSupervisorMessage::Start {
                id,
                usuario_id,
                reply,
            } => {
                let _ = reply.send(state.start(&myself, id, usuario_id).await);
            }
            LiteSupervisorMessage::Stop { id, logout, reply } => {
                let running = state
                    .sessions
                    .get(&id)
                    .and_then(|e| e.slot.get())
                    .filter(|r| {
                        matches!(
                            r.get_status(),
                            ractor::ActorStatus::Running | ractor::ActorStatus::Starting
                        )
                    });
                match running {
                    Some(session) => {
                        // The session closes its browser and ends with a `final:` reason; do
                        // not block this mailbox meanwhile.
                        tokio::spawn(async move {
                            if let Err(e) = LiteSessionHandle::new(session).stop(logout).await {
                                tracing::warn!(session = %id, error = %e, "the session did not confirm its stop");
                            }
                            let _ = reply.send(());
                        });
                    }
                    None => {
                        let shared = state.args.shared.clone();
                        if !state.sessions.contains_key(&id)
                            && let Some(node) = elsewhere(&shared, id).await
                        {
                            // Its browser runs on another node: that node stops it.
                            tokio::spawn(async move {
                                stop_elsewhere(&shared, node, id, logout).await;
                                let _ = reply.send(());
                            });
                            return Ok(());
                        }
                        // Not running (waiting for a restart, or FAILED): settle it here.
                        state.end(id);
                        let dir = shared.settings.lite.session_dir(id);
                        if logout {
                            let _ = tokio::task::spawn_blocking(move || profile::wipe(&dir)).await;
                            let _ = store::clear_snapshot(&shared.pool, id).await;
                        }
                        let why = if logout {
                            reason::LOGOUT
                        } else {
                            reason::STOPPED
                        };
                        if let Err(e) = store::set_status(
                            &shared.pool,
                            &shared.sealer,
                            id,
                            Status::Stopped,
                            Some(why),
                            None,
                            None,
                        )
                        .await
                        {
                            tracing::error!(session = %id, error = %e, "could not record the stop");
                        }
                        let _ = reply.send(());
                    }
                }
            }
            LiteSupervisorMessage::Session { id, reply } => {
                let _ = reply.send(state.sessions.get(&id).and_then(|e| e.slot.get()));
            }
            LiteSupervisorMessage::Fence => state.fence().await,
            LiteSupervisorMessage::Reconcile => {
                state.fence().await;
                state.rebalance(&myself).await;
                let _ = myself.cast(LiteSupervisorMessage::ResumeAll);
            }
            LiteSupervisorMessage::HandOver(id) => state.hand_over(id).await,
            LiteSupervisorMessage::ResumeAll => match state.resumable().await {
                Ok(rows) => {
                    if !rows.is_empty() {
                        tracing::info!(sessions = rows.len(), "starting Lite sessions");
                    }
                    for (id, usuario_id) in rows {
                        if let Err(e) = state.start(&myself, id, usuario_id).await {
                            tracing::error!(session = %id, error = %e, "could not start a Lite session");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list Lite sessions to resume; retrying in 5 s");
                    myself.send_after(Duration::from_secs(5), || LiteSupervisorMessage::ResumeAll);
                }
            },
            LiteSupervisorMessage::Panic => panic!("fault injection in lite_supervisor"),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match &evt {
            SupervisionEvent::ActorTerminated(cell, _, Some(why)) if why.starts_with(FINAL) => {
                if let Some(id) = state.session_of(cell) {
                    tracing::info!(session = %id, reason = %why.trim_start_matches(FINAL), "Lite session ended");
                    state.end(id);
                }
                return Ok(());
            }
            _ => {}
        }
        let failed = match &evt {
            SupervisionEvent::ActorFailed(cell, err) => state
                .session_of(cell)
                .map(|id| (id, err.to_string().chars().take(300).collect::<String>())),
            _ => None,
        };
        let decision = state.children.on_event(&evt);
        if let (Some((id, detail)), Decision::Restart { .. }) = (failed, &decision) {
            // Show the restart in the tables at once; the new incarnation takes over.
            let shared = state.args.shared.clone();
            tokio::spawn(async move {
                let _ = store::set_status(
                    &shared.pool,
                    &shared.sealer,
                    id,
                    Status::Starting,
                    Some(reason::BROWSER_DIED),
                    Some(&detail),
                    None,
                )
                .await;
            });
        }
        self.decide(&myself, state, decision);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state
            .children
            .stop_all_or_warn("lite_supervisor", Duration::from_secs(15))
            .await;
        Ok(())
    }
}

impl LiteSupervisor {
    /// Acts on a restart decision; a session that failed too often becomes FAILED with an
    /// alert for its user.
    fn decide(
        &self,
        myself: &ActorRef<LiteSupervisorMessage>,
        state: &mut LiteSupervisorState,
        decision: Decision,
    ) {
        match decision {
            Decision::GaveUp { name, error } => {
                let Ok(id) = name.parse::<Uuid>() else {
                    return;
                };
                let usuario_id = state.sessions.get(&id).map(|e| e.usuario_id);
                state.end(id);
                let shared = state.args.shared.clone();
                let detail: String = error.chars().take(300).collect();
                tokio::spawn(async move {
                    if let Err(e) = store::set_status(
                        &shared.pool,
                        &shared.sealer,
                        id,
                        Status::Failed,
                        Some(reason::TOO_MANY_FAILURES),
                        Some(&detail),
                        None,
                    )
                    .await
                    {
                        tracing::error!(session = %id, error = %e, "could not record FAILED");
                    }
                });
                let last_error = error.clone();
                crate::alerts::raise(
                    &state.args.shared,
                    crate::alerts::conditions::lite_failed(id, usuario_id, &last_error),
                );
            }
            other => react(
                myself,
                &state.args.shared,
                "lite_supervisor",
                other,
                LiteSupervisorMessage::Restart,
            ),
        }
    }
}

/// The other live node holding the session's lease, if any.
async fn elsewhere(shared: &Arc<Shared>, id: Uuid) -> Option<String> {
    let client = shared.pool.get().await.ok()?;
    Ownership::owner(&client, ConnectionKind::Lite, id)
        .await
        .ok()
        .flatten()
        .filter(|node| *node != shared.node_id)
}

/// Asks `node` to stop the session and waits (at most 35 s) until the store shows it stopped.
async fn stop_elsewhere(shared: &Arc<Shared>, node: String, id: Uuid, logout: bool) {
    let control = Control::LiteStop { node, id, logout };
    match shared.pool.get().await {
        Ok(client) => {
            if let Err(e) = broadcast(&client, &control).await {
                tracing::warn!(session = %id, error = %e, "could not ask the session's node to stop it");
                return;
            }
        }
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "could not ask the session's node to stop it");
            return;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(35);
    while std::time::Instant::now() < deadline {
        if let Ok(client) = shared.pool.get().await
            && let Ok(Some(row)) = client
                .query_opt(
                    "SELECT status FROM whatsapp_lite_sessions WHERE id = $1",
                    &[&id],
                )
                .await
            && row.get::<_, String>(0) == Status::Stopped.as_str()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!(session = %id, "the session's node did not stop it in time");
}
