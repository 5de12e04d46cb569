//! How deep the outbound queue is, for the admin panel's queue view (`GET /v1/queue`): per
//! connection and priority, the messages waiting (due now or scheduled later), those being sent,
//! and how long the oldest waiting one has been queued. One grouped read of the outbox; the
//! dead letters and uncertain sends have their own listing ([`super::query::dead_letters`]).

use crate::store::StoreError;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// One connection's messages of one priority that are not finished yet.
#[derive(Debug, Clone, Serialize)]
pub struct Depth {
    pub connection_id: Uuid,
    pub usuario_id: Uuid,
    /// `lite` or `business` (the connection row's `tipo_conexion`).
    pub connection_type: Option<String>,
    pub priority: &'static str,
    /// Waiting to be claimed, due or not.
    pub pending: i64,
    /// Waiting with a `send_at` still ahead.
    pub scheduled: i64,
    /// Claimed by a lane, in flight or about to be.
    pub sending: i64,
    /// When the oldest waiting message was queued.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest_queued_at: Option<OffsetDateTime>,
    /// Its age in seconds, measured by the database clock (the same clock that wrote it).
    pub oldest_age_secs: Option<f64>,
}

/// The queue's depth for one user, or every user's when `usuario_id` is None (admins).
pub async fn depth(
    client: &impl GenericClient,
    usuario_id: Option<Uuid>,
) -> Result<Vec<Depth>, StoreError> {
    let rows = client
        .query(
            "SELECT o.connection_id, o.usuario_id, c.configuracion->>'tipo_conexion', o.priority,
                    count(*) FILTER (WHERE o.state = 'pending'),
                    count(*) FILTER (WHERE o.state = 'pending' AND o.due_at > now()),
                    count(*) FILTER (WHERE o.state = 'sending'),
                    min(o.created_at) FILTER (WHERE o.state = 'pending'),
                    extract(epoch FROM now() - min(o.created_at) FILTER (WHERE o.state = 'pending'))::float8
             FROM outbox o
             JOIN configuracion_mensajeria_usuario c ON c.id = o.connection_id
             WHERE o.state IN ('pending', 'sending')
               AND ($1::uuid IS NULL OR o.usuario_id = $1)
             GROUP BY o.connection_id, o.usuario_id, c.configuracion->>'tipo_conexion', o.priority
             ORDER BY o.usuario_id, o.connection_id, o.priority",
            &[&usuario_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Depth {
            connection_id: r.get(0),
            usuario_id: r.get(1),
            connection_type: r.get(2),
            priority: super::priority_name(r.get(3)),
            pending: r.get(4),
            scheduled: r.get(5),
            sending: r.get(6),
            oldest_queued_at: r.get(7),
            oldest_age_secs: r.get(8),
        })
        .collect())
}
