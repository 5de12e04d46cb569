//! The simulator's shared state: accounts (one per phone number), what was sent, media, service
//! windows, limit counters, faults and webhook options, behind one mutex that is never held
//! across an await. Also the background-task set that `shutdown` aborts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::config::GraphSimConfig;
use super::errors::GraphError;
use super::limits::{PairRate, Throughput};
use super::records::{DeliveryRecord, Fault, Media, Template, WebhookEvent, WebhookOptions};

/// One phone number on one WABA, with the credentials the daemon uses for it.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
    /// Where webhooks go; `None` for accounts with no webhook target (events are dropped and
    /// only recorded in the delivery log).
    pub callback_url: Option<String>,
    /// Whether the app is subscribed to this WABA (`/subscribed_apps`). Accounts start
    /// subscribed; webhooks are only delivered while subscribed, as with Meta.
    pub subscribed: bool,
    /// `override_callback_uri` given to `POST /subscribed_apps`, which wins over `callback_url`.
    pub override_callback_url: Option<String>,
}

impl Account {
    /// The URL webhooks currently go to, if any.
    pub fn webhook_target(&self) -> Option<String> {
        if !self.subscribed {
            return None;
        }
        self.override_callback_url
            .clone()
            .or_else(|| self.callback_url.clone())
    }
}

/// One accepted send, as `GET /sim/sent` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct SentMessage {
    pub id: String,
    pub phone_number_id: String,
    /// `to` exactly as the request gave it.
    pub to: String,
    /// The recipient's WhatsApp id: the account the number reaches (`/sim/contacts`), which
    /// Meta answers in `contacts[].wa_id` and puts in the statuses' `recipient_id`.
    pub wa_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub request: Value,
    pub received_at: String,
    /// Pricing category for status webhooks (`service`, or the template's category).
    #[serde(skip)]
    pub category: String,
    #[serde(skip)]
    pub biz_opaque: Option<String>,
}

/// Everything mutable, behind `Sim::state`.
#[derive(Default)]
pub struct State {
    pub accounts: BTreeMap<String, Account>,
    pub media: HashMap<String, Media>,
    /// Download token → (media id, expiry).
    pub media_urls: HashMap<String, (String, Instant)>,
    pub templates: Vec<Template>,
    pub sent: Vec<SentMessage>,
    /// Messages the business sent from the WhatsApp Business app (`/sim/echo`), for
    /// `/sim/statuses`.
    pub echoes: Vec<SentMessage>,
    /// Contacts' WhatsApp accounts: the modern form of a number ([`modern_digits`]) → the
    /// account's `wa_id` (`/sim/contacts`). Numbers not registered get [`default_wa_id`].
    pub contacts: HashMap<String, String>,
    /// Inbound wamid → (phone_number_id, wa_id of the sender), for mark-as-read checks.
    pub inbound: HashMap<String, (String, String)>,
    /// (phone_number_id, wa_id) → unix time of the contact's last inbound message.
    pub windows: HashMap<(String, String), i64>,
    pub throughput: HashMap<String, Throughput>,
    /// Messages per second of numbers whose level was set (`/sim/throughput`); the others
    /// have `throughput_per_sec`.
    pub levels: HashMap<String, u32>,
    pub pair: HashMap<(String, String), PairRate>,
    pub faults: Vec<Fault>,
    pub webhook_options: WebhookOptions,
    pub deliveries: VecDeque<DeliveryRecord>,
}

impl State {
    /// The WhatsApp id of the account a number (digits, any spelling) reaches.
    pub fn wa_id_for(&self, digits: &str) -> String {
        self.contacts
            .get(&modern_digits(digits))
            .cloned()
            .unwrap_or_else(|| default_wa_id(digits))
    }

    /// Every account whose token is `token`; empty means the token is not valid at all.
    pub fn token_valid(&self, token: &str) -> bool {
        self.accounts.values().any(|a| a.access_token == token)
    }

    /// The account of `phone_number_id` if `token` may act on it.
    pub fn number_for(&self, token: &str, phone_number_id: &str) -> Option<&Account> {
        self.accounts
            .get(phone_number_id)
            .filter(|a| a.access_token == token)
    }

    /// The accounts of `waba_id` that `token` may act on (empty: unknown or not allowed).
    pub fn waba_for(&self, token: &str, waba_id: &str) -> Vec<&Account> {
        self.accounts
            .values()
            .filter(|a| a.waba_id == waba_id && a.access_token == token)
            .collect()
    }

    /// Checks `token` at all; answers 190 when it matches nothing.
    pub fn check_token(&self, token: Option<&str>) -> Result<String, GraphError> {
        match token {
            None => Err(GraphError::token(
                "An active access token must be used to query information about the current user.",
            )),
            Some(t) if self.token_valid(t) => Ok(t.to_string()),
            Some(_) => Err(GraphError::token("Cannot parse access token")),
        }
    }
}

/// The running simulator, shared by all request handlers and background tasks.
pub struct Sim {
    pub config: GraphSimConfig,
    pub base_url: String,
    pub state: Mutex<State>,
    pub http: reqwest::Client,
    pub webhook_tx: mpsc::UnboundedSender<WebhookEvent>,
    tasks: Mutex<JoinSet<()>>,
    /// One instant on both clocks, so times the limits use (`Instant`) can be reported as wall
    /// time consistently: `received_at` then obeys the same 1-s windows the limiter enforced.
    epoch: (Instant, OffsetDateTime),
    /// Flips to true on shutdown, releasing requests held by a `timeout` fault.
    pub closing: tokio::sync::watch::Sender<bool>,
}

impl Sim {
    pub fn new(
        config: GraphSimConfig,
        base_url: String,
        http: reqwest::Client,
        webhook_tx: mpsc::UnboundedSender<WebhookEvent>,
    ) -> Self {
        Sim {
            config,
            base_url,
            state: Mutex::new(State::default()),
            http,
            webhook_tx,
            tasks: Mutex::new(JoinSet::new()),
            epoch: (Instant::now(), OffsetDateTime::now_utc()),
            closing: tokio::sync::watch::Sender::new(false),
        }
    }

    /// `at` as RFC 3339 wall time with milliseconds, on the simulator's own clock.
    pub fn wall_time(&self, at: Instant) -> String {
        let (base, wall) = self.epoch;
        format_millis(wall + at.saturating_duration_since(base))
    }

    /// The state, recovering from a poisoned lock (a panicking handler must not wedge tests).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `fut` in the background until it ends or the simulator shuts down.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(fut);
    }

    /// Aborts every background task.
    pub fn abort_tasks(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.abort_all();
    }
}

/// Now as unix seconds.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Now as RFC 3339 in UTC with exactly three fractional digits.
pub fn rfc3339_millis_now() -> String {
    format_millis(OffsetDateTime::now_utc())
}

/// RFC 3339 in UTC with exactly three fractional digits (truncated, not rounded).
fn format_millis(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

/// `to` / `from` as Meta normalises it: digits only, 7 to 15 of them.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty()
        || !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
    {
        return None;
    }
    let digits: String = trimmed.chars().filter(|c| c.is_ascii_digit()).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

/// A number's modern international digits: Mexico without the old mobile `1`, Argentine
/// mobiles with the `9` after 54, Brazilian mobiles with the ninth digit. Two spellings of one
/// number have one modern form.
// The daemon has a rule like this one; the simulator checks on its own, not through it.
pub fn modern_digits(digits: &str) -> String {
    let b = digits.as_bytes();
    if digits.len() == 13 && digits.starts_with("521") {
        return format!("52{}", &digits[3..]);
    }
    if digits.len() == 12 && digits.starts_with("55") && (b'6'..=b'9').contains(&b[4]) {
        return format!("{}9{}", &digits[..4], &digits[4..]);
    }
    if digits.len() == 12 && digits.starts_with("54") && !digits.starts_with("549") {
        return format!("549{}", &digits[2..]);
    }
    digits.to_string()
}

/// The `wa_id` Meta gives an account registered on a number today: the modern form, except
/// that Mexican mobiles keep the `1` after 52 (`5215512345678`). Accounts made otherwise (a
/// Brazilian account that predates the ninth digit) are registered with `/sim/contacts`.
pub fn default_wa_id(digits: &str) -> String {
    let m = modern_digits(digits);
    if m.len() == 12 && m.starts_with("52") {
        return format!("521{}", &m[2..]);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wa_ids_as_meta_gives_them() {
        for (number, wa_id) in [
            ("525512345678", "5215512345678"),
            ("5215512345678", "5215512345678"),
            ("541112345678", "5491112345678"),
            ("5491112345678", "5491112345678"),
            ("5511987654321", "5511987654321"),
            ("551187654321", "5511987654321"),
            ("16502530000", "16502530000"),
        ] {
            assert_eq!(default_wa_id(number), wa_id, "{number}");
        }
        let mut st = State::default();
        st.contacts
            .insert(modern_digits("5511987654321"), "551187654321".into());
        assert_eq!(st.wa_id_for("5511987654321"), "551187654321");
        assert_eq!(st.wa_id_for("551187654321"), "551187654321");
    }
}
