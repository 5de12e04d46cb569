//! BusinessSupervisor: supervises the BusinessNumber actors, one per connected phone_number_id, each owning its Graph API client (issue 4 adds them).
//! Restarts follow the daemon's [`RestartPolicy`]; on stop it stops its children first.

use crate::shared::Shared;
use crate::supervision::{Children, RestartPolicy, StatusNode, react};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::sync::Arc;
use std::time::Duration;

pub enum BusinessSupervisorMessage {
    /// The status of every BusinessNumber, for `GET /v1/status`.
    Status(RpcReplyPort<Vec<StatusNode>>),
    /// Restart the named BusinessNumber; sent to itself once the backoff has passed.
    Restart(String),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(BusinessSupervisorMessage, status);

pub struct BusinessSupervisor;

pub struct BusinessSupervisorState {
    shared: Arc<Shared>,
    children: Children,
}

impl Actor for BusinessSupervisor {
    type Msg = BusinessSupervisorMessage;
    type State = BusinessSupervisorState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(BusinessSupervisorState {
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
            BusinessSupervisorMessage::Status(reply) => {
                let _ = reply.send(state.children.status().await);
            }
            BusinessSupervisorMessage::Restart(name) => {
                let decision = state.children.restart(&name, &myself.get_cell()).await;
                react(
                    &myself,
                    &state.shared,
                    "business_supervisor",
                    decision,
                    BusinessSupervisorMessage::Restart,
                );
            }
            BusinessSupervisorMessage::Panic => panic!("fault injection in business_supervisor"),
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
            "business_supervisor",
            decision,
            BusinessSupervisorMessage::Restart,
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
                supervisor = "business_supervisor",
                ?still,
                "children still running after stop"
            );
        }
        Ok(())
    }
}
