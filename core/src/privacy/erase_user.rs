//! Erasure of a whole user (`DELETE /v1/users/{id}`, admin): its Lite sessions are stopped and
//! unlinked (browser profiles wiped, sealed snapshots go with their rows), its Business numbers
//! stopped (their sealed credentials go with their rows), its inbox rows deleted and its
//! numbers' changes cut out of Meta bodies other users' numbers share, and then the user row,
//! whose deletion cascades to everything the user owns (leads, conversations, messages, outbox,
//! events, media rows, keys, templates, consent, alerts, dead letters). Its media files go after
//! the commit. Audit rows stay, without the user (`usuario_id` cleared), with the erasure's own.

use super::PrivacyError;
use super::inbox_scrub::{self, Scrubbed};
use crate::business::handle::BusinessSupervisorHandle;
use crate::lite::LiteSupervisorHandle;
use crate::seal::{Purpose, Sealer};
use crate::shared::Shared;
use deadpool_postgres::GenericClient;
use serde_json::Value;
use uuid::Uuid;

/// What a user's erasure removed (counts only).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UserErased {
    pub lite_sessions: usize,
    pub business_numbers: usize,
    pub media_files: usize,
    pub inbox_rows_deleted: u64,
    pub inbox_rows_rewritten: u64,
}

/// Erases user `usuario_id` and everything it owns.
pub async fn erase_user(
    shared: &Shared,
    lite: &LiteSupervisorHandle,
    business: &BusinessSupervisorHandle,
    usuario_id: Uuid,
) -> Result<UserErased, PrivacyError> {
    let client = shared.pool.get().await?;
    if client
        .query_opt("SELECT 1 FROM usuarios WHERE id = $1", &[&usuario_id])
        .await?
        .is_none()
    {
        return Err(PrivacyError::UserNotFound);
    }
    let connections = client
        .query(
            "SELECT id, configuracion->>'tipo_conexion', configuracion->'business_config'->>'phone_number_id'
             FROM configuracion_mensajeria_usuario WHERE usuario_id = $1",
            &[&usuario_id],
        )
        .await?;
    drop(client);
    let mut out = UserErased::default();
    let mut numbers: Vec<String> = Vec::new();
    for row in &connections {
        let (id, kind, number): (Uuid, Option<String>, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        match kind.as_deref() {
            Some("business") => {
                if let Err(e) = business.disconnect(id).await {
                    tracing::warn!(error = %e, connection = %id, "erasing a user: number not stopped");
                }
                numbers.extend(number);
                out.business_numbers += 1;
            }
            _ => {
                if let Err(e) = lite.stop(id, true).await {
                    tracing::warn!(error = %e, connection = %id, "erasing a user: session not stopped");
                }
                // The stop wipes it; a session another node ran leaves its folder here too.
                let dir = shared.settings.lite.session_dir(id);
                if let Err(e) = tokio::fs::remove_dir_all(&dir).await
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::error!(error = %e, connection = %id, "erasing a user: profile not removed");
                }
                out.lite_sessions += 1;
            }
        }
    }
    let ids: Vec<Uuid> = connections.iter().map(|r| r.get(0)).collect();
    let mut client = shared.pool.get().await?;
    let tx = client.transaction().await?;
    let paths: Vec<String> = tx
        .query(
            "SELECT storage_path FROM media WHERE usuario_id = $1",
            &[&usuario_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    out.media_files = paths.len();
    (out.inbox_rows_deleted, out.inbox_rows_rewritten) =
        scrub_inbox(&tx, &shared.sealer, usuario_id, &numbers).await?;
    let resources: Vec<String> = ids
        .iter()
        .flat_map(|id| [format!("lite:{id}"), format!("business:{id}")])
        .collect();
    tx.execute("DELETE FROM leases WHERE resource = ANY($1)", &[&resources])
        .await?;
    tx.execute("DELETE FROM usuarios WHERE id = $1", &[&usuario_id])
        .await?;
    tx.commit().await?;
    super::erase::remove_files(&shared.settings.data_dir, &paths).await;
    // Files of the older per-user layout live in a folder of their own.
    let _ = tokio::fs::remove_dir(
        shared
            .settings
            .data_dir
            .join("media")
            .join(usuario_id.to_string()),
    )
    .await;
    metrics::counter!("sincro_privacy_user_erasures_total").increment(1);
    Ok(out)
}

/// Deletes the user's Lite inbox rows and Meta bodies only it signed; cuts its numbers'
/// changes out of bodies other users signed too. Returns (deleted, rewritten).
async fn scrub_inbox(
    tx: &impl GenericClient,
    sealer: &Sealer,
    usuario_id: Uuid,
    numbers: &[String],
) -> Result<(u64, u64), PrivacyError> {
    let mut deleted = tx
        .execute(
            "DELETE FROM webhook_inbox WHERE usuario_id = $1 OR signed_by = ARRAY[$1]::uuid[]",
            &[&usuario_id],
        )
        .await?;
    let shared_rows = tx
        .query(
            "SELECT id, body FROM webhook_inbox WHERE $1 = ANY(signed_by) FOR UPDATE",
            &[&usuario_id],
        )
        .await?;
    let mut rewritten = 0;
    for row in &shared_rows {
        let (id, sealed): (i64, String) = (row.get(0), row.get(1));
        let body = sealer
            .open(Purpose::Webhook, &sealed)
            .ok()
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok());
        let Some(body) = body else { continue };
        match inbox_scrub::scrub_meta(body, numbers, numbers) {
            Scrubbed::Unchanged => {}
            Scrubbed::Emptied => {
                deleted += tx
                    .execute("DELETE FROM webhook_inbox WHERE id = $1", &[&id])
                    .await?;
                continue;
            }
            Scrubbed::Rewritten(body) => {
                let resealed = sealer.seal(Purpose::Webhook, body.to_string().as_bytes());
                tx.execute(
                    "UPDATE webhook_inbox SET body = $2 WHERE id = $1",
                    &[&id, &resealed],
                )
                .await?;
                rewritten += 1;
            }
        }
        tx.execute(
            "UPDATE webhook_inbox SET signed_by = array_remove(signed_by, $2) WHERE id = $1",
            &[&id, &usuario_id],
        )
        .await?;
    }
    Ok((deleted, rewritten))
}
