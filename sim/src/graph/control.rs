//! The `/sim/*` control routes (DESIGN.md section 7): create accounts (after Meta's
//! verification handshake), inject inbound messages, read what was sent, inject faults, shape
//! webhook delivery and emit chosen statuses. JSON in and out; errors are
//! `{"error":{"code":"snake_case","message"}}` with a 4xx status.
//!
//! `POST /sim/accounts` accepts `callback_url` absent or null for an account with no webhook
//! target: no handshake is done and its webhooks are dropped (they still show in
//! `GET /sim/webhooks` with outcome `dropped`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::config::StatusKind;
use super::errors::{ControlError, json_response};
use super::faults::FaultSpec;
use super::ids;
use super::media;
use super::send::{self, StatusSpec};
use super::state::{Account, Sim, normalize_phone, unix_now};
use super::webhooks::{self, WebhookOptions};

type R = Result<Response, ControlError>;

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ControlError> {
    serde_json::from_slice(body)
        .map_err(|e| ControlError::bad_request(format!("invalid JSON body: {e}")))
}

fn query_param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Routes `/sim/<rest>`.
pub async fn handle(
    sim: &Arc<Sim>,
    method: &Method,
    rest: &[&str],
    query: &[(String, String)],
    body: &Bytes,
) -> Response {
    let result = match (method.as_str(), rest) {
        ("POST", ["accounts"]) => create_account(sim, body).await,
        ("GET", ["accounts"]) => {
            let accounts: Vec<Account> = sim.lock().accounts.values().cloned().collect();
            Ok(json_response(StatusCode::OK, &json!(accounts)))
        }
        ("POST", ["inbound"]) => inbound(sim, body),
        ("GET", ["sent"]) => {
            let pnid = query_param(query, "phone_number_id");
            let sent: Vec<Value> = sim
                .lock()
                .sent
                .iter()
                .filter(|s| pnid.is_none_or(|p| s.phone_number_id == p))
                .map(|s| json!(s))
                .collect();
            Ok(json_response(StatusCode::OK, &json!(sent)))
        }
        ("POST", ["faults"]) => add_fault(sim, body),
        ("GET", ["faults"]) => {
            let faults: Vec<Value> = sim
                .lock()
                .faults
                .iter()
                .map(|f| json!({"spec": f.spec, "remaining": f.remaining}))
                .collect();
            Ok(json_response(StatusCode::OK, &json!(faults)))
        }
        ("DELETE", ["faults"]) => {
            let n = std::mem::take(&mut sim.lock().faults).len();
            Ok(json_response(StatusCode::OK, &json!({"cleared": n})))
        }
        ("POST", ["webhooks"]) => parse::<WebhookOptions>(body).map(|opts| {
            sim.lock().webhook_options = opts.clone();
            json_response(StatusCode::OK, &json!(opts))
        }),
        ("GET", ["webhooks"]) => {
            let st = sim.lock();
            Ok(json_response(
                StatusCode::OK,
                &json!({"options": st.webhook_options, "deliveries": st.deliveries}),
            ))
        }
        ("POST", ["statuses"]) => emit_status(sim, body),
        _ => Err(ControlError::new(
            404,
            "not_found",
            format!("no control route {method} /sim/{}", rest.join("/")),
        )),
    };
    result.unwrap_or_else(ControlError::into_response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    #[serde(default)]
    callback_url: Option<String>,
    #[serde(default)]
    verify_token: Option<String>,
    #[serde(default)]
    app_secret: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    phone_number_id: Option<String>,
    #[serde(default)]
    waba_id: Option<String>,
    #[serde(default)]
    display_phone_number: Option<String>,
}

fn digits_id(v: Option<String>, what: &str) -> Result<Option<String>, ControlError> {
    match v {
        Some(s) if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) => Err(
            ControlError::bad_request(format!("{what} must be a non-empty string of digits")),
        ),
        other => Ok(other),
    }
}

fn non_empty(v: Option<String>, what: &str) -> Result<Option<String>, ControlError> {
    match v {
        Some(s) if s.trim().is_empty() => Err(ControlError::bad_request(format!(
            "{what} must not be empty"
        ))),
        other => Ok(other),
    }
}

async fn create_account(sim: &Arc<Sim>, body: &Bytes) -> R {
    let req: NewAccount = parse(body)?;
    let phone_number_id = digits_id(req.phone_number_id, "phone_number_id")?;
    let waba_id = digits_id(req.waba_id, "waba_id")?;
    let display = match req.display_phone_number {
        Some(d) => Some(normalize_phone(&d).ok_or_else(|| {
            ControlError::bad_request("display_phone_number is not a valid phone number")
        })?),
        None => None,
    };
    let verify_token = non_empty(req.verify_token, "verify_token")?.unwrap_or_else(|| ids::hex(16));
    let app_secret = non_empty(req.app_secret, "app_secret")?.unwrap_or_else(|| ids::hex(16));
    let access_token =
        non_empty(req.access_token, "access_token")?.unwrap_or_else(ids::access_token);
    if let Some(cb) = &req.callback_url {
        let ok = reqwest::Url::parse(cb)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            return Err(ControlError::bad_request(
                "callback_url must be an absolute http(s) URL",
            ));
        }
    }
    if let Some(p) = &phone_number_id
        && sim.lock().accounts.contains_key(p)
    {
        return Err(ControlError::new(
            409,
            "account_exists",
            format!("phone_number_id {p} already has an account"),
        ));
    }
    if let Some(cb) = &req.callback_url
        && let Err(e) = webhooks::handshake(sim, cb, &verify_token).await
    {
        return Err(ControlError::new(
            422,
            "webhook_verification_failed",
            format!("Meta-style verification of {cb} failed: {e}; no account was created"),
        ));
    }
    let account = Account {
        phone_number_id: phone_number_id.unwrap_or_else(|| ids::numeric_id(15)),
        waba_id: waba_id.unwrap_or_else(|| ids::numeric_id(15)),
        display_phone_number: display.unwrap_or_else(|| format!("1555{}", &ids::numeric_id(7))),
        access_token,
        app_secret,
        verify_token,
        callback_url: req.callback_url,
        subscribed: true,
        override_callback_url: None,
    };
    {
        let mut st = sim.lock();
        if st.accounts.contains_key(&account.phone_number_id) {
            return Err(ControlError::new(
                409,
                "account_exists",
                format!(
                    "phone_number_id {} already has an account",
                    account.phone_number_id
                ),
            ));
        }
        st.accounts
            .insert(account.phone_number_id.clone(), account.clone());
    }
    Ok(json_response(StatusCode::CREATED, &json!(account)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inbound {
    phone_number_id: String,
    from: String,
    #[serde(default)]
    name: Option<String>,
    message: Value,
    /// Unix seconds (number or string) to pretend the message is that old.
    #[serde(default)]
    timestamp: Option<Value>,
}

const MEDIA_TYPES: &[&str] = &["image", "audio", "video", "document", "sticker"];

fn inbound(sim: &Arc<Sim>, body: &Bytes) -> R {
    let req: Inbound = parse(body)?;
    let from = normalize_phone(&req.from)
        .ok_or_else(|| ControlError::bad_request("from is not a valid phone number"))?;
    let ts = match &req.timestamp {
        None | Some(Value::Null) => unix_now(),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ControlError::bad_request("timestamp must be unix seconds"))?,
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ControlError::bad_request("timestamp must be unix seconds"))?,
        Some(_) => return Err(ControlError::bad_request("timestamp must be unix seconds")),
    };
    let msg = req
        .message
        .as_object()
        .ok_or_else(|| ControlError::bad_request("message must be a JSON object"))?;
    let kind = msg
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ControlError::bad_request("message.type is required"))?
        .to_string();
    if !matches!(kind.as_str(), "unsupported" | "unknown") && !msg.contains_key(&kind) {
        return Err(ControlError::bad_request(format!(
            "message.{kind} is required for a message of type {kind}"
        )));
    }
    let wamid = ids::wamid(&from);
    let (account, message) = {
        let mut st = sim.lock();
        let account = st
            .accounts
            .get(&req.phone_number_id)
            .cloned()
            .ok_or_else(|| {
                ControlError::new(
                    404,
                    "unknown_account",
                    format!("no account with phone_number_id {}", req.phone_number_id),
                )
            })?;
        let mut out = Map::new();
        for (k, v) in msg {
            if !matches!(k.as_str(), "id" | "from" | "timestamp") {
                out.insert(k.clone(), v.clone());
            }
        }
        if MEDIA_TYPES.contains(&kind.as_str()) {
            let obj = msg.get(&kind).and_then(Value::as_object).ok_or_else(|| {
                ControlError::bad_request(format!("message.{kind} must be an object"))
            })?;
            let stored = media::store_inbound(&mut st, &account.phone_number_id, &kind, obj)?;
            out.insert(kind.clone(), stored);
        }
        out.insert("from".into(), json!(from));
        out.insert("id".into(), json!(wamid));
        out.insert("timestamp".into(), json!(ts.to_string()));
        let key = (account.phone_number_id.clone(), from.clone());
        let last = st.windows.entry(key).or_insert(ts);
        *last = (*last).max(ts);
        st.inbound.insert(
            wamid.clone(),
            (account.phone_number_id.clone(), from.clone()),
        );
        if sim.config.throughput_counts_inbound {
            st.throughput
                .entry(account.phone_number_id.clone())
                .or_default()
                .record(Instant::now());
        }
        (account, Value::Object(out))
    };
    let mut fields = json!({ "messages": [message] });
    if kind != "system" {
        fields["contacts"] = json!([{
            "profile": {"name": req.name.unwrap_or_default()},
            "wa_id": from,
        }]);
    }
    webhooks::emit(sim, &account, webhooks::messages_entry(&account, fields));
    Ok(json_response(StatusCode::ACCEPTED, &json!({"id": wamid})))
}

fn add_fault(sim: &Arc<Sim>, body: &Bytes) -> R {
    let spec: FaultSpec = parse(body)?;
    spec.validate()?;
    let mut st = sim.lock();
    if let Some(p) = &spec.phone_number_id
        && !st.accounts.contains_key(p)
    {
        return Err(ControlError::new(
            404,
            "unknown_account",
            format!("no account with phone_number_id {p}"),
        ));
    }
    st.faults.push(spec.clone().into_fault());
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"fault": spec, "active_faults": st.faults.len()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusRequest {
    id: String,
    status: StatusKind,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    details: Option<String>,
}

fn emit_status(sim: &Arc<Sim>, body: &Bytes) -> R {
    let req: StatusRequest = parse(body)?;
    if req.code.is_some() && req.status != StatusKind::Failed {
        return Err(ControlError::bad_request(
            "code is only allowed with status failed",
        ));
    }
    let (account, sent) = {
        let st = sim.lock();
        let sent = st
            .sent
            .iter()
            .find(|s| s.id == req.id)
            .cloned()
            .ok_or_else(|| {
                ControlError::new(
                    404,
                    "unknown_message",
                    format!("no sent message {}", req.id),
                )
            })?;
        let account = st
            .accounts
            .get(&sent.phone_number_id)
            .cloned()
            .ok_or_else(|| ControlError::new(404, "unknown_account", "the sender is gone"))?;
        (account, sent)
    };
    let spec = StatusSpec {
        status: req.status,
        error: (req.status == StatusKind::Failed)
            .then(|| (req.code.unwrap_or(131000), req.details.clone())),
    };
    let entry = send::status_entry(&account, &sent, &spec, &ids::hex(16));
    webhooks::emit(sim, &account, entry);
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"id": sent.id, "status": req.status}),
    ))
}
