//! API keys: `swk_<prefix>_<secret>`. Only a SHA-256 of the whole key is stored; the prefix
//! finds the row and the hash is compared in constant time. Keys carry 256 bits of entropy, so
//! a fast hash is enough (no password stretching is needed against guessing).

use super::{Client, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub usuario_id: Uuid,
    pub api_key_id: Uuid,
    pub is_admin: bool,
}

/// A newly made key: `plaintext` is shown once and never stored.
pub struct NewApiKey {
    pub id: Uuid,
    pub prefix: String,
    pub plaintext: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("plaintext", &"[redacted]")
            .finish()
    }
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `swk_<prefix>_<secret>` into its prefix, or None when the shape is wrong.
fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("swk_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12 && secret.len() >= 32).then_some(prefix)
}

pub async fn create(
    client: &impl deadpool_postgres::GenericClient,
    usuario_id: Uuid,
    is_admin: bool,
    label: Option<&str>,
) -> Result<NewApiKey, StoreError> {
    let prefix_bytes: [u8; 6] = rand::random();
    let secret: [u8; 32] = rand::random();
    let prefix: String = prefix_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let plaintext = format!("swk_{prefix}_{}", URL_SAFE_NO_PAD.encode(secret));
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO api_keys (id, usuario_id, prefix, key_hash, is_admin, label)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &id,
                &usuario_id,
                &prefix,
                &hash(&plaintext),
                &is_admin,
                &label,
            ],
        )
        .await?;
    Ok(NewApiKey {
        id,
        prefix,
        plaintext,
    })
}

/// The principal of a presented key, or None for an unknown, revoked or malformed key.
pub async fn authenticate(
    client: &Client,
    presented: &str,
) -> Result<Option<Principal>, StoreError> {
    let Some(prefix) = prefix_of(presented) else {
        return Ok(None);
    };
    let row = client
        .query_opt(
            "SELECT id, usuario_id, key_hash, is_admin FROM api_keys
             WHERE prefix = $1 AND revoked_at IS NULL",
            &[&prefix],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: Vec<u8> = row.get(2);
    if !constant_time_eq(&stored, &hash(presented)) {
        return Ok(None);
    }
    Ok(Some(Principal {
        api_key_id: row.get(0),
        usuario_id: row.get(1),
        is_admin: row.get(3),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        assert_eq!(
            prefix_of("swk_0123456789ab_abcdefghijabcdefghijabcdefghijabcdefghij"),
            Some("0123456789ab")
        );
        assert_eq!(
            prefix_of("swk_short_abcdefghijabcdefghijabcdefghijabcdefghij"),
            None
        );
        assert_eq!(prefix_of("Bearer x"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
