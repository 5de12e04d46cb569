//! CRM users (`usuarios`): created by `sincro-whatsapp user create` with their first API key.

use super::{Client, StoreError, api_keys};
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
