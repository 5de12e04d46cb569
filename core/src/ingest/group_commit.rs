//! Group commit of inbox rows: concurrent webhook requests share one durable write.
//!
//! Each webhook POST must be committed before its 200, and a commit waits for the WAL flush
//! (`synchronous_commit` stays on). One commit per request caps a burst of small POSTs at the
//! disk's flush rate; here the rows of concurrent requests that are waiting (up to
//! [`MAX_ROWS`] / [`MAX_BYTES`]) are written with ONE multi-row `INSERT` (one statement in
//! autocommit: one commit), and every request of the batch is answered with the outcome of
//! that commit, so a 200 still means "committed". One batch commits at a time ([`IN_FLIGHT`]);
//! meanwhile the next one fills, so under load the batches grow by themselves, and a lone
//! request waits for nothing but its own commit.
//!
//! The writer task is a loop over two testable steps, [`collect`] and [`flush`]. A request
//! whose writer is gone (the task ended) writes its row alone, so no request is refused for it.

use super::inbox::{SOURCE_LITE, SOURCE_META};
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use deadpool_postgres::{GenericClient, Pool};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

/// Rows per batch at most.
pub const MAX_ROWS: usize = 256;
/// Sealed bytes per batch at most (a batch is one statement; webhook bodies reach 3 MB).
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Batches committing at once, each on a pooled connection of its own. One: every request
/// that arrives while a batch commits joins the next, so the batches are as large as the load
/// makes them. With four at once, 8 single-message senders made batches of 1.3 rows on average (a
/// statement and a commit for nearly every POST), and PostgreSQL already flushes concurrent
/// commits' WAL together, so the extra commits bought no throughput; with one, CPU per message
/// fell by about a sixth at the same or a higher rate, and POST p99 did not grow.
pub const IN_FLIGHT: usize = 1;
/// Requests waiting for the writer at most; past it a request waits for room (back-pressure).
const QUEUE: usize = 4096;

/// Histogram: seconds from asking the pool for a connection to the batch's commit (or its
/// failure): what every webhook of the batch waits for before its answer (a request arriving
/// while a batch commits waits for that one too). On a quiet machine it is about the disk's
/// flush; when it grows while the flush does not, the commit is waiting for a core or for the
/// pool.
pub const COMMIT_SECONDS: &str = "sincro_inbox_commit_seconds";
/// Histogram: rows per batch; near 1 under load, every webhook pays for a commit of its own.
pub const ROWS_PER_COMMIT: &str = "sincro_inbox_group_commit_rows";

/// Why an inbox row was not committed. Every request of a failed batch gets the same answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InboxWriteError {
    /// The store could not be reached: the sender should retry later (Meta does).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store refused the write.
    #[error("the store refused the inbox row: {0}")]
    Failed(String),
}

impl From<&StoreError> for InboxWriteError {
    fn from(e: &StoreError) -> Self {
        if e.is_unavailable() {
            InboxWriteError::Unavailable(e.to_string())
        } else {
            InboxWriteError::Failed(e.to_string())
        }
    }
}

/// One inbox row, its body already sealed.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub source: &'static str,
    pub phone_number_id: Option<String>,
    pub signed_by: Option<Vec<Uuid>>,
    pub usuario_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    pub sealed_body: String,
}

impl InboxRow {
    /// A Meta webhook body whose signature the app secrets of `signed_by`'s numbers verified.
    pub fn meta(
        sealer: &Sealer,
        phone_number_id: Option<&str>,
        signed_by: &[Uuid],
        body: &[u8],
    ) -> Self {
        InboxRow {
            source: SOURCE_META,
            phone_number_id: phone_number_id.map(str::to_owned),
            signed_by: Some(signed_by.to_vec()),
            usuario_id: None,
            connection_id: None,
            sealed_body: sealer.seal(Purpose::Webhook, body),
        }
    }

    /// Lite items of one user's connection, serialised as the drain reads them.
    pub fn lite(sealer: &Sealer, usuario_id: Uuid, connection_id: Uuid, body: &[u8]) -> Self {
        InboxRow {
            source: SOURCE_LITE,
            phone_number_id: None,
            signed_by: None,
            usuario_id: Some(usuario_id),
            connection_id: Some(connection_id),
            sealed_body: sealer.seal(Purpose::Webhook, body),
        }
    }
}

struct Pending {
    row: InboxRow,
    done: oneshot::Sender<Result<(), InboxWriteError>>,
}

/// The way into the writer task: [`InboxWriter::write`] answers once the row committed.
#[derive(Clone)]
pub struct InboxWriter {
    pool: Pool,
    queue: mpsc::Sender<Pending>,
}

impl InboxWriter {
    /// Starts the writer task on the current runtime. It ends when every handle is dropped,
    /// after answering what it was given.
    pub fn start(pool: Pool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool.clone(), rx));
        InboxWriter { pool, queue }
    }

    /// Writes the row in the next batch; resolves once that batch committed (or failed).
    pub async fn write(&self, row: InboxRow) -> Result<(), InboxWriteError> {
        let (done, answer) = oneshot::channel();
        match self.queue.send(Pending { row, done }).await {
            Ok(()) => match answer.await {
                Ok(result) => result,
                // The task died with the row in hand: whether it committed is unknown, so the
                // sender must retry (a replayed body is deduplicated by the drain).
                Err(_) => Err(InboxWriteError::Unavailable(
                    "the inbox writer stopped before answering".into(),
                )),
            },
            Err(mpsc::error::SendError(pending)) => {
                flush(&self.pool, std::slice::from_ref(&pending.row)).await
            }
        }
    }
}

/// The writer loop: take a slot, collect a batch, commit it in a task of its own.
async fn run(pool: Pool, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(batch) = collect(&mut rx, MAX_ROWS, MAX_BYTES).await else {
            return;
        };
        let pool = pool.clone();
        tokio::spawn(async move {
            let (rows, answers): (Vec<InboxRow>, Vec<_>) =
                batch.into_iter().map(|p| (p.row, p.done)).unzip();
            let started = std::time::Instant::now();
            let result = flush(&pool, &rows).await;
            metrics::histogram!(COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
            metrics::histogram!(ROWS_PER_COMMIT).record(rows.len() as f64);
            for answer in answers {
                let _ = answer.send(result.clone());
            }
            drop(slot);
        });
    }
}

/// One batch: waits for a first request, then takes every request already waiting, up to
/// `max_rows` rows or `max_bytes` sealed bytes. None once every sender is gone.
///
/// It never waits for more: a request arriving while no batch commits is written at once, and
/// requests arriving while batches commit queue up and form the next batch by themselves.
/// (A fixed gathering window, tried first, only added its length to every answer: with
/// closed-loop senders the next requests come after the answers, not during the window.)
async fn collect(
    rx: &mut mpsc::Receiver<Pending>,
    max_rows: usize,
    max_bytes: usize,
) -> Option<Vec<Pending>> {
    let first = rx.recv().await?;
    let mut bytes = first.row.sealed_body.len();
    let mut batch = vec![first];
    while batch.len() < max_rows && bytes < max_bytes {
        let Ok(next) = rx.try_recv() else {
            break;
        };
        bytes += next.row.sealed_body.len();
        batch.push(next);
    }
    Some(batch)
}

/// Inserts the rows with one statement (one commit). `signed_by` travels as an array literal
/// per row: PostgreSQL arrays of arrays must be rectangular, and each row signs its own list.
pub async fn flush(pool: &Pool, rows: &[InboxRow]) -> Result<(), InboxWriteError> {
    let client = pool
        .get()
        .await
        .map_err(|e| InboxWriteError::from(&StoreError::from(e)))?;
    insert_rows(&client, rows)
        .await
        .map_err(|e| InboxWriteError::from(&e))
}

/// The multi-row insert on any client (a transaction too).
pub async fn insert_rows(client: &impl GenericClient, rows: &[InboxRow]) -> Result<(), StoreError> {
    let sources: Vec<&str> = rows.iter().map(|r| r.source).collect();
    let phones: Vec<Option<&str>> = rows.iter().map(|r| r.phone_number_id.as_deref()).collect();
    let signed: Vec<Option<String>> = rows
        .iter()
        .map(|r| {
            r.signed_by.as_ref().map(|ids| {
                let list: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                format!("{{{}}}", list.join(","))
            })
        })
        .collect();
    let users: Vec<Option<Uuid>> = rows.iter().map(|r| r.usuario_id).collect();
    let connections: Vec<Option<Uuid>> = rows.iter().map(|r| r.connection_id).collect();
    let bodies: Vec<&str> = rows.iter().map(|r| r.sealed_body.as_str()).collect();
    // Prepared once per pooled connection: every POST runs it, and an unprepared statement
    // costs a second round trip before the commit the POST is waiting for.
    let insert = client
        .prepare_cached(
            "INSERT INTO webhook_inbox (source, phone_number_id, signed_by, usuario_id, connection_id, body)
             SELECT s, p, g::uuid[], u, c, b
             FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::text[])
                  WITH ORDINALITY AS x(s, p, g, u, c, b, n)
             ORDER BY n",
        )
        .await?;
    client
        .execute(
            &insert,
            &[&sources, &phones, &signed, &users, &connections, &bodies],
        )
        .await?;
    Ok(())
}
