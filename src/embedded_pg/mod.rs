//! The embedded PostgreSQL default: which PostgreSQL the daemon talks to when `DATABASE_URL` is
//! unset.
//!
//! The daemon keeps everything in PostgreSQL, yet `serve` and `demo` must work on a fresh machine
//! without any database set-up. [`resolve`] therefore tries, in order:
//!
//! 1. a server answering on the default address (`postgres://postgres@127.0.0.1:5432`, trust
//!    auth, as a developer machine or a CI service usually has): it creates the target database
//!    there if absent and returns its URL;
//! 2. a private cluster under `DATA_DIR/postgres`, initialised once with the `initdb` found on
//!    the machine and started by the daemon on a free loopback port ([`start_private`]); the
//!    returned [`EmbeddedPostgres`] guard stops it again.
//!
//! When neither is possible the error says what to install or to set `DATABASE_URL`.
//!
//! This file owns the public API, the errors and the "use an existing server" path;
//! `embedded_pg/binaries.rs` finds the PostgreSQL binaries and `embedded_pg/cluster.rs` owns the
//! private cluster (initdb, start, readiness, stop).

mod binaries;
mod cluster;

use std::path::PathBuf;
use std::time::Duration;

use sincro_core::store::tls::{MakeRustlsConnect, PgConnect};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};
use tracing::{info, warn};

pub use binaries::BinarySearch;
pub use cluster::{EmbeddedPostgres, start_private};

/// Where a PostgreSQL is looked for before a private cluster is started: the usual local server
/// of a developer machine or CI service, reachable without a password.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// The database the daemon uses when nothing else is configured.
pub const DEFAULT_DATABASE: &str = "sincro_whatsapp";

/// How long probing the default server may take: a fresh machine has none, and start-up must
/// not hang on a firewalled port.
const SERVER_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`resolve`] and [`start_private`] need to know.
///
/// Everything that would otherwise be read from the process environment (`PG_BIN_DIR`, `PATH`)
/// is a field, so callers and tests can inject it without mutating process-wide state.
#[derive(Debug, Clone)]
pub struct EmbeddedPgOptions {
    /// The daemon's data directory; the private cluster lives in `data_dir/postgres`.
    pub data_dir: PathBuf,
    /// The server tried first (URL or key=value form, without a database name; a database given
    /// here is replaced by [`Self::database`]).
    pub default_server_url: String,
    /// The database to create (if absent) and return a URL for.
    pub database: String,
    /// Where `initdb` and `postgres` are looked for.
    pub binaries: BinarySearch,
}

impl EmbeddedPgOptions {
    /// Options with the defaults: [`DEFAULT_SERVER_URL`], [`DEFAULT_DATABASE`] and the binary
    /// search taken from the environment ([`BinarySearch::from_env`]).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            default_server_url: DEFAULT_SERVER_URL.to_owned(),
            database: DEFAULT_DATABASE.to_owned(),
            binaries: BinarySearch::from_env(),
        }
    }
}

/// The PostgreSQL the daemon should use.
#[derive(Debug)]
pub enum DatabaseSource {
    /// An already running server (not ours to stop).
    Server { url: String },
    /// The private cluster; keep `guard` alive as long as the database is used and call
    /// [`EmbeddedPostgres::stop`] after the last connection is closed.
    Private {
        url: String,
        guard: EmbeddedPostgres,
    },
}

impl DatabaseSource {
    /// The connection URL of the target database (never contains a password we made up; for a
    /// `Server` it carries whatever credentials the configured default URL had).
    pub fn url(&self) -> &str {
        match self {
            DatabaseSource::Server { url } | DatabaseSource::Private { url, .. } => url,
        }
    }
}

/// Why no database could be provided. Every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    /// Nothing usable at the default server and nothing to start a private cluster with.
    #[error(
        "no PostgreSQL available: the default server {server} is not usable ({reason}) and no \
         PostgreSQL binaries (initdb, postgres) were found (searched {searched}); install \
         PostgreSQL (for example `apt-get install postgresql`) or set DATABASE_URL"
    )]
    NoPostgres {
        server: String,
        reason: String,
        searched: String,
    },
    /// No directory holding both `initdb` and `postgres` was found.
    #[error(
        "no PostgreSQL binaries (initdb, postgres) were found (searched {searched}); install \
         PostgreSQL (for example `apt-get install postgresql`), set PG_BIN_DIR to its bin \
         directory, or set DATABASE_URL"
    )]
    NoBinaries { searched: String },
    /// The existing cluster needs another major version than the binaries found.
    #[error(
        "the PostgreSQL cluster in {} was created by PostgreSQL {cluster} but the binaries \
         found are {found}; install PostgreSQL {cluster} (or set PG_BIN_DIR to its bin \
         directory), or set DATABASE_URL", .data_dir.display()
    )]
    VersionMismatch {
        data_dir: PathBuf,
        cluster: String,
        found: String,
    },
    /// PostgreSQL refuses to run as root and there is no `postgres` user to run it as.
    #[error(
        "the daemon runs as root, PostgreSQL refuses to, and there is no `postgres` system user \
         to run it as; install PostgreSQL (`apt-get install postgresql` creates the user), run \
         the daemon as another user, or set DATABASE_URL"
    )]
    NoPostgresUser,
    /// A directory above `DATA_DIR` cannot be entered by the user PostgreSQL runs as.
    #[error(
        "PostgreSQL runs as user `{user}`, which cannot enter {}; make it traversable \
         (chmod o+x), choose a DATA_DIR below traversable directories, or set DATABASE_URL",
        .dir.display()
    )]
    NotTraversable { user: String, dir: PathBuf },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// `initdb` exited unsuccessfully.
    #[error("initdb failed ({status}): {output}")]
    Initdb { status: String, output: String },
    /// The server process exited before accepting connections.
    #[error(
        "PostgreSQL in {} exited during start-up ({status}); its log ends with:\n{log_tail}",
        .data_dir.display()
    )]
    StartFailed {
        data_dir: PathBuf,
        status: String,
        log_tail: String,
    },
    /// The server did not accept connections in time (it has been stopped again).
    #[error(
        "PostgreSQL in {} did not accept connections within {secs} s; its log ends \
         with:\n{log_tail}", .data_dir.display()
    )]
    StartTimeout {
        data_dir: PathBuf,
        secs: u64,
        log_tail: String,
    },
    /// Another server (typically a daemon still shutting down) owns the cluster.
    #[error(
        "another PostgreSQL (pid {pid}) is still running on {}; stop it or wait for it to exit",
        .data_dir.display()
    )]
    ClusterBusy { pid: i32, data_dir: PathBuf },
    /// The configured default server URL does not parse (the URL itself is not repeated: it
    /// may contain a password).
    #[error("the default PostgreSQL server URL is invalid: {0}")]
    InvalidUrl(String),
    /// Creating or checking the target database failed.
    #[error("could not create database {database}: {}", error_chain(.source))]
    CreateDatabase {
        database: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl EmbeddedPgError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EmbeddedPgError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Picks the PostgreSQL to use when `DATABASE_URL` is unset: the default server if it answers
/// and lets us create the database, else a private cluster under `DATA_DIR/postgres`.
///
/// A default server that answers but refuses us (password required, no CREATEDB right) is not
/// an error: a fresh Debian install answers on 5432 with password auth, and the private cluster
/// still works there. The reason is logged.
pub async fn resolve(opts: &EmbeddedPgOptions) -> Result<DatabaseSource, EmbeddedPgError> {
    // A typo in a configured URL must not silently turn into a private cluster.
    let target = PgConnect::parse(&opts.default_server_url)
        .map_err(|e| EmbeddedPgError::InvalidUrl(e.to_string()))?;
    let server = describe_url(&opts.default_server_url);
    let reason = match use_server(target, &opts.default_server_url, &opts.database).await {
        Ok(url) => {
            info!(server = %server, database = %opts.database, "using the PostgreSQL server");
            return Ok(DatabaseSource::Server { url });
        }
        Err(ServerUnusable { answered, reason }) => {
            if answered {
                warn!(server = %server, %reason,
                    "the PostgreSQL server answered but is not usable; starting a private cluster");
            } else {
                info!(server = %server, %reason,
                    "no PostgreSQL server answers; starting a private cluster");
            }
            reason
        }
    };
    match start_private(opts).await {
        Ok(guard) => Ok(DatabaseSource::Private {
            url: guard.url().to_owned(),
            guard,
        }),
        Err(EmbeddedPgError::NoBinaries { searched }) => Err(EmbeddedPgError::NoPostgres {
            server,
            reason,
            searched,
        }),
        Err(other) => Err(other),
    }
}

/// Why the default server is not used; `answered` tells "nobody there" (expected on a fresh
/// machine) from "there but refused us" (worth a warning).
struct ServerUnusable {
    answered: bool,
    reason: String,
}

async fn use_server(
    mut target: PgConnect,
    server_url: &str,
    database: &str,
) -> Result<String, ServerUnusable> {
    target.config.dbname("postgres");
    let client = connect_with(&target.config, target.tls.clone(), SERVER_PROBE_TIMEOUT)
        .await
        .map_err(|(answered, reason)| ServerUnusable { answered, reason })?;
    ensure_database(&client, database)
        .await
        .map_err(|e| ServerUnusable {
            answered: true,
            reason: e.to_string(),
        })?;
    Ok(with_database(server_url, database))
}

/// Connects with `sslmode=prefer` (the private cluster runs without TLS: plain text), bounded
/// by `limit`. On failure returns whether the server answered at all, and why it failed.
pub(crate) async fn connect(config: &Config, limit: Duration) -> Result<Client, (bool, String)> {
    connect_with(config, sincro_core::store::tls::prefer_connector(), limit).await
}

/// As [`connect`], through `tls` (the connector `sslmode` in the server's URL asks for).
async fn connect_with(
    config: &Config,
    tls: MakeRustlsConnect,
    limit: Duration,
) -> Result<Client, (bool, String)> {
    let mut config = config.clone();
    config.connect_timeout(limit);
    match tokio::time::timeout(limit, config.connect(tls)).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                // Ends when the client is dropped; errors here only mean the server went away.
                let _ = connection.await;
            });
            Ok(client)
        }
        Ok(Err(e)) => {
            // Refused/unreachable/timed out: nobody there. Anything else (an error response,
            // "password missing") came from a server.
            let unreachable = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<std::io::Error>())
                || e.to_string().starts_with("timeout");
            Err((!unreachable, error_chain(&e)))
        }
        Err(_) => Err((false, format!("no answer within {} s", limit.as_secs()))),
    }
}

/// Creates `database` if it does not exist. Another process creating it at the same moment is
/// fine: PostgreSQL reports that as duplicate_database, or as a unique violation on the catalog
/// index when both passed the existence check together.
pub(crate) async fn ensure_database(
    client: &Client,
    database: &str,
) -> Result<(), EmbeddedPgError> {
    let wrap = |source| EmbeddedPgError::CreateDatabase {
        database: database.to_owned(),
        source,
    };
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(wrap)?
        .is_some();
    if exists {
        return Ok(());
    }
    let statement = format!("CREATE DATABASE {}", quote_ident(database));
    match client.batch_execute(&statement).await {
        Ok(()) => {
            info!(database, "created the database");
            Ok(())
        }
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(wrap(e)),
    }
}

/// An error with its causes: tokio-postgres's own messages ("error connecting to server",
/// "db error") leave out the part that says what went wrong.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `user@host:port` of a connection string, for logs and errors: never the password.
pub(crate) fn describe_url(url: &str) -> String {
    let Ok(config) = url.parse::<Config>() else {
        return "<unparsable URL>".to_owned();
    };
    let user = config.get_user().unwrap_or("<default user>");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{user}@{host}:{port}")
}

/// The URL of `database` on the server of `server_url`: the path of a `postgres://` URL is
/// replaced (query parameters kept); a key=value string gets a `dbname` appended (the last one
/// wins).
pub(crate) fn with_database(server_url: &str, database: &str) -> String {
    let url = server_url.trim();
    let scheme_end = ["postgres://", "postgresql://"]
        .iter()
        .find(|s| url.starts_with(*s))
        .map(|s| s.len());
    let Some(scheme_end) = scheme_end else {
        let escaped = database.replace('\\', "\\\\").replace('\'', "\\'");
        return format!("{url} dbname='{escaped}'");
    };
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!(
        "{}/{}{}",
        &base[..authority_end],
        percent_encode(database),
        query
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432", "db"),
            "postgres://postgres@127.0.0.1:5432/db"
        );
        assert_eq!(
            with_database("postgresql://u:p@h:1/old?sslmode=disable", "a b"),
            "postgresql://u:p@h:1/a%20b?sslmode=disable"
        );
        assert_eq!(
            with_database("host=h user=u", "d'b"),
            "host=h user=u dbname='d\\'b'"
        );
    }

    #[test]
    fn describe_url_hides_the_password() {
        let d = describe_url("postgres://u:secret@h:6000/x");
        assert_eq!(d, "u@h:6000");
        assert_eq!(describe_url("host=h user=u password=secret"), "u@h:5432");
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
