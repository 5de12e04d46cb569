//! The CRM-facing settings of one connection, read from
//! `configuracion_mensajeria_usuario.configuracion.settings` (the CRM writes them there):
//! `auto_reply` (off by default), `notifications_enabled` and `sync_contacts` (on by default),
//! and ours beside them: `auto_reply_config` (what to answer, the window, business hours) and
//! `lead_sources` (the prefilled texts of the user's `wa.me` links). Unknown or mistyped values
//! fall back to the defaults, so a CRM typo never stops a connection.

use super::hours::BusinessHours;
use serde_json::{Value, json};

/// The original model's settings with their defaults, as SQL: merged under what the row holds
/// (`DEFAULTS_SQL || settings`), so values the CRM wrote win.
pub const DEFAULTS_SQL: &str = "jsonb_build_object('auto_reply', false, \
    'notifications_enabled', true, 'sync_contacts', true)";

/// The same defaults as JSON, for rows written from Rust.
pub fn defaults() -> Value {
    json!({"auto_reply": false, "notifications_enabled": true, "sync_contacts": true})
}

/// Default of `auto_reply_config.window_minutes`: one automatic answer per contact a day.
pub const DEFAULT_WINDOW_MINUTES: i64 = 24 * 60;

/// One connection's settings as this feature uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmSettings {
    pub auto_reply: bool,
    pub notifications_enabled: bool,
    pub sync_contacts: bool,
    pub auto_reply_config: AutoReplyConfig,
    /// `wa.me` links the user hands out: a first message that begins with one's prefilled
    /// text came from that link.
    pub wa_me_links: Vec<WaMeLink>,
}

/// What an automatic answer says and when it is sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AutoReplyConfig {
    /// A text answer (`{"type":"text"}`), used when no template is set.
    pub text: Option<String>,
    /// An approved template (`{"name","language":{"code"},"components"?}` as in the Cloud
    /// API); Business numbers need one outside the 24 h window.
    pub template: Option<Value>,
    /// At most one automatic answer per contact within this many minutes.
    pub window_minutes: i64,
    /// Outside these hours every message is answered (within the window); inside them only
    /// a contact's first message. None: only first messages.
    pub business_hours: Option<BusinessHours>,
}

/// One `wa.me` link: its prefilled text and the name the CRM gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaMeLink {
    pub text: String,
    pub name: Option<String>,
}

impl CrmSettings {
    /// Reads a connection's `configuracion` (the whole JSON).
    pub fn from_configuracion(configuracion: &Value) -> CrmSettings {
        let s = &configuracion["settings"];
        let flag = |k: &str, default: bool| s.get(k).and_then(Value::as_bool).unwrap_or(default);
        let c = &s["auto_reply_config"];
        let text = c
            .get("text")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from);
        let template = c
            .get("template")
            .filter(|t| t.get("name").and_then(Value::as_str).is_some())
            .cloned();
        let window_minutes = c
            .get("window_minutes")
            .and_then(Value::as_i64)
            .filter(|w| *w > 0)
            .unwrap_or(DEFAULT_WINDOW_MINUTES);
        let business_hours = c.get("business_hours").and_then(BusinessHours::parse);
        let wa_me_links = s
            .pointer("/lead_sources/wa_me")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| {
                let text = l.get("text").and_then(Value::as_str)?.trim();
                (!text.is_empty()).then(|| WaMeLink {
                    text: text.to_string(),
                    name: l.get("name").and_then(Value::as_str).map(String::from),
                })
            })
            .collect();
        CrmSettings {
            auto_reply: flag("auto_reply", false),
            notifications_enabled: flag("notifications_enabled", true),
            sync_contacts: flag("sync_contacts", true),
            auto_reply_config: AutoReplyConfig {
                text,
                template,
                window_minutes,
                business_hours,
            },
            wa_me_links,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_absent_or_mistyped() {
        let s = CrmSettings::from_configuracion(&json!({"settings": {"auto_reply": "yes"}}));
        assert!(!s.auto_reply && s.notifications_enabled && s.sync_contacts);
        assert_eq!(s.auto_reply_config.window_minutes, DEFAULT_WINDOW_MINUTES);
        assert!(s.wa_me_links.is_empty());
    }

    #[test]
    fn reads_what_the_crm_wrote() {
        let s = CrmSettings::from_configuracion(&json!({"settings": {
            "auto_reply": true, "notifications_enabled": false, "sync_contacts": false,
            "auto_reply_config": {"text": " Hi ", "window_minutes": 60},
            "lead_sources": {"wa_me": [{"text": "Hello from IG", "name": "instagram"}, {"text": ""}]}
        }}));
        assert!(s.auto_reply && !s.notifications_enabled && !s.sync_contacts);
        assert_eq!(s.auto_reply_config.text.as_deref(), Some("Hi"));
        assert_eq!(s.auto_reply_config.window_minutes, 60);
        assert_eq!(s.wa_me_links.len(), 1);
        assert_eq!(s.wa_me_links[0].name.as_deref(), Some("instagram"));
    }
}
