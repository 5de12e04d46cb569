//! The shape of `GET /v1/status`: one node per actor, children nested.

use serde::Serialize;

/// Lifecycle of a supervised actor as its supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Starting,
    Running,
    /// Failed; a restart is scheduled after the backoff.
    Restarting,
    /// Failed too often within the window; no longer restarted, an alert was raised.
    Failed,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusNode {
    pub name: String,
    /// `supervisor` or `worker`.
    pub kind: String,
    pub state: ChildState,
    /// The ractor actor id of the current incarnation, if one runs.
    pub actor_id: Option<String>,
    pub restarts: u32,
    pub uptime_secs: Option<f64>,
    /// RFC 3339 start time of the current incarnation.
    pub started_at: Option<String>,
    pub last_error: Option<String>,
    pub children: Vec<StatusNode>,
}
