//! Retention: what is past its time is deleted, a small batch per statement so no purge holds
//! long locks or a long transaction. A user's messages and media after `retention_days` (the
//! user's own, else `RETENTION_DAYS`; neither: kept), drained inbox rows and dead letters after
//! `INBOX_RETENTION_DAYS`, audit rows after `AUDIT_RETENTION_DAYS`. A message whose send is not
//! settled (pending, sending or uncertain) is kept whatever its age: nothing acknowledged is
//! lost. [`step`] is one batch of each kind, the Retention actor's testable unit; it repeats
//! it until a step purges nothing.

use super::PrivacySettings;
use crate::store::StoreError;
use deadpool_postgres::{GenericClient, Pool};
use std::path::Path;

/// Rows purged, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    pub messages: u64,
    pub media: u64,
    pub inbox: u64,
    pub dead_letters: u64,
    pub audit: u64,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.messages + self.media + self.inbox + self.dead_letters + self.audit
    }

    pub fn add(&mut self, o: &Purged) {
        self.messages += o.messages;
        self.media += o.media;
        self.inbox += o.inbox;
        self.dead_letters += o.dead_letters;
        self.audit += o.audit;
    }

    fn count_metrics(&self) {
        for (kind, n) in [
            ("messages", self.messages),
            ("media", self.media),
            ("inbox", self.inbox),
            ("dead_letters", self.dead_letters),
            ("audit", self.audit),
        ] {
            if n > 0 {
                metrics::counter!("sincro_retention_purged_total", "kind" => kind).increment(n);
            }
        }
    }
}

fn days(d: Option<u32>) -> Option<i32> {
    d.map(|d| d.min(i32::MAX as u32) as i32)
}

/// One batch of each kind (each its own short statement); media files of purged rows are
/// removed after their rows.
pub async fn step(
    pool: &Pool,
    data_dir: &Path,
    settings: &PrivacySettings,
) -> Result<Purged, StoreError> {
    let client = pool.get().await?;
    let n = settings.retention_batch;
    let user_days = days(settings.retention_days);
    let mut out = Purged {
        messages: messages(&client, user_days, n).await?,
        ..Purged::default()
    };
    let paths = media(&client, user_days, n).await?;
    out.media = paths.len() as u64;
    super::erase::remove_files(data_dir, &paths).await;
    if let Some(d) = days(settings.inbox_retention_days) {
        out.dead_letters = client
            .execute(
                "DELETE FROM inbound_dead_letters WHERE id IN (
                     SELECT id FROM inbound_dead_letters
                     WHERE created_at < now() - make_interval(days => $1)
                     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&d, &n],
            )
            .await?;
        // A row still named by a dead letter stays: a replay reads it.
        out.inbox = client
            .execute(
                "DELETE FROM webhook_inbox WHERE id IN (
                     SELECT w.id FROM webhook_inbox w
                     WHERE w.received_at < now() - make_interval(days => $1)
                       AND w.processed_at IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM inbound_dead_letters d WHERE d.inbox_id = w.id)
                     ORDER BY w.received_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&d, &n],
            )
            .await?;
    }
    if let Some(d) = days(settings.audit_retention_days) {
        out.audit = client
            .execute(
                "DELETE FROM audit_log WHERE id IN (
                     SELECT id FROM audit_log WHERE created_at < now() - make_interval(days => $1)
                     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&d, &n],
            )
            .await?;
    }
    out.count_metrics();
    Ok(out)
}

/// Messages past their user's retention whose send is settled (or that were never sent).
async fn messages(
    client: &impl GenericClient,
    default_days: Option<i32>,
    n: i64,
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "DELETE FROM mensajes_conversacion WHERE id IN (
                 SELECT m.id FROM usuarios u
                 JOIN mensajes_conversacion m ON m.usuario_id = u.id
                 WHERE COALESCE(u.retention_days, $1::int) IS NOT NULL
                   AND m.created_at < now() - make_interval(days => COALESCE(u.retention_days, $1::int))
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id
                                   AND o.state IN ('pending', 'sending', 'uncertain'))
                 LIMIT $2 FOR UPDATE OF m SKIP LOCKED)",
            &[&default_days, &n],
        )
        .await?)
}

/// Media rows past their user's retention that no kept message is linked to; their storage
/// paths.
async fn media(
    client: &impl GenericClient,
    default_days: Option<i32>,
    n: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query(
            "DELETE FROM media WHERE id IN (
                 SELECT md.id FROM usuarios u JOIN media md ON md.usuario_id = u.id
                 WHERE COALESCE(u.retention_days, $1::int) IS NOT NULL
                   AND md.created_at < now() - make_interval(days => COALESCE(u.retention_days, $1::int))
                   AND md.message_id IS NULL
                 LIMIT $2 FOR UPDATE OF md SKIP LOCKED)
             RETURNING storage_path",
            &[&default_days, &n],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Sets (or clears: the daemon's default applies) the user's retention in days.
pub async fn set_user_days(
    client: &impl GenericClient,
    usuario_id: uuid::Uuid,
    days: Option<u32>,
) -> Result<(), super::PrivacyError> {
    let days = match days {
        Some(0) => {
            return Err(super::PrivacyError::Invalid(
                "invalid_retention_days",
                "retention_days must be a whole number of days above 0, or null".into(),
            ));
        }
        Some(d) => Some(i32::try_from(d).map_err(|_| {
            super::PrivacyError::Invalid(
                "invalid_retention_days",
                "retention_days is too large".into(),
            )
        })?),
        None => None,
    };
    client
        .execute(
            "UPDATE usuarios SET retention_days = $2 WHERE id = $1",
            &[&usuario_id, &days],
        )
        .await?;
    Ok(())
}

/// The user's own retention in days (None: the daemon's default applies).
pub async fn user_days(
    client: &impl GenericClient,
    usuario_id: uuid::Uuid,
) -> Result<Option<i32>, StoreError> {
    Ok(client
        .query_one(
            "SELECT retention_days FROM usuarios WHERE id = $1",
            &[&usuario_id],
        )
        .await?
        .get(0))
}
