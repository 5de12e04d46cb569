//! Fetching on a user's behalf without reaching inside the network (SSRF). A link a user
//! gives (a media `link`) is fetched only from public addresses: loopback, private, link-local
//! (cloud metadata at 169.254.169.254 among them), CGNAT, multicast, unspecified, reserved and
//! documentation ranges, unique-local IPv6 (fd00:ec2::254 among them) and IPv4 addresses
//! embedded in IPv6 (mapped, compatible, NAT64, 6to4) are refused.
//!
//! How: a host name is resolved by [`GuardedResolver`], every address is checked, and the
//! client connects only to the addresses checked (it has no other resolver and no proxy), so a
//! name that answers differently the second time (DNS rebinding) gains nothing. An address
//! written in the URL never reaches a resolver, so URLs are checked before the request and on
//! every redirect (at most [`MAX_REDIRECTS`]). Bodies are capped and requests time out.
//!
//! `MEDIA_FETCH_ALLOW` ([`AllowList`]) opens exceptions for on-premise deployments: CIDRs
//! (`10.1.0.0/16`, `127.0.0.1`) whose addresses are accepted, and host names (`files.corp`)
//! whose every address is.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, ClientBuilder, Url};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

mod addresses;
mod fetcher;

pub use addresses::{AllowList, is_public};
pub use fetcher::{Fetched, MediaFetcher, classify};

/// Redirects followed at most (each one checked like the first URL).
pub const MAX_REDIRECTS: usize = 5;
/// How long resolving one name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a fetch was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The link points somewhere the guard refuses (`link_not_allowed`); never retried.
    NotAllowed(String),
    /// The link is not an http(s) URL.
    Invalid(String),
    /// The body passed the cap.
    TooLarge(usize),
    /// The server answered with this status.
    Status(u16),
    /// Could not connect, timed out, or the transfer broke; may work later.
    Network(String),
}

impl FetchError {
    /// Whether trying again cannot help.
    pub fn is_permanent(&self) -> bool {
        match self {
            FetchError::NotAllowed(_) | FetchError::Invalid(_) | FetchError::TooLarge(_) => true,
            FetchError::Status(s) => (400..500).contains(s) && *s != 408 && *s != 429,
            FetchError::Network(_) => false,
        }
    }

    /// The API error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::NotAllowed(_) => "link_not_allowed",
            FetchError::Invalid(_) => "invalid_link",
            FetchError::TooLarge(_) => "link_too_large",
            FetchError::Status(_) | FetchError::Network(_) => "link_unavailable",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NotAllowed(why) => write!(
                f,
                "media link not allowed: {why}; links must point to a public address \
                 (MEDIA_FETCH_ALLOW lists exceptions)"
            ),
            FetchError::Invalid(why) => write!(f, "media link is not valid: {why}"),
            FetchError::TooLarge(max) => write!(f, "media link is larger than {max} bytes"),
            FetchError::Status(s) => write!(f, "media link answered HTTP {s}"),
            FetchError::Network(why) => write!(f, "media link could not be fetched: {why}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Checks what can be checked without resolving: the scheme, an address written in the URL,
/// and names that are local by definition (`localhost`, `*.localhost`).
pub fn check_url(allow: &AllowList, url: &Url) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Invalid(format!(
            "{} links are not fetched; use http or https",
            url.scheme()
        )));
    }
    match url.host() {
        None => Err(FetchError::Invalid("the link has no host".into())),
        Some(url::Host::Ipv4(v4)) => check_ip(allow, IpAddr::V4(v4), &v4.to_string()),
        Some(url::Host::Ipv6(v6)) => check_ip(allow, IpAddr::V6(v6), &v6.to_string()),
        Some(url::Host::Domain(name)) => {
            let lower = name.trim_end_matches('.').to_ascii_lowercase();
            if allow.allows_host(&lower) {
                return Ok(());
            }
            if lower == "localhost" || lower.ends_with(".localhost") {
                return Err(FetchError::NotAllowed(format!("{name} is this machine")));
            }
            // A name that is an address in another spelling (e.g. 2130706433) would be read as
            // one by some resolvers: resolve and check it like any other name.
            Ok(())
        }
    }
}

fn check_ip(allow: &AllowList, ip: IpAddr, shown: &str) -> Result<(), FetchError> {
    if is_public(ip) || allow.allows_ip(ip) || allow.allows_host(shown) {
        Ok(())
    } else {
        Err(FetchError::NotAllowed(format!(
            "{shown} is not a public address"
        )))
    }
}

/// Resolves names for the guarded client: every address a name resolves to must pass, and the
/// client then connects to exactly those.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl GuardedResolver {
    pub fn new(allow: Arc<AllowList>) -> Self {
        GuardedResolver { allow }
    }

    /// The checked addresses of `host` (port 0).
    pub async fn resolve_checked(&self, host: &str) -> Result<Vec<SocketAddr>, FetchError> {
        let looked = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0)))
            .await
            .map_err(|_| FetchError::Network(format!("resolving {host} timed out")))?
            .map_err(|e| FetchError::Network(format!("cannot resolve {host}: {e}")))?;
        let addrs: Vec<SocketAddr> = looked.collect();
        if addrs.is_empty() {
            return Err(FetchError::Network(format!("{host} has no address")));
        }
        if !self.allow.allows_host(host) {
            for a in &addrs {
                let ip = a.ip();
                if !(is_public(ip) || self.allow.allows_ip(ip)) {
                    return Err(FetchError::NotAllowed(format!(
                        "{host} resolves to {ip}, which is not a public address"
                    )));
                }
            }
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.resolve_checked(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A reqwest client builder for any request made on a user's behalf: names resolved through
/// [`GuardedResolver`], no proxy (a proxy would resolve names itself), and every redirect
/// checked by [`check_url`] (names by the resolver), [`MAX_REDIRECTS`] at most. Add a timeout.
pub fn guarded_client_builder(allow: Arc<AllowList>) -> ClientBuilder {
    let for_redirects = allow.clone();
    Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(allow)))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(FetchError::NotAllowed(format!(
                    "more than {MAX_REDIRECTS} redirects"
                )));
            }
            match check_url(&for_redirects, attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_and_not() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "::ffff:8.8.8.8",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn allow_list() {
        let l = AllowList::parse(" 127.0.0.1/32, 10.0.0.0/8,files.corp ,[::1]").unwrap();
        assert!(l.allows_ip(ip("127.0.0.1")));
        assert!(l.allows_ip(ip("::ffff:127.0.0.1")));
        assert!(!l.allows_ip(ip("127.0.0.2")));
        assert!(l.allows_ip(ip("10.200.0.1")));
        assert!(l.allows_ip(ip("::1")));
        assert!(l.allows_host("FILES.corp."));
        assert!(!l.allows_host("corp"));
        assert!(AllowList::parse("10.0.0.0/40").is_err());
        assert!(AllowList::parse("not a host!").is_err());
        assert!(AllowList::parse("").unwrap().is_empty());
    }

    #[test]
    fn urls() {
        let none = AllowList::default();
        let check = |l: &AllowList, u: &str| check_url(l, &Url::parse(u).unwrap());
        assert!(matches!(
            check(&none, "http://127.0.0.1/x"),
            Err(FetchError::NotAllowed(_))
        ));
        assert!(matches!(
            check(&none, "http://[::ffff:7f00:1]/"),
            Err(FetchError::NotAllowed(_))
        ));
        assert!(matches!(
            check(&none, "http://2130706433/"),
            Err(FetchError::NotAllowed(_))
        ));
        assert!(matches!(
            check(&none, "http://0x7f.1/"),
            Err(FetchError::NotAllowed(_))
        ));
        assert!(matches!(
            check(&none, "http://localhost:8080/"),
            Err(FetchError::NotAllowed(_))
        ));
        assert!(matches!(
            check(&none, "http://a.localhost/"),
            Err(FetchError::NotAllowed(_))
        ));
        assert!(matches!(
            check(&none, "file:///etc/passwd"),
            Err(FetchError::Invalid(_))
        ));
        assert!(check(&none, "https://example.com/a.jpg").is_ok());
        assert!(check(&none, "https://8.8.8.8/a.jpg").is_ok());
        let allow = AllowList::parse("127.0.0.0/8,localhost").unwrap();
        assert!(check(&allow, "http://127.0.0.1/x").is_ok());
        assert!(check(&allow, "http://localhost/x").is_ok());
    }

    #[tokio::test]
    async fn resolver_checks_every_address() {
        let none = GuardedResolver::new(Arc::new(AllowList::default()));
        assert!(matches!(
            none.resolve_checked("localhost").await,
            Err(FetchError::NotAllowed(_))
        ));
        let allow = GuardedResolver::new(Arc::new(AllowList::parse("127.0.0.0/8,::1").unwrap()));
        assert!(allow.resolve_checked("localhost").await.is_ok());
    }
}
