//! Storing a step's items so that one refused item never holds up the others: the items go
//! in chunks, each in a savepoint of the caller's transaction; a chunk the store refuses is
//! rolled back to its savepoint and split in halves, down to the item at fault, which becomes a
//! dead letter with the store's reason. Used by the drain for a step's own transaction and by
//! each of a flood's lanes.

use super::dead_letter::NewDeadLetter;
use super::inbox::Tagged;
use super::{InboundItem, IngestError, IngestReport};
use crate::shared::Shared;
use std::time::Duration;

/// Items stored per savepoint at most: a step's items go in chunks of this many, so one statement
/// never carries an unbounded batch. A chunk writes each of its contacts' lead and conversation
/// once however many messages it holds, so it holds a whole step of 50-message bodies (250 rows,
/// 12,500 items): in chunks of 2,000, a flood updated every conversation several times a step (end
/// to end 5,700 against 7,100 msg/s, CPU per message +20 %).
pub const CHUNK_ITEMS: usize = 16_000;

/// Stores `items` inside the caller's transaction (the step's, or a lane's), isolating the ones the
/// store refuses: each chunk in a savepoint; a refused chunk is rolled back to its savepoint and
/// split in halves down to the item at fault. Returns what was stored and a dead letter per refused
/// item. Err only when the store cannot be reached (nothing is lost: the caller leaves its rows for
/// a later step).
pub async fn store_isolated(
    shared: &Shared,
    tx: &mut deadpool_postgres::Transaction<'_>,
    items: &[Tagged],
) -> Result<(IngestReport, Vec<NewDeadLetter>), IngestError> {
    let mut report = IngestReport::default();
    let mut dead = Vec::new();
    let mut ranges: Vec<std::ops::Range<usize>> = (0..items.len())
        .step_by(CHUNK_ITEMS)
        .map(|start| start..(start + CHUNK_ITEMS).min(items.len()))
        .rev()
        .collect();
    while let Some(range) = ranges.pop() {
        if range.is_empty() {
            continue;
        }
        let batch: Vec<&InboundItem> = items[range.clone()].iter().map(|t| &t.item).collect();
        match in_savepoint(shared, tx, &batch).await {
            Ok(r) => report.add(&r),
            Err(
                e @ (IngestError::Unavailable(_)
                | IngestError::NotRunning
                | IngestError::TimedOut(_)),
            ) => return Err(e),
            Err(IngestError::Refused(why)) if range.len() == 1 => {
                dead.push(items[range.start].dead_letter(why));
            }
            Err(IngestError::Refused(_)) => {
                let mid = range.start + range.len() / 2;
                ranges.push(mid..range.end);
                ranges.push(range.start..mid);
            }
        }
    }
    metrics::counter!("sincro_ingest_messages_total").increment(report.messages_inserted as u64);
    metrics::counter!("sincro_ingest_statuses_total").increment(report.statuses_applied as u64);
    tracing::debug!(
        messages = report.messages_inserted,
        statuses = report.statuses_applied,
        refused = dead.len(),
        "inbox rows stored"
    );
    Ok((report, dead))
}

/// One chunk in a savepoint of the caller's transaction, run again after a lost deadlock.
async fn in_savepoint(
    shared: &Shared,
    tx: &mut deadpool_postgres::Transaction<'_>,
    items: &[&InboundItem],
) -> Result<IngestReport, IngestError> {
    let region = shared.settings.default_region.as_deref();
    let failed = |e: tokio_postgres::Error| IngestError::from_store(&e.into());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let savepoint = tx.transaction().await.map_err(failed)?;
        match super::batch::ingest_in(
            &savepoint,
            &shared.sealer,
            region,
            &shared.settings.privacy.opt_out_keywords,
            items,
        )
        .await
        {
            Ok(report) => {
                savepoint.commit().await.map_err(failed)?;
                return Ok(report);
            }
            Err(e) => {
                savepoint.rollback().await.map_err(failed)?;
                if attempt < 4 && e.is_retryable_conflict() {
                    tracing::warn!(attempt, "inbox chunk met a concurrent batch; retrying");
                    tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                    continue;
                }
                return Err(IngestError::from_store(&e));
            }
        }
    }
}
