//! The PostgreSQL store: the connection pool, the migrations, the planner statistics of the
//! inbound path's tables, and one file per group of tables (users and API keys, alerts, nodes).
//! PostgreSQL is the one durable store of the daemon.

pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod clean;
pub mod conversations;
pub mod directory;
pub mod events;
pub mod install;
pub mod migrate;
pub mod planner_stats;
pub mod status_order;
pub mod tls;
pub mod users;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use uuid::Uuid;

pub use deadpool_postgres::{Client, Transaction};

/// Whose rows a reader may see: one user's, or every user's (admin keys). Listings that admins
/// see across users (alerts, dead letters) take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User(Uuid),
    All,
}

impl Scope {
    /// The one user, or None for every user.
    pub fn user(self) -> Option<Uuid> {
        match self {
            Scope::User(u) => Some(u),
            Scope::All => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("migration {version} ({name}) was changed after it was applied")]
    MigrationChanged { version: i32, name: String },
    #[error("database schema is at version {found}, newer than this build knows ({known})")]
    SchemaTooNew { found: i32, known: i32 },
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// The error of one statement written for several callers at once (a group commit): each
    /// of them gets it.
    #[error("{0}")]
    Shared(std::sync::Arc<StoreError>),
}

impl StoreError {
    /// Whether the error is a unique violation (SQLSTATE 23505).
    pub fn is_unique_violation(&self) -> bool {
        self.sql_state() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    }

    /// A deadlock or serialisation failure: the transaction can simply be run again.
    pub fn is_retryable_conflict(&self) -> bool {
        use tokio_postgres::error::SqlState;
        matches!(
            self.sql_state(),
            Some(s) if *s == SqlState::T_R_DEADLOCK_DETECTED || *s == SqlState::T_R_SERIALIZATION_FAILURE
        )
    }

    pub fn sql_state(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            StoreError::Db(e) => e.code(),
            StoreError::Pool(deadpool_postgres::PoolError::Backend(e)) => e.code(),
            StoreError::Shared(e) => e.sql_state(),
            _ => None,
        }
    }

    /// Whether PostgreSQL could not be reached or serve us just now (as opposed to a query
    /// error): no connection, a connection that closed, or a server that says so itself:
    /// connection exceptions (class 08), too many connections or no resources (class 53), and
    /// a backend terminated by an administrator or a server shutting down or starting
    /// (57P01 to 57P03: `pg_terminate_backend` answers the next query with 57P01).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Db(e) => {
                e.is_closed()
                    || e.code().is_none_or(|c| {
                        let c = c.code();
                        c.starts_with("08") || c.starts_with("53") || c.starts_with("57P0")
                    })
            }
            StoreError::Shared(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

/// Builds the pool. Connections are made lazily, each with a connect timeout, so a database
/// that is down makes calls fail fast instead of hanging.
pub fn connect_pool(url: &str, max_size: usize) -> Result<Pool, StoreError> {
    let tls::PgConnect {
        config: mut cfg,
        tls,
        ..
    } = tls::PgConnect::parse(url)?;
    cfg.connect_timeout(Duration::from_secs(5));
    if cfg.get_application_name().is_none() {
        cfg.application_name("sincro-whatsapp");
    }
    let manager = Manager::from_config(
        cfg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        // The daemon's statements are short and frequent. PostgreSQL compiles a statement
        // whose cost estimate passes `jit_above_cost` with LLVM (on by default where it is
        // built in), which costs tens to hundreds of milliseconds every execution: a batch
        // of a few thousand contacts, estimated pessimistically, paid 150 ms for a 12 ms
        // probe. Off for the daemon's own sessions, however the server is configured.
        .post_create(Hook::async_fn(|client, _| {
            Box::pin(async move {
                client
                    .batch_execute("SET jit = off")
                    .await
                    .map_err(HookError::Backend)
            })
        }))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(6)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StoreError::BadUrl(e.to_string()))
}
