//! How every PostgreSQL connection of the daemon is made: the pool, each LISTEN session, the
//! migrations and `doctor` all go through [`PgConnect::parse`], so `sslmode` and `sslrootcert`
//! in `DATABASE_URL` mean the same everywhere.
//!
//! TLS is rustls (no OpenSSL), with libpq's meaning of `sslmode`:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | no |
//! | `prefer` (the default) | when the server offers TLS, except over loopback | no |
//! | `require` | always (refused otherwise) | no |
//! | `verify-ca` | always | chain up to a trusted CA, any host name |
//! | `verify-full` | always | chain and host name |
//!
//! Trusted CAs are the file named by `sslrootcert` (PEM, one or more certificates), or the
//! system's roots when it is unset or `system`. tokio-postgres itself only knows `disable`,
//! `prefer` and `require` and no `sslrootcert`: those parameters are taken out of the URL here
//! and the verifying modes become `require` plus a verifying rustls configuration.
//!
//! Two differences from libpq:
//! - With `prefer`, a TLS handshake that fails is reported instead of being retried in plain
//!   text (a server that does not offer TLS is used in plain text, as with libpq).
//! - `prefer` connects in plain text when every address it may reach is this machine's own
//!   (a loopback address, `localhost`, a Unix socket; libpq already skips TLS on a socket).
//!   `prefer` checks no certificate, so it guards only against someone reading the traffic.
//!   Traffic over loopback never leaves the machine, and whoever can read it can read the
//!   daemon's memory too; encrypting it is only work (at 1,000 single-message webhooks a
//!   second, 4.8 % of the daemon's CPU samples and 6.6 % of PostgreSQL's; Debian's PostgreSQL
//!   offers TLS out of the box). `sslmode=require` (or a verifying mode) encrypts a loopback
//!   connection anyway.

use super::StoreError;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use tokio_postgres::config::SslMode as PgSslMode;

pub use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS stream type of every connection made here.
pub type TlsStream =
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<SslMode, StoreError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries plain text first; plain text when the server allows it is
            // what it amounts to, and `prefer` is the closest mode that still encrypts when
            // the server insists.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::BadUrl(format!(
                    "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }

    /// Whether the server's certificate is checked.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Where trusted CAs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    System,
    File(String),
}

/// A parsed connection target: tokio-postgres's configuration (without the parameters it does
/// not know) and the TLS connector matching `sslmode`.
#[derive(Clone)]
pub struct PgConnect {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    pub mode: SslMode,
    pub roots: Roots,
}

impl std::fmt::Debug for PgConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: only the TLS settings are shown.
        f.debug_struct("PgConnect")
            .field("mode", &self.mode)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

/// Parameters libpq knows that this file handles (or ignores, as harmless) before
/// tokio-postgres sees the URL.
const HANDLED: &[&str] = &["sslmode", "sslrootcert", "sslsni", "sslcompression"];
/// Client certificates are not supported: a URL asking for one is refused rather than
/// connecting without it.
const UNSUPPORTED: &[&str] = &["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];

impl PgConnect {
    /// Parses a `postgres://` URL (or libpq's `key=value` form) with libpq's TLS parameters.
    pub fn parse(url: &str) -> Result<PgConnect, StoreError> {
        let (rest, params) = split_params(url);
        let mut mode = None;
        let mut roots = None;
        let mut kept = Vec::new();
        for (key, value) in params {
            match key.as_str() {
                "sslmode" => mode = Some(SslMode::parse(&value)?),
                "sslrootcert" => {
                    roots = Some(if value == "system" {
                        Roots::System
                    } else {
                        Roots::File(value)
                    })
                }
                k if HANDLED.contains(&k) => {}
                k if UNSUPPORTED.contains(&k) => {
                    return Err(StoreError::BadUrl(format!(
                        "{k} is not supported (client certificates): remove it from DATABASE_URL"
                    )));
                }
                _ => kept.push((key, value)),
            }
        }
        // As libpq: `sslrootcert=system` means verify-full (and refuses a weaker mode), and
        // `require` with a CA file checks the chain like `verify-ca`.
        let mode = match (mode, &roots) {
            (None, Some(Roots::System)) => SslMode::VerifyFull,
            (Some(m), Some(Roots::System)) if m != SslMode::VerifyFull => {
                return Err(StoreError::BadUrl(format!(
                    "sslrootcert=system needs sslmode=verify-full, not {}",
                    m.as_str()
                )));
            }
            (Some(SslMode::Require), Some(Roots::File(_))) => SslMode::VerifyCa,
            (m, _) => m.unwrap_or(SslMode::Prefer),
        };
        let roots = roots.unwrap_or(Roots::System);
        let rebuilt = join_params(&rest, &kept);
        let mut config = tokio_postgres::Config::from_str(&rebuilt)
            .map_err(|e| StoreError::BadUrl(e.to_string()))?;
        config.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer if stays_on_this_machine(&config) => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        let tls = connector(mode, &roots)?;
        Ok(PgConnect {
            config,
            tls,
            mode,
            roots,
        })
    }

    /// `prefer` to this machine's own addresses only, so plain text (see the module's docs).
    pub fn plain_on_loopback(&self) -> bool {
        self.mode == SslMode::Prefer && self.config.get_ssl_mode() == PgSslMode::Disable
    }

    /// Connects one session outside the pool (LISTEN, `doctor`). The caller polls the
    /// connection.
    pub async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, TlsStream>,
        ),
        tokio_postgres::Error,
    > {
        self.config.connect(self.tls.clone()).await
    }
}

/// Whether every address `config` may connect to is this machine's own: its `hostaddr`s, and
/// each host without one (a loopback address, `localhost`, a Unix socket). A name that only
/// resolves to loopback does not count: what a name resolves to can change.
fn stays_on_this_machine(config: &tokio_postgres::Config) -> bool {
    use std::net::IpAddr;
    use tokio_postgres::config::Host;
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    if hosts.is_empty() && addrs.is_empty() {
        return false;
    }
    let loopback_name = |name: &str| {
        name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    addrs.iter().all(IpAddr::is_loopback)
        && hosts.iter().enumerate().all(|(i, host)| {
            addrs.get(i).is_some()
                || match host {
                    Host::Tcp(name) => loopback_name(name),
                    Host::Unix(_) => true,
                }
        })
}

/// The connector of `sslmode=prefer` (encrypt when offered, no certificate check), for a
/// [`tokio_postgres::Config`] built without a URL.
pub fn prefer_connector() -> MakeRustlsConnect {
    static PREFER: OnceLock<MakeRustlsConnect> = OnceLock::new();
    PREFER
        .get_or_init(|| {
            connector(SslMode::Prefer, &Roots::System)
                .expect("the default TLS configuration is valid")
        })
        .clone()
}

/// Splits `url` into everything but its parameters and the parameters themselves (decoded).
fn split_params(url: &str) -> (String, Vec<(String, String)>) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((head, query)) => {
                let params = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) => (percent_decode(k), percent_decode(v)),
                        None => (percent_decode(p), String::new()),
                    })
                    .collect();
                (head.to_string(), params)
            }
            None => (url.to_string(), Vec::new()),
        }
    } else {
        // key=value form; values with spaces must be quoted, which this simple split keeps
        // whole only for the parameters it does not touch.
        let mut params = Vec::new();
        let mut rest = Vec::new();
        for token in url.split_whitespace() {
            match token.split_once('=') {
                Some((k, v)) if HANDLED.contains(&k) || UNSUPPORTED.contains(&k) => {
                    params.push((k.to_string(), v.trim_matches('\'').to_string()))
                }
                _ => rest.push(token),
            }
        }
        (rest.join(" "), params)
    }
}

fn join_params(head: &str, params: &[(String, String)]) -> String {
    if !(head.starts_with("postgres://") || head.starts_with("postgresql://")) {
        return head.to_string();
    }
    if params.is_empty() {
        return head.to_string();
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    format!("{head}?{}", query.join("&"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// The system's trusted roots, read once per process.
fn system_roots() -> Result<Arc<RootCertStore>, StoreError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                Err(format!(
                    "no trusted CA certificates found on this system ({}); install the ca-certificates package or set sslrootcert=<CA file> in DATABASE_URL",
                    found
                        .errors
                        .first()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "none readable".into())
                ))
            } else {
                Ok(Arc::new(roots))
            }
        })
        .clone()
        .map_err(StoreError::BadUrl)
}

fn file_roots(path: &str) -> Result<Arc<RootCertStore>, StoreError> {
    let bad = |why: String| StoreError::BadUrl(format!("sslrootcert={path}: {why}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(Arc::new(roots))
}

fn connector(mode: SslMode, roots: &Roots) -> Result<MakeRustlsConnect, StoreError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::BadUrl(format!("TLS: {e}")))?;
    let chain = if mode.verifies() {
        let (store, from) = match roots {
            Roots::System => (system_roots()?, "the system's trusted CAs".to_string()),
            Roots::File(path) => (file_roots(path)?, format!("sslrootcert={path}")),
        };
        let inner = WebPkiServerVerifier::builder_with_provider(store, provider())
            .build()
            .map_err(|e| StoreError::BadUrl(format!("TLS: {e}")))?;
        Some(Chain {
            inner,
            check_name: mode == SslMode::VerifyFull,
            from,
        })
    } else {
        None
    };
    let verifier = Arc::new(Verifier {
        provider: provider(),
        chain,
    });
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The server certificate check of every mode: `prefer` and `require` (no [`Chain`]) take the
/// certificate as presented (libpq's meaning), `verify-ca` and `verify-full` check its chain.
/// The handshake signatures are checked in every mode, so the session key belongs to the
/// certificate presented.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Chain>,
}

/// `verify-ca` and `verify-full`: the chain up to a trusted CA, and for `verify-full` the
/// host name too.
#[derive(Debug)]
struct Chain {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
    /// Where the trusted CAs came from, for the log line of a refusal.
    from: String,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !chain.check_name => Ok(ServerCertVerified::assertion()),
            Err(e) => {
                tracing::warn!(error = %e, trusted = %chain.from, "PostgreSQL server certificate refused");
                Err(e)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// For an error met while connecting: when a certificate was refused, what was wrong with it
/// and what to set.
pub fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        // An io::Error's source() skips the error it wraps (tokio-rustls wraps rustls's).
        let wrapped: Option<&(dyn std::error::Error + 'static)> = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        let rustls_error = e
            .downcast_ref::<rustls::Error>()
            .or_else(|| wrapped.and_then(|w| w.downcast_ref::<rustls::Error>()));
        if let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error {
            let what = match cert {
                CertificateError::UnknownIssuer => {
                    "the server's certificate is not signed by a trusted CA (invalid peer certificate: UnknownIssuer): set sslrootcert=<the CA's PEM file> in DATABASE_URL, or sslmode=require to encrypt without checking".to_string()
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "the server's certificate was not issued for this host ({cert}): connect with a name the certificate holds, or use sslmode=verify-ca"
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    format!("the server's certificate has expired ({cert})")
                }
                other => format!("the server's certificate was refused ({other})"),
            };
            return Some(format!("TLS: {what}"));
        }
        source = e.source();
    }
    None
}

/// [`certificate_problem`], else the error itself.
pub fn explain(error: &(dyn std::error::Error + 'static)) -> String {
    certificate_problem(error).unwrap_or_else(|| error.to_string())
}

/// [`certificate_problem`] for a store error (the pool wraps the connection's error).
pub fn store_certificate_problem(error: &StoreError) -> Option<String> {
    match error {
        StoreError::Db(e) => certificate_problem(e),
        StoreError::Pool(deadpool_postgres::PoolError::Backend(e)) => certificate_problem(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_roots_are_taken_out_of_the_url() {
        let c = PgConnect::parse(
            "postgres://u:p%40ss@db.example.com:6543/postgres?sslmode=verify-full&sslrootcert=system&application_name=x",
        )
        .unwrap();
        assert_eq!(c.mode, SslMode::VerifyFull);
        assert_eq!(c.roots, Roots::System);
        assert_eq!(c.config.get_ssl_mode(), PgSslMode::Require);
        assert_eq!(c.config.get_application_name(), Some("x"));
        assert_eq!(c.config.get_password(), Some(&b"p@ss"[..]));

        let c = PgConnect::parse("postgres://u@h/d?sslmode=disable").unwrap();
        assert_eq!(c.mode, SslMode::Disable);
        assert_eq!(c.config.get_ssl_mode(), PgSslMode::Disable);

        let c = PgConnect::parse("postgres://u@h/d").unwrap();
        assert_eq!(c.mode, SslMode::Prefer);
        assert_eq!(c.config.get_ssl_mode(), PgSslMode::Prefer);
        assert!(!c.plain_on_loopback());

        let c = PgConnect::parse("host=h user=u sslmode=require dbname=d").unwrap();
        assert_eq!(c.mode, SslMode::Require);
        assert_eq!(c.config.get_dbname(), Some("d"));
    }

    #[test]
    fn prefer_is_plain_text_only_where_every_address_is_this_machine() {
        let session = |url: &str| {
            let c = PgConnect::parse(url).unwrap();
            (c.plain_on_loopback(), c.config.get_ssl_mode())
        };
        let plain = (true, PgSslMode::Disable);
        let offered = (false, PgSslMode::Prefer);
        assert_eq!(session("postgres://u@127.0.0.1:5432/d"), plain);
        assert_eq!(session("postgres://u@127.0.0.2/d"), plain);
        assert_eq!(session("postgres://u@localhost/d"), plain);
        assert_eq!(session("postgres://u@[::1]:5432/d"), plain);
        assert_eq!(session("host=/var/run/postgresql user=u dbname=d"), plain);
        assert_eq!(
            session("postgres://u@db.example.com/d?hostaddr=127.0.0.1"),
            plain
        );
        // Another machine, or any address that may be one: TLS when the server offers it.
        assert_eq!(session("postgres://u@db.example.com/d"), offered);
        assert_eq!(session("postgres://u@10.0.0.5/d"), offered);
        assert_eq!(
            session("postgres://u@localhost/d?hostaddr=10.0.0.5"),
            offered
        );
        assert_eq!(session("postgres://u@127.0.0.1,db.example.com/d"), offered);
        // An explicit mode is kept over loopback.
        let c = PgConnect::parse("postgres://u@127.0.0.1/d?sslmode=require").unwrap();
        assert_eq!(
            (c.plain_on_loopback(), c.config.get_ssl_mode()),
            (false, PgSslMode::Require)
        );
        let c = PgConnect::parse("postgres://u@localhost/d?sslmode=disable").unwrap();
        assert_eq!(c.config.get_ssl_mode(), PgSslMode::Disable);
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        let e = PgConnect::parse("postgres://u@h/d?sslmode=sometimes").unwrap_err();
        assert!(e.to_string().contains("sslmode"), "{e}");
        let e = PgConnect::parse(
            "postgres://u@h/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("sslrootcert=/nonexistent/ca.pem"),
            "{e}"
        );
        let e = PgConnect::parse("postgres://u@h/d?sslcert=/c.pem").unwrap_err();
        assert!(e.to_string().contains("sslcert"), "{e}");
    }
}
