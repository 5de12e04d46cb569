//! The page side of a Lite session: the script injected into every document of the page
//! (`bridge.js`), the events it reports through the CDP binding, and the calls the session
//! makes into it (`window.__sincro.*`), each with a timeout.
//!
//! The script relies only on the module surface drivers use (the real WhatsApp Web page:
//! `window.Debug.VERSION`, `window.require('WAWeb…')`), never on the DOM, so the same bridge
//! works against WhatsApp Web and against the simulator.

use super::LiteError;
use chromiumoxide::Page;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// The CDP binding the script reports through.
pub const BINDING: &str = "__sincroBridge";

/// The script, with the binding name filled in.
pub fn script() -> String {
    include_str!("bridge.js").replace("__BINDING__", BINDING)
}

/// One message from the page.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BridgeEvent {
    /// The modules are there (once per document).
    Ready {
        version: String,
        #[serde(default)]
        state: Option<String>,
        #[serde(default)]
        synced: bool,
        #[serde(default)]
        post_logout: bool,
    },
    /// `Socket` changed state (OPENING, UNPAIRED, UNPAIRED_IDLE, PAIRING, CONNECTED, CONFLICT, ...).
    State { state: String },
    /// A new five-part QR string.
    Qr { qr: String },
    /// Logged in and loaded; `me` is `<digits>@c.us`.
    Synced {
        #[serde(default)]
        me: Option<String>,
    },
    /// The page logged out (from the phone, or through the API).
    Logout,
    /// A new message: from a contact, or (`msg.from_me`) sent by the account. Pending on the
    /// page until `eid` is confirmed.
    Msg {
        #[serde(default)]
        eid: Option<String>,
        msg: Box<PageMessage>,
    },
    /// The ack of a message the account sent changed (-1 error, 1 server, 2 device, 3 read,
    /// 4 played). Pending on the page until `eid` is confirmed.
    Ack {
        #[serde(default)]
        eid: Option<String>,
        id: String,
        ack: i64,
    },
    /// Something the bridge could not do.
    Error { error: String },
}

/// A message as the bridge serializes it.
#[derive(Debug, Clone, Deserialize)]
pub struct PageMessage {
    /// The key's id (the external id we store).
    pub id: String,
    /// `fromMe_remote_id`, to find the message again in the page.
    pub serialized: String,
    /// Sent by the account (from its phone, or by the daemon) rather than by the contact.
    #[serde(rename = "fromMe", default)]
    pub from_me: bool,
    /// The chat: `<digits>@c.us` for a contact, `@g.us` for groups, ...
    pub remote: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub body: Option<String>,
    pub caption: Option<String>,
    pub t: Option<i64>,
    #[serde(rename = "notifyName")]
    pub notify_name: Option<String>,
    pub mimetype: Option<String>,
    pub filename: Option<String>,
    pub size: Option<u64>,
    #[serde(default)]
    pub media: bool,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    pub loc: Option<String>,
    pub quoted: Option<String>,
    /// The Click-to-WhatsApp ad the contact came from (the model's `ctwaContext`).
    #[serde(default)]
    pub ctwa: Option<serde_json::Value>,
    /// A notice's kind (`change_number` for a contact that changed number).
    #[serde(default)]
    pub subtype: Option<String>,
    /// A number-change notice's new id (WhatsApp Web puts it in the model's `to`).
    #[serde(default)]
    pub to: Option<String>,
    /// A notice's parameters (a number change: the old and the new id).
    #[serde(rename = "templateParams", default)]
    pub template_params: Vec<String>,
}

impl BridgeEvent {
    pub fn parse(payload: &str) -> Result<BridgeEvent, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

/// Evaluates `expr` (promises awaited) and returns its value as JSON, within `timeout`.
pub async fn eval(page: &Page, expr: &str, timeout: Duration) -> Result<Value, LiteError> {
    let params = EvaluateParams::builder()
        .expression(expr)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(LiteError::Page)?;
    match tokio::time::timeout(timeout, page.evaluate_expression(params)).await {
        Err(_) => Err(LiteError::Timeout(timeout)),
        Ok(Err(e)) => Err(LiteError::Page(e.to_string())),
        Ok(Ok(r)) => Ok(r.value().cloned().unwrap_or(Value::Null)),
    }
}

/// Calls `window.__sincro.<method>(...args)`.
pub async fn call(
    page: &Page,
    method: &str,
    args: &[Value],
    timeout: Duration,
) -> Result<Value, LiteError> {
    let args: Vec<String> = args.iter().map(Value::to_string).collect();
    let expr = format!(
        "(async () => {{ if (!window.__sincro) throw new Error('bridge not installed'); \
         return await window.__sincro.{method}({}); }})()",
        args.join(", ")
    );
    let started = std::time::Instant::now();
    let result = eval(page, &expr, timeout).await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!("sincro_lite_bridge_call_seconds", "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events() {
        let e = BridgeEvent::parse(r#"{"t":"qr","qr":"2@x,a,b,c,WEB"}"#).unwrap();
        assert!(matches!(e, BridgeEvent::Qr { qr } if qr.ends_with("WEB")));
        let e = BridgeEvent::parse(r#"{"t":"ack","id":"3EB0AA","ack":3}"#).unwrap();
        assert!(matches!(e, BridgeEvent::Ack { ack: 3, .. }));
        let e = BridgeEvent::parse(
            r#"{"t":"msg","eid":"m:false_1@c.us_3A1","msg":{"id":"3A1","serialized":"false_1@c.us_3A1","remote":"1@c.us","type":"chat","body":"oi","media":false}}"#,
        )
        .unwrap();
        assert!(
            matches!(e, BridgeEvent::Msg { msg, eid: Some(_) } if msg.body.as_deref() == Some("oi") && !msg.from_me)
        );
        assert!(matches!(
            BridgeEvent::parse(r#"{"t":"logout"}"#).unwrap(),
            BridgeEvent::Logout
        ));
    }

    #[test]
    fn script_has_the_binding() {
        let s = script();
        assert!(s.contains(BINDING));
        assert!(!s.contains("__BINDING__"));
    }
}
