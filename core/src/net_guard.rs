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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Redirects followed at most (each one checked like the first URL).
pub const MAX_REDIRECTS: usize = 5;
/// How long resolving one name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Exceptions to the public-address rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<(IpAddr, u8)>,
    hosts: Vec<String>,
}

impl AllowList {
    /// Parses a comma-separated list of CIDRs, addresses and host names.
    pub fn parse(s: &str) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, len) = match item.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (item, None),
            };
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            match addr.parse::<IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let len = match len {
                        None => max,
                        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| {
                            format!("{item:?}: the prefix length must be 0-{max}")
                        })?,
                    };
                    list.nets.push((ip, len));
                }
                Err(_) if len.is_none() && valid_host(addr) => {
                    list.hosts.push(addr.to_ascii_lowercase())
                }
                Err(_) => {
                    return Err(format!(
                        "{item:?} is neither an address, a CIDR nor a host name"
                    ));
                }
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.hosts.is_empty()
    }

    /// Whether `host` is named in the list (then any address it resolves to is accepted).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|h| *h == host)
    }

    /// Whether `ip` falls in one of the list's networks.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets
            .iter()
            .any(|(net, len)| in_net(ip, canonical(*net), *len))
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    in_net(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::from(net)), len)
}

/// Whether an IPv4 address is publicly routable.
fn public_v4(ip: Ipv4Addr) -> bool {
    const NOT_PUBLIC: &[([u8; 4], u8)] = &[
        ([0, 0, 0, 0], 8),       // "this network", unspecified
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // carrier-grade NAT
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, broadcast
    ];
    !NOT_PUBLIC.iter().any(|(net, len)| v4_in(ip, *net, *len))
}

/// Whether an address is publicly routable: the rule every fetched address must pass.
pub fn is_public(ip: IpAddr) -> bool {
    let v6 = match ip {
        IpAddr::V4(v4) => return public_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    // Forms that carry an IPv4 address are judged by it.
    if let Some(v4) = v6.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let seg = v6.segments();
    let embedded_low = || Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32);
    // IPv4-compatible (deprecated) ::a.b.c.d, and :: / ::1 themselves.
    if seg[..6].iter().all(|s| *s == 0) {
        return v6 != Ipv6Addr::UNSPECIFIED
            && v6 != Ipv6Addr::LOCALHOST
            && public_v4(embedded_low());
    }
    // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48).
    if seg[0] == 0x64 && seg[1] == 0xff9b {
        return seg[2] == 0 && seg[3..6].iter().all(|s| *s == 0) && public_v4(embedded_low());
    }
    // 6to4: 2002:a.b.c.d::/48.
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return public_v4(v4);
    }
    const NOT_PUBLIC: &[(u128, u8)] = &[
        (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // discard
        (0x2001_0000_0000_0000_0000_0000_0000_0000, 32), // Teredo
        (0x2001_0002_0000_0000_0000_0000_0000_0000, 48), // benchmarking
        (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
        (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
        (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // unique local (fd00:ec2::254)
        (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // link-local
        (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // site-local
        (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // multicast
    ];
    !NOT_PUBLIC
        .iter()
        .any(|(net, len)| in_net(IpAddr::V6(v6), IpAddr::V6(Ipv6Addr::from(*net)), *len))
}

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
fn classify(e: reqwest::Error) -> FetchError {
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
