//! Lite sessions in PostgreSQL: `whatsapp_lite_sessions` (one row per session, its id is the
//! connection id) and the session's `configuracion_mensajeria_usuario` row, kept in step. Every
//! status change and every QR appends its `session.status` / `session.qr` event in the same
//! transaction, so the stream and the tables never disagree.

use super::Status;
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use crate::store::events;
use deadpool_postgres::{GenericClient, Pool};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

/// One session as the API shows it.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: Uuid,
    pub usuario_id: Uuid,
    pub name: String,
    pub status: Status,
    pub status_reason: Option<String>,
    pub phone: Option<String>,
    pub qr: Option<String>,
    pub qr_updated_at: Option<OffsetDateTime>,
    pub last_disconnect_reason: Option<String>,
    pub last_disconnect_at: Option<OffsetDateTime>,
    pub snapshot_at: Option<OffsetDateTime>,
    pub working_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str = "id, usuario_id, session_name, status, status_reason, phone_number, qr_code, \
    qr_updated_at, last_disconnect_reason, last_disconnect_at, profile_snapshot_at, working_since, \
    created_at, updated_at";

fn row(r: &Row) -> SessionRow {
    SessionRow {
        id: r.get(0),
        usuario_id: r.get(1),
        name: r.get(2),
        status: Status::parse(r.get(3)).unwrap_or(Status::Failed),
        status_reason: r.get(4),
        phone: r.get(5),
        qr: r.get(6),
        qr_updated_at: r.get(7),
        last_disconnect_reason: r.get(8),
        last_disconnect_at: r.get(9),
        snapshot_at: r.get(10),
        working_since: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
    }
}

fn rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map(Value::String)
    .unwrap_or(Value::Null)
}

impl SessionRow {
    /// The API shape (no QR string: that has its own route).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "status": self.status.as_str(),
            "status_reason": self.status_reason,
            "phone": self.phone.as_ref().map(|p| format!("+{p}")),
            "qr_available": self.status == Status::ScanQrCode && self.qr.is_some(),
            "last_disconnect_reason": self.last_disconnect_reason,
            "last_disconnect_at": rfc3339(self.last_disconnect_at),
            "working_since": rfc3339(self.working_since),
            "profile_snapshot_at": rfc3339(self.snapshot_at),
            "created_at": rfc3339(Some(self.created_at)),
            "updated_at": rfc3339(Some(self.updated_at)),
        })
    }
}

/// Why a session could not be created or started.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("at most {0} Lite sessions per user can be active; stop one first")]
    TooMany(u32),
    #[error("session not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for ActivateError {
    fn from(e: tokio_postgres::Error) -> Self {
        ActivateError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for ActivateError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ActivateError::Store(e.into())
    }
}

/// Serialises activations of one user's sessions (the per-user limit).
async fn lock_user(tx: &impl GenericClient, usuario_id: Uuid) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('sincro-lite:' || $1::uuid::text))",
        &[&usuario_id],
    )
    .await?;
    Ok(())
}

async fn active_count(
    tx: &impl GenericClient,
    usuario_id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    Ok(tx
        .query_one(
            "SELECT count(*) FROM whatsapp_lite_sessions
             WHERE usuario_id = $1 AND status IN ('STARTING', 'SCAN_QR_CODE', 'WORKING')",
            &[&usuario_id],
        )
        .await?
        .get(0))
}

fn status_event(s: &SessionRow) -> Value {
    json!({
        "session_id": s.id,
        "connection_id": s.id,
        "status": s.status.as_str(),
        "status_reason": s.status_reason,
        "phone": s.phone.as_ref().map(|p| format!("+{p}")),
        "last_disconnect_reason": s.last_disconnect_reason,
        "last_disconnect_at": rfc3339(s.last_disconnect_at),
    })
}

/// A new session (and its connection row), STARTING, within the user's limit.
pub async fn create(
    pool: &Pool,
    sealer: &Sealer,
    usuario_id: Uuid,
    name: Option<&str>,
    max: u32,
) -> Result<SessionRow, ActivateError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    lock_user(&tx, usuario_id).await?;
    if active_count(&tx, usuario_id).await? >= max as i64 {
        return Err(ActivateError::TooMany(max));
    }
    let id: Uuid = tx
        .query_one(
            "INSERT INTO configuracion_mensajeria_usuario (usuario_id, plataforma, configuracion)
             VALUES ($1, 'whatsapp', jsonb_build_object('tipo_conexion', 'lite',
                     'connection_status', 'connecting', 'session_name', $2::text))
             RETURNING id",
            &[&usuario_id, &name],
        )
        .await?
        .get(0);
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| format!("lite-{}", &id.simple().to_string()[..8]));
    let r = tx
        .query_one(
            &format!(
                "INSERT INTO whatsapp_lite_sessions (id, usuario_id, session_name, status)
                 VALUES ($1, $2, $3, 'STARTING') RETURNING {COLUMNS}"
            ),
            &[&id, &usuario_id, &name],
        )
        .await?;
    let s = row(&r);
    crate::crm::sync::lite(&tx, id).await?;
    events::append(&tx, sealer, usuario_id, "session.status", &status_event(&s)).await?;
    tx.commit().await?;
    Ok(s)
}

/// Starts a STOPPED or FAILED session of the user again (STARTING), within the limit. An
/// already active one is returned as it is.
pub async fn reactivate(
    pool: &Pool,
    sealer: &Sealer,
    usuario_id: Uuid,
    id: Uuid,
    max: u32,
) -> Result<(SessionRow, bool), ActivateError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    lock_user(&tx, usuario_id).await?;
    let current = tx
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM whatsapp_lite_sessions WHERE id = $1 AND usuario_id = $2 FOR UPDATE"
            ),
            &[&id, &usuario_id],
        )
        .await?
        .map(|r| row(&r))
        .ok_or(ActivateError::NotFound)?;
    if current.status.is_active() {
        tx.commit().await?;
        return Ok((current, false));
    }
    if active_count(&tx, usuario_id).await? >= max as i64 {
        return Err(ActivateError::TooMany(max));
    }
    let s = update_status(&tx, sealer, id, Status::Starting, None, None, None).await?;
    tx.commit().await?;
    Ok((s.ok_or(ActivateError::NotFound)?, true))
}

pub async fn get(
    client: &impl GenericClient,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<Option<SessionRow>, StoreError> {
    Ok(client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM whatsapp_lite_sessions WHERE id = $1 AND usuario_id = $2"
            ),
            &[&id, &usuario_id],
        )
        .await?
        .map(|r| row(&r)))
}

pub async fn list(
    client: &impl GenericClient,
    usuario_id: Uuid,
) -> Result<Vec<SessionRow>, StoreError> {
    Ok(client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM whatsapp_lite_sessions WHERE usuario_id = $1 ORDER BY created_at, id"
            ),
            &[&usuario_id],
        )
        .await?
        .iter()
        .map(row)
        .collect())
}

/// Sessions a starting daemon runs again: those that were WORKING (or restarting after a
/// failure) when it stopped or died.
pub async fn autostart(pool: &Pool) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    Ok(pool
        .get()
        .await?
        .query(
            "SELECT id, usuario_id FROM whatsapp_lite_sessions
             WHERE autostart AND status <> 'STOPPED' AND status <> 'FAILED' ORDER BY created_at",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Sets the status inside `tx` and appends `session.status` when it changed (or a reason was
/// given). `reason` is the disconnect reason (recorded with the time); `status_reason` the
/// detail shown with the status; `phone` digits once known.
async fn update_status(
    tx: &impl GenericClient,
    sealer: &Sealer,
    id: Uuid,
    status: Status,
    reason: Option<&str>,
    status_reason: Option<&str>,
    phone: Option<&str>,
) -> Result<Option<SessionRow>, StoreError> {
    let before: Option<String> = tx
        .query_opt(
            "SELECT status FROM whatsapp_lite_sessions WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
        .map(|r| r.get(0));
    let Some(before) = before else {
        return Ok(None);
    };
    let r = tx
        .query_one(
            &format!(
                "UPDATE whatsapp_lite_sessions SET
                    status = $2,
                    status_reason = $4,
                    phone_number = coalesce($5, phone_number),
                    qr_code = CASE WHEN $2 = 'SCAN_QR_CODE' THEN qr_code ELSE NULL END,
                    last_disconnect_reason = coalesce($3, last_disconnect_reason),
                    last_disconnect_at = CASE WHEN $3::text IS NULL THEN last_disconnect_at ELSE now() END,
                    autostart = CASE WHEN $2 = 'WORKING' THEN true
                                     WHEN $2 IN ('STOPPED', 'FAILED') THEN false
                                     ELSE autostart END,
                    working_since = CASE WHEN $2 = 'WORKING' AND status <> 'WORKING' THEN now()
                                         WHEN $2 = 'WORKING' THEN working_since ELSE NULL END,
                    last_activity_at = now(),
                    updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &status.as_str(), &reason, &status_reason, &phone],
        )
        .await?;
    let s = row(&r);
    tx.execute(
        "UPDATE configuracion_mensajeria_usuario SET
            configuracion = configuracion || jsonb_build_object(
                'tipo_conexion', 'lite',
                'numero_telefono', coalesce('+' || $2::text, configuracion->>'numero_telefono')),
            activo = $3,
            updated_at = now()
         WHERE id = $1",
        &[
            &id,
            &s.phone,
            &matches!(
                status,
                Status::Starting | Status::ScanQrCode | Status::Working
            ),
        ],
    )
    .await?;
    crate::crm::sync::lite(tx, id).await?;
    if before != status.as_str() || reason.is_some() {
        events::append(
            tx,
            sealer,
            s.usuario_id,
            "session.status",
            &status_event(&s),
        )
        .await?;
    }
    Ok(Some(s))
}

/// Sets the status in its own transaction.
pub async fn set_status(
    pool: &Pool,
    sealer: &Sealer,
    id: Uuid,
    status: Status,
    reason: Option<&str>,
    status_reason: Option<&str>,
    phone: Option<&str>,
) -> Result<Option<SessionRow>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let s = update_status(&tx, sealer, id, status, reason, status_reason, phone).await?;
    tx.commit().await?;
    Ok(s)
}

/// Records a new QR: status SCAN_QR_CODE, `qr_code`, and a `session.qr` event.
pub async fn set_qr(
    pool: &Pool,
    sealer: &Sealer,
    id: Uuid,
    qr: &str,
    node_id: &str,
) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(s) = update_status(&tx, sealer, id, Status::ScanQrCode, None, None, None).await?
    else {
        return Ok(());
    };
    tx.execute(
        "UPDATE whatsapp_lite_sessions SET qr_code = $2, qr_updated_at = now(), node_id = $3 WHERE id = $1",
        &[&id, &qr, &node_id],
    )
    .await?;
    crate::crm::sync::lite(&tx, id).await?;
    events::append(
        &tx,
        sealer,
        s.usuario_id,
        "session.qr",
        &json!({"session_id": id, "connection_id": id, "qr": qr}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Saves the sealed login-state snapshot.
pub async fn save_snapshot(pool: &Pool, id: Uuid, sealed: &str) -> Result<(), StoreError> {
    execute(pool, "UPDATE whatsapp_lite_sessions SET profile_snapshot = $2, profile_snapshot_at = now() WHERE id = $1", &[&id, &sealed]).await
}

pub async fn load_snapshot(
    pool: &Pool,
    sealer: &Sealer,
    id: Uuid,
) -> Result<Option<Vec<u8>>, StoreError> {
    let sealed: Option<String> = pool
        .get()
        .await?
        .query_opt(
            "SELECT profile_snapshot FROM whatsapp_lite_sessions WHERE id = $1",
            &[&id],
        )
        .await?
        .and_then(|r| r.get(0));
    Ok(match sealed {
        None => None,
        Some(s) => match sealer.open(Purpose::ProfileSnapshot, &s) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "profile snapshot cannot be opened; ignored");
                None
            }
        },
    })
}

/// Forgets the snapshot (logout: the login state is gone for good).
pub async fn clear_snapshot(pool: &Pool, id: Uuid) -> Result<(), StoreError> {
    execute(
        pool,
        "UPDATE whatsapp_lite_sessions SET profile_snapshot = NULL, profile_snapshot_at = NULL,
                 login_storage = NULL, login_storage_at = NULL WHERE id = $1",
        &[&id],
    )
    .await
}

/// Records which node runs the session.
pub async fn claim(pool: &Pool, id: Uuid, node_id: &str) -> Result<(), StoreError> {
    execute(
        pool,
        "UPDATE whatsapp_lite_sessions SET node_id = $2 WHERE id = $1",
        &[&id, &node_id],
    )
    .await
}

/// Among `ids`, the sessions that may move to another node without a new QR: WORKING, with a
/// profile snapshot to start from (one still waiting for its QR to be scanned would lose it).
pub async fn movable(pool: &Pool, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    Ok(pool
        .get()
        .await?
        .query(
            "SELECT id FROM whatsapp_lite_sessions
             WHERE id = ANY($1) AND status = 'WORKING' AND profile_snapshot IS NOT NULL",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// When the session's profile snapshot was last saved.
pub async fn snapshot_at(pool: &Pool, id: Uuid) -> Result<Option<OffsetDateTime>, StoreError> {
    Ok(pool
        .get()
        .await?
        .query_opt(
            "SELECT profile_snapshot_at FROM whatsapp_lite_sessions WHERE id = $1",
            &[&id],
        )
        .await?
        .and_then(|r| r.get(0)))
}

/// Runs one statement on a pooled connection, for the updates that need nothing back.
async fn execute(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), StoreError> {
    pool.get().await?.execute(sql, params).await?;
    Ok(())
}
