//! Numbered SQL migrations from `schema/`, embedded in the binary, applied in order and tracked
//! in `schema_migrations` with a checksum. Two nodes starting at once are serialised by a
//! PostgreSQL advisory lock, and a migration edited after it was applied is refused.

use super::StoreError;
use tokio_postgres::Client;

/// One embedded migration.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// One [`Migration`] from its version and file name under `schema/`, so a name is written once.
macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../schema/", $name)),
        }
    };
}

/// Every file of `schema/`, in order. A unit test checks this list against the directory.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_crm_tables.sql"),
    migration!(2, "0002_whatsapp_tables.sql"),
    migration!(3, "0003_ingest.sql"),
    migration!(4, "0004_business.sql"),
    migration!(5, "0005_queue.sql"),
    migration!(6, "0006_lite.sql"),
    migration!(7, "0007_outbox_owners.sql"),
    migration!(8, "0008_inbound_inbox.sql"),
    migration!(9, "0009_lite_durable.sql"),
    migration!(10, "0010_key_scopes_audit.sql"),
    migration!(11, "0011_alerts.sql"),
    migration!(12, "0012_privacy.sql"),
    migration!(13, "0013_crm_contract.sql"),
    migration!(14, "0014_event_webhooks.sql"),
    migration!(15, "0015_auto_reply_pending.sql"),
    migration!(16, "0016_inbox_vacuum.sql"),
    migration!(17, "0017_webhook_attempts_lighter.sql"),
    migration!(18, "0018_ingest_lighter.sql"),
    migration!(19, "0019_outbox_lighter.sql"),
];

/// Key of the advisory lock held while migrating ("sincro-wa" in ASCII).
const LOCK_KEY: i64 = 0x73_69_6e_63_72_6f_77_61;

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<i32>,
    pub current: i32,
}

/// The checksum that guards an applied migration: its statements, not its comments. Lines
/// that are only a `--` comment are left out, so a comment may be reworded after release
/// (saying the reason better, no longer pointing outside the repository) while any change to
/// what the migration does is still refused.
fn checksum(sql: &str) -> String {
    let statements: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    crate::digest::sha256_hex(statements.join("\n"))
}

/// Checksums of the whole text (comments included) that releases before [`checksum`] left
/// comments out stored for these migrations. A database that stored one of them has exactly
/// these statements; its row is moved to the current checksum.
const SHIPPED: &[(i32, &str)] = &[
    (
        1,
        "1ed74a33121bd2750e121349fff65c65570e3d8db1ad8c5eaba437255ff79e55",
    ),
    (
        2,
        "80bb777cc68a14d6a0877690773e3282e4792397023547003478f631674cfcd0",
    ),
    (
        3,
        "35f6e740d7344f43f34dff3d03f4efa0096b623c276fd79f531de056f96d31e8",
    ),
    (
        4,
        "7f360a854ea347e37b70cca2b8b2a69017a65594894260aa08364374aa0f73cc",
    ),
    (
        5,
        "3fd58b9fa1f8c820272719a7c36a32c6fde3d2814b745462b69674aacda2b8be",
    ),
    (
        6,
        "cf053ace51909e1eaf8ff61873f7ac8a2d30746173a3a3e4a1e1599c956795b3",
    ),
    (
        7,
        "f73dfb04a4328cf4d5024e29241487773845e61fe7b0e1c41370ae7cefbdf201",
    ),
];

/// The newest version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Applies every pending migration, each in its own transaction, under the advisory lock.
pub async fn migrate(client: &mut Client) -> Result<MigrateReport, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = migrate_locked(client).await;
    // Unlock even when a migration failed; a broken connection releases it anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<MigrateReport, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let rows = client
        .query("SELECT version, name, checksum FROM schema_migrations", &[])
        .await?;
    let applied: Vec<(i32, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    if let Some(found) = applied.iter().map(|a| a.0).max()
        && found > latest_version()
    {
        return Err(StoreError::SchemaTooNew {
            found,
            known: latest_version(),
        });
    }
    let mut newly = Vec::new();
    let mut install_report = None;
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if let Some((_, name, existing)) = applied.iter().find(|a| a.0 == m.version) {
            if *existing == sum {
                continue;
            }
            if SHIPPED.contains(&(m.version, existing.as_str())) {
                client
                    .execute(
                        "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                        &[&m.version, &sum],
                    )
                    .await?;
                continue;
            }
            return Err(StoreError::MigrationChanged {
                version: m.version,
                name: name.clone(),
            });
        }
        let tx = client.transaction().await?;
        if m.version == 1 {
            // A CRM's own tables may hold what 0001's constraints refuse (see install.rs).
            install_report = super::install::prepare(&tx).await?;
        }
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &sum],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        newly.push(m.version);
    }
    if let Some(details) = install_report {
        client
            .execute(
                "INSERT INTO audit_log (action, target, details)
                 VALUES ('install.crm_tables_adapted', 'leads', $1)",
                &[&details],
            )
            .await?;
    }
    Ok(MigrateReport {
        applied: newly,
        current: latest_version(),
    })
}

/// Whether every embedded migration is applied (for `/readyz`).
pub async fn is_current(client: &Client) -> Result<bool, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(false);
    }
    let max: Option<i32> = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?
        .get(0);
    Ok(max.unwrap_or(0) >= latest_version())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_do_not_count_statements_do() {
        let sql = "-- why\nCREATE TABLE t (a int);\n  -- more\nCREATE INDEX i ON t (a);\n";
        let reworded =
            "-- the reason, said better\nCREATE TABLE t (a int);\nCREATE INDEX i ON t (a);\n";
        assert_eq!(checksum(sql), checksum(reworded));
        assert_ne!(
            checksum(sql),
            checksum("CREATE TABLE t (a bigint);\nCREATE INDEX i ON t (a);\n")
        );
    }

    #[test]
    fn embedded_list_matches_schema_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, names, "schema/ and MIGRATIONS disagree");
        for (i, m) in MIGRATIONS.iter().enumerate() {
            // Consecutive: a gap would let a later build apply a lower number after a higher
            // one on databases that already ran the higher.
            assert_eq!(m.version, i as i32 + 1, "versions must be 1, 2, 3, ...");
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }
}
