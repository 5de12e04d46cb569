//! Which PostgreSQL to use (DATABASE_URL, else the embedded default of [`crate::embedded_pg`]),
//! the pool over it, and the migrations run at start.

use crate::config::Config;
use crate::embedded_pg::{self, DatabaseSource, EmbeddedPgOptions, EmbeddedPostgres};
use deadpool_postgres::Pool;
use sincro_core::store::{self, StoreError, migrate};

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Embedded(#[from] embedded_pg::EmbeddedPgError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The server's certificate was refused: what was wrong and what to set.
    #[error("database: {0}")]
    Tls(String),
}

/// An open database: the pool and, for the private cluster, the guard that stops it.
pub struct Database {
    pub pool: Pool,
    /// The resolved URL (secret: may carry a password).
    pub url: String,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Resolves, connects and migrates.
    pub async fn open(config: &Config) -> Result<Database, DatabaseError> {
        let (url, embedded) = match &config.database_url {
            Some(url) => (url.expose().to_string(), None),
            None => {
                let mut opts = EmbeddedPgOptions::new(&config.data_dir);
                opts.default_server_url = config.local_pg_url.clone();
                match embedded_pg::resolve(&opts).await? {
                    DatabaseSource::Server { url } => {
                        tracing::info!("DATABASE_URL unset: using the local PostgreSQL server");
                        (url, None)
                    }
                    DatabaseSource::Private { url, guard } => {
                        tracing::info!("DATABASE_URL unset: started a private PostgreSQL cluster");
                        (url, Some(guard))
                    }
                }
            }
        };
        let pool = store::connect_pool(&url, config.db_pool_size)?;
        let migrated = async {
            let mut client = pool.get().await?;
            migrate::migrate(&mut client).await
        }
        .await;
        match migrated {
            Ok(report) => {
                tracing::info!(applied = ?report.applied, version = report.current, "schema is current");
                Ok(Database {
                    pool,
                    url,
                    embedded,
                })
            }
            Err(e) => {
                if let Some(guard) = embedded {
                    guard.stop().await;
                }
                match store::tls::store_certificate_problem(&e) {
                    Some(why) => Err(DatabaseError::Tls(why)),
                    None => Err(e.into()),
                }
            }
        }
    }

    /// Closes the pool, then stops the private cluster if there is one.
    pub async fn close(self) {
        self.pool.close();
        if let Some(guard) = self.embedded {
            guard.stop().await;
        }
    }
}
