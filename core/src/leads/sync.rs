//! LeadSync: phone → lead. Normalises numbers to E.164 (see [`crate::phone`]) and merges the
//! leads of a user whose phones normalise to the same number. Ingest resolves leads inside its
//! own batch transaction with the same store functions ([`crate::leads::store`]); this actor
//! serves the API's requests, through [`super::handle::LeadSyncHandle`].

use super::store as leads;
use crate::phone::{self, NormalizedPhone, PhoneError};
use crate::shared::Shared;
use crate::store::StoreError;
use crate::store::events::{self, NewEvent};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What went wrong asking LeadSync.
#[derive(Debug, thiserror::Error)]
pub enum LeadSyncError {
    #[error("lead sync is restarting")]
    NotRunning,
    #[error("lead sync did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The phone number cannot be read as one.
    #[error("{0}")]
    Phone(#[from] PhoneError),
}
crate::unanswered_into!(LeadSyncError);

pub enum LeadSyncMessage {
    /// Normalise a phone number to E.164, reading national formats in `region`.
    Normalize {
        phone: String,
        region: Option<String>,
        reply: RpcReplyPort<Result<NormalizedPhone, PhoneError>>,
    },
    /// Merge every group of the user's leads whose phones are one number; replies with the
    /// number of leads merged away.
    MergeDuplicates {
        usuario_id: Uuid,
        reply: RpcReplyPort<Result<usize, LeadSyncError>>,
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
        shared: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LeadSyncMessage::Normalize {
                phone,
                region,
                reply,
            } => {
                let _ = reply.send(phone::normalize(&phone, region.as_deref()));
            }
            LeadSyncMessage::MergeDuplicates { usuario_id, reply } => {
                let _ = reply.send(merge(shared, usuario_id).await.map_err(Into::into));
            }
            LeadSyncMessage::Panic => panic!("fault injection in lead_sync"),
        }
        Ok(())
    }
}

async fn merge(shared: &Shared, usuario_id: Uuid) -> Result<usize, crate::store::StoreError> {
    let mut client = shared.pool.get().await?;
    let tx = client.transaction().await?;
    let region = shared.user_region(&tx, usuario_id).await?;
    let merged = leads::merge_duplicates(&tx, usuario_id, region.as_deref()).await?;
    let count = merged
        .iter()
        .map(|e| e.data["merged_ids"].as_array().map_or(0, Vec::len))
        .sum();
    let new: Vec<NewEvent> = merged
        .into_iter()
        .map(|e| NewEvent {
            usuario_id: e.usuario_id,
            kind: e.kind,
            data: e.data,
        })
        .collect();
    events::append_many(&tx, &shared.sealer, &new).await?;
    tx.commit().await?;
    Ok(count)
}
