//! `sincro-whatsapp doctor`: checks an install before (or while) it runs, one line per check,
//! `ok`, `FAIL` or `skip` with what was found, and exits non-zero when anything failed.
//!
//! It changes nothing: no migration, no private cluster started, no number touched. The
//! PostgreSQL checks go through the same connector as the daemon ([`PgConnect`]), so TLS and
//! LISTEN are tested exactly as the daemon will use them (a pooler in transaction mode, where
//! LISTEN silently never delivers, fails here).

use crate::config::Config;
use sincro_core::store::tls::{PgConnect, explain};
use std::fmt;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Fail,
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = self.outcome.to_string();
        write!(f, "{outcome:<4} {:<22} {}", self.name, self.detail)
    }
}

#[derive(Default)]
struct Report(Vec<Check>);

impl Report {
    fn add(&mut self, name: &'static str, outcome: Outcome, detail: impl Into<String>) {
        let check = Check {
            name,
            outcome,
            detail: detail.into(),
        };
        println!("{check}");
        self.0.push(check);
    }
    fn ok(&mut self, name: &'static str, detail: impl Into<String>) {
        self.add(name, Outcome::Ok, detail)
    }
    fn fail(&mut self, name: &'static str, detail: impl Into<String>) {
        self.add(name, Outcome::Fail, detail)
    }
    fn skip(&mut self, name: &'static str, detail: impl Into<String>) {
        self.add(name, Outcome::Skip, detail)
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs every check on `env` (the process environment for the command), printing each line as
/// it is done; the checks, for the exit code.
pub async fn run(env: &std::collections::HashMap<String, String>) -> Vec<Check> {
    let mut r = Report::default();
    let config = match Config::from_map(env) {
        Ok(c) => {
            r.ok("configuration", format!("valid (node {})", node_detail(&c)));
            c
        }
        Err(e) => {
            r.fail("configuration", e.0.join("; "));
            return r.0;
        }
    };
    data_dir(&mut r, &config);
    let pool = postgres(&mut r, &config).await;
    chromium(&mut r, &config).await;
    graph(&mut r, &config, pool.as_ref()).await;
    public_url(&mut r, &config).await;
    if let Some(pool) = pool {
        pool.close();
    }
    r.0
}

fn node_detail(c: &Config) -> String {
    if c.node_id_set {
        return format!("NODE_ID={}", c.node_id);
    }
    match std::fs::read_to_string(c.data_dir.join(crate::node_identity::NODE_ID_FILE)) {
        Ok(name) => format!("{} from DATA_DIR/node-id", name.trim()),
        Err(_) => "named at first start, kept in DATA_DIR/node-id".into(),
    }
}

fn data_dir(r: &mut Report, c: &Config) {
    use std::os::unix::fs::PermissionsExt;
    let dir = &c.data_dir;
    if let Err(e) = std::fs::create_dir_all(dir) {
        r.fail("data_dir", format!("{}: cannot create: {e}", dir.display()));
        return;
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"x") {
        r.fail("data_dir", format!("{}: not writable: {e}", dir.display()));
        return;
    }
    let _ = std::fs::remove_file(&probe);
    let mode = std::fs::metadata(dir)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    if mode & 0o002 != 0 {
        r.fail(
            "data_dir",
            format!(
                "{}: writable by every user (mode {mode:o}); it holds browser profiles and keys: chmod o-w",
                dir.display()
            ),
        );
        return;
    }
    let key = dir.join("encryption.key");
    if let Ok(m) = std::fs::metadata(&key)
        && m.permissions().mode() & 0o077 != 0
    {
        r.fail(
            "data_dir",
            format!(
                "{} is readable by others (mode {:o}): chmod 600",
                key.display(),
                m.permissions().mode() & 0o777
            ),
        );
        return;
    }
    let in_use = match std::fs::OpenOptions::new()
        .read(true)
        .open(dir.join(crate::node_identity::LOCK_FILE))
    {
        Ok(f) => {
            use std::os::fd::AsRawFd;
            // SAFETY: flock(2) on a descriptor owned here; released at once below.
            let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            if free {
                // SAFETY: as above.
                unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
            }
            !free
        }
        Err(_) => false,
    };
    r.ok(
        "data_dir",
        format!(
            "{} writable (mode {mode:o}){}",
            dir.display(),
            if in_use {
                "; a daemon is running on it"
            } else {
                ""
            }
        ),
    );
}

/// The URL the daemon would use: DATABASE_URL, else the local server's database (the private
/// cluster is not started here).
fn database_url(c: &Config) -> Option<String> {
    match &c.database_url {
        Some(url) => Some(url.expose().to_string()),
        None => Some(format!(
            "{}/{}",
            c.local_pg_url.trim_end_matches('/'),
            crate::embedded_pg::DEFAULT_DATABASE
        )),
    }
}

async fn postgres(r: &mut Report, c: &Config) -> Option<deadpool_postgres::Pool> {
    let Some(url) = database_url(c) else {
        return None;
    };
    let target = match PgConnect::parse(&url) {
        Ok(t) => t,
        Err(e) => {
            r.fail("postgres.reachable", e.to_string());
            return None;
        }
    };
    let mut config = target.config.clone();
    config.connect_timeout(CONNECT_TIMEOUT);
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(target.tls.clone())).await;
    let client = match connected {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            client
        }
        Ok(Err(e)) => {
            let mut why = explain(&e);
            if let Some(source) = std::error::Error::source(&e)
                && !why.contains(&source.to_string())
            {
                why = format!("{why}: {source}");
            }
            if c.database_url.is_none() {
                // The embedded default: `serve` starts a private cluster instead.
                r.skip(
                    "postgres.reachable",
                    format!(
                        "DATABASE_URL unset and no server at LOCAL_PG_URL ({why}): serve starts a private cluster under DATA_DIR/postgres"
                    ),
                );
                return None;
            }
            r.fail("postgres.reachable", why);
            return None;
        }
        Err(_) => {
            r.fail(
                "postgres.reachable",
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            );
            return None;
        }
    };
    let ports = target.config.get_ports();
    let hosts: Vec<String> = target
        .config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            }
        })
        .collect();
    r.ok(
        "postgres.reachable",
        format!(
            "{} database {}",
            hosts.join(","),
            target.config.get_dbname().unwrap_or("(default)")
        ),
    );

    match client
        .query_opt(
            "SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
    {
        Ok(Some(row)) if row.get::<_, bool>(0) => r.ok(
            "postgres.tls",
            format!(
                "encrypted ({}, {}), sslmode={}{}",
                row.get::<_, Option<String>>(1).unwrap_or_default(),
                row.get::<_, Option<String>>(2).unwrap_or_default(),
                target.mode.as_str(),
                if target.mode.verifies() {
                    ", certificate verified"
                } else {
                    ", certificate not verified (sslmode=verify-full checks it)"
                }
            ),
        ),
        Ok(_) => r.ok(
            "postgres.tls",
            format!(
                "not encrypted (sslmode={}{})",
                target.mode.as_str(),
                if target.plain_on_loopback() {
                    ": plain text over loopback, where it never leaves this machine; sslmode=require encrypts it"
                } else if target.mode == sincro_core::store::tls::SslMode::Prefer {
                    ": the server offers no TLS"
                } else {
                    ""
                }
            ),
        ),
        Err(e) => r.fail("postgres.tls", e.to_string()),
    }

    match client.query_one("SHOW server_version_num", &[]).await {
        Ok(row) => {
            let num: i64 = row.get::<_, String>(0).parse().unwrap_or(0);
            let shown = format!("{}.{}", num / 10000, num % 10000);
            if num >= 130000 {
                r.ok("postgres.version", format!("PostgreSQL {shown}"));
            } else {
                r.fail(
                    "postgres.version",
                    format!("PostgreSQL {shown}; 13 or newer is needed"),
                );
            }
        }
        Err(e) => r.fail("postgres.version", e.to_string()),
    }

    let latest = sincro_core::store::migrate::latest_version();
    let applied = async {
        let exists: bool = client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await?
            .get(0);
        if !exists {
            return Ok::<_, tokio_postgres::Error>(None);
        }
        let v: Option<i32> = client
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await?
            .get(0);
        Ok(v)
    }
    .await;
    match applied {
        Ok(Some(v)) if v >= latest => r.ok("postgres.migrations", format!("version {v}")),
        Ok(Some(v)) => r.fail(
            "postgres.migrations",
            format!(
                "version {v}, this build has {latest}: run `sincro-whatsapp migrate` (serve migrates at start too)"
            ),
        ),
        Ok(None) => r.fail(
            "postgres.migrations",
            "none applied: run `sincro-whatsapp migrate` (serve migrates at start too)",
        ),
        Err(e) => r.fail("postgres.migrations", e.to_string()),
    }

    listen(r, &target, &client).await;
    drop(client);
    sincro_core::store::connect_pool(&url, 2).ok()
}

/// LISTEN on a second session and NOTIFY from the first: the notification must arrive (it
/// never does through a pooler in transaction mode).
async fn listen(r: &mut Report, target: &PgConnect, notifier: &tokio_postgres::Client) {
    use futures::StreamExt;
    let channel = format!("sincro_doctor_{}", std::process::id());
    let (listener, mut connection) = match target.connect().await {
        Ok(pair) => pair,
        Err(e) => {
            r.fail(
                "postgres.listen",
                format!("second session: {}", explain(&e)),
            );
            return;
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    let outcome = async {
        listener
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(|e| e.to_string())?;
        notifier
            .execute("SELECT pg_notify($1, 'doctor')", &[&channel])
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(p)) if p == "doctor" => Ok(()),
            _ => Err(
                "a NOTIFY did not reach the LISTEN session within 5 s: a pooler in transaction mode? Use a direct connection or session mode"
                    .to_string(),
            ),
        }
    }
    .await;
    task.abort();
    match outcome {
        Ok(()) => r.ok(
            "postgres.listen",
            "LISTEN/NOTIFY delivered through the configured URL",
        ),
        Err(e) => r.fail("postgres.listen", e),
    }
}

async fn chromium(r: &mut Report, c: &Config) {
    match crate::chromium::locate(c.chromium_path.as_deref()) {
        Ok(path) => {
            r.ok("chromium.found", path.display().to_string());
            match crate::chromium::try_start(&c.lite).await {
                Ok(took) => r.ok(
                    "chromium.starts",
                    format!("started headless in {} ms and stopped", took.as_millis()),
                ),
                Err(e) => r.fail("chromium.starts", e),
            }
        }
        Err(e) => {
            r.fail("chromium.found", e);
            r.skip("chromium.starts", "no browser to start");
        }
    }
}

async fn graph(r: &mut Report, c: &Config, pool: Option<&deadpool_postgres::Pool>) {
    use sincro_core::business::graph::GraphClient;
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            r.fail("graph.reachable", e.to_string());
            return;
        }
    };
    let base = format!("{}/{}/", c.graph_api_base, c.graph_api_version);
    match http.get(&base).send().await {
        // Any HTTP answer (Meta answers 400 without a token) means it is reachable.
        Ok(resp) => r.ok(
            "graph.reachable",
            format!(
                "{} answered HTTP {}",
                c.graph_api_base,
                resp.status().as_u16()
            ),
        ),
        Err(e) => {
            r.fail("graph.reachable", format!("{}: {e}", c.graph_api_base));
            r.skip("graph.tokens", "the Graph API is not reachable");
            return;
        }
    }
    let Some(pool) = pool else {
        r.skip(
            "graph.tokens",
            "no database to read the connected numbers from",
        );
        return;
    };
    let sealer = match crate::app::sealer(c) {
        Ok(s) => s,
        Err(e) => {
            r.fail(
                "graph.tokens",
                format!("cannot open the stored tokens: {e}"),
            );
            return;
        }
    };
    let Ok(client) = pool.get().await else {
        r.skip("graph.tokens", "no database connection");
        return;
    };
    let numbers = match sincro_core::business::store::active(&client).await {
        Ok(n) => n,
        Err(e) => {
            r.skip("graph.tokens", format!("cannot list the numbers: {e}"));
            return;
        }
    };
    if numbers.is_empty() {
        r.skip("graph.tokens", "no Business number connected");
        return;
    }
    let mut failed = Vec::new();
    for (id, phone_number_id) in &numbers {
        let record = match sincro_core::business::store::load(&client, &sealer, *id).await {
            Ok(Some(rec)) => rec,
            Ok(None) => continue,
            Err(e) => {
                failed.push(format!("{phone_number_id}: {e}"));
                continue;
            }
        };
        let verdict = match GraphClient::new(
            &c.graph_api_base,
            &c.graph_api_version,
            record.access_token.expose(),
        ) {
            Ok(g) => match g.debug_token().await {
                Ok(debug) => sincro_core::business::validate::check_token(&debug, &record.waba_id)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = verdict {
            failed.push(format!("{phone_number_id}: {e}"));
        }
    }
    if failed.is_empty() {
        r.ok(
            "graph.tokens",
            format!("{} number(s): every token valid", numbers.len()),
        );
    } else {
        r.fail("graph.tokens", failed.join("; "));
    }
}

async fn public_url(r: &mut Report, c: &Config) {
    let Some(public) = &c.public_url else {
        r.skip(
            "public_url",
            "PUBLIC_URL unset: webhooks must be configured at Meta by hand",
        );
        return;
    };
    let url = format!("{public}/healthz");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build();
    match http {
        Ok(http) => match http.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => r.ok(
                "public_url",
                format!("{url} answered HTTP {}", resp.status().as_u16()),
            ),
            Ok(resp) => r.fail(
                "public_url",
                format!(
                    "{url} answered HTTP {}: is it this daemon (or its proxy)?",
                    resp.status().as_u16()
                ),
            ),
            Err(e) => r.fail(
                "public_url",
                format!("{url}: {e} (is the daemon running, and the proxy or DNS in place?)"),
            ),
        },
        Err(e) => r.fail("public_url", e.to_string()),
    }
}
