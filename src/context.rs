//! What the HTTP layer shares: configuration, the running tree, what the actors share
//! (`Shared`: the pool, the sealer, the settings) and the HTTP front's own state.

use crate::config::Config;
use metrics_exporter_prometheus::PrometheusHandle;
use sincro_core::Actors;
use sincro_core::Shared;
use std::sync::Arc;

pub struct AppContext {
    pub config: Arc<Config>,
    pub actors: Actors,
    /// What the actors share (pool, sealer, connections registry, settings); read through
    /// [`Deref`](std::ops::Deref), so `ctx.pool` is the daemon's one pool, not a copy.
    pub shared: Arc<Shared>,
    /// The process-wide Prometheus recorder (None if another recorder was installed first).
    pub metrics: Option<PrometheusHandle>,
    /// Failed authentications per client IP, checked before any key is looked up.
    pub preauth: crate::http::preauth::PreAuthLimiter,
    /// API keys looked up in the store since start (a flood refused early does not add).
    pub key_lookups: std::sync::atomic::AtomicU64,
    /// The numbers webhook bodies name, cached a few seconds (floods cost one lookup each).
    pub webhook_routes: crate::http::webhook_routes::RouteCache,
    /// Webhook bodies' inbox rows, group-committed: concurrent posts share one commit.
    pub inbox_writer: sincro_core::ingest::group_commit::InboxWriter,
    /// Why Lite sessions cannot start on this machine (no Chromium), found once at start.
    pub chromium_missing: Option<String>,
}

/// The HTTP context is the daemon's `Shared` plus the HTTP front's own state: handlers read
/// the shared fields (`ctx.pool`, `ctx.sealer`) through it, so there is one copy of each.
impl std::ops::Deref for AppContext {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}
