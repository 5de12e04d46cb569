//! What the HTTP layer shares: configuration, the pool, the sealer and the running tree.

use crate::config::Config;
use deadpool_postgres::Pool;
use metrics_exporter_prometheus::PrometheusHandle;
use sincro_core::Actors;
use sincro_core::seal::Sealer;
use std::sync::Arc;

pub struct AppContext {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub sealer: Arc<Sealer>,
    pub actors: Actors,
    /// What the actors share (connections registry, settings).
    pub shared: Arc<sincro_core::Shared>,
    /// The process-wide Prometheus recorder (None if another recorder was installed first).
    pub metrics: Option<PrometheusHandle>,
    /// Failed authentications per client IP, checked before any key is looked up.
    pub preauth: crate::http::preauth::PreAuthLimiter,
    /// API keys looked up in the store since start (a flood refused early does not add).
    pub key_lookups: std::sync::atomic::AtomicU64,
    /// The numbers webhook bodies name, cached a few seconds (floods cost one lookup each).
    pub webhook_routes: crate::http::webhook_routes::RouteCache,
    /// Why Lite sessions cannot start on this machine (no Chromium), found once at start.
    pub chromium_missing: Option<String>,
}
