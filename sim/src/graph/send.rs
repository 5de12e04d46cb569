//! The messages endpoint (`POST /{phone_number_id}/messages`) end to end: injected faults,
//! body validation (`messages.rs`), the stateful checks (media ids, templates, 24 h window,
//! throughput, pair rate) done atomically under the state lock, recording of the accepted send
//! and the status webhooks that follow it. Also builds status entries for `/sim/statuses`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use super::config::StatusKind;
use super::errors::{GraphError, code_info, json_response};
use super::faults;
use super::ids;
use super::levels;
use super::media::mime_kind;
use super::messages::{self, Request, SendRequest};
use super::state::{Account, SentMessage, Sim, unix_now};
use super::templates;
use super::webhooks;

/// One status webhook to emit.
#[derive(Debug, Clone)]
pub struct StatusSpec {
    pub status: StatusKind,
    /// For `failed`: the Meta error code and optional details.
    pub error: Option<(i64, Option<String>)>,
}

/// The `entry` of a status change for a sent message.
pub fn status_entry(
    account: &Account,
    sent: &SentMessage,
    spec: &StatusSpec,
    conversation_id: &str,
) -> Value {
    let now = unix_now();
    let mut status = json!({
        "id": sent.id,
        "status": spec.status.as_str(),
        "timestamp": now.to_string(),
        "recipient_id": sent.wa_id,
    });
    if let Some(b) = &sent.biz_opaque {
        status["biz_opaque_callback_data"] = json!(b);
    }
    match spec.status {
        StatusKind::Failed => {
            let (code, details) = spec.error.clone().unwrap_or((131000, None));
            let (title, _) = code_info(code);
            status["errors"] = json!([{
                "code": code,
                "title": title,
                "message": title,
                "error_data": {"details": details.unwrap_or_else(|| title.to_string())},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }]);
        }
        StatusKind::Sent | StatusKind::Delivered => {
            let mut conversation = json!({
                "id": conversation_id,
                "origin": {"type": sent.category},
            });
            if spec.status == StatusKind::Sent {
                conversation["expiration_timestamp"] = json!((now + 24 * 3600).to_string());
            }
            status["conversation"] = conversation;
            status["pricing"] = json!({
                "billable": sent.category != "service",
                "pricing_model": "PMP",
                "type": if sent.category == "service" { "free_customer_service" } else { "regular" },
                "category": sent.category,
            });
        }
        StatusKind::Read | StatusKind::Played => {}
    }
    webhooks::messages_entry(account, json!({ "statuses": [status] }))
}

/// Emits `plan` for `sent`, one status every `status_interval`.
fn schedule_statuses(sim: &Arc<Sim>, account: Account, sent: SentMessage, plan: Vec<StatusSpec>) {
    if plan.is_empty() {
        return;
    }
    let sim2 = Arc::clone(sim);
    let interval = sim.config.status_interval;
    sim.spawn(async move {
        let conversation_id = ids::hex(16);
        for spec in plan {
            tokio::time::sleep(interval).await;
            let entry = status_entry(&account, &sent, &spec, &conversation_id);
            webhooks::emit(&sim2, &account, entry);
        }
    });
}

/// `POST /{phone_number_id}/messages` for an authorised `account`.
pub async fn handle(sim: &Arc<Sim>, account: &Account, body: &Bytes) -> Response {
    let pnid = account.phone_number_id.clone();
    let effect = faults::take(&mut sim.lock(), &pnid);
    if effect.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(effect.latency_ms)).await;
    }
    if effect.hang {
        // Held until shutdown, so a stopped simulator leaves no request task behind.
        let mut closing = sim.closing.subscribe();
        let _ = closing.wait_for(|c| *c).await;
        let mut e = GraphError::new(2, "The simulator is shutting down.");
        e.empty_body = true;
        return e.into_response();
    }
    if let Some(e) = effect.fail {
        return e.into_response();
    }
    let json: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return GraphError::param(format!("The request body is not valid JSON: {e}"))
                .into_response();
        }
    };
    let req = match messages::validate(&json) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match req {
        Request::MarkRead { message_id } => {
            let known = sim
                .lock()
                .inbound
                .get(&message_id)
                .is_some_and(|(p, _)| *p == pnid);
            if known {
                json_response(StatusCode::OK, &json!({"success": true}))
            } else {
                GraphError::param(format!(
                    "Invalid parameter: message_id {message_id} is not a message this number received."
                ))
                .into_response()
            }
        }
        Request::Send(send) => match accept(sim, account, send, json, effect.async_code) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => e.into_response(),
        },
    }
}

/// The stateful checks and the recording, atomically.
fn accept(
    sim: &Arc<Sim>,
    account: &Account,
    send: SendRequest,
    request: Value,
    async_code: Option<i64>,
) -> Result<Value, GraphError> {
    let cfg = &sim.config;
    let pnid = account.phone_number_id.clone();
    let (sent, plan) = {
        let mut st = sim.lock();
        // The account the number reaches: Meta answers its id and uses it from then on
        // (statuses' recipient_id, the contact's messages).
        let wa_id = st.wa_id_for(&send.wa_id);
        for r in &send.media {
            let m = st
                .media
                .get(&r.id)
                .filter(|m| m.owner == pnid)
                .ok_or_else(|| {
                    GraphError::new(
                        131053,
                        format!("Media id {} was not found for this phone number.", r.id),
                    )
                })?;
            let kind = mime_kind(&m.mime_type).map(|(k, _)| k).unwrap_or("");
            if kind != r.kind {
                return Err(GraphError::new(
                    131053,
                    format!(
                        "Media id {} is {} and cannot be sent as {}.",
                        r.id, m.mime_type, r.kind
                    ),
                ));
            }
        }
        let mut category = "service".to_string();
        if let Some(t) = &send.template {
            templates::check_send(&st.templates, &account.waba_id, t)?;
            if let Some(tpl) = st.templates.iter().find(|x| {
                x.waba_id == account.waba_id && x.name == t.name && x.language == t.language
            }) {
                category = tpl.category.to_ascii_lowercase();
            }
        } else {
            let last = st.windows.get(&(pnid.clone(), wa_id.clone())).copied();
            let open = last.is_some_and(|t| unix_now() - t < cfg.service_window.as_secs() as i64);
            if !open {
                return Err(GraphError::new(
                    131047,
                    "Message failed to send because more than 24 hours have passed since the \
                     customer last replied to this number.",
                ));
            }
        }
        let now = Instant::now();
        let per_sec = levels::limit(sim, &st, &pnid);
        if !st
            .throughput
            .entry(pnid.clone())
            .or_default()
            .allows(now, per_sec)
        {
            return Err(GraphError::new(
                130429,
                format!(
                    "Cloud API message throughput has been reached ({per_sec} messages per second)."
                ),
            ));
        }
        let pair_key = (pnid.clone(), wa_id.clone());
        if !st.pair.entry(pair_key.clone()).or_default().allows(
            now,
            cfg.pair_rate_burst,
            cfg.pair_rate_interval,
        ) {
            return Err(GraphError::new(
                131056,
                "Too many messages sent from this phone number to the same phone number in a short period of time.",
            ));
        }
        if let Some(t) = st.throughput.get_mut(&pnid) {
            t.record(now);
        }
        if let Some(p) = st.pair.get_mut(&pair_key) {
            p.record(now, cfg.pair_rate_interval);
        }
        let sent = SentMessage {
            id: ids::wamid(&wa_id),
            phone_number_id: pnid.clone(),
            to: send.to.clone(),
            wa_id: wa_id.clone(),
            kind: send.kind.clone(),
            request,
            received_at: sim.wall_time(now),
            category,
            biz_opaque: send.biz_opaque.clone(),
        };
        st.sent.push(sent.clone());
        let plan: Vec<StatusSpec> = match async_code {
            Some(code) => vec![
                StatusSpec {
                    status: StatusKind::Sent,
                    error: None,
                },
                StatusSpec {
                    status: StatusKind::Failed,
                    error: Some((code, None)),
                },
            ],
            None => st
                .webhook_options
                .statuses
                .clone()
                .unwrap_or_else(|| cfg.statuses.clone())
                .into_iter()
                .map(|status| StatusSpec {
                    status,
                    error: (status == StatusKind::Failed).then_some((131000, None)),
                })
                .collect(),
        };
        (sent, plan)
    };
    let mut message = json!({"id": sent.id});
    if send.template.is_some() {
        message["message_status"] = json!("accepted");
    }
    let reply = json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": send.to, "wa_id": sent.wa_id}],
        "messages": [message],
    });
    schedule_statuses(sim, account.clone(), sent, plan);
    Ok(reply)
}
