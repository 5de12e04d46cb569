//! Configuration of the Graph simulator: every knob that changes how strict, fast or faulty it
//! is. Defaults follow Meta's documented behaviour (Meta's Cloud API documentation) where Meta
//! documents one, and are short where Meta's real timing would only slow tests down.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the simulated reviewer decides for a new template once `template_review_delay` has
/// passed. Name rules take precedence (see `templates.rs`): a name starting with `reject_` is
/// always REJECTED and one starting with `pending_` stays PENDING forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateReviewOutcome {
    Approved,
    Rejected,
}

/// A status webhook the simulator emits, in order, after a successful send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusKind {
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
}

impl StatusKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Sent => "sent",
            StatusKind::Delivered => "delivered",
            StatusKind::Read => "read",
            StatusKind::Played => "played",
            StatusKind::Failed => "failed",
        }
    }
}

/// Knobs of the simulator. Every field is public and has a default (`GraphSimConfig::default()`),
/// so a test changes only what it cares about with `..Default::default()`.
#[derive(Debug, Clone)]
pub struct GraphSimConfig {
    /// Messages per second accepted per phone number (Meta default 80). Enforced over a sliding
    /// 1-s window: no interval of one second ever holds more accepted sends than this.
    pub throughput_per_sec: u32,
    /// Whether inbound messages (`/sim/inbound`) use up the number's throughput too, as Meta
    /// says they do (on by default: Meta's Cloud API documentation, "counting inbound and
    /// outbound").
    pub throughput_counts_inbound: bool,
    /// Pair rate: messages to one recipient may burst up to this many at once...
    pub pair_rate_burst: u32,
    /// ...and then earn back one message of allowance per this interval (Meta: about 6 s; a burst
    /// of 20 therefore costs two minutes). Set `pair_rate_burst` to 0 to disable the check.
    pub pair_rate_interval: Duration,
    /// Length of the customer-service window opened by an inbound message (24 h).
    pub service_window: Duration,
    /// Outcome of template review, unless a name rule decides.
    pub template_review_outcome: TemplateReviewOutcome,
    /// Time a new template stays PENDING before the review outcome.
    pub template_review_delay: Duration,
    /// How long a media URL from `GET /{media_id}` stays downloadable (Meta: 5 min).
    pub media_url_lifetime: Duration,
    /// Status webhooks emitted after a successful send, in order.
    pub statuses: Vec<StatusKind>,
    /// Pause before the first status and between consecutive statuses of one message.
    pub status_interval: Duration,
    /// Waits before each retry of a webhook POST that did not get a 200; its length bounds the
    /// number of retries (Meta retries with backoff for up to 7 days).
    pub webhook_retry_delays: Vec<Duration>,
    /// Timeout of every webhook POST and of the verification handshake.
    pub webhook_timeout: Duration,
    /// With `reorder` or `batch` on, webhook events arriving within this window of the first one
    /// are gathered and delivered together (reversed, or in one POST).
    pub webhook_gather_window: Duration,
    /// Largest request body accepted (media upload up to 100 MB plus multipart overhead).
    pub max_body_bytes: usize,
    /// `verified_name` reported for every number.
    pub verified_name: String,
    /// The `app_id` reported by `debug_token` and `subscribed_apps`.
    pub app_id: String,
    /// Base URL the simulator advertises in media URLs; by default `http://` + the listener's
    /// address (an unspecified bind address is reported as loopback).
    pub public_base_url: Option<String>,
}

impl Default for GraphSimConfig {
    fn default() -> Self {
        GraphSimConfig {
            throughput_per_sec: 80,
            throughput_counts_inbound: true,
            pair_rate_burst: 45,
            pair_rate_interval: Duration::from_secs(6),
            service_window: Duration::from_secs(24 * 3600),
            template_review_outcome: TemplateReviewOutcome::Approved,
            template_review_delay: Duration::from_millis(500),
            media_url_lifetime: Duration::from_secs(300),
            statuses: vec![StatusKind::Sent, StatusKind::Delivered, StatusKind::Read],
            status_interval: Duration::from_millis(100),
            webhook_retry_delays: vec![
                Duration::from_millis(200),
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(15),
                Duration::from_secs(60),
            ],
            webhook_timeout: Duration::from_secs(5),
            webhook_gather_window: Duration::from_millis(400),
            max_body_bytes: 101 * 1024 * 1024,
            verified_name: "Sincro Sim".to_string(),
            app_id: "100000000000001".to_string(),
            public_base_url: None,
        }
    }
}
