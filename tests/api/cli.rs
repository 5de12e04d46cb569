//! The command line: `user create` prints the key alone on the last line and stores only its
//! hash; `migrate` works with DATABASE_URL unset by starting a private PostgreSQL and stops it.

use crate::helpers::{connect, fresh_database};
use crate::process::command;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn user_create_prints_a_working_key() {
    // Arrange
    let url = fresh_database().await;
    let env = HashMap::from([
        ("DATABASE_URL".to_string(), url.clone()),
        (
            "ENCRYPTION_KEY".to_string(),
            sincro_core::seal::Sealer::generate_env_value("c1"),
        ),
    ]);
    // Act
    let out = command(
        &[
            "user",
            "create",
            "--email",
            "cli@example.com",
            "--name",
            "Cli",
            "--admin",
        ],
        &env,
    )
    .output()
    .await
    .unwrap();
    // Assert
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim();
    assert!(key.starts_with("swk_"), "{stdout}");
    let client = connect(&url).await;
    let row = client
        .query_one(
            "SELECT u.email, k.is_admin, row_to_json(k)::text FROM api_keys k JOIN usuarios u ON u.id = k.usuario_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "cli@example.com");
    assert!(row.get::<_, bool>(1));
    assert!(
        !row.get::<_, String>(2)
            .contains(crate::helpers::key_secret(key))
    );
    let found = sincro_core::store::api_keys::authenticate(
        &sincro_core::store::connect_pool(&url, 1)
            .unwrap()
            .get()
            .await
            .unwrap(),
        key,
    )
    .await
    .unwrap();
    assert!(found.is_some_and(|p| p.is_admin));
    // A bad e-mail is refused with a clear message and creates nothing.
    let out = command(&["user", "create", "--email", "nope"], &env)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an e-mail"));
    let users: i64 = client
        .query_one("SELECT count(*) FROM usuarios", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1);
}

#[tokio::test]
async fn bad_configuration_is_reported_line_by_line() {
    let env = HashMap::from([
        ("BIND_ADDR".to_string(), "nowhere".to_string()),
        ("LOG_FORMAT".to_string(), "xml".to_string()),
    ]);
    let out = command(&["serve"], &env).output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BIND_ADDR") && err.contains("LOG_FORMAT"),
        "{err}"
    );
}

#[tokio::test]
async fn database_url_set_without_encryption_key_is_refused() {
    let url = fresh_database().await;
    let env = HashMap::from([("DATABASE_URL".to_string(), url)]);
    let out = command(&["serve"], &env).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ENCRYPTION_KEY is required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_without_database_url_uses_a_private_cluster() {
    // Arrange: no server on the default address (a closed port), a fresh DATA_DIR.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = HashMap::from([
        (
            "DATA_DIR".to_string(),
            dir.path().join("data").display().to_string(),
        ),
        (
            "LOCAL_PG_URL".to_string(),
            format!("postgres://postgres@127.0.0.1:{closed}"),
        ),
    ]);
    // Act
    let out = command(&["migrate"], &env).output().await.unwrap();
    // Assert
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("schema is current"));
    assert!(dir.path().join("data/postgres").exists());
    assert!(dir.path().join("data/encryption.key").exists() || !stderr.contains("generated"));
    // Nothing of that cluster keeps running after the command.
    let pgdata = dir.path().join("data/postgres");
    let leftover = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&*pgdata.to_string_lossy()) && c.contains("postgres"))
        .count();
    assert_eq!(leftover, 0, "the private PostgreSQL still runs");
    // Second run reuses the cluster: migrations already applied.
    let out = command(&["migrate"], &env).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
