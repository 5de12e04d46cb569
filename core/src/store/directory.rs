//! The users of this daemon as an administrator sees them (`GET /v1/users`): who they are,
//! whether one of their live keys is an admin key, how many live keys they hold and when one
//! was last used. Their keys themselves are [`super::api_keys::list`]; nothing secret is read.

use super::StoreError;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// One user in the administrators' listing.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: Option<String>,
    pub nombre: Option<String>,
    /// Holds a live (not revoked, not expired) key with the admin scope.
    pub admin: bool,
    /// Live keys.
    pub active_keys: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Users newest first, after the `(created_at, id)` of `after`, at most `limit`.
pub async fn users(
    client: &impl GenericClient,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<UserSummary>, StoreError> {
    let (at, id) = after.unzip();
    let rows = client
        .query(
            "SELECT u.id, u.email, u.nombre,
                    coalesce(bool_or(k.id IS NOT NULL AND (
                        'admin' = ANY(k.scopes) OR (k.scopes IS NULL AND k.is_admin))), false),
                    count(k.id), max(k.last_used_at), u.created_at
             FROM usuarios u
             LEFT JOIN api_keys k ON k.usuario_id = u.id AND k.revoked_at IS NULL
                  AND (k.expires_at IS NULL OR k.expires_at > now())
             WHERE $1::timestamptz IS NULL OR (u.created_at, u.id) < ($1, $2)
             GROUP BY u.id
             ORDER BY u.created_at DESC, u.id DESC
             LIMIT $3",
            &[&at, &id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| UserSummary {
            id: r.get(0),
            email: r.get(1),
            nombre: r.get(2),
            admin: r.get(3),
            active_keys: r.get(4),
            last_used_at: r.get(5),
            created_at: r.get(6),
        })
        .collect())
}

/// Whether the user exists.
pub async fn exists(client: &impl GenericClient, usuario_id: Uuid) -> Result<bool, StoreError> {
    Ok(client
        .query_opt("SELECT 1 FROM usuarios WHERE id = $1", &[&usuario_id])
        .await?
        .is_some())
}
