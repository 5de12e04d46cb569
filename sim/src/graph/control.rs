//! The `/sim/*` control routes (docs/ARCHITECTURE.md §6): create accounts (after Meta's
//! verification handshake), register contacts' WhatsApp accounts, inject inbound messages and
//! Business app echoes, read what was sent, inject faults, shape webhook delivery and emit
//! chosen statuses. JSON in and out; errors are `{"error":{"code":"snake_case","message"}}`
//! with a 4xx status.
//!
//! `POST /sim/contacts {"phone", "wa_id"}` says which WhatsApp account a number reaches (a
//! Brazilian account that predates the ninth digit: `{"phone":"+5511987654321",
//! "wa_id":"551187654321"}`); sends to any spelling of the number answer that `wa_id`, and the
//! contact's messages (`/sim/inbound` with any spelling in `from`) come from it. Numbers not
//! registered reach the account Meta would make today (Mexico keeps its `521`).
//!
//! `POST /sim/echo {"phone_number_id", "to", "message", "timestamp"?}` sends an
//! `smb_message_echoes` webhook: a message the business sent to `to` from the WhatsApp
//! Business app (coexistence); `/sim/statuses` can then emit its statuses.
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
use super::ids;
use super::levels;
use super::media;
use super::records::FaultSpec;
use super::records::WebhookOptions;
use super::send::{self, StatusSpec};
use super::state::{Account, SentMessage, Sim, modern_digits, normalize_phone, unix_now};
use super::webhooks;

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
        ("POST", ["contacts"]) => register_contact(sim, body),
        ("GET", ["contacts"]) => {
            let contacts: serde_json::Map<String, Value> = sim
                .lock()
                .contacts
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            Ok(json_response(StatusCode::OK, &Value::Object(contacts)))
        }
        ("POST", ["echo"]) => echo(sim, body),
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
        ("POST", ["throughput"]) => set_level(sim, body),
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

/// The message object of a control request and its `type`; the object must hold a member named
/// after the type, unless the type is one of `bare` (types Meta delivers without one).
fn message_and_kind<'a>(
    message: &'a Value,
    bare: &[&str],
) -> Result<(&'a serde_json::Map<String, Value>, String), ControlError> {
    let msg = message
        .as_object()
        .ok_or_else(|| ControlError::bad_request("message must be a JSON object"))?;
    let kind = msg
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ControlError::bad_request("message.type is required"))?
        .to_string();
    if !bare.contains(&kind.as_str()) && !msg.contains_key(&kind) {
        return Err(ControlError::bad_request(format!(
            "message.{kind} is required for a message of type {kind}"
        )));
    }
    Ok((msg, kind))
}

fn inbound(sim: &Arc<Sim>, body: &Bytes) -> R {
    let req: Inbound = parse(body)?;
    let from = normalize_phone(&req.from)
        .ok_or_else(|| ControlError::bad_request("from is not a valid phone number"))?;
    let ts = unix_seconds(req.timestamp.as_ref())?;
    let (msg, kind) = message_and_kind(&req.message, &["unsupported", "unknown"])?;
    super::inbound_extras::check(msg)?;
    let (account, message, wamid) = {
        let mut st = sim.lock();
        let from = st.wa_id_for(&from);
        let wamid = ids::wamid(&from);
        let account = account_of(&st.accounts, &req.phone_number_id)?.clone();
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
        (account, Value::Object(out), wamid)
    };
    let mut fields = json!({ "messages": [message] });
    if kind != "system" {
        fields["contacts"] = json!([{
            "profile": {"name": req.name.unwrap_or_default()},
            "wa_id": message["from"],
        }]);
    }
    webhooks::emit(sim, &account, webhooks::messages_entry(&account, fields));
    Ok(json_response(StatusCode::ACCEPTED, &json!({"id": wamid})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewContact {
    phone: String,
    wa_id: String,
}

fn register_contact(sim: &Arc<Sim>, body: &Bytes) -> R {
    let req: NewContact = parse(body)?;
    let phone = normalize_phone(&req.phone)
        .ok_or_else(|| ControlError::bad_request("phone is not a valid phone number"))?;
    let wa_id = normalize_phone(&req.wa_id)
        .filter(|w| *w == req.wa_id)
        .ok_or_else(|| ControlError::bad_request("wa_id must be 7 to 15 digits"))?;
    sim.lock()
        .contacts
        .insert(modern_digits(&phone), wa_id.clone());
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"phone": phone, "wa_id": wa_id}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Echo {
    phone_number_id: String,
    to: String,
    message: Value,
    /// Unix seconds (number or string); now when absent.
    #[serde(default)]
    timestamp: Option<Value>,
}

fn echo(sim: &Arc<Sim>, body: &Bytes) -> R {
    let req: Echo = parse(body)?;
    let to = normalize_phone(&req.to)
        .ok_or_else(|| ControlError::bad_request("to is not a valid phone number"))?;
    let ts = unix_seconds(req.timestamp.as_ref())?;
    let (msg, kind) = message_and_kind(&req.message, &[])?;
    let (account, echo) = {
        let mut st = sim.lock();
        let account = account_of(&st.accounts, &req.phone_number_id)?.clone();
        let wa_id = st.wa_id_for(&to);
        let wamid = ids::wamid(&wa_id);
        let mut echo = Map::new();
        echo.insert("from".into(), json!(account.display_phone_number));
        echo.insert("to".into(), json!(wa_id));
        echo.insert("id".into(), json!(wamid));
        echo.insert("timestamp".into(), json!(ts.to_string()));
        for (k, v) in msg {
            if !matches!(k.as_str(), "id" | "from" | "to" | "timestamp") {
                echo.insert(k.clone(), v.clone());
            }
        }
        st.echoes.push(SentMessage {
            id: wamid,
            phone_number_id: account.phone_number_id.clone(),
            to: req.to.clone(),
            wa_id,
            kind: kind.clone(),
            request: req.message.clone(),
            received_at: sim.wall_time(Instant::now()),
            category: "service".into(),
            biz_opaque: None,
        });
        (account, Value::Object(echo))
    };
    let id = echo["id"].clone();
    webhooks::emit(
        sim,
        &account,
        webhooks::field_entry(
            &account,
            "smb_message_echoes",
            json!({ "message_echoes": [echo] }),
        ),
    );
    Ok(json_response(StatusCode::ACCEPTED, &json!({"id": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLevel {
    phone_number_id: String,
    level: String,
}

/// `POST /sim/throughput {"phone_number_id", "level"}`: the number's level as Meta would set
/// it; a rise to `HIGH` sends Meta's upgrade webhook (see `levels.rs`).
fn set_level(sim: &Arc<Sim>, body: &Bytes) -> R {
    let req: SetLevel = parse(body)?;
    let per_sec = levels::per_sec(&req.level).ok_or_else(|| {
        ControlError::bad_request(format!(
            "level must be \"STANDARD\" or \"HIGH\", not {:?}",
            req.level
        ))
    })?;
    let (account, before) = {
        let mut st = sim.lock();
        let account = account_of(&st.accounts, &req.phone_number_id)?.clone();
        let before = levels::limit(sim, &st, &req.phone_number_id);
        st.levels.insert(req.phone_number_id.clone(), per_sec);
        (account, before)
    };
    let upgraded = per_sec == levels::HIGH_PER_SEC && before < levels::HIGH_PER_SEC;
    if upgraded {
        webhooks::emit(sim, &account, levels::upgrade_entry(&account));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"phone_number_id": req.phone_number_id, "level": levels::name(per_sec), "webhook": upgraded}),
    ))
}

/// The account of `phone_number_id`, or the control API's 404 naming it.
fn account_of<'a>(
    accounts: &'a std::collections::BTreeMap<String, Account>,
    phone_number_id: &str,
) -> Result<&'a Account, ControlError> {
    accounts.get(phone_number_id).ok_or_else(|| {
        ControlError::new(
            404,
            "unknown_account",
            format!("no account with phone_number_id {phone_number_id}"),
        )
    })
}

/// Unix seconds given as a number or a string; now when absent.
fn unix_seconds(v: Option<&Value>) -> Result<i64, ControlError> {
    let bad = || ControlError::bad_request("timestamp must be unix seconds");
    match v {
        None | Some(Value::Null) => Ok(unix_now()),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad),
        Some(Value::String(s)) => s.parse().map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn add_fault(sim: &Arc<Sim>, body: &Bytes) -> R {
    let spec: FaultSpec = parse(body)?;
    spec.validate()?;
    let mut st = sim.lock();
    if let Some(p) = &spec.phone_number_id {
        account_of(&st.accounts, p)?;
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
            .chain(st.echoes.iter())
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
