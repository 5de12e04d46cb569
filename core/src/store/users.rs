//! CRM users (`usuarios`): created by `sincro-whatsapp user create` with their first API key;
//! their profile and settings as `/v1/me` shows and changes them, and the default region a
//! user's phone numbers written without a country code are read in: the one place
//! `DEFAULT_REGION` is applied to it ([`regions`]).

use super::{Client, StoreError, Transaction, api_keys};
use crate::phone::{self, NormalizedPhone, PhoneError};
use deadpool_postgres::GenericClient;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug)]
pub struct CreatedUser {
    pub usuario_id: Uuid,
    pub key: api_keys::NewApiKey,
}

/// Creates the user (or reuses an existing one with that e-mail) and gives it a new API key, in
/// one transaction.
pub async fn create_with_key(
    client: &mut Client,
    email: &str,
    nombre: Option<&str>,
    is_admin: bool,
) -> Result<(CreatedUser, bool), StoreError> {
    let tx = client.transaction().await?;
    let (usuario_id, created) = find_or_insert(&tx, email, nombre).await?;
    let key = api_keys::create(&tx, usuario_id, is_admin, Some("cli")).await?;
    tx.commit().await?;
    Ok((CreatedUser { usuario_id, key }, created))
}

/// The user with this e-mail (the oldest, as [`create_with_key`] picks), created without an
/// API key when there is none; whether it was created.
pub async fn find_or_create(client: &mut Client, email: &str) -> Result<(Uuid, bool), StoreError> {
    let tx = client.transaction().await?;
    let found = find_or_insert(&tx, email, None).await?;
    tx.commit().await?;
    Ok(found)
}

/// The oldest user with this e-mail, inserted (with `nombre`) when there is none; whether it
/// was inserted. Creators of the same e-mail are serialised by an advisory lock held until
/// the transaction ends (usuarios has no unique e-mail in the CRM schema).
async fn find_or_insert(
    tx: &Transaction<'_>,
    email: &str,
    nombre: Option<&str>,
) -> Result<(Uuid, bool), StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('usuarios:' || lower($1)))",
        &[&email],
    )
    .await?;
    let existing = tx
        .query_opt(
            "SELECT id FROM usuarios WHERE lower(email) = lower($1) ORDER BY created_at LIMIT 1",
            &[&email],
        )
        .await?;
    if let Some(row) = existing {
        return Ok((row.get(0), false));
    }
    let id = Uuid::now_v7();
    tx.execute(
        "INSERT INTO usuarios (id, email, nombre) VALUES ($1, $2, $3)",
        &[&id, &email, &nombre],
    )
    .await?;
    Ok((id, true))
}

/// A user as `GET /v1/me` shows it.
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: Uuid,
    pub email: Option<String>,
    pub nombre: Option<String>,
    pub default_region: Option<String>,
}

/// Why a user's settings or a number they typed were refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A region to store is not an ISO 3166 alpha-2 code.
    #[error(transparent)]
    InvalidRegion(PhoneError),
    /// A number does not read as one (or the region it is read in is unknown).
    #[error(transparent)]
    InvalidPhone(PhoneError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for UserError {
    fn from(e: tokio_postgres::Error) -> Self {
        UserError::Store(e.into())
    }
}

/// The user's profile (the key that authenticated names an existing user).
pub async fn profile(client: &impl GenericClient, usuario_id: Uuid) -> Result<Profile, StoreError> {
    let row = client
        .query_one(
            "SELECT id, email, nombre, default_region FROM usuarios WHERE id = $1",
            &[&usuario_id],
        )
        .await?;
    Ok(Profile {
        id: row.get(0),
        email: row.get(1),
        nombre: row.get(2),
        default_region: row.get(3),
    })
}

/// Sets (or clears) the user's default region, stored upper-case; returns what was stored.
pub async fn set_default_region(
    client: &impl GenericClient,
    usuario_id: Uuid,
    region: Option<&str>,
) -> Result<Option<String>, UserError> {
    if let Some(region) = region {
        phone::parse_region(region).map_err(UserError::InvalidRegion)?;
    }
    let region = region.map(|r| r.trim().to_ascii_uppercase());
    client
        .execute(
            "UPDATE usuarios SET default_region = $2 WHERE id = $1",
            &[&usuario_id, &region],
        )
        .await?;
    Ok(region)
}

/// The region a number the user typed is read in: the one the request names, else the
/// user's default, else `fallback` (the daemon's `DEFAULT_REGION`).
/// The store is read only when the request names none.
pub async fn region_for(
    client: &impl GenericClient,
    usuario_id: Uuid,
    given: Option<String>,
    fallback: Option<&str>,
) -> Result<Option<String>, StoreError> {
    Ok(match given {
        Some(r) => Some(r),
        None => region(client, usuario_id, fallback).await?,
    })
}

/// Reads a number the user typed to E.164 in the region [`region_for`] picks.
pub async fn read_phone(
    client: &impl GenericClient,
    usuario_id: Uuid,
    raw: &str,
    given: Option<String>,
    fallback: Option<&str>,
) -> Result<NormalizedPhone, UserError> {
    let region = region_for(client, usuario_id, given, fallback).await?;
    phone::normalize(raw, region.as_deref()).map_err(UserError::InvalidPhone)
}

/// The region national-format numbers of each of `users` are read in: the user's own
/// `default_region`, else `fallback` (`DEFAULT_REGION`). Users not found are left out. Every
/// reader of a user's region comes here, so none forgets the fallback.
pub async fn regions(
    client: &impl GenericClient,
    users: &[Uuid],
    fallback: Option<&str>,
) -> Result<HashMap<Uuid, Option<String>>, StoreError> {
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    // Prepared once per pooled connection: every ingest batch runs it.
    let statement = client
        .prepare_cached("SELECT id, default_region FROM usuarios WHERE id = ANY($1)")
        .await?;
    let rows = client.query(&statement, &[&users]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let own: Option<String> = row.get(1);
            (row.get(0), own.or_else(|| fallback.map(String::from)))
        })
        .collect())
}

/// [`regions`] for one user (`fallback` when the user has none).
pub async fn region(
    client: &impl GenericClient,
    usuario_id: Uuid,
    fallback: Option<&str>,
) -> Result<Option<String>, StoreError> {
    Ok(regions(client, &[usuario_id], fallback)
        .await?
        .remove(&usuario_id)
        .unwrap_or_else(|| fallback.map(String::from)))
}
