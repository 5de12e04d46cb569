//! The settings the actors run with ([`ActorSettings`]), and their defaults: the one place
//! they are written. The daemon's configuration starts from these defaults and builds the
//! settings from what the environment changes. Kept apart from `Shared` so the actors that
//! only need settings (the RateLimiter) do not depend on what the daemon shares.

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
    /// Alerts: the webhook they are delivered to and the performance thresholds.
    pub alerts: crate::alerts::settings::AlertSettings,
    /// Opt-out keywords and retention.
    pub privacy: crate::privacy::PrivacySettings,
    /// Event webhooks: URL exceptions, retries, disabling, leases (`WEBHOOK_*`).
    pub hooks: crate::hooks::HooksSettings,
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
            alerts: Default::default(),
            privacy: Default::default(),
            hooks: Default::default(),
        }
    }
}
