//! What every actor of one daemon shares: the pool, the sealer, the node id and the settings
//! the actors need. One `Arc<Shared>` per daemon, so tests can run several daemons in-process.

use crate::alerts::lifecycle::{self, AlertCondition};
use crate::seal::Sealer;
pub use crate::settings::ActorSettings;
use crate::store::alerts::NewAlert;
use deadpool_postgres::Pool;
use std::sync::Arc;

pub struct Shared {
    pub pool: Pool,
    /// The current RateLimiter incarnation (filled by the Daemon), for the Dispatcher's lanes.
    pub rate_limiter: crate::supervision::Slot<crate::rate_limiter::RateLimiterMessage>,
    /// Connection actors running on this node, for the Dispatcher.
    pub connections: crate::connection::Connections,
    /// The database URL, for connections outside the pool (the Hub's LISTEN). Never logged.
    pub database_url: String,
    pub sealer: Arc<Sealer>,
    pub node_id: String,
    /// This node's leases on connections (docs/ARCHITECTURE.md §5).
    pub ownership: Arc<crate::nodes::ownership::Ownership>,
    /// Wakes this node's inbox drain once a new inbox row is committed
    /// ([`crate::ingest::inbox::wake`]); the drain also polls, so a lost wake only delays.
    pub inbox_wake: Arc<tokio::sync::Notify>,
    pub settings: ActorSettings,
    /// Fetches links on users' behalf through the SSRF guard, with `MEDIA_FETCH_ALLOW`.
    pub media_fetcher: Arc<crate::net_guard::MediaFetcher>,
    /// The last memory reading of each Lite session running here, for the API.
    pub lite_memory: Arc<crate::lite::memory::SessionMemory>,
    /// Measurements the metrics sampler reads (the stream's delays).
    pub probes: crate::telemetry::probes::Probes,
}

impl Shared {
    /// The region `usuario_id`'s national-format numbers are read in, `DEFAULT_REGION` when
    /// the user has none ([`crate::store::users::region`]).
    pub async fn user_region(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        usuario_id: uuid::Uuid,
    ) -> Result<Option<String>, crate::store::StoreError> {
        crate::store::users::region(client, usuario_id, self.settings.default_region.as_deref())
            .await
    }

    /// Raises an alert without blocking the caller; a failure to write it is logged. Its
    /// condition is its kind, source and user: raised again while open, it is counted, not
    /// repeated. Code that also resolves its condition uses `alerts::raise` with a key.
    pub fn raise_alert(self: &Arc<Self>, alert: NewAlert) {
        let shared = self.clone();
        let condition = AlertCondition {
            key: format!(
                "{}:{}:{}",
                alert.kind,
                alert.source,
                alert.usuario_id.map(|u| u.to_string()).unwrap_or_default()
            ),
            usuario_id: alert.usuario_id,
            connection_id: alert
                .details
                .get("connection_id")
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse().ok()),
            kind: alert.kind,
            severity: alert.severity,
            source: alert.source,
            message: alert.message,
            details: alert.details,
        };
        tokio::spawn(async move {
            let deliver = shared.settings.alerts.webhook.is_some();
            let raised = lifecycle::raise(
                &shared.pool,
                &shared.sealer,
                &shared.node_id,
                deliver,
                &condition,
            );
            if let Err(e) = raised.await {
                tracing::error!(error = %e, kind = %condition.kind, "could not record alert");
            }
        });
    }
}
