//! What the alert lifecycle runs with: where raises and resolves are delivered and the
//! performance thresholds past which an alert is raised. Apart from the lifecycle so the
//! daemon's settings can hold it without depending on what the actors share.

use crate::secret::Secret;
use std::time::Duration;

/// `ALERT_WEBHOOK_URL` and the key its bodies are signed with.
#[derive(Debug, Clone)]
pub struct AlertWebhook {
    pub url: String,
    /// `ALERT_WEBHOOK_SECRET`: the HMAC-SHA256 key of `X-Sincro-Signature`.
    pub secret: Secret,
}

#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Each raise and resolve is posted here, signed; None keeps alerts in the API and stream.
    pub webhook: Option<AlertWebhook>,
    /// Attempts per delivery before it is given up (logged; the alert itself stays).
    pub webhook_max_attempts: i32,
    /// The oldest due queued message of a priority older than this raises `queue_age`.
    pub queue_age: Duration,
    /// The oldest inbound inbox row not yet drained older than this raises `inbox_lag`.
    pub inbox_lag: Duration,
    /// Events reaching stream clients later than this after they were written raise
    /// `stream_latency`.
    pub stream_latency: Duration,
    /// How often the sampler reads the gauges and checks the thresholds.
    pub sample_interval: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            webhook: None,
            webhook_max_attempts: 12,
            queue_age: Duration::from_secs(300),
            inbox_lag: Duration::from_secs(60),
            stream_latency: Duration::from_secs(5),
            sample_interval: Duration::from_secs(15),
        }
    }
}
