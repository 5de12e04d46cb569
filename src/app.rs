//! Start-up and shutdown of one daemon: configuration → database → sealer → supervision tree
//! → HTTP server on a given listener. Tests build an [`Application`] on port 0; `serve` runs
//! [`run`] until SIGTERM/SIGINT.

use crate::config::Config;
use crate::context::AppContext;
use crate::database::{Database, DatabaseError};
use crate::http;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sincro_core::Shared;
use sincro_core::seal::{SealError, Sealer};
use sincro_core::supervision::RestartPolicy;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] DatabaseError),
    #[error("ENCRYPTION_KEY: {0}")]
    Seal(#[from] SealError),
    #[error(
        "ENCRYPTION_KEY is required when DATABASE_URL is set (generate one with `sincro-whatsapp keygen`)"
    )]
    MissingKey,
    #[error("key file {path}: {error}")]
    KeyFile { path: String, error: std::io::Error },
    #[error("DATA_DIR {path}: {error}")]
    DataDir { path: String, error: std::io::Error },
    #[error("could not start the supervision tree: {0}")]
    Tree(String),
    #[error("listener: {0}")]
    Listener(std::io::Error),
    #[error("{0}")]
    Identity(#[from] crate::node_identity::IdentityError),
    #[error("{0}")]
    EnvNumber(crate::env_number::EnvNumberError),
}

/// Knobs that are not environment variables: tests set them.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub restart_policy: RestartPolicy,
    /// Accept `Crash` requests to the daemon (supervision tests).
    pub fault_injection: bool,
}

/// What shutting down found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Actors still running when the deadline passed.
    pub still_running: Vec<String>,
    /// Whether every HTTP connection finished before its deadline.
    pub http_drained: bool,
}

pub struct Application {
    ctx: Arc<AppContext>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    stop_http: oneshot::Sender<()>,
    tree: JoinHandle<()>,
    database: Database,
    /// The lock on DATA_DIR, held until the daemon has stopped.
    identity: crate::node_identity::NodeIdentity,
    /// Loops beside the tree: the metrics sampler with its performance alerts, and the alert
    /// webhook's deliveries; aborted at shutdown.
    background: Vec<JoinHandle<()>>,
}

/// The process-wide Prometheus recorder: installed by the first application of the process.
/// Histograms are exported with buckets (so rules can take quantiles across nodes): seconds
/// from 5 ms to 60 s (the inbox commit from 0.5 ms), Chromium memory from 32 MiB to 2 GiB,
/// rows per inbox commit from 1 to 256.
fn metrics_handle() -> Option<PrometheusHandle> {
    use metrics_exporter_prometheus::Matcher;
    use sincro_core::ingest::group_commit;
    const SECONDS: &[f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];
    const MIB: f64 = 1048576.0;
    const BYTES: &[f64] = &[
        32.0 * MIB,
        64.0 * MIB,
        128.0 * MIB,
        256.0 * MIB,
        512.0 * MIB,
        1024.0 * MIB,
        2048.0 * MIB,
    ];
    // The inbox commit every webhook's 200 waits for takes a fraction of a millisecond to a
    // few on a healthy store: the general buckets would put all of it in the first one.
    const COMMIT: &[f64] = &[
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    const ROWS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // A full name is matched before any suffix (the exporter orders its matchers).
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(group_commit::COMMIT_SECONDS.into()), COMMIT)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(group_commit::ROWS_PER_COMMIT.into()),
                        ROWS,
                    )
                })
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES))
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// The sealer from ENCRYPTION_KEY; with the embedded default and no key, a key file made once
/// under DATA_DIR (mode 0600) so a new install needs no setup.
pub(crate) fn sealer(config: &Config) -> Result<Sealer, StartError> {
    if let Some(key) = &config.encryption_key {
        return Ok(Sealer::from_env_value(key.expose())?);
    }
    if config.database_url.is_some() {
        return Err(StartError::MissingKey);
    }
    let path = config.data_dir.join("encryption.key");
    let key_err = |error| StartError::KeyFile {
        path: path.display().to_string(),
        error,
    };
    match std::fs::read_to_string(&path) {
        Ok(value) => Ok(Sealer::from_env_value(value.trim())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = Sealer::generate_env_value("k1");
            write_private(&path, &value).map_err(key_err)?;
            tracing::warn!(
                "ENCRYPTION_KEY unset: generated a key in DATA_DIR/encryption.key; back it up, or sealed data is lost with it"
            );
            Ok(Sealer::from_env_value(&value)?)
        }
        Err(e) => Err(key_err(e)),
    }
}

fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())?;
    file.sync_all()
}

impl Application {
    pub async fn build(
        mut config: Config,
        listener: TcpListener,
        options: Options,
    ) -> Result<Application, StartError> {
        for notice in &config.notices {
            tracing::info!("{notice}");
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|error| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            error,
        })?;
        let identity = crate::node_identity::acquire(
            &config.data_dir,
            config.node_id_set.then_some(config.node_id.as_str()),
        )?;
        config.node_id = identity.node_id.clone();
        let sealer = Arc::new(sealer(&config)?);
        let database = Database::open(&config).await?;
        crate::data_dir::harden(&config.data_dir).map_err(|error| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            error,
        })?;
        // Before anything writes media: what a crash cut short is never resumed.
        match sincro_core::media_store::sweep_temporary(&config.data_dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed media files a crash left half-written"),
            Err(e) => tracing::warn!(error = %e, "could not sweep half-written media files"),
        }
        let shared = Arc::new(Shared {
            pool: database.pool.clone(),
            rate_limiter: Default::default(),
            connections: Default::default(),
            lite_memory: Default::default(),
            database_url: database.url.clone(),
            sealer,
            node_id: config.node_id.clone(),
            ownership: Arc::new(sincro_core::nodes::ownership::Ownership::new(
                config.node_id.clone(),
                config.node_lease,
            )),
            inbox_wake: Default::default(),
            settings: config.actor_settings(options.fault_injection),
            media_fetcher: Arc::new(sincro_core::net_guard::MediaFetcher::new(
                config.media_fetch_allow.clone(),
            )),
            probes: Default::default(),
        });
        let (actors, tree) =
            match sincro_core::start_tree(shared.clone(), options.restart_policy).await {
                Ok(started) => started,
                Err(e) => {
                    database.close().await;
                    return Err(StartError::Tree(e.to_string()));
                }
            };
        let metrics = metrics_handle();
        // After the recorder is installed: counters touched before it would not exist.
        sincro_core::telemetry::catalog::register();
        let mut background = vec![
            tokio::spawn(sincro_core::alerts::monitor::run(shared.clone())),
            tokio::spawn(sincro_core::store::planner_stats::run(shared.pool.clone())),
        ];
        if let Some(webhook) = shared.settings.alerts.webhook.clone() {
            background.push(tokio::spawn(sincro_core::alerts::notifier::run(
                shared.pool.clone(),
                webhook,
                shared.node_id.clone(),
                shared.settings.alerts.webhook_max_attempts,
            )));
        }
        let addr = listener.local_addr().map_err(StartError::Listener)?;
        let chromium_missing = crate::chromium::locate(config.chromium_path.as_deref()).err();
        if let Some(why) = &chromium_missing {
            tracing::warn!("Lite sessions will be refused: {why}");
        }
        let inbox_writer =
            sincro_core::ingest::group_commit::InboxWriter::start(shared.pool.clone());
        let ctx = Arc::new(AppContext {
            inbox_writer,
            actors,
            shared,
            metrics,
            preauth: http::preauth::PreAuthLimiter::new(config.auth_failures_per_ip_per_minute),
            key_lookups: Default::default(),
            webhook_routes: Default::default(),
            config: Arc::new(config),
            chromium_missing,
        });
        let (stop_http, stopped) = oneshot::channel::<()>();
        let routes = http::routes(ctx.clone());
        no_delay(&listener);
        let server = tokio::spawn(async move {
            warp::serve(routes)
                .incoming(listener)
                .graceful(async {
                    let _ = stopped.await;
                })
                .run()
                .await;
        });
        let app = Application {
            ctx,
            addr,
            server,
            stop_http,
            tree,
            database,
            identity,
            background,
        };
        // After the HTTP server is up: with PUBLIC_URL, Meta checks the callback on subscribe.
        if let Some(number) = &app.ctx.config.business_from_env {
            let installed = crate::env_number::install(
                &app.ctx.shared,
                &app.ctx.actors.children.business,
                number,
            )
            .await;
            if let Err(e) = installed {
                app.shutdown().await;
                return Err(StartError::EnvNumber(e));
            }
        }
        tracing::info!(%addr, node = %app.ctx.config.node_id, "listening");
        Ok(app)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn context(&self) -> &Arc<AppContext> {
        &self.ctx
    }

    /// Stops taking requests, lets open ones finish, stops the tree children-first, closes the
    /// pool, then the private PostgreSQL if any; all within SHUTDOWN_TIMEOUT_SECS.
    pub async fn shutdown(self) -> ShutdownReport {
        let deadline = self.ctx.config.shutdown_timeout;
        let started = Instant::now();
        let _ = self.stop_http.send(());
        let http_budget = deadline / 4;
        let mut server = self.server;
        let http_drained = tokio::time::timeout(http_budget, &mut server).await.is_ok();
        if !http_drained {
            tracing::warn!(
                budget_ms = http_budget.as_millis() as u64,
                "HTTP connections still open at the deadline; closing them"
            );
            server.abort();
        }
        let left = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        for task in &self.background {
            task.abort();
        }
        let still_running = self.ctx.actors.shutdown(left).await;
        if still_running.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.tree).await;
        } else {
            tracing::error!(
                ?still_running,
                "actors still running at the shutdown deadline"
            );
        }
        self.database.close().await;
        drop(self.identity);
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "shutdown complete"
        );
        ShutdownReport {
            still_running,
            http_drained,
        }
    }
}

/// Sets TCP_NODELAY on the listening socket; accepted connections inherit it (Linux). Without
/// it a small write behind one not yet acknowledged (a webhook's answer, the next stream frame)
/// waits for the peer's delayed ACK, up to 40 ms on loopback.
fn no_delay(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to a c_int of the length given.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not set TCP_NODELAY");
    }
}

/// Runs a daemon on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<ShutdownReport, StartError> {
    let app = Application::build(config, listener, Options::default()).await?;
    shutdown.await;
    tracing::info!("shutdown requested");
    Ok(app.shutdown().await)
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when the
/// future is first polled: `serve` calls it before the daemon starts, so a signal that comes
/// while it starts (a service manager stopping it at once) stops it gracefully once started
/// instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
