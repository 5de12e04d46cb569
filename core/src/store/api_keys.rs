//! API keys: `swk_<prefix>_<secret>`. Only a SHA-256 of the whole key is stored; the prefix
//! finds the row and the hash is compared in constant time. Keys carry 256 bits of entropy, so
//! a fast hash is enough (no password stretching is needed against guessing).
//!
//! A key holds scopes ([`Scopes`]): `read`, `send`, `sessions`, `admin` (admin implies every
//! other). A key made before scopes existed (NULL scopes) keeps its user's full rights, admin
//! only when the key was made as an admin key. A key may expire (`expires_at`) and may be
//! revoked; both take effect on the next request on every node, since keys are never cached.

use super::{Client, StoreError};
use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

/// What a key may do, as a small bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub const READ: Scopes = Scopes(1);
    pub const SEND: Scopes = Scopes(2);
    pub const SESSIONS: Scopes = Scopes(4);
    pub const ADMIN: Scopes = Scopes(8);
    /// Everything a user may do short of the admin routes.
    pub const USER: Scopes = Scopes(1 | 2 | 4);
    pub const ALL: Scopes = Scopes(1 | 2 | 4 | 8);
    pub const NAMES: [(&'static str, Scopes); 4] = [
        ("admin", Scopes::ADMIN),
        ("read", Scopes::READ),
        ("send", Scopes::SEND),
        ("sessions", Scopes::SESSIONS),
    ];

    pub const fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    /// Whether every scope of `other` is held; `admin` holds them all.
    pub fn covers(self, other: Scopes) -> bool {
        self.0 & Scopes::ADMIN.0 != 0 || self.0 & other.0 == other.0
    }

    /// Whether at least one scope of `any` is held; `admin` holds them all.
    pub fn any_of(self, any: Scopes) -> bool {
        self.0 & Scopes::ADMIN.0 != 0 || self.0 & any.0 != 0
    }

    pub fn is_admin(self) -> bool {
        self.0 & Scopes::ADMIN.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// One scope by name.
    pub fn parse_one(name: &str) -> Option<Scopes> {
        Scopes::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    }

    /// The names held, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        Scopes::NAMES
            .iter()
            .filter(|(_, s)| self.0 & s.0 != 0)
            .map(|(n, _)| *n)
            .collect()
    }

    /// The scopes of a stored row: NULL is a key made before scopes (its user's full rights).
    fn from_row(stored: Option<Vec<String>>, is_admin: bool) -> Scopes {
        match stored {
            None if is_admin => Scopes::ALL,
            None => Scopes::USER,
            Some(names) => names
                .iter()
                .filter_map(|n| Scopes::parse_one(n))
                .fold(Scopes::default(), Scopes::union),
        }
    }
}

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub usuario_id: Uuid,
    pub api_key_id: Uuid,
    /// Whether the key holds the `admin` scope.
    pub is_admin: bool,
    pub scopes: Scopes,
    /// The client's address, for the audit log.
    pub ip: Option<IpAddr>,
}

impl Principal {
    /// What the key may list across users: every user's rows with an admin key, else its own.
    pub fn scope(&self) -> super::Scope {
        if self.is_admin {
            super::Scope::All
        } else {
            super::Scope::User(self.usuario_id)
        }
    }
}

/// A newly made key: `plaintext` is shown once and never stored.
#[derive(Debug)]
pub struct NewApiKey {
    pub id: Uuid,
    pub prefix: String,
    pub plaintext: Secret,
}

fn hash(key: &str) -> Vec<u8> {
    crate::digest::sha256(key).to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `swk_<prefix>_<secret>` into its prefix, or None when the shape is wrong.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("swk_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12 && secret.len() >= 32).then_some(prefix)
}

fn new_material() -> (String, String) {
    let prefix_bytes: [u8; 6] = rand::random();
    let secret: [u8; 32] = rand::random();
    let prefix = crate::digest::hex(&prefix_bytes);
    let plaintext = format!("swk_{prefix}_{}", URL_SAFE_NO_PAD.encode(secret));
    (prefix, plaintext)
}

/// A key with its user's full rights (admin when `is_admin`), as `user create` makes them.
pub async fn create(
    client: &impl deadpool_postgres::GenericClient,
    usuario_id: Uuid,
    is_admin: bool,
    label: Option<&str>,
) -> Result<NewApiKey, StoreError> {
    insert(client, usuario_id, is_admin, label, None, None).await
}

/// A key with explicit scopes and an optional expiry (`POST /v1/keys`).
pub async fn create_scoped(
    client: &impl deadpool_postgres::GenericClient,
    usuario_id: Uuid,
    name: Option<&str>,
    scopes: Scopes,
    expires_at: Option<OffsetDateTime>,
) -> Result<NewApiKey, StoreError> {
    let names: Vec<String> = scopes.names().into_iter().map(String::from).collect();
    insert(
        client,
        usuario_id,
        scopes.is_admin(),
        name,
        Some(names),
        expires_at,
    )
    .await
}

async fn insert(
    client: &impl deadpool_postgres::GenericClient,
    usuario_id: Uuid,
    is_admin: bool,
    label: Option<&str>,
    scopes: Option<Vec<String>>,
    expires_at: Option<OffsetDateTime>,
) -> Result<NewApiKey, StoreError> {
    let (prefix, plaintext) = new_material();
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO api_keys (id, usuario_id, prefix, key_hash, is_admin, label, scopes, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &id,
                &usuario_id,
                &prefix,
                &hash(&plaintext),
                &is_admin,
                &label,
                &scopes,
                &expires_at,
            ],
        )
        .await?;
    Ok(NewApiKey {
        id,
        prefix,
        plaintext: Secret::new(plaintext),
    })
}

/// What a presented key turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Valid(Principal),
    /// Malformed, unknown, revoked, or the secret part does not match.
    Unknown,
    Expired,
}

/// How stale `last_used_at` may get before a use writes it again: one write per key per
/// minute at most, not one per request.
const LAST_USED_GRANULARITY_SECS: f64 = 60.0;

/// Looks a presented key up (one query; a malformed key none). `last_used_at` is refreshed
/// in the background when it is more than a minute old.
pub async fn lookup(client: &Client, presented: &str) -> Result<Lookup, StoreError> {
    let Some(prefix) = prefix_of(presented) else {
        return Ok(Lookup::Unknown);
    };
    let row = client
        .query_opt(
            "SELECT id, usuario_id, key_hash, is_admin, scopes,
                    expires_at IS NOT NULL AND expires_at <= now(),
                    COALESCE(EXTRACT(EPOCH FROM now() - last_used_at)::float8, 1e9)
             FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL",
            &[&prefix],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Lookup::Unknown);
    };
    let stored: Vec<u8> = row.get(2);
    if !constant_time_eq(&stored, &hash(presented)) {
        return Ok(Lookup::Unknown);
    }
    if row.get::<_, bool>(5) {
        return Ok(Lookup::Expired);
    }
    let id: Uuid = row.get(0);
    let is_admin: bool = row.get(3);
    let scopes = Scopes::from_row(row.get(4), is_admin);
    if row.get::<_, f64>(6) > LAST_USED_GRANULARITY_SECS {
        touch(client, id).await;
    }
    Ok(Lookup::Valid(Principal {
        api_key_id: id,
        usuario_id: row.get(1),
        is_admin: scopes.is_admin(),
        scopes,
        ip: None,
    }))
}

/// Sets `last_used_at`; a failure only loses the timestamp.
async fn touch(client: &Client, id: Uuid) {
    if let Err(e) = client
        .execute(
            "UPDATE api_keys SET last_used_at = now() WHERE id = $1",
            &[&id],
        )
        .await
    {
        tracing::warn!(error = %e, "could not record a key's last use");
    }
}

/// The principal of a presented key, or None for an unknown, revoked, expired or malformed key.
pub async fn authenticate(
    client: &Client,
    presented: &str,
) -> Result<Option<Principal>, StoreError> {
    Ok(match lookup(client, presented).await? {
        Lookup::Valid(p) => Some(p),
        Lookup::Unknown | Lookup::Expired => None,
    })
}

/// A key as its owner sees it (never the secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyView {
    pub id: Uuid,
    pub name: Option<String>,
    pub prefix: String,
    pub scopes: Vec<&'static str>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

const VIEW_COLUMNS: &str =
    "id, label, prefix, scopes, is_admin, created_at, expires_at, last_used_at, revoked_at";

fn view(row: &tokio_postgres::Row) -> KeyView {
    KeyView {
        id: row.get(0),
        name: row.get(1),
        prefix: row.get(2),
        scopes: Scopes::from_row(row.get(3), row.get(4)).names(),
        created_at: row.get(5),
        expires_at: row.get(6),
        last_used_at: row.get(7),
        revoked_at: row.get(8),
    }
}

/// A user's keys, newest first, revoked ones included (they show `revoked_at`).
pub async fn list(client: &Client, usuario_id: Uuid) -> Result<Vec<KeyView>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {VIEW_COLUMNS} FROM api_keys WHERE usuario_id = $1 ORDER BY created_at DESC, id DESC"
            ),
            &[&usuario_id],
        )
        .await?;
    Ok(rows.iter().map(view).collect())
}

/// One key of a user.
pub async fn get(
    client: &impl deadpool_postgres::GenericClient,
    usuario_id: Option<Uuid>,
    id: Uuid,
) -> Result<Option<KeyView>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {VIEW_COLUMNS} FROM api_keys WHERE id = $1 AND ($2::uuid IS NULL OR usuario_id = $2)"
            ),
            &[&id, &usuario_id],
        )
        .await?;
    Ok(row.as_ref().map(view))
}

/// Revokes a key (of `usuario_id` when given); the key is refused from the next request on,
/// on every node. Returns the key, or None when there is no such key. Revoking twice keeps the
/// first time.
pub async fn revoke(
    client: &impl deadpool_postgres::GenericClient,
    usuario_id: Option<Uuid>,
    id: Uuid,
) -> Result<Option<KeyView>, StoreError> {
    client
        .execute(
            "UPDATE api_keys SET revoked_at = now()
             WHERE id = $1 AND ($2::uuid IS NULL OR usuario_id = $2) AND revoked_at IS NULL",
            &[&id, &usuario_id],
        )
        .await?;
    get(client, usuario_id, id).await
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

    #[test]
    fn scopes() {
        assert_eq!(Scopes::from_row(None, false), Scopes::USER);
        assert_eq!(Scopes::from_row(None, true), Scopes::ALL);
        let read = Scopes::from_row(Some(vec!["read".into(), "bogus".into()]), true);
        assert_eq!(read, Scopes::READ);
        assert!(read.covers(Scopes::READ));
        assert!(!read.covers(Scopes::SEND));
        assert!(Scopes::ADMIN.covers(Scopes::SEND));
        assert!(Scopes::USER.covers(Scopes::SEND.union(Scopes::READ)));
        assert!(!Scopes::USER.covers(Scopes::ADMIN));
        assert!(read.any_of(Scopes::READ.union(Scopes::SESSIONS)));
        assert_eq!(
            Scopes::ALL.names(),
            vec!["admin", "read", "send", "sessions"]
        );
    }
}
