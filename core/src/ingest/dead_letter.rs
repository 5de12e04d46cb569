//! Inbound dead letters (`inbound_dead_letters`): items of the inbox that could not be stored,
//! each with its reason. The raw payload stays sealed in the inbox row the letter names (a row
//! is kept while a letter names it); a replay drains that row again. Ingest is idempotent (one
//! message per connection and external id, statuses only move forward), so a replay stores what
//! failed and changes nothing that was already stored.

use crate::store::Scope;
use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// One item set aside by the drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewDeadLetter {
    pub inbox_id: i64,
    pub source: String,
    /// The user it belongs to; None when the payload names no connection of any user here
    /// (then only admins see it).
    pub usuario_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    pub external_id: Option<String>,
    pub reason: String,
}

/// A dead letter as the API lists it (no content: the reason and ids only).
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: Uuid,
    /// What the drain recorded, listed inline beside the id.
    #[serde(flatten)]
    pub letter: NewDeadLetter,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub replayed_at: Option<OffsetDateTime>,
}

/// Records letters (inside the drain's transaction, with the rows they name).
pub async fn record(
    client: &impl GenericClient,
    letters: &[NewDeadLetter],
) -> Result<(), StoreError> {
    if letters.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = letters.iter().map(|_| Uuid::now_v7()).collect();
    let inbox: Vec<i64> = letters.iter().map(|l| l.inbox_id).collect();
    let sources: Vec<&str> = letters.iter().map(|l| l.source.as_str()).collect();
    let users: Vec<Option<Uuid>> = letters.iter().map(|l| l.usuario_id).collect();
    let conns: Vec<Option<Uuid>> = letters.iter().map(|l| l.connection_id).collect();
    let exts: Vec<Option<&str>> = letters.iter().map(|l| l.external_id.as_deref()).collect();
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.as_str()).collect();
    client
        .execute(
            "INSERT INTO inbound_dead_letters (id, inbox_id, source, usuario_id, connection_id, external_id, reason)
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::text[])",
            &[&ids, &inbox, &sources, &users, &conns, &exts, &reasons],
        )
        .await?;
    metrics::counter!("sincro_inbound_dead_letters_total").increment(letters.len() as u64);
    Ok(())
}

/// Letters newest first, after the `(created_at, id)` cursor; replayed ones only when asked.
pub async fn list(
    client: &impl GenericClient,
    scope: Scope,
    include_replayed: bool,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<DeadLetter>, StoreError> {
    let (at, id) = after
        .map(|(a, i)| (Some(a), Some(i)))
        .unwrap_or((None, None));
    let rows = client
        .query(
            "SELECT id, inbox_id, source, usuario_id, connection_id, external_id, reason, created_at, replayed_at
             FROM inbound_dead_letters
             WHERE ($1::uuid IS NULL OR usuario_id = $1)
               AND ($2 OR replayed_at IS NULL)
               AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
             ORDER BY created_at DESC, id DESC LIMIT $5",
            &[&scope.user(), &include_replayed, &at, &id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DeadLetter {
            id: r.get(0),
            letter: NewDeadLetter {
                inbox_id: r.get(1),
                source: r.get(2),
                usuario_id: r.get(3),
                connection_id: r.get(4),
                external_id: r.get(5),
                reason: r.get(6),
            },
            created_at: r.get(7),
            replayed_at: r.get(8),
        })
        .collect())
}

/// Why a letter cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("dead letter not found")]
    NotFound,
    #[error("this dead letter was already replayed; a replay that fails again leaves a new one")]
    AlreadyReplayed,
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        ReplayError::Store(e.to_string())
    }
}

/// Puts the letter's inbox row back in the drain's way, and marks every open letter of that row
/// replayed (the drain records a new letter for each item that fails again). Returns the row.
pub async fn replay(
    client: &mut deadpool_postgres::Client,
    scope: Scope,
    id: Uuid,
) -> Result<i64, ReplayError> {
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let row = tx
        .query_opt(
            "SELECT inbox_id, replayed_at IS NOT NULL FROM inbound_dead_letters
             WHERE id = $1 AND ($2::uuid IS NULL OR usuario_id = $2) FOR UPDATE",
            &[&id, &scope.user()],
        )
        .await
        .map_err(StoreError::from)?
        .ok_or(ReplayError::NotFound)?;
    let (inbox_id, replayed): (i64, bool) = (row.get(0), row.get(1));
    if replayed {
        return Err(ReplayError::AlreadyReplayed);
    }
    tx.execute(
        "UPDATE inbound_dead_letters SET replayed_at = now() WHERE inbox_id = $1 AND replayed_at IS NULL",
        &[&inbox_id],
    )
    .await
    .map_err(StoreError::from)?;
    tx.execute(
        "UPDATE webhook_inbox SET processed_at = NULL, next_attempt_at = now(), error = NULL WHERE id = $1",
        &[&inbox_id],
    )
    .await
    .map_err(StoreError::from)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(inbox_id)
}
