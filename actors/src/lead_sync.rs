//! LeadSync: phone → lead. Normalises numbers to E.164 (see [`crate::phone`]); issue 3 adds
//! find-or-create and duplicate merging on top of the same actor.

use crate::phone::{self, NormalizedPhone, PhoneError};
use crate::shared::Shared;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;

pub enum LeadSyncMessage {
    /// Normalise a phone number to E.164, reading national formats in `region`.
    Normalize {
        phone: String,
        region: Option<String>,
        reply: RpcReplyPort<Result<NormalizedPhone, PhoneError>>,
    },
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(LeadSyncMessage);

pub struct LeadSync;

impl Actor for LeadSync {
    type Msg = LeadSyncMessage;
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
            LeadSyncMessage::Normalize {
                phone,
                region,
                reply,
            } => {
                let _ = reply.send(phone::normalize(&phone, region.as_deref()));
            }
            LeadSyncMessage::Panic => panic!("fault injection in lead_sync"),
        }
        Ok(())
    }
}
