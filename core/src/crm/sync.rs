//! The original data model's fields, kept in step with ours in one statement per lifecycle
//! step: a Lite session's lowercase `connection_status`, `session_id`, `last_activity`,
//! `expires_at` and `metadata` columns, and its connection row's `connection_status`,
//! `session_data {qr_code, session_id, last_activity}` and `settings` defaults. Called
//! wherever a session's status or QR is stored (`lite::store`), inside that transaction, and
//! by ingest when messages went through a linked session (its activity, at most once a
//! minute).
//! Templates' original fields are derived by a trigger (schema `0011_crm_contract.sql`), so
//! every path that writes a template keeps them without repeating the rule.

use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// How long a linked device stays linked without activity: WhatsApp unlinks companion
/// devices after 14 days without the phone being used, so that is when the session expires
/// unless it is used again (`expires_at`).
pub const LITE_IDLE_EXPIRY_DAYS: i32 = 14;

/// The original model's lowercase status of a Lite status (ours stays uppercase in
/// `status` and `lite_status`, where the API and the daemon read it).
pub const LITE_STATUS_SQL: &str = "CASE s.status
    WHEN 'STARTING' THEN 'connecting' WHEN 'SCAN_QR_CODE' THEN 'connecting'
    WHEN 'WORKING' THEN 'connected' WHEN 'FAILED' THEN 'error' ELSE 'disconnected' END";

/// Brings session `id`'s original-model fields, and its connection row's, in line with the
/// row as it is now inside `tx`.
pub async fn lite(tx: &impl GenericClient, id: Uuid) -> Result<(), StoreError> {
    lite_many(tx, &[id]).await
}

/// How often message traffic moves a linked session's `last_activity` (and `expires_at`):
/// at most once a minute, so a busy session does not rewrite its rows on every batch.
const ACTIVITY_STEP_SECS: i32 = 60;

/// Messages went through these connections (any kind: Business ids match no session row):
/// the linked Lite sessions among them were active now.
pub async fn lite_activity(tx: &impl GenericClient, ids: &[Uuid]) -> Result<(), StoreError> {
    let touched: Vec<Uuid> = tx
        .query(
            "UPDATE whatsapp_lite_sessions SET last_activity_at = now()
             WHERE id = ANY($1) AND status = 'WORKING'
               AND (last_activity_at IS NULL OR last_activity_at < now() - make_interval(secs => $2))
             RETURNING id",
            &[&ids, &(ACTIVITY_STEP_SECS as f64)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if touched.is_empty() {
        return Ok(());
    }
    lite_many(tx, &touched).await
}

/// [`lite`] for several sessions in one statement.
async fn lite_many(tx: &impl GenericClient, ids: &[Uuid]) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "WITH s AS (
                 UPDATE whatsapp_lite_sessions s SET
                     session_id = s.id::text,
                     connection_status = {LITE_STATUS_SQL},
                     last_activity = s.last_activity_at,
                     expires_at = CASE WHEN s.status = 'WORKING'
                         THEN s.last_activity_at + make_interval(days => $2) END,
                     metadata = s.metadata || jsonb_build_object('session_name', s.session_name,
                         'status', s.status, 'status_reason', s.status_reason,
                         'last_disconnect_reason', s.last_disconnect_reason)
                 WHERE s.id = ANY($1)
                 RETURNING s.id, s.status, s.connection_status, s.qr_code, s.session_id, s.last_activity)
             UPDATE configuracion_mensajeria_usuario c SET configuracion = c.configuracion
                 || jsonb_build_object(
                     'connection_status', s.connection_status,
                     'lite_status', s.status,
                     'session_data', jsonb_build_object('qr_code', s.qr_code,
                         'session_id', s.session_id, 'last_activity', s.last_activity),
                     'settings', {defaults} || COALESCE(c.configuracion->'settings', '{{}}'::jsonb))
             FROM s WHERE c.id = s.id",
            defaults = super::settings::DEFAULTS_SQL,
        ),
        &[&ids, &LITE_IDLE_EXPIRY_DAYS],
    )
    .await?;
    Ok(())
}
