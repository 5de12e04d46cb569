//! Delivery of alerts to `ALERT_WEBHOOK_URL`: each raise and resolve queued in
//! `alert_deliveries` (in the transaction that made it) is posted as JSON signed with
//! HMAC-SHA256 in `X-Sincro-Signature: sha256=<hex>`, and retried with exponential backoff
//! until the receiver answers 2xx or the attempts run out. Any node may deliver: a step claims
//! due rows by pushing their next attempt past the request's timeout, so a node that dies
//! mid-post only delays the delivery. Runs beside the actors as a loop of [`deliver_due`]
//! steps, never in a caller's way.

use super::lifecycle::{Alert, Transition};
use super::settings::AlertWebhook;
use crate::digest;
use crate::store::StoreError;
use deadpool_postgres::Pool;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use std::time::Duration;
use uuid::Uuid;

/// How long one post may take; a claimed row is not retried before this has passed.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows one step posts at most.
const BATCH: i64 = 20;
/// The first retry waits this long; each later one twice the one before, up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(2);
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// How often the loop looks for due deliveries.
pub const POLL: Duration = Duration::from_secs(1);

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`: what `X-Sincro-Signature` holds.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", digest::hex(&mac.finalize().into_bytes()))
}

/// The wait before attempt `attempts + 1` after `attempts` failed ones.
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    FIRST_WAIT.saturating_mul(1u32 << exp.min(16)).min(MAX_WAIT)
}

/// The JSON body posted for one transition of one alert.
pub fn body(alert: &Alert, state: Transition, node_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": format!("alert.{}", state.as_str()),
        "alert": alert,
        "node_id": node_id,
    }))
    .unwrap_or_default()
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub delivered: usize,
    pub failed: usize,
}

/// Posts the due deliveries once each and records how each went.
pub async fn deliver_due(
    pool: &Pool,
    http: &reqwest::Client,
    webhook: &AlertWebhook,
    node_id: &str,
    max_attempts: i32,
) -> Result<Delivered, StoreError> {
    let client = pool.get().await?;
    let hold = format!("{} seconds", POST_TIMEOUT.as_secs() * 3);
    let rows = client
        .query(
            &format!(
                "WITH due AS (
                   SELECT id FROM alert_deliveries
                   WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= now()
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
                 UPDATE alert_deliveries d SET attempts = d.attempts + 1,
                        next_attempt_at = now() + $2::text::interval
                 FROM due WHERE d.id = due.id
                 RETURNING d.id, d.alert_id, d.state, d.attempts"
            ),
            &[&BATCH, &hold],
        )
        .await?;
    let mut done = Delivered::default();
    for row in rows {
        let (id, alert_id, state, attempts): (i64, Uuid, String, i32) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let transition = if state == "resolved" {
            Transition::Resolved
        } else {
            Transition::Raised
        };
        let Some(alert) = super::lifecycle::get(&client, alert_id).await? else {
            continue;
        };
        let payload = body(&alert, transition, node_id);
        let outcome = post(http, webhook, payload).await;
        match outcome {
            Ok(()) => {
                client
                    .execute(
                        "UPDATE alert_deliveries SET delivered_at = now(), last_error = NULL WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                metrics::counter!("sincro_alert_webhook_total", "outcome" => "delivered")
                    .increment(1);
                done.delivered += 1;
            }
            Err(why) => {
                let gave_up = attempts >= max_attempts;
                let wait = format!("{} seconds", backoff(attempts).as_secs());
                client
                    .execute(
                        "UPDATE alert_deliveries SET last_error = $2,
                                next_attempt_at = now() + $3::text::interval,
                                gave_up_at = CASE WHEN $4 THEN now() END
                         WHERE id = $1",
                        &[&id, &why, &wait, &gave_up],
                    )
                    .await?;
                let outcome = if gave_up { "gave_up" } else { "retried" };
                metrics::counter!("sincro_alert_webhook_total", "outcome" => outcome).increment(1);
                tracing::warn!(delivery = id, attempts, error = %why, gave_up, "alert webhook delivery failed");
                done.failed += 1;
            }
        }
    }
    Ok(done)
}

async fn post(http: &reqwest::Client, webhook: &AlertWebhook, body: Vec<u8>) -> Result<(), String> {
    let resp = http
        .post(&webhook.url)
        .timeout(POST_TIMEOUT)
        .header("content-type", "application/json")
        .header(
            "x-sincro-signature",
            signature(webhook.secret.expose(), &body),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status().as_u16()))
    }
}

/// Runs [`deliver_due`] every [`POLL`] (at once again while a step found work) until dropped.
pub async fn run(pool: Pool, webhook: AlertWebhook, node_id: String, max_attempts: i32) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    loop {
        match deliver_due(&pool, &http, &webhook, &node_id, max_attempts).await {
            Ok(d) if d.delivered + d.failed > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "alert deliveries: store unavailable"),
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(2), Duration::from_secs(4));
        assert_eq!(backoff(5), Duration::from_secs(32));
        assert_eq!(backoff(30), MAX_WAIT);
    }
}
