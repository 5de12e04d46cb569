//! What every actor of one daemon shares: the pool, the sealer, the node id and the settings
//! the actors need. One `Arc<Shared>` per daemon, so tests can run several daemons in-process.

use crate::seal::Sealer;
use crate::store::alerts::{self, NewAlert};
use deadpool_postgres::Pool;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ActorSettings {
    /// Accept fault-injection requests (tests only): make a named child panic.
    pub fault_injection: bool,
    /// HTTP API requests per minute per user and per client IP.
    pub api_per_user_per_minute: u32,
    pub api_per_ip_per_minute: u32,
    /// How long events stay replayable on the stream.
    pub event_retention_hours: u32,
    /// Frames buffered per WebSocket client before it counts as too slow and is closed.
    pub stream_buffer: usize,
    /// Region for reading national-format numbers of users without their own default.
    pub default_region: Option<String>,
    /// Ingest batches committed in parallel, each on its own connection.
    pub ingest_concurrency: usize,
    /// Meta's Graph API (`GRAPH_API_BASE`, `GRAPH_API_VERSION`), for Business numbers.
    pub graph_api_base: String,
    pub graph_api_version: String,
    /// `DATA_DIR`: sealed media files live under `media/`.
    pub data_dir: std::path::PathBuf,
    /// The outbound queue: default limits, retries, leases.
    pub outbound: crate::outbound::OutboundSettings,
    /// Lite sessions: page URL, Chromium, limits, snapshots.
    pub lite: crate::lite::LiteSettings,
    /// `PUBLIC_URL`: connecting a number subscribes the app with its webhook callback.
    pub public_url: Option<String>,
}

impl Default for ActorSettings {
    fn default() -> Self {
        ActorSettings {
            fault_injection: false,
            api_per_user_per_minute: 600,
            api_per_ip_per_minute: 1200,
            event_retention_hours: 72,
            stream_buffer: 1024,
            default_region: None,
            ingest_concurrency: 2,
            graph_api_base: "https://graph.facebook.com".into(),
            graph_api_version: "v23.0".into(),
            data_dir: "./data".into(),
            outbound: Default::default(),
            lite: Default::default(),
            public_url: None,
        }
    }
}

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

    /// Records an alert without blocking the caller; a failure to write it is logged.
    pub fn raise_alert(self: &Arc<Self>, alert: NewAlert) {
        let shared = self.clone();
        tokio::spawn(async move {
            if let Err(e) = alerts::insert(&shared.pool, &shared.node_id, &alert).await {
                tracing::error!(error = %e, kind = %alert.kind, "could not record alert");
            }
        });
    }
}
