//! Membership: this node's place among the nodes sharing one PostgreSQL (docs/ARCHITECTURE.md
//! §5). Every [`Ownership::renew_every`] it heartbeats and renews the node's leases in one
//! round ([`crate::nodes::ownership`]), then has the LiteSupervisor reconcile (stop sessions whose
//! lease was lost, hand some over when over its fair share ([`crate::nodes::rebalance`]),
//! take over free ones). It also holds the `LISTEN sincro_control` session:
//! commands one node sends another, such as "stop this Lite session" for a session whose
//! browser runs on another node, or "reload this Business number" after its credentials
//! changed. Started first and stopped last, so on a graceful stop it hands every lease back
//! after the sessions and lanes have ended, and other nodes take over at once.

use super::control::{CONTROL_CHANNEL, Control};
use crate::business::handle::BusinessSupervisorHandle;
use crate::lite::LiteSupervisorHandle;
use crate::outbound::listen::Listener;
use crate::shared::Shared;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;

pub enum MembershipMessage {
    /// Heartbeat, renew leases, reconcile; sent to itself every renewal period.
    Heartbeat,
    /// A command from the control channel.
    Control(Control),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(MembershipMessage);

#[derive(Clone)]
pub struct MembershipArgs {
    pub shared: Arc<Shared>,
    pub business: BusinessSupervisorHandle,
    pub lite: LiteSupervisorHandle,
}

pub struct Membership;

pub struct MembershipState {
    args: MembershipArgs,
    listener: Option<Listener>,
}

impl MembershipState {
    /// One round: the testable body of the heartbeat loop.
    pub async fn heartbeat(&mut self, myself: &ActorRef<MembershipMessage>) {
        let shared = &self.args.shared;
        match shared.pool.get().await {
            Ok(client) => match shared.ownership.heartbeat(&client).await {
                Ok(lost) if !lost.is_empty() => {
                    tracing::warn!(lost = ?lost, "leases were taken over by another node");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not renew this node's leases"),
            },
            Err(e) => tracing::warn!(error = %e, "could not renew this node's leases"),
        }
        self.args.lite.reconcile();
        if !self.listener.as_ref().is_some_and(Listener::alive) {
            self.listener = listen(shared, myself).await;
        }
    }

    fn control(&self, control: Control) {
        let me = self.args.shared.node_id.as_str();
        match control {
            Control::LiteStop { node, id, logout } if node == me => {
                let lite = self.args.lite.clone();
                tokio::spawn(async move {
                    if let Err(e) = lite.stop(id, logout).await {
                        tracing::warn!(session = %id, error = %e, "could not stop the session another node asked to stop");
                    }
                });
            }
            Control::BusinessReload { from, id } if from != me => {
                self.args.business.reload(id);
            }
            _ => {}
        }
    }
}

async fn listen(shared: &Arc<Shared>, myself: &ActorRef<MembershipMessage>) -> Option<Listener> {
    let me = myself.clone();
    Listener::start_or_warn(
        &shared.database_url,
        &[CONTROL_CHANNEL],
        "retried on the next heartbeat",
        move |_, payload| match serde_json::from_str::<Control>(payload) {
            Ok(c) => {
                let _ = me.cast(MembershipMessage::Control(c));
            }
            Err(_) => tracing::warn!("ignored a control notification that does not parse"),
        },
    )
    .await
}

impl Actor for Membership {
    type Msg = MembershipMessage;
    type State = MembershipState;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: MembershipArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = MembershipState {
            args,
            listener: None,
        };
        // At the first start of the process only (not after a restart of this actor, while
        // the sessions run on).
        let shared = &state.args.shared;
        if let Ok(client) = shared.pool.get().await {
            match shared.ownership.clear_earlier_run(&client).await {
                Ok(n) if n > 0 => {
                    tracing::info!(dropped = n, "dropped leases of this node's earlier run")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not drop the leases of an earlier run"),
            }
        }
        state.heartbeat(&myself).await;
        let every = state.args.shared.ownership.renew_every();
        myself.send_interval(every, || MembershipMessage::Heartbeat);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MembershipMessage::Heartbeat => state.heartbeat(&myself).await,
            MembershipMessage::Control(c) => state.control(c),
            MembershipMessage::Panic => panic!("fault injection in membership"),
        }
        Ok(())
    }

    /// Hands every lease back and marks the node stopped. A crash of this actor alone does
    /// not come here with the daemon still running: only the daemon's own stop does.
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.listener = None;
        let shared = &state.args.shared;
        match shared.pool.get().await {
            Ok(client) => match shared.ownership.release_all(&client).await {
                Ok(n) if n > 0 => tracing::info!(released = n, "handed this node's leases back"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not hand leases back; they expire by themselves")
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not hand leases back; they expire by themselves")
            }
        }
        Ok(())
    }
}
