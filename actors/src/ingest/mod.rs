//! Ingest: turns inbound messages and status updates (Business webhooks, Lite page events)
//! into leads, conversations, messages and events, one transaction per batch ([`batch`]).
//! A caller is answered only after its batch committed, so it may acknowledge upstream then.

pub mod batch;
pub mod model;

use crate::shared::Shared;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;

pub use model::*;

pub enum IngestMessage {
    /// Store a batch in one transaction; replies once it committed (or with why it did not).
    Batch {
        items: Vec<InboundItem>,
        reply: RpcReplyPort<Result<IngestReport, String>>,
    },
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
        shared: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            IngestMessage::Batch { items, reply } => {
                let result = run(shared, &items).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, items = items.len(), "ingest batch failed");
                }
                let _ = reply.send(result);
            }
            IngestMessage::Panic => panic!("fault injection in ingest"),
        }
        Ok(())
    }
}

async fn run(shared: &Shared, items: &[InboundItem]) -> Result<IngestReport, String> {
    let mut client = shared.pool.get().await.map_err(|e| e.to_string())?;
    let report = batch::ingest_batch(
        &mut client,
        &shared.sealer,
        shared.settings.default_region.as_deref(),
        items,
    )
    .await
    .map_err(|e| e.to_string())?;
    metrics::counter!("sincro_ingest_messages_total").increment(report.messages_inserted as u64);
    metrics::counter!("sincro_ingest_statuses_total").increment(report.statuses_applied as u64);
    Ok(report)
}
