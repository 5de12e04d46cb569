//! CRM users (`usuarios`): created by `sincro-whatsapp user create` with their first API key;
//! each user's phone region, the one place `DEFAULT_REGION` is applied to it.

use super::{Client, StoreError, api_keys};
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
    // Serialise creators of the same e-mail (usuarios has no unique e-mail in the CRM schema).
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
    let (usuario_id, created) = match existing {
        Some(row) => (row.get(0), false),
        None => {
            let id = Uuid::now_v7();
            tx.execute(
                "INSERT INTO usuarios (id, email, nombre) VALUES ($1, $2, $3)",
                &[&id, &email, &nombre],
            )
            .await?;
            (id, true)
        }
    };
    let key = api_keys::create(&tx, usuario_id, is_admin, Some("cli")).await?;
    tx.commit().await?;
    Ok((CreatedUser { usuario_id, key }, created))
}

/// The user with this e-mail (the oldest, as [`create_with_key`] picks), created without an
/// API key when there is none; whether it was created.
pub async fn find_or_create(client: &mut Client, email: &str) -> Result<(Uuid, bool), StoreError> {
    let tx = client.transaction().await?;
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
    let found = match existing {
        Some(row) => (row.get(0), false),
        None => {
            let id = Uuid::now_v7();
            tx.execute(
                "INSERT INTO usuarios (id, email) VALUES ($1, $2)",
                &[&id, &email],
            )
            .await?;
            (id, true)
        }
    };
    tx.commit().await?;
    Ok(found)
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
    let rows = client
        .query(
            "SELECT id, default_region FROM usuarios WHERE id = ANY($1)",
            &[&users],
        )
        .await?;
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
