//! Account-level Graph endpoints a daemon uses to validate credentials: one phone number
//! (`GET /{phone_number_id}` with `?fields=`), a WABA and its numbers, `debug_token`, and the
//! app subscription of a WABA (`/subscribed_apps`, which also switches webhook delivery on and
//! off, and may override the callback after a verification handshake).

use serde_json::{Map, Value, json};

use super::errors::GraphError;
use super::levels;
use super::state::{Account, Sim, State};
use super::webhooks;

const DEFAULT_FIELDS: &[&str] = &[
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
];

/// Top-level names of a Graph `fields` list (`a,b{c,d},e` → a, b, e).
fn field_names(fields: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in fields.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn number_field(sim: &Sim, a: &Account, name: &str) -> Option<Value> {
    Some(match name {
        "id" => json!(a.phone_number_id),
        "display_phone_number" => json!(a.display_phone_number),
        "verified_name" => json!(sim.config.verified_name),
        "quality_rating" => json!("GREEN"),
        "code_verification_status" => json!("VERIFIED"),
        "name_status" => json!("APPROVED"),
        "platform_type" => json!("CLOUD_API"),
        "status" => json!("CONNECTED"),
        "account_mode" => json!("LIVE"),
        "is_official_business_account" => json!(false),
        "is_pin_enabled" => json!(false),
        "webhook_configuration" => {
            let mut w = Map::new();
            if let Some(cb) = &a.callback_url {
                w.insert("application".into(), json!(cb));
            }
            if let Some(o) = &a.override_callback_url {
                w.insert("whatsapp_business_account".into(), json!(o));
            }
            Value::Object(w)
        }
        "whatsapp_business_manager_messaging_limit" => json!("TIER_250"),
        "messaging_limit_tier" => json!("TIER_250"),
        _ => return None,
    })
}

/// `GET /{phone_number_id}`.
pub fn number_info(sim: &Sim, a: &Account, fields: Option<&str>) -> Result<Value, GraphError> {
    let names: Vec<String> = match fields {
        Some(f) if !f.trim().is_empty() => {
            let mut n = field_names(f);
            if !n.iter().any(|x| x == "id") {
                n.push("id".into());
            }
            n
        }
        _ => DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
    };
    let mut out = Map::new();
    for n in names {
        if n == "throughput" {
            // Per number (`levels.rs`); read under the lock, which the other fields never take.
            let per_sec = levels::limit(sim, &sim.lock(), &a.phone_number_id);
            out.insert(n, json!({ "level": levels::name(per_sec) }));
            continue;
        }
        let v = number_field(sim, a, &n).ok_or_else(|| {
            GraphError::param(format!(
                "(#100) Tried accessing nonexisting field ({n}) on node type (WhatsAppBusinessPhoneNumber)"
            ))
        })?;
        out.insert(n, v);
    }
    Ok(Value::Object(out))
}

/// `GET /{waba_id}`.
pub fn waba_info(sim: &Sim, waba_id: &str) -> Value {
    json!({
        "id": waba_id,
        "name": sim.config.verified_name,
        "currency": "USD",
        "timezone_id": "1",
        "message_template_namespace": format!("sim_{waba_id}"),
    })
}

/// `GET /{waba_id}/phone_numbers`.
pub fn phone_numbers(sim: &Sim, accounts: &[&Account]) -> Value {
    let data: Vec<Value> = accounts
        .iter()
        .map(|a| {
            let mut m = Map::new();
            for f in DEFAULT_FIELDS
                .iter()
                .chain(["code_verification_status", "platform_type", "status"].iter())
            {
                if let Some(v) = number_field(sim, a, f) {
                    m.insert(f.to_string(), v);
                }
            }
            Value::Object(m)
        })
        .collect();
    let first = data
        .first()
        .and_then(|v| v["id"].as_str())
        .unwrap_or("")
        .to_string();
    let last = data
        .last()
        .and_then(|v| v["id"].as_str())
        .unwrap_or("")
        .to_string();
    json!({"data": data, "paging": {"cursors": {"before": first, "after": last}}})
}

/// `GET /debug_token?input_token=`.
pub fn debug_token(sim: &Sim, st: &State, input: Option<&str>) -> Result<Value, GraphError> {
    let input = input.ok_or_else(|| GraphError::param("The parameter input_token is required"))?;
    let mut wabas: Vec<String> = st
        .accounts
        .values()
        .filter(|a| a.access_token == input)
        .map(|a| a.waba_id.clone())
        .collect();
    wabas.sort();
    wabas.dedup();
    if wabas.is_empty() {
        return Ok(json!({"data": {
            "is_valid": false,
            "error": {"code": 190, "message": "Invalid OAuth access token - Cannot parse access token"},
            "scopes": [],
        }}));
    }
    Ok(json!({"data": {
        "app_id": sim.config.app_id,
        "type": "SYSTEM_USER",
        "application": "Sincro Graph Simulator",
        "data_access_expires_at": 0,
        "expires_at": 0,
        "is_valid": true,
        "scopes": ["whatsapp_business_management", "whatsapp_business_messaging", "business_management"],
        "granular_scopes": [
            {"scope": "whatsapp_business_management", "target_ids": wabas},
            {"scope": "whatsapp_business_messaging", "target_ids": wabas},
        ],
        "user_id": sim.config.app_id,
    }}))
}

fn set_subscription(sim: &Sim, waba_id: &str, on: bool, override_url: Option<Option<String>>) {
    let mut st = sim.lock();
    for a in st.accounts.values_mut().filter(|a| a.waba_id == waba_id) {
        a.subscribed = on;
        if let Some(o) = override_url.clone() {
            a.override_callback_url = o;
        }
    }
}

/// `POST /{waba_id}/subscribed_apps` with an optional JSON or form body
/// `{override_callback_uri, verify_token}` (both or neither).
pub async fn subscribe(sim: &Sim, waba_id: &str, body: &[u8]) -> Result<Value, GraphError> {
    let params: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
        m
    } else {
        url::form_urlencoded_pairs(body)
    };
    for k in params.keys() {
        if k != "override_callback_uri" && k != "verify_token" {
            return Err(GraphError::param(format!(
                "Unexpected key \"{k}\" on param \"body\"."
            )));
        }
    }
    let uri = params.get("override_callback_uri").and_then(Value::as_str);
    let token = params.get("verify_token").and_then(Value::as_str);
    match (uri, token) {
        (None, None) => set_subscription(sim, waba_id, true, None),
        (Some(uri), Some(token)) => {
            if let Err(e) = webhooks::handshake(sim, uri, token).await {
                return Err(GraphError::new(
                    2200,
                    format!("Callback verification failed with the following errors: {e}"),
                ));
            }
            set_subscription(sim, waba_id, true, Some(Some(uri.to_string())));
        }
        _ => {
            return Err(GraphError::missing(
                "override_callback_uri and verify_token must be given together.",
            ));
        }
    }
    Ok(json!({"success": true}))
}

/// `GET /{waba_id}/subscribed_apps`.
pub fn subscriptions(sim: &Sim, accounts: &[&Account]) -> Value {
    let Some(a) = accounts.iter().find(|a| a.subscribed) else {
        return json!({"data": []});
    };
    let mut app = json!({"whatsapp_business_api_data": {
        "id": sim.config.app_id,
        "name": "Sincro Graph Simulator",
        "link": format!("{}/apps/{}", sim.base_url, sim.config.app_id),
    }});
    if let Some(o) = &a.override_callback_url {
        app["override_callback_uri"] = json!(o);
    }
    json!({"data": [app]})
}

/// `DELETE /{waba_id}/subscribed_apps`.
pub fn unsubscribe(sim: &Sim, waba_id: &str) -> Value {
    set_subscription(sim, waba_id, false, Some(None));
    json!({"success": true})
}

/// Minimal `application/x-www-form-urlencoded` decoding, via the URL parser reqwest ships.
mod url {
    use serde_json::{Map, Value};

    pub fn form_urlencoded_pairs(body: &[u8]) -> Map<String, Value> {
        let text = String::from_utf8_lossy(body);
        let Ok(u) = reqwest::Url::parse(&format!("http://x/?{}", text.trim())) else {
            return Map::new();
        };
        u.query_pairs()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }
}
