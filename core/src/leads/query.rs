//! Reading a user's leads for the API: newest first in `(created_at, id)` keyset pages,
//! optionally only the lead of one phone number (read in the user's default region and folded
//! to the contact key leads are stored under) or of one first-touch source, and one lead by id. Scoped to the user: another
//! user's lead is not found.

use crate::phone::contact_key;
use crate::store::StoreError;
use crate::store::users::{self, UserError};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

/// One lead as the API shows it.
#[derive(Debug, Clone)]
pub struct Lead {
    pub id: Uuid,
    pub nombre: Option<String>,
    pub telefono: Option<String>,
    pub email: Option<String>,
    pub origen: Option<String>,
    pub metadata: Value,
    pub merged_into: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Why leads could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LeadQueryError {
    /// The `phone` filter does not read as a number.
    #[error(transparent)]
    InvalidPhone(crate::phone::PhoneError),
    /// The `source` filter names no lead source.
    #[error("source must be one of: {}", crate::crm::source::kind::ALL.join(", "))]
    InvalidSource,
    #[error("lead not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for LeadQueryError {
    fn from(e: tokio_postgres::Error) -> Self {
        LeadQueryError::Store(e.into())
    }
}

impl From<UserError> for LeadQueryError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::InvalidRegion(p) | UserError::InvalidPhone(p) => {
                LeadQueryError::InvalidPhone(p)
            }
            UserError::Store(s) => LeadQueryError::Store(s),
        }
    }
}

const COLUMNS: &str =
    "id, nombre, telefono, email, origen, metadata, merged_into, created_at, updated_at";

fn lead(row: &Row) -> Lead {
    Lead {
        id: row.get("id"),
        nombre: row.get("nombre"),
        telefono: row.get("telefono"),
        email: row.get("email"),
        origen: row.get("origen"),
        metadata: row.get("metadata"),
        merged_into: row.get("merged_into"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// Up to `limit` leads of the user older than `after`, newest first; only the lead of `phone`
/// when given (read in the user's region, else `default_region`); only leads whose first
/// touch was `source` (`metadata.source.type`) when given.
pub async fn list(
    client: &impl GenericClient,
    usuario_id: Uuid,
    phone: Option<&str>,
    source: Option<&str>,
    default_region: Option<&str>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<Lead>, LeadQueryError> {
    let phone = match phone {
        None => None,
        Some(raw) => {
            let n = users::read_phone(client, usuario_id, raw, None, default_region).await?;
            // Leads are keyed by the contact key (WhatsApp's spellings folded in).
            Some(contact_key(&n.e164, None).key)
        }
    };
    if source.is_some_and(|s| !crate::crm::source::kind::ALL.contains(&s)) {
        return Err(LeadQueryError::InvalidSource);
    }
    let (after_at, after_id) = after.unzip();
    let sql = format!(
        "SELECT {COLUMNS} FROM leads
         WHERE usuario_id = $1
           AND ($2::text IS NULL OR telefono = $2)
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
           AND ($6::text IS NULL OR metadata->'source'->>'type' = $6)
         ORDER BY created_at DESC, id DESC
         LIMIT $5"
    );
    let rows = client
        .query(
            &sql,
            &[&usuario_id, &phone, &after_at, &after_id, &limit, &source],
        )
        .await?;
    Ok(rows.iter().map(lead).collect())
}

/// The user's lead `id`.
pub async fn get(
    client: &impl GenericClient,
    usuario_id: Uuid,
    id: Uuid,
) -> Result<Lead, LeadQueryError> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM leads WHERE id = $1 AND usuario_id = $2"),
            &[&id, &usuario_id],
        )
        .await?
        .map(|r| lead(&r))
        .ok_or(LeadQueryError::NotFound)
}
