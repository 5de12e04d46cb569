//! Performance alerts: after each metrics sample, each threshold of [`AlertSettings`] passed
//! raises its condition (`queue_age` per priority, `inbox_lag`, `stream_latency`) and one back
//! under it resolves the condition. The same step resolves a user's inbound dead-letter alert
//! once every letter of theirs was replayed. The thresholds are configuration (`ALERT_QUEUE_AGE_SECS`,
//! `ALERT_INBOX_LAG_SECS`, `ALERT_STREAM_LATENCY_MS`).
//!
//! [`AlertSettings`]: super::AlertSettings

use super::{AlertCondition, keys, lifecycle};
use crate::shared::Shared;
use crate::store::StoreError;
use crate::store::alerts::Severity;
use crate::telemetry::{self, Sample};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// One threshold's verdict: the condition's key, and the alert when it is passed.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub key: String,
    pub over: Option<AlertCondition>,
}

/// What the thresholds say about `s` (pure, for tests).
pub fn verdicts(shared: &Shared, s: &Sample) -> Vec<Verdict> {
    let t = &shared.settings.alerts;
    let mut out = Vec::new();
    let mut check = |what: String, value: Duration, limit: Duration, message: String| {
        let key = keys::performance(&what);
        let over = (value > limit).then(|| AlertCondition {
            key: key.clone(),
            usuario_id: None,
            connection_id: None,
            kind: what.split(':').next().unwrap_or(&what).to_string(),
            severity: Severity::Warning,
            source: "monitor".into(),
            message,
            details: json!({
                "what": what,
                "value_seconds": value.as_secs_f64(),
                "threshold_seconds": limit.as_secs_f64(),
            }),
        });
        out.push(Verdict { key, over });
    };
    for (priority, _, age) in &s.queue {
        check(
            format!("queue_age:{priority}"),
            *age,
            t.queue_age,
            format!(
                "the oldest due {priority}-priority message has waited {}s in the queue (threshold {}s)",
                age.as_secs(),
                t.queue_age.as_secs()
            ),
        );
    }
    check(
        "inbox_lag".into(),
        s.inbox_lag,
        t.inbox_lag,
        format!(
            "the oldest inbound item not yet stored arrived {}s ago (threshold {}s)",
            s.inbox_lag.as_secs(),
            t.inbox_lag.as_secs()
        ),
    );
    check(
        "stream_latency".into(),
        s.stream_latency,
        t.stream_latency,
        format!(
            "events reached stream clients up to {} ms after they were written (threshold {} ms)",
            s.stream_latency.as_millis(),
            t.stream_latency.as_millis()
        ),
    );
    out
}

/// Raises the thresholds passed and resolves those back under them.
pub async fn check(shared: &Shared, s: &Sample) {
    for v in verdicts(shared, s) {
        let result = match &v.over {
            Some(c) => super::raise_now(shared, c).await.map(|_| ()),
            None => super::resolve_now(shared, &v.key).await.map(|_| ()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, condition = %v.key, "performance alert not recorded");
        }
    }
}

/// The key `Shared::raise_alert` gives the drain's `inbound_dead_letter` alert of a user
/// (kind, source, user), without the user.
pub const DEAD_LETTER_KEY_PREFIX: &str = "inbound_dead_letter:ingest:";

/// Resolves the dead-letter alerts of users who have no letter left to replay.
pub async fn resolve_cleared_dead_letters(shared: &Shared) -> Result<usize, StoreError> {
    let client = shared.pool.get().await?;
    let mut resolved = 0;
    for key in lifecycle::open_keys(&client, DEAD_LETTER_KEY_PREFIX).await? {
        let Some(user) = key[DEAD_LETTER_KEY_PREFIX.len()..].parse::<Uuid>().ok() else {
            continue;
        };
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM inbound_dead_letters WHERE usuario_id = $1 AND replayed_at IS NULL",
                &[&user],
            )
            .await?
            .get(0);
        if open == 0 && super::resolve_now(shared, &key).await?.is_some() {
            resolved += 1;
        }
    }
    Ok(resolved)
}

/// One step: a metrics sample, then its thresholds checked and cleared dead letters resolved.
pub async fn step(shared: &Shared) -> Result<Sample, StoreError> {
    let s = telemetry::sample(shared).await?;
    check(shared, &s).await;
    resolve_cleared_dead_letters(shared).await?;
    Ok(s)
}

/// Runs [`step`] every `sample_interval` (the first one interval after start) until dropped.
pub async fn run(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(shared.settings.alerts.sample_interval).await;
        if let Err(e) = step(&shared).await {
            tracing::warn!(error = %e, "metrics sample: store unavailable");
        }
    }
}
