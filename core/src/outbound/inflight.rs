//! Marking attempts in flight with group commit. Before a request may leave for the provider,
//! its row gets `inflight_at` and `attempts + 1` in a committed statement
//! ([`super::lease::mark_inflight`]); a crash after that leaves the row `uncertain`, not
//! resent. Lanes ask through [`Marker`]: requests arriving while statements run are gathered
//! into the next one (up to [`CONCURRENT`] statements at once), so each message costs a share
//! of one round trip, not a commit of its own.

use super::lease::mark_inflight;
use super::record::Marked;
use crate::store::StoreError;
use deadpool_postgres::Pool;
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Largest number of rows marked by one statement.
const MAX_BATCH: usize = 4096;
/// Statements run at once: while one waits for its commit, the next batch gathers and goes,
/// so a slow commit on a busy store does not hold every lane's next sends behind it.
const CONCURRENT: usize = 3;

struct Request {
    ids: Vec<Uuid>,
    reply: oneshot::Sender<Result<Vec<Marked>, String>>,
}

/// Handle to the marking task; dropping the last handle and the task ends it.
#[derive(Clone)]
pub struct Marker {
    tx: mpsc::UnboundedSender<Request>,
}

/// The tasks behind a [`Marker`]; aborted when dropped.
pub struct MarkerTask(Vec<JoinHandle<()>>);

impl Drop for MarkerTask {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Marker {
    /// Starts the task for `owner` (this Dispatcher incarnation).
    pub fn start(pool: Pool, owner: String) -> (Marker, MarkerTask) {
        let (tx, rx) = mpsc::unbounded_channel::<Request>();
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let loops = (0..CONCURRENT)
            .map(|_| tokio::spawn(mark_loop(rx.clone(), pool.clone(), owner.clone())))
            .collect();
        (Marker { tx }, MarkerTask(loops))
    }

    /// Marks `ids`; returns the rows that may now be sent (those still held in `sending`).
    pub async fn mark(&self, ids: Vec<Uuid>) -> Result<Vec<Marked>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { ids, reply })
            .map_err(|_| "the marking task stopped".to_string())?;
        rx.await
            .map_err(|_| "the marking task stopped".to_string())?
    }
}

/// One statement at a time: takes whatever requests wait (up to [`MAX_BATCH`] rows), marks
/// them in one statement and answers each.
async fn mark_loop(
    rx: std::sync::Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Request>>>,
    pool: Pool,
    owner: String,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            let mut n = batch[0].ids.len();
            while n < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => {
                        n += r.ids.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let ids: Vec<Uuid> = batch.iter().flat_map(|r| r.ids.iter().copied()).collect();
        let result: Result<Vec<Marked>, StoreError> = async {
            let client = pool.get().await?;
            mark_inflight(&client, &owner, &ids).await
        }
        .await;
        match result {
            Ok(marked) => {
                let by_id: HashMap<Uuid, Marked> =
                    marked.into_iter().map(|m| (m.message_id, m)).collect();
                for r in batch {
                    let mine = r
                        .ids
                        .iter()
                        .filter_map(|id| by_id.get(id).copied())
                        .collect();
                    let _ = r.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for r in batch {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}
