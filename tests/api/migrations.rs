//! Migrations on an empty database, again (a no-op), concurrently from two "nodes", and the
//! refusal of a migration edited after it was applied.

use crate::helpers::{connect, fresh_database};
use sincro_core::store::StoreError;
use sincro_core::store::migrate::{self, MIGRATIONS, latest_version};

const TABLES: &[&str] = &[
    "usuarios",
    "leads",
    "conversaciones",
    "mensajes_conversacion",
    "configuracion_mensajeria_usuario",
    "whatsapp_lite_sessions",
    "whatsapp_templates",
    "api_keys",
    "outbox",
    "idempotency_keys",
    "webhook_inbox",
    "event_counters",
    "events",
    "audit_log",
    "alerts",
    "nodes",
    "leases",
    "media",
];

#[tokio::test]
async fn migrates_an_empty_database_then_is_a_no_op() {
    // Arrange
    let url = fresh_database().await;
    let mut client = connect(&url).await;
    // Act
    let first = migrate::migrate(&mut client).await.unwrap();
    let second = migrate::migrate(&mut client).await.unwrap();
    // Assert
    assert_eq!(first.applied.len(), MIGRATIONS.len());
    assert!(second.applied.is_empty());
    assert_eq!(second.current, latest_version());
    assert!(migrate::is_current(&client).await.unwrap());
    for table in TABLES {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
            .await
            .unwrap()
            .get(0);
        assert!(exists, "table {table} missing");
    }
    let rows: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, MIGRATIONS.len());
}

#[tokio::test]
async fn existing_crm_tables_are_kept_and_extended() {
    // Arrange: the CRM already has its tables, with data, without our columns.
    let url = fresh_database().await;
    let mut client = connect(&url).await;
    client
        .batch_execute(
            "CREATE TABLE usuarios (id uuid PRIMARY KEY, email text, nombre text, created_at timestamptz DEFAULT now());
             INSERT INTO usuarios (id, email) VALUES ('00000000-0000-0000-0000-000000000001', 'crm@example.com');
             CREATE TABLE leads (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), usuario_id uuid REFERENCES usuarios(id),
                 nombre text, telefono text, email text, origen text, metadata jsonb DEFAULT '{}'::jsonb,
                 created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
             INSERT INTO leads (usuario_id, nombre, telefono) VALUES ('00000000-0000-0000-0000-000000000001', 'Ana', '+5511987654321');",
        )
        .await
        .unwrap();
    // Act
    migrate::migrate(&mut client).await.unwrap();
    // Assert: rows survive and our nullable columns exist.
    let row = client
        .query_one("SELECT nombre, merged_into IS NULL FROM leads", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "Ana");
    assert!(row.get::<_, bool>(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_migrating_at_once_both_succeed() {
    // Arrange
    let url = fresh_database().await;
    let mut a = connect(&url).await;
    let mut b = connect(&url).await;
    // Act
    let (ra, rb) = tokio::join!(migrate::migrate(&mut a), migrate::migrate(&mut b));
    // Assert: one applied everything, the other nothing.
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.applied.len() + rb.applied.len(), MIGRATIONS.len());
    assert!(ra.applied.is_empty() || rb.applied.is_empty());
}

#[tokio::test]
async fn a_changed_migration_is_refused() {
    // Arrange
    let url = fresh_database().await;
    let mut client = connect(&url).await;
    migrate::migrate(&mut client).await.unwrap();
    client
        .execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    // Act
    let err = migrate::migrate(&mut client).await.unwrap_err();
    // Assert
    assert!(
        matches!(err, StoreError::MigrationChanged { version: 1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_checksum_stored_by_an_earlier_release_is_moved_to_the_current_one() {
    // Arrange: a database migrated by a release that checksummed the whole text of 0001
    // (comments included), as its row says.
    let url = fresh_database().await;
    let mut client = connect(&url).await;
    migrate::migrate(&mut client).await.unwrap();
    let current: String = client
        .query_one(
            "SELECT checksum FROM schema_migrations WHERE version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "UPDATE schema_migrations SET checksum = '1ed74a33121bd2750e121349fff65c65570e3d8db1ad8c5eaba437255ff79e55' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    // Act
    migrate::migrate(&mut client).await.unwrap();
    // Assert
    let now: String = client
        .query_one(
            "SELECT checksum FROM schema_migrations WHERE version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(now, current);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = fresh_database().await;
    let mut client = connect(&url).await;
    migrate::migrate(&mut client).await.unwrap();
    client
        .execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')",
            &[],
        )
        .await
        .unwrap();
    let err = migrate::migrate(&mut client).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 9999, .. }),
        "{err}"
    );
}
