//! Ingest: Turns inbound messages and status updates (Business webhooks, Lite page events) into leads, conversations, messages and events, one transaction per batch (issue 3).
//! Until then it runs under the Daemon like its siblings, so supervision is exercised from the start.

use crate::shared::Shared;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;

pub enum IngestMessage {
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(IngestMessage);

pub struct Ingest;

impl Actor for Ingest {
    type Msg = IngestMessage;
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
            IngestMessage::Panic => panic!("fault injection in ingest"),
        }
    }
}
