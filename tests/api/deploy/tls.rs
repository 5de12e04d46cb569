//! TLS to PostgreSQL: a private cluster with `ssl = on` and a certificate signed by a CA made
//! here, reached with each `sslmode`; then a whole daemon over `verify-full`, every one of its
//! sessions (pool, migrations, each LISTEN) encrypted.

use crate::helpers::{base_env, eventually, fast_restarts};
use sincro_core::store::tls::{PgConnect, SslMode, explain};
use sincro_whatsapp::embedded_pg::{EmbeddedPgOptions, EmbeddedPostgres, start_private};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// The name in the server's certificate (no IP address in it: connecting to 127.0.0.1 by
/// address is a host name mismatch).
const HOST: &str = "db.sincro.test";

struct TlsCluster {
    guard: EmbeddedPostgres,
    ca_file: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl TlsCluster {
    /// `postgres://postgres@<host>:<port>/sincro_whatsapp?<params>`, always reaching
    /// 127.0.0.1 (`hostaddr`) whatever name the TLS check uses.
    fn url(&self, host: &str, params: &str) -> String {
        let sep = if params.is_empty() { "" } else { "&" };
        format!(
            "postgres://postgres@{host}:{}/sincro_whatsapp?hostaddr=127.0.0.1{sep}{params}",
            self.guard.port()
        )
    }
}

fn write(path: &Path, text: &str, owner: &std::fs::Metadata, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::os::unix::fs::lchown(path, Some(owner.uid()), Some(owner.gid())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A private cluster (initdb once, as `tests/api/embedded_pg.rs` does), then `ssl = on` with a
/// server certificate for [`HOST`] signed by a fresh CA, started again.
async fn tls_cluster() -> TlsCluster {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut opts = EmbeddedPgOptions::new(dir.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    opts.default_server_url = format!(
        "postgres://postgres@127.0.0.1:{}",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let first = start_private(&opts).await.expect("private cluster");
    let pgdata = first.data_dir().to_owned();
    first.stop().await;

    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sincro test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server_params = rcgen::CertificateParams::new(vec![HOST.to_string()]).unwrap();
    server_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, HOST);
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

    let owner = std::fs::metadata(&pgdata).unwrap();
    write(
        &pgdata.join("server.crt"),
        &server_cert.pem(),
        &owner,
        0o600,
    );
    write(
        &pgdata.join("server.key"),
        &server_key.serialize_pem(),
        &owner,
        0o600,
    );
    let conf = pgdata.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(&conf, text).unwrap();

    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let guard = start_private(&opts).await.expect("cluster with ssl = on");
    TlsCluster {
        guard,
        ca_file: ca_file.display().to_string(),
        _dirs: (dir, ca_dir),
    }
}

/// Connects through the daemon's connector factory; whether the session is encrypted.
async fn ssl_in_use(url: &str) -> Result<bool, String> {
    let target = PgConnect::parse(url).map_err(|e| e.to_string())?;
    let (client, connection) = target.connect().await.map_err(|e| explain(&e))?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_against_a_server_with_its_own_ca() {
    // Arrange
    let c = tls_cluster().await;
    let ca = format!("sslrootcert={}", c.ca_file);

    // verify-full with the CA: encrypted.
    let url = c.url(HOST, &format!("sslmode=verify-full&{ca}"));
    assert_eq!(PgConnect::parse(&url).unwrap().mode, SslMode::VerifyFull);
    assert_eq!(ssl_in_use(&url).await, Ok(true));

    // verify-full without the CA (the system's roots): refused, naming the problem.
    let err = ssl_in_use(&c.url(HOST, "sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(
        err.contains("not signed by a trusted CA") && err.contains("UnknownIssuer"),
        "{err}"
    );

    // verify-full by address: the certificate names another host.
    let err = ssl_in_use(&c.url("127.0.0.1", &format!("sslmode=verify-full&{ca}")))
        .await
        .unwrap_err();
    assert!(
        err.contains("not issued for this host") && err.contains(HOST),
        "{err}"
    );
    // verify-ca checks the chain only.
    assert_eq!(
        ssl_in_use(&c.url("127.0.0.1", &format!("sslmode=verify-ca&{ca}"))).await,
        Ok(true)
    );
    let err = ssl_in_use(&c.url("127.0.0.1", "sslmode=verify-ca"))
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    // require encrypts without the CA; prefer (the default) is plain text over loopback, where
    // it never leaves the machine, by address or by a host name given `hostaddr=127.0.0.1`;
    // disable is plain text. (prefer to another machine, which no test can reach, is checked
    // on the parsed URL in `core/src/store/tls.rs`.)
    assert_eq!(
        ssl_in_use(&c.url("127.0.0.1", "sslmode=require")).await,
        Ok(true)
    );
    assert_eq!(ssl_in_use(&c.url("127.0.0.1", "")).await, Ok(false));
    assert_eq!(ssl_in_use(&c.url(HOST, "")).await, Ok(false));
    assert_eq!(
        ssl_in_use(&c.url("127.0.0.1", "sslmode=disable")).await,
        Ok(false)
    );

    c.guard.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_over_verify_full_encrypts_every_session() {
    use sincro_whatsapp::app::{Application, Options};
    use sincro_whatsapp::config::Config;
    // Arrange
    let c = tls_cluster().await;
    let url = c.url(
        HOST,
        &format!("sslmode=verify-full&sslrootcert={}", c.ca_file),
    );
    let data = tempfile::tempdir().unwrap();

    // Act: without the CA the daemon does not start, and says why.
    let mut env = base_env(&c.url(HOST, "sslmode=verify-full"), data.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = Application::build(
        Config::from_map(&env).unwrap(),
        listener,
        Options::default(),
    )
    .await
    .err()
    .expect("refused without the CA")
    .to_string();
    assert!(refused.contains("not signed by a trusted CA"), "{refused}");

    // With it, it migrates and runs.
    env.insert("DATABASE_URL".into(), url.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(
        Config::from_map(&env).unwrap(),
        listener,
        Options {
            restart_policy: fast_restarts(),
            fault_injection: false,
        },
    )
    .await
    .expect("daemon over verify-full");

    // Assert: every session of the daemon on its database is encrypted, the LISTEN ones
    // (hub, queue, control channel) included.
    let target = PgConnect::parse(&url).unwrap();
    let (client, connection) = target.connect().await.unwrap();
    tokio::spawn(connection);
    let sessions = || async {
        client
            .query(
                "SELECT a.application_name, s.ssl FROM pg_stat_activity a
                 JOIN pg_stat_ssl s ON s.pid = a.pid
                 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
            .collect::<Vec<_>>()
    };
    let listens = [
        "sincro-whatsapp-hub",
        "sincro-whatsapp-sincro_outbox",
        "sincro-whatsapp-sincro_control",
    ];
    let seen = eventually(Duration::from_secs(20), || async {
        let s = sessions().await;
        listens
            .iter()
            .all(|l| s.iter().any(|(name, _)| name == l))
            .then_some(s)
    })
    .await;
    let Some(seen) = seen else {
        panic!("LISTEN sessions missing: {:?}", sessions().await);
    };
    assert!(
        seen.iter().any(|(name, _)| name == "sincro-whatsapp"),
        "{seen:?}"
    );
    assert!(seen.iter().all(|(_, ssl)| *ssl), "{seen:?}");
    let current = sincro_core::store::migrate::is_current(&client)
        .await
        .unwrap();
    assert!(current);

    app.shutdown().await;
    drop(client);
    c.guard.stop().await;
}
