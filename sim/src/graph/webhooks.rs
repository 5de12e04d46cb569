//! Webhook delivery: builds Meta's envelopes (`object` + `entry[{id: waba, changes[{field,
//! value}]}]`), signs the raw body (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 with the app
//! secret>`), POSTs it to the account's callback and retries non-200 answers on the configured
//! backoff schedule. One dispatcher task delivers in order; the `POST /sim/webhooks` options
//! make it imitate Meta's looser guarantees (duplicates, reordering, delay, several entries in
//! one POST). Every attempt is kept in a bounded log (`GET /sim/webhooks`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::ids;
use super::records::{DeliveryRecord, WebhookEvent};
use super::state::{Account, Sim, rfc3339_millis_now};

const LOG_CAP: usize = 1000;

/// `sha256=` + lowercase hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The `entry` of a `messages` change for `account` with the given value fields
/// (`contacts` + `messages`, or `statuses`).
pub fn messages_entry(account: &Account, fields: Value) -> Value {
    field_entry(account, "messages", fields)
}

/// An `entry` whose one change is `field` (`messages`, `smb_message_echoes`) with `fields`
/// added to the number's `value`.
pub fn field_entry(account: &Account, field: &str, fields: Value) -> Value {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": account.display_phone_number,
            "phone_number_id": account.phone_number_id,
        },
    });
    if let (Some(v), Some(f)) = (value.as_object_mut(), fields.as_object()) {
        for (k, x) in f {
            v.insert(k.clone(), x.clone());
        }
    }
    json!({
        "id": account.waba_id,
        "changes": [{"value": value, "field": field}],
    })
}

/// Queues an entry for `account`'s webhook target.
pub fn emit(sim: &Sim, account: &Account, entry: Value) {
    let _ = sim.webhook_tx.send(WebhookEvent {
        target: account.webhook_target(),
        app_secret: account.app_secret.clone(),
        entry,
        enqueued: Instant::now(),
    });
}

/// Queues an entry about a WABA (template updates) for the first of its numbers that has a
/// webhook target, as Meta sends WABA-level events once per subscribed app.
pub fn emit_for_waba(sim: &Sim, waba_id: &str, entry: Value) {
    let account = {
        let st = sim.lock();
        let of_waba: Vec<&Account> = st
            .accounts
            .values()
            .filter(|a| a.waba_id == waba_id)
            .collect();
        of_waba
            .iter()
            .find(|a| a.webhook_target().is_some())
            .or(of_waba.first())
            .map(|a| (*a).clone())
    };
    if let Some(a) = account {
        emit(sim, &a, entry);
    }
}

fn log(sim: &Sim, record: DeliveryRecord) {
    let mut st = sim.lock();
    if st.deliveries.len() >= LOG_CAP {
        st.deliveries.pop_front();
    }
    st.deliveries.push_back(record);
}

/// One POST; true when the callback answered 200.
async fn post_once(sim: &Sim, url: &str, secret: &str, body: &[u8], attempt: u32) -> bool {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let res = sim
        .http
        .post(url)
        .timeout(sim.config.webhook_timeout)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature(secret, body))
        .header("user-agent", "facebookexternalua")
        .body(body.to_vec())
        .send()
        .await;
    let last = attempt as usize >= sim.config.webhook_retry_delays.len();
    let (status, ok, error) = match res {
        Ok(r) => {
            let s = r.status().as_u16();
            (Some(s), s == 200, None)
        }
        Err(e) => (None, false, Some(e.to_string())),
    };
    let outcome = match (ok, last, status) {
        (true, _, _) => "delivered",
        (false, false, _) => "retrying",
        (false, true, Some(_)) => "failed",
        (false, true, None) => "error",
    };
    if !ok {
        tracing::debug!(url, attempt, ?status, "webhook not acknowledged");
    }
    log(
        sim,
        DeliveryRecord {
            at: rfc3339_millis_now(),
            callback_url: Some(url.to_string()),
            attempt,
            status,
            outcome,
            error,
            body: parsed,
        },
    );
    ok
}

/// Delivers one body: the first attempt inline (keeps order), retries in the background.
async fn deliver(sim: &Arc<Sim>, target: Option<&str>, secret: &str, body: Vec<u8>) {
    let Some(url) = target else {
        log(
            sim,
            DeliveryRecord {
                at: rfc3339_millis_now(),
                callback_url: None,
                attempt: 0,
                status: None,
                outcome: "dropped",
                error: Some(
                    "the account has no webhook target (no callback_url, or unsubscribed)".into(),
                ),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            },
        );
        return;
    };
    if post_once(sim, url, secret, &body, 0).await {
        return;
    }
    let delays = sim.config.webhook_retry_delays.clone();
    if delays.is_empty() {
        return;
    }
    let sim2 = Arc::clone(sim);
    let url = url.to_string();
    let secret = secret.to_string();
    sim.spawn(async move {
        for (i, d) in delays.iter().enumerate() {
            tokio::time::sleep(*d).await;
            if post_once(&sim2, &url, &secret, &body, i as u32 + 1).await {
                return;
            }
        }
    });
}

/// The dispatcher: runs until the channel closes or the simulator shuts down.
pub async fn run_dispatcher(sim: Arc<Sim>, mut rx: mpsc::UnboundedReceiver<WebhookEvent>) {
    while let Some(first) = rx.recv().await {
        let opts = sim.lock().webhook_options.clone();
        let batch = opts.batch.max(1) as usize;
        let mut events = vec![first];
        if opts.reorder || batch > 1 {
            let cap = if batch > 1 { batch } else { 1000 };
            let deadline = tokio::time::Instant::from_std(
                events[0].enqueued + sim.config.webhook_gather_window,
            );
            while events.len() < cap {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(ev)) => events.push(ev),
                    _ => break,
                }
            }
        }
        // Group into bodies, keeping first-appearance order.
        let mut bodies: Vec<(Option<String>, String, Vec<Value>, Instant)> = Vec::new();
        for ev in events {
            let joinable = bodies.iter_mut().rev().find(|(t, s, entries, _)| {
                batch > 1 && *t == ev.target && *s == ev.app_secret && entries.len() < batch
            });
            match joinable {
                Some((_, _, entries, at)) => {
                    entries.push(ev.entry);
                    *at = (*at).max(ev.enqueued);
                }
                None => bodies.push((ev.target, ev.app_secret, vec![ev.entry], ev.enqueued)),
            }
        }
        if opts.reorder {
            bodies.reverse();
            for (_, _, entries, _) in &mut bodies {
                entries.reverse();
            }
        }
        for (target, secret, entries, at) in bodies {
            let due = at + Duration::from_millis(opts.delay_ms);
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            let body = serde_json::to_vec(&json!({
                "object": "whatsapp_business_account",
                "entry": entries,
            }))
            .unwrap_or_default();
            let copies = if opts.duplicate { 2 } else { 1 };
            for _ in 0..copies {
                deliver(&sim, target.as_deref(), &secret, body.clone()).await;
            }
        }
    }
}

/// Meta's verification handshake: `GET url?hub.mode=subscribe&hub.challenge=..&hub.verify_token=..`
/// must answer 200 with exactly the challenge as its body.
pub async fn handshake(sim: &Sim, url: &str, verify_token: &str) -> Result<(), String> {
    let challenge = ids::numeric_id(10);
    let res = sim
        .http
        .get(url)
        .timeout(sim.config.webhook_timeout)
        .query(&[
            ("hub.mode", "subscribe"),
            ("hub.challenge", challenge.as_str()),
            ("hub.verify_token", verify_token),
        ])
        .send()
        .await
        .map_err(|e| format!("the callback could not be reached: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .text()
        .await
        .map_err(|e| format!("the callback's answer could not be read: {e}"))?;
    if status != 200 {
        return Err(format!(
            "the callback answered HTTP {status} to the verification request (expected 200)"
        ));
    }
    if body != challenge {
        return Err(format!(
            "the callback answered {:?} instead of the challenge {challenge:?}",
            body.chars().take(100).collect::<String>()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
