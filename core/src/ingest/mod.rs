//! Ingest: turns inbound messages and status updates (Business webhooks, Lite page events)
//! into leads, conversations, messages and events, one transaction per batch ([`batch`]).
//! A caller is answered only after its batch committed, so it may acknowledge upstream then.
//! Up to `ingest_concurrency` batches run at once on their own connections (the mailbox waits
//! for a free slot, which is the back-pressure); batches touch rows in a sorted order and a
//! batch that still meets a deadlock is retried whole.

pub mod batch;
pub mod dead_letter;
pub mod drain;
pub mod group_commit;
pub mod handle;
pub mod inbox;
pub mod isolate;
pub mod lanes;
pub mod model;

use crate::shared::Shared;
use crate::store::StoreError;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub use handle::IngestHandle;
pub use model::*;

pub enum IngestMessage {
    /// Store a batch in one transaction; replies once it committed (or with why it did not).
    Batch {
        items: Vec<InboundItem>,
        reply: RpcReplyPort<Result<IngestReport, IngestError>>,
    },
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(IngestMessage);

pub struct Ingest;

pub struct IngestState {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
}

impl Actor for Ingest {
    type Msg = IngestMessage;
    type State = IngestState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let slots = Arc::new(Semaphore::new(shared.settings.ingest_concurrency.max(1)));
        Ok(IngestState { shared, slots })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            IngestMessage::Batch { items, reply } => {
                let permit = state.slots.clone().acquire_owned().await?;
                let shared = state.shared.clone();
                tokio::spawn(async move {
                    let result = run(&shared, &items).await;
                    if let Err(e) = &result {
                        tracing::error!(error = %e, items = items.len(), "ingest batch failed");
                    }
                    let _ = reply.send(result);
                    drop(permit);
                });
            }
            IngestMessage::Panic => panic!("fault injection in ingest"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Let batches in flight commit (or fail) before the stop completes.
        let all = state.shared.settings.ingest_concurrency.max(1) as u32;
        let _ = tokio::time::timeout(Duration::from_secs(10), state.slots.acquire_many(all)).await;
        Ok(())
    }
}

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The store could not be reached, or kept losing races: the same batch may work later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused something in the batch (a value or a constraint): the same batch
    /// fails the same way every time, so the item at fault must be found and set aside.
    #[error("store refused the batch: {0}")]
    Refused(String),
    /// Asked through [`IngestHandle`]: no Ingest runs (it is restarting).
    #[error("ingest is restarting")]
    NotRunning,
    /// Asked through [`IngestHandle`]: the batch did not commit within the call's timeout (it
    /// may still commit; batches are idempotent, so sending it again is safe).
    #[error("ingest did not answer within {0:?}")]
    TimedOut(Duration),
}
crate::unanswered_into!(IngestError);

impl IngestError {
    fn from_store(e: &StoreError) -> IngestError {
        use tokio_postgres::error::SqlState;
        let transient = e.is_unavailable()
            || e.is_retryable_conflict()
            || e.sql_state().is_some_and(|s| {
                // Connection, resources, operator intervention, system errors: not the data.
                let class = &s.code()[..2];
                matches!(class, "08" | "53" | "57" | "58" | "40")
                    || *s == SqlState::LOCK_NOT_AVAILABLE
            });
        // The server's own message says what it refused (its detail, which may quote row
        // values, is left out).
        let db = match e {
            StoreError::Db(db) => db.as_db_error(),
            _ => None,
        };
        let why = db.map_or_else(
            || e.to_string(),
            |d| {
                format!(
                    "the database refused it ({}): {}",
                    d.code().code(),
                    d.message()
                )
            },
        );
        if transient {
            IngestError::Unavailable(why)
        } else {
            IngestError::Refused(why)
        }
    }
}

/// Runs one batch, retrying it whole when it lost a deadlock or serialisation race. The
/// Ingest actor runs batches with it; the inbox drain calls it for the items of its rows.
pub async fn run(shared: &Shared, items: &[InboundItem]) -> Result<IngestReport, IngestError> {
    if items.is_empty() {
        return Ok(IngestReport::default());
    }
    let mut attempt = 0;
    let report = loop {
        attempt += 1;
        let mut client = shared
            .pool
            .get()
            .await
            .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        match batch::ingest_batch(
            &mut client,
            &shared.sealer,
            shared.settings.default_region.as_deref(),
            &shared.settings.privacy.opt_out_keywords,
            items,
        )
        .await
        {
            Ok(report) => break report,
            Err(e) if attempt < 4 && e.is_retryable_conflict() => {
                tracing::warn!(attempt, "ingest batch met a concurrent batch; retrying");
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            Err(e) => return Err(IngestError::from_store(&e)),
        }
    };
    crate::crm::auto_reply::send_due(shared, &report.auto_replies).await;
    metrics::counter!("sincro_ingest_messages_total").increment(report.messages_inserted as u64);
    metrics::counter!("sincro_ingest_statuses_total").increment(report.statuses_applied as u64);
    tracing::debug!(
        messages = report.messages_inserted,
        statuses = report.statuses_applied,
        "inbound batch stored"
    );
    Ok(report)
}
