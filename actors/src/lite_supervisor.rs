//! LiteSupervisor: supervises the LiteSession actors, one per whatsapp_lite_sessions row, each owning one headless Chromium (issue 6 adds them).
//! Restarts follow the daemon's [`RestartPolicy`]; on stop it stops its children first.

use crate::shared::Shared;
use crate::supervision::{Children, RestartPolicy, StatusNode, react};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::sync::Arc;
use std::time::Duration;

pub enum LiteSupervisorMessage {
    /// The status of every LiteSession, for `GET /v1/status`.
    Status(RpcReplyPort<Vec<StatusNode>>),
    /// Restart the named LiteSession; sent to itself once the backoff has passed.
    Restart(String),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(LiteSupervisorMessage, status);

pub struct LiteSupervisor;

pub struct LiteSupervisorState {
    shared: Arc<Shared>,
    children: Children,
}

impl Actor for LiteSupervisor {
    type Msg = LiteSupervisorMessage;
    type State = LiteSupervisorState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(LiteSupervisorState {
            shared,
            children: Children::new(RestartPolicy::default()),
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
                react(
                    &myself,
                    &state.shared,
                    "lite_supervisor",
                    decision,
                    LiteSupervisorMessage::Restart,
                );
            }
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
        let decision = state.children.on_event(&evt);
        react(
            &myself,
            &state.shared,
            "lite_supervisor",
            decision,
            LiteSupervisorMessage::Restart,
        );
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let still = state.children.stop_all(Duration::from_secs(10)).await;
        if !still.is_empty() {
            tracing::warn!(
                supervisor = "lite_supervisor",
                ?still,
                "children still running after stop"
            );
        }
        Ok(())
    }
}
