//! Hub: Fans events out to the WebSocket subscribers of their user, across nodes through LISTEN/NOTIFY (issue 3).
//! Until then it runs under the Daemon like its siblings, so supervision is exercised from the start.

use crate::shared::Shared;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;

pub enum HubMessage {
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(HubMessage);

pub struct Hub;

impl Actor for Hub {
    type Msg = HubMessage;
    type State = Arc<Shared>;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(shared)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HubMessage::Panic => panic!("fault injection in hub"),
        }
    }
}
