//! What the `/v1/webhooks` routes call: each request checked whole (URL through the outbound
//! request guard, the stream's type filter, custom headers, ranges) before anything is stored,
//! then one store call. The secret leaves only in the answers of [`create`] and [`rotate`].

use super::send::{self, Outcome};
use super::store::{self, Changes, Endpoint, Headers, NewRow};
use super::{HookError, sign};
use crate::hub::TypeFilter;
use crate::net_guard::{FetchError, MediaFetcher};
use crate::shared::Shared;
use crate::store::events;
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

/// Most custom headers one endpoint may send.
pub const MAX_HEADERS: usize = 20;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 500;
/// Longest URL.
pub const MAX_URL: usize = 2048;
/// Most deliveries in flight one endpoint may ask for.
pub const MAX_IN_FLIGHT: i32 = 16;
/// Longest rotation overlap a call may ask for.
pub const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Headers a user may not set: the delivery's own, and those HTTP itself manages.
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-authorization",
];

/// A new endpoint as asked for.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub types: Option<Vec<String>>,
    pub headers: Option<Vec<(String, String)>>,
    pub description: Option<String>,
    pub max_in_flight: Option<i32>,
}

/// An endpoint with its secret, answered once.
#[derive(Debug, Clone, Serialize)]
pub struct WithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub secret: String,
}

/// Checks a URL: http(s), short enough, and through the guard (addresses in it and what its
/// name resolves to now; every delivery checks again).
pub async fn check_url(shared: &Shared, url: &str) -> Result<String, HookError> {
    let url = url.trim();
    if url.len() > MAX_URL {
        return Err(HookError::InvalidUrl(format!(
            "longer than {MAX_URL} characters"
        )));
    }
    let guard = MediaFetcher::with_limits(
        shared.settings.hooks.allow.clone(),
        Duration::from_secs(10),
        0,
    );
    match guard.check(url).await {
        Ok(()) => Ok(url.to_string()),
        Err(FetchError::NotAllowed(why)) => Err(HookError::UrlNotAllowed(format!(
            "webhook url not allowed: {why}; webhooks must point to a public address (WEBHOOK_URL_ALLOW lists exceptions)"
        ))),
        Err(FetchError::Invalid(why)) => Err(HookError::InvalidUrl(why)),
        Err(other) => Err(HookError::InvalidUrl(other.to_string())),
    }
}

/// The filter as stored (comma-separated), validated by the stream's own parser.
fn check_types(types: Option<Vec<String>>) -> Result<Option<String>, HookError> {
    let Some(types) = types else { return Ok(None) };
    let joined = types.join(",");
    TypeFilter::parse(&joined)?;
    Ok(Some(joined))
}

fn check_headers(headers: Vec<(String, String)>) -> Result<Headers, HookError> {
    if headers.len() > MAX_HEADERS {
        return Err(HookError::InvalidHeader(format!(
            "at most {MAX_HEADERS} custom headers"
        )));
    }
    for (name, value) in &headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("x-sincro-") || RESERVED.contains(&lower.as_str()) {
            return Err(HookError::InvalidHeader(format!(
                "header {name:?} is set by the daemon and cannot be given"
            )));
        }
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || reqwest::header::HeaderValue::from_str(value).is_err()
            || value.len() > 4096
        {
            return Err(HookError::InvalidHeader(format!(
                "header {name:?} is not a valid HTTP header name and value"
            )));
        }
    }
    Ok(headers)
}

fn check_description(d: Option<String>) -> Result<Option<String>, HookError> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control) => {
            Err(HookError::Invalid(
                "invalid_description",
                format!("description is at most {MAX_DESCRIPTION} printable characters"),
            ))
        }
        other => Ok(other.filter(|d| !d.trim().is_empty())),
    }
}

fn check_in_flight(n: i32) -> Result<i32, HookError> {
    if (1..=MAX_IN_FLIGHT).contains(&n) {
        Ok(n)
    } else {
        Err(HookError::Invalid(
            "invalid_max_in_flight",
            format!("max_in_flight is 1 (one delivery at a time, the default) to {MAX_IN_FLIGHT}"),
        ))
    }
}

/// Creates an endpoint; the answer holds its secret, this once.
pub async fn create(
    shared: &Shared,
    usuario_id: Uuid,
    new: NewEndpoint,
) -> Result<WithSecret, HookError> {
    let row = NewRow {
        url: check_url(shared, &new.url).await?,
        types: check_types(new.types)?,
        description: check_description(new.description)?,
        headers: check_headers(new.headers.unwrap_or_default())?,
        max_in_flight: check_in_flight(new.max_in_flight.unwrap_or(1))?,
        secret: sign::new_secret(),
    };
    let client = shared.pool.get().await?;
    let endpoint = store::insert(&client, &shared.sealer, usuario_id, &row).await?;
    Ok(WithSecret {
        endpoint,
        secret: row.secret,
    })
}

/// A PATCH as asked for (None: unchanged; `Some(None)`: cleared).
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub url: Option<String>,
    pub types: Option<Option<Vec<String>>>,
    pub headers: Option<Option<Vec<(String, String)>>>,
    pub description: Option<Option<String>>,
    pub max_in_flight: Option<i32>,
    pub enabled: Option<bool>,
}

pub async fn update(
    shared: &Shared,
    usuario_id: Uuid,
    id: Uuid,
    patch: Patch,
) -> Result<Endpoint, HookError> {
    let url = match patch.url {
        Some(url) => Some(check_url(shared, &url).await?),
        None => None,
    };
    let changes = Changes {
        url,
        types: patch.types.map(check_types).transpose()?,
        description: patch.description.map(check_description).transpose()?,
        headers: patch
            .headers
            .map(|h| check_headers(h.unwrap_or_default()))
            .transpose()?,
        max_in_flight: patch.max_in_flight.map(check_in_flight).transpose()?,
        enabled: patch.enabled,
    };
    let client = shared.pool.get().await?;
    let endpoint = store::update(&client, &shared.sealer, usuario_id, id, &changes).await?;
    if changes.enabled == Some(true) {
        super::alert::resolve_disabled(shared, id).await;
    }
    Ok(endpoint)
}

/// A new secret; the previous one keeps signing for `overlap` (default
/// `WEBHOOK_SECRET_OVERLAP_SECS`).
pub async fn rotate(
    shared: &Shared,
    usuario_id: Uuid,
    id: Uuid,
    overlap: Option<Duration>,
) -> Result<WithSecret, HookError> {
    let overlap = overlap.unwrap_or(shared.settings.hooks.rotation_overlap);
    if overlap > MAX_OVERLAP {
        return Err(HookError::Invalid(
            "invalid_overlap",
            format!("overlap_secs is at most {}", MAX_OVERLAP.as_secs()),
        ));
    }
    let secret = sign::new_secret();
    let client = shared.pool.get().await?;
    let endpoint = store::rotate(&client, &shared.sealer, usuario_id, id, &secret, overlap).await?;
    Ok(WithSecret { endpoint, secret })
}

/// Delivers again every event after `since`, which must still be in the log (events after it
/// all retained) and not ahead of the newest.
pub async fn replay(
    shared: &Shared,
    usuario_id: Uuid,
    id: Uuid,
    since: i64,
) -> Result<Endpoint, HookError> {
    let mut client = shared.pool.get().await?;
    store::get(&client, &shared.sealer, usuario_id, id).await?;
    let first_available = events::first_available(&mut client, usuario_id).await?;
    let newest = events::last_seq(&client, usuario_id).await?;
    if since > newest {
        return Err(HookError::SinceAhead { since, newest });
    }
    if since < 0 || since + 1 < first_available {
        return Err(HookError::SinceNotRetained {
            since,
            first_available,
        });
    }
    // Announced to the endpoint's lane, which reloads and starts at once.
    store::rewind(&client, &shared.sealer, usuario_id, id, since).await
}

/// What a test delivery gave.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub delivery_id: Uuid,
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// Sends one `webhook.test` frame to the endpoint now (signed like any delivery; no event of
/// the log, no `X-Sincro-Seq`, the cursor does not move) and says how it went.
pub async fn test(shared: &Shared, usuario_id: Uuid, id: Uuid) -> Result<TestResult, HookError> {
    let client = shared.pool.get().await?;
    store::get(&client, &shared.sealer, usuario_id, id).await?;
    let target = super::cursor::load(&client, &shared.sealer, id)
        .await?
        .ok_or(HookError::NotFound)?;
    let event = events::Event {
        seq: 0,
        kind: "webhook.test".into(),
        at: time::OffsetDateTime::now_utc(),
        data: serde_json::json!({"webhook_id": id}),
        usuario_id,
        muted: false,
    };
    let mut frame: serde_json::Value = serde_json::to_value(&event).expect("an event");
    frame["seq"] = serde_json::Value::Null;
    let body = frame.to_string();
    let delivery_id = Uuid::new_v4();
    let settings = &shared.settings.hooks;
    let http = send::client(settings.allow.clone(), settings.timeout);
    let done = send::attempt(
        &http,
        &send::Delivery {
            url: &target.url,
            allow: &settings.allow,
            headers: &target.headers,
            secrets: &target.secrets,
            webhook_id: id,
            delivery_id,
            event_type: "webhook.test",
            seq: None,
            body: &body,
        },
    )
    .await;
    Ok(TestResult {
        delivery_id,
        delivered: matches!(done.outcome, Outcome::Delivered { .. }),
        status: done.outcome.status(),
        error: done.outcome.error().map(str::to_string),
        latency_ms: done.latency.as_millis() as u64,
    })
}
