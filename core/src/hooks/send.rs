//! One delivery attempt: the signed POST of one frame to an endpoint, through the outbound
//! request guard (the name resolved and checked, no proxy, no redirects followed), and what
//! its answer means: 2xx delivered; 408, 429 (honouring `Retry-After`), 5xx, timeouts and
//! connection errors are retried; any other status (a 4xx, a redirect) is a permanent failure
//! of that delivery.

use super::sign;
use crate::net_guard::{self, AllowList, FetchError};
use reqwest::Client;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The longest error text kept for an attempt.
const MAX_ERROR: usize = 300;
/// The longest wait a `Retry-After` may ask for (longer ones are capped by the retry max).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The HTTP client every delivery of this node goes through.
pub fn client(allow: AllowList, timeout: Duration) -> Client {
    net_guard::guarded_client_builder(Arc::new(allow))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!(
            "sincro-whatsapp-webhooks/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .expect("an HTTP client with the default TLS backend")
}

/// One delivery to make.
pub struct Delivery<'a> {
    pub url: &'a str,
    /// The exceptions to the guard (`WEBHOOK_URL_ALLOW`), for an address written in the URL.
    pub allow: &'a AllowList,
    pub headers: &'a [(String, String)],
    pub secrets: &'a [String],
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
    pub event_type: &'a str,
    /// None for a test delivery (it is no event of the log).
    pub seq: Option<i64>,
    /// Exactly the stream's frame.
    pub body: &'a str,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        status: u16,
    },
    /// Try again later; `after` is what the endpoint asked for (429's `Retry-After`).
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    /// Not retried: the endpoint refused this delivery.
    Failed {
        status: Option<u16>,
        error: String,
    },
}

impl Outcome {
    /// The attempt's `outcome` column and metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status } => Some(*status),
            Outcome::Retry { status, .. } | Outcome::Failed { status, .. } => *status,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Delivered { .. } => None,
            Outcome::Retry { error, .. } | Outcome::Failed { error, .. } => Some(error),
        }
    }
}

/// An attempt's outcome and how long it took.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub outcome: Outcome,
    pub latency: Duration,
}

/// Makes one attempt.
pub async fn attempt(client: &Client, d: &Delivery<'_>) -> Attempted {
    let started = Instant::now();
    let outcome = post(client, d).await;
    Attempted {
        outcome,
        latency: started.elapsed(),
    }
}

async fn post(client: &Client, d: &Delivery<'_>) -> Outcome {
    let url = match reqwest::Url::parse(d.url) {
        Ok(url) => url,
        Err(e) => {
            return Outcome::Failed {
                status: None,
                error: format!("url is not valid: {e}"),
            };
        }
    };
    // An address written in the URL never reaches the guarded resolver: check it here (the
    // allow list may have changed since the endpoint was made).
    if let Err(e) = net_guard::check_url(d.allow, &url) {
        return Outcome::Retry {
            status: None,
            error: short(&fetch_error_text(&e)),
            after: None,
        };
    }
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    let secrets: Vec<&str> = d.secrets.iter().map(String::as_str).collect();
    let mut req = client.post(url);
    for (name, value) in d.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    req = req
        .header("content-type", "application/json")
        .header("x-sincro-event", d.event_type)
        .header("x-sincro-delivery", d.delivery_id.to_string())
        .header("x-sincro-webhook", d.webhook_id.to_string())
        .header(
            "x-sincro-signature",
            sign::signature_header(&secrets, t, d.body.as_bytes()),
        );
    if let Some(seq) = d.seq {
        req = req.header("x-sincro-seq", seq.to_string());
    }
    let res = match req.body(d.body.to_string()).send().await {
        Ok(res) => res,
        Err(e) => {
            let error = net_guard::classify(e);
            return Outcome::Retry {
                status: None,
                error: short(&fetch_error_text(&error)),
                after: None,
            };
        }
    };
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    classify(status, retry_after)
}

fn fetch_error_text(e: &FetchError) -> String {
    match e {
        FetchError::NotAllowed(why) => format!("the endpoint's address is not allowed: {why}"),
        FetchError::Network(why) => why.clone(),
        other => other.to_string(),
    }
}

/// What an answer with `status` means.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered { status },
        408 | 429 | 500..=599 => Outcome::Retry {
            status: Some(status),
            error: format!("the endpoint answered HTTP {status}"),
            after: if status == 429 { retry_after } else { None },
        },
        300..=399 => Outcome::Failed {
            status: Some(status),
            error: format!("the endpoint answered HTTP {status}; redirects are not followed"),
        },
        _ => Outcome::Failed {
            status: Some(status),
            error: format!("the endpoint answered HTTP {status}"),
        },
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = at - time::OffsetDateTime::now_utc();
    Some(
        Duration::try_from(wait)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

fn short(text: &str) -> String {
    text.chars().take(MAX_ERROR).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(204, None), Outcome::Delivered { status: 204 });
        for s in [408, 429, 500, 502, 503] {
            assert_eq!(classify(s, None).label(), "retry", "{s}");
        }
        for s in [301, 400, 401, 403, 404, 410, 422] {
            assert_eq!(classify(s, None).label(), "failed", "{s}");
        }
        let limited = classify(429, Some(Duration::from_secs(7)));
        assert!(
            matches!(limited, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        // Retry-After only means something on a 429 here.
        assert!(matches!(
            classify(503, Some(Duration::from_secs(7))),
            Outcome::Retry { after: None, .. }
        ));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
