//! The Retention actor: every `RETENTION_INTERVAL_SECS` it runs [`retention::step`] until a
//! step purges nothing (at most [`STEPS_PER_PASS`] steps a pass, then it continues from its
//! own mailbox, so a large backlog never keeps a call waiting), and logs what it purged. A
//! purge can also be asked for at once ([`super::handle::RetentionHandle::purge_now`]).

use super::retention::{self, Purged};
use crate::shared::Shared;
use crate::store::StoreError;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Duration;

/// Steps one pass runs before it yields to the mailbox.
pub const STEPS_PER_PASS: usize = 200;

/// What went wrong asking the Retention actor.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("the retention actor is restarting")]
    NotRunning,
    #[error("the retention actor did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}
crate::unanswered_into!(RetentionError);

pub enum RetentionMessage {
    /// One pass over everything past retention (sent by its interval, and by itself while a
    /// pass stopped at its step cap).
    Tick,
    /// Run a whole pass now and reply with what it purged.
    PurgeNow(RpcReplyPort<Result<Purged, RetentionError>>),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(RetentionMessage);

pub struct Retention;

/// Runs steps until one purges nothing or `max_steps` ran; whether it finished, and the sum.
async fn pass(shared: &Shared, max_steps: usize) -> Result<(Purged, bool), StoreError> {
    let settings = &shared.settings.privacy;
    let mut total = Purged::default();
    for _ in 0..max_steps {
        let purged = retention::step(&shared.pool, &shared.settings.data_dir, settings).await?;
        total.add(&purged);
        if purged.total() == 0 {
            return Ok((total, true));
        }
    }
    Ok((total, false))
}

impl Actor for Retention {
    type Msg = RetentionMessage;
    type State = Arc<Shared>;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(shared.settings.privacy.retention_interval, || {
            RetentionMessage::Tick
        });
        Ok(shared)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        shared: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RetentionMessage::Tick => match pass(shared, STEPS_PER_PASS).await {
                Ok((purged, done)) => {
                    if purged.total() > 0 {
                        tracing::info!(?purged, "purged data past retention");
                    }
                    if !done {
                        let _ = myself.cast(RetentionMessage::Tick);
                    }
                }
                // PostgreSQL away: the next tick tries again.
                Err(e) => tracing::warn!(error = %e, "retention purge failed"),
            },
            RetentionMessage::PurgeNow(reply) => {
                let result = pass(shared, usize::MAX).await;
                let _ = reply.send(result.map(|(p, _)| p).map_err(Into::into));
            }
            RetentionMessage::Panic => panic!("fault injection in retention"),
        }
        Ok(())
    }
}
