//! [`MediaFetcher`]: the guarded HTTP client that fetches a user's media link, with its
//! checks before the request and on every redirect, its body cap and timeout.

use super::{AllowList, FetchError, GuardedResolver, check_url, guarded_client_builder};
use reqwest::{Client, Url};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What a link gave.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The `Content-Type` without parameters, when given.
    pub mime_type: Option<String>,
}

/// Fetches links on a user's behalf, through the guard, with a size cap and a timeout.
pub struct MediaFetcher {
    client: Client,
    allow: Arc<AllowList>,
    resolver: GuardedResolver,
    max_bytes: usize,
}

impl fmt::Debug for MediaFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaFetcher")
            .field("allow", &self.allow)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl MediaFetcher {
    /// 16 MB (WhatsApp's largest file) within 30 s.
    pub fn new(allow: AllowList) -> Self {
        Self::with_limits(allow, Duration::from_secs(30), 16 * 1024 * 1024)
    }

    pub fn with_limits(allow: AllowList, timeout: Duration, max_bytes: usize) -> Self {
        let allow = Arc::new(allow);
        let client = guarded_client_builder(allow.clone())
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .build()
            .expect("an HTTP client with the default TLS backend");
        MediaFetcher {
            client,
            resolver: GuardedResolver::new(allow.clone()),
            allow,
            max_bytes,
        }
    }

    /// A fetcher with no exceptions, for callers that have no configuration at hand.
    pub fn strict() -> &'static MediaFetcher {
        static STRICT: OnceLock<MediaFetcher> = OnceLock::new();
        STRICT.get_or_init(|| MediaFetcher::new(AllowList::default()))
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn parse(url: &str) -> Result<Url, FetchError> {
        if url.len() > 2048 {
            return Err(FetchError::Invalid("longer than 2048 characters".into()));
        }
        Url::parse(url).map_err(|e| FetchError::Invalid(e.to_string()))
    }

    /// The checks possible without a request: [`check_url`], without resolving.
    pub fn check_static(&self, url: &str) -> Result<Url, FetchError> {
        let url = Self::parse(url)?;
        check_url(&self.allow, &url)?;
        Ok(url)
    }

    /// [`MediaFetcher::check_static`], then the host's addresses (redirects are only seen by
    /// [`MediaFetcher::fetch`]). A name that does not resolve passes: the fetch decides.
    pub async fn check(&self, url: &str) -> Result<(), FetchError> {
        let parsed = self.check_static(url)?;
        if let Some(url::Host::Domain(name)) = parsed.host() {
            match self.resolver.resolve_checked(name).await {
                Err(e @ FetchError::NotAllowed(_)) => return Err(e),
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Fetches `url` through the guard: at most `max_bytes`, within the timeout.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let parsed = self.check_static(url)?;
        let res = self.client.get(parsed).send().await.map_err(classify)?;
        if !res.status().is_success() {
            return Err(FetchError::Status(res.status().as_u16()));
        }
        if res
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mime_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty());
        let mut res = res;
        let mut bytes = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(classify)? {
            if bytes.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes, mime_type })
    }
}

/// A reqwest error as a [`FetchError`]: a refusal of the resolver or the redirect policy is
/// found in its chain of causes.
pub fn classify(e: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(f) = s.downcast_ref::<FetchError>() {
            return f.clone();
        }
        source = s.source();
    }
    if e.is_timeout() {
        FetchError::Network("timed out".into())
    } else {
        FetchError::Network(e.without_url().to_string())
    }
}
