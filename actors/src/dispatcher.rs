//! Dispatcher: Claims due rows of the durable outbox and routes each message to the actor that owns its connection (issue 5).
//! Until then it runs under the Daemon like its siblings, so supervision is exercised from the start.

use crate::shared::Shared;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;

pub enum DispatcherMessage {
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(DispatcherMessage);

pub struct Dispatcher;

impl Actor for Dispatcher {
    type Msg = DispatcherMessage;
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
            DispatcherMessage::Panic => panic!("fault injection in dispatcher"),
        }
    }
}
