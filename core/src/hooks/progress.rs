//! Group commit of the lanes' rounds: the rounds of every lane of one Dispatcher incarnation
//! that are waiting to be written share one statement, one commit and one pooled connection.
//!
//! Each lane round ends by moving its endpoint's cursor, recording the round's attempts and
//! renewing its lease. Written one by one, ten busy endpoints cost PostgreSQL a thousand
//! commits a second, and their lanes (which read while their last round is written) held up
//! to two pooled connections each, so they queued for connections behind one another and
//! behind the rest of the daemon. Here the rounds queued while earlier ones commit go out
//! together ([`cursor::advance_many`]) on at most [`IN_FLIGHT`] connections, and each lane is
//! answered with its own endpoint's outcome once that commit returned. A lone round waits for
//! nothing but its own commit.
//!
//! The rounds of one statement, and of two statements committing at once, are of distinct
//! endpoints (a lane waits for its last round's answer before it writes the next one), so two
//! statements do not wait for each other's rows.

use super::cursor::{self, Advance};
use crate::store::StoreError;
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

/// Rounds per statement at most.
pub const MAX_ROUNDS: usize = 64;
/// Statements committing at once (each on its own pooled connection).
pub const IN_FLIGHT: usize = 2;

/// What writing a round found: its endpoint's `failing_since` after the write, or None when
/// nothing was written (the endpoint changed through the API, or the lease was lost).
pub type Written = Option<Option<OffsetDateTime>>;

struct Pending {
    round: Advance,
    done: oneshot::Sender<Result<Written, Arc<StoreError>>>,
}

/// The way into the writer task: [`ProgressWriter::write`] answers once the round committed.
#[derive(Clone)]
pub struct ProgressWriter {
    pool: Pool,
    owner: Arc<str>,
    lease: Duration,
    queue: mpsc::UnboundedSender<Pending>,
}

impl ProgressWriter {
    /// Starts the writer task for lease owner `owner` on the current runtime; it ends when
    /// every handle is dropped, after answering what it was given.
    pub fn start(pool: Pool, owner: &str, lease: Duration) -> Self {
        // Unbounded, yet bounded: each lane has at most one round waiting here.
        let (queue, rx) = mpsc::unbounded_channel();
        let owner: Arc<str> = owner.into();
        tokio::spawn(run(pool.clone(), owner.clone(), lease, rx));
        ProgressWriter {
            pool,
            owner,
            lease,
            queue,
        }
    }

    /// Hands `round` to the writer at once, without waiting: [`ProgressWriter::written`]
    /// waits for its answer.
    pub fn submit(&self, round: Advance) -> Submitted {
        let (done, answer) = oneshot::channel();
        match self.queue.send(Pending { round, done }) {
            Ok(()) => Submitted::Queued(answer),
            Err(mpsc::error::SendError(pending)) => Submitted::Alone(pending.round),
        }
    }

    /// The answer to a submitted round, once its statement committed (or failed).
    pub async fn written(&self, submitted: Submitted) -> Result<Written, StoreError> {
        match submitted {
            Submitted::Queued(answer) => match answer.await {
                Ok(result) => result.map_err(StoreError::Shared),
                // The task ended with the round in hand: whether it committed is unknown;
                // the lane reloads and repeats the round (with the same delivery ids).
                Err(_) => Ok(None),
            },
            Submitted::Alone(round) => {
                let rounds = std::slice::from_ref(&round);
                let written = flush(&self.pool, &self.owner, self.lease, rounds)
                    .await
                    .map_err(StoreError::Shared)?;
                Ok(written.get(&round.id).copied())
            }
        }
    }

    /// Writes `round` with the next statement; resolves once that committed (or failed).
    pub async fn write(&self, round: Advance) -> Result<Written, StoreError> {
        self.written(self.submit(round)).await
    }
}

/// A round handed to the writer.
pub enum Submitted {
    /// In the writer's queue: the answer comes once its statement committed.
    Queued(oneshot::Receiver<Result<Written, Arc<StoreError>>>),
    /// The writer had ended (the daemon stopping): written alone when the answer is asked for.
    Alone(Advance),
}

/// The writer loop: take a slot, collect what is waiting, commit it in a task of its own.
async fn run(
    pool: Pool,
    owner: Arc<str>,
    lease: Duration,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(batch) = collect(&mut rx).await else {
            return;
        };
        let (pool, owner) = (pool.clone(), owner.clone());
        tokio::spawn(async move {
            let (rounds, answers): (Vec<Advance>, Vec<_>) =
                batch.into_iter().map(|p| (p.round, p.done)).unzip();
            metrics::histogram!("sincro_webhook_progress_rounds").record(rounds.len() as f64);
            let result = flush(&pool, &owner, lease, &rounds).await;
            for (round, answer) in rounds.iter().zip(answers) {
                let _ = answer.send(match &result {
                    Ok(written) => Ok(written.get(&round.id).copied()),
                    Err(e) => Err(e.clone()),
                });
            }
            drop(slot);
        });
    }
}

/// One statement's rounds: waits for a first one, then takes every one already waiting (up
/// to [`MAX_ROUNDS`]), never waiting for more. None once every handle is gone.
async fn collect(rx: &mut mpsc::UnboundedReceiver<Pending>) -> Option<Vec<Pending>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_ROUNDS {
        let Ok(next) = rx.try_recv() else {
            break;
        };
        batch.push(next);
    }
    Some(batch)
}

async fn flush(
    pool: &Pool,
    owner: &str,
    lease: Duration,
    rounds: &[Advance],
) -> Result<HashMap<Uuid, Option<OffsetDateTime>>, Arc<StoreError>> {
    async {
        let client = pool.get().await?;
        cursor::advance_many(&client, owner, lease, rounds).await
    }
    .await
    .map_err(Arc::new)
}
