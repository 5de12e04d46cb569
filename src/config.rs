//! Configuration from environment variables (docs/ARCHITECTURE.md §10), read once at start from a
//! map so tests never touch the process environment. Every bad value is reported, one line
//! each; secrets are wrapped in [`Secret`] so Debug output and logs never show them.

mod hooks;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sincro_core::ActorSettings;
/// A value that must never be printed (one type for the whole daemon, kept with the actors).
pub use sincro_core::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A Business number configured from the environment (single-number installs, seed names).
#[derive(Debug, Clone)]
pub struct EnvBusinessNumber {
    pub access_token: Secret,
    pub phone_number_id: String,
    pub verify_token: Option<Secret>,
    pub app_secret: Option<Secret>,
    pub waba_id: Option<String>,
    /// `WHATSAPP_BUSINESS_USER_EMAIL`: the user the number is connected for (created if
    /// missing).
    pub user_email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL; None means the embedded default (a local server or a private cluster).
    pub database_url: Option<Secret>,
    /// Server probed for the embedded default when DATABASE_URL is unset.
    pub local_pg_url: String,
    pub db_pool_size: usize,
    /// `ENCRYPTION_KEY`: `id:key` entries, first seals. None only with the embedded default,
    /// where a key file under DATA_DIR is made once and reused.
    pub encryption_key: Option<Secret>,
    pub bind_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub node_id: String,
    /// Whether `NODE_ID` was set; unset, the daemon uses the name kept in `DATA_DIR/node-id`
    /// (generated once) in place of `node_id`'s `<hostname>-<pid>` placeholder.
    pub node_id_set: bool,
    /// How long a node's lease on a connection lasts unless renewed (`NODE_LEASE_SECS`).
    pub node_lease: Duration,
    pub shutdown_timeout: Duration,
    /// Largest JSON request body accepted by the API.
    pub max_body_bytes: u64,
    pub api_per_user_per_minute: u32,
    pub api_per_ip_per_minute: u32,
    /// Failed authentications one IP may make in a burst and per minute before it is refused
    /// with 429 without any lookup (`AUTH_FAILURES_PER_IP_PER_MINUTE`).
    pub auth_failures_per_ip_per_minute: u32,
    /// How long a signed media URL (`GET /v1/media/{id}/url`) stays valid (`MEDIA_URL_TTL_SECS`).
    pub media_url_ttl: Duration,
    /// The daemon's public address, for the links it hands out (`PUBLIC_BASE_URL`); without
    /// it, the request's `Host`.
    pub public_base_url: Option<String>,
    /// `MEDIA_FETCH_ALLOW`: addresses (CIDRs) and host names the media fetcher may reach
    /// although they are not public (on-premise file servers, the simulators).
    pub media_fetch_allow: sincro_core::net_guard::AllowList,
    pub event_retention_hours: u32,
    pub stream_buffer: usize,
    /// DEFAULT_REGION: ISO 3166 region for national-format numbers of users without one.
    pub default_region: Option<String>,
    /// INGEST_CONCURRENCY: ingest batches committed in parallel.
    pub ingest_concurrency: usize,
    pub graph_api_base: String,
    pub graph_api_version: String,
    pub whatsapp_web_url: String,
    pub chromium_path: Option<PathBuf>,
    pub chromium_args: Vec<String>,
    pub business_from_env: Option<EnvBusinessNumber>,
    /// `PUBLIC_URL`: where Meta reaches this daemon (no trailing slash); connecting a number
    /// subscribes the app with `PUBLIC_URL/webhooks/whatsapp` as its callback.
    pub public_url: Option<String>,
    /// The outbound queue: default send limits, retries, leases, polling.
    pub outbound: sincro_core::outbound::OutboundSettings,
    /// Lite sessions: limits, memory recycling, snapshots; page URL, browser and
    /// DATA_DIR come from the fields above.
    pub lite: sincro_core::lite::LiteSettings,
    /// Alerts: `ALERT_WEBHOOK_URL`/`_SECRET` and the performance thresholds.
    pub alerts: sincro_core::alerts::AlertSettings,
    /// Opt-out keywords and retention (`OPT_OUT_KEYWORDS`, `*RETENTION_DAYS`).
    pub privacy: sincro_core::privacy::PrivacySettings,
    /// Event webhooks (`WEBHOOK_*`).
    pub hooks: sincro_core::hooks::HooksSettings,
    /// Notices about seed variables that are set but not used; logged once at start.
    pub notices: Vec<String>,
}

/// Every problem found, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Seed-design variables the daemon does not need: PostgreSQL is its queue and event bus.
const UNUSED_SEED_VARS: &[(&str, &str)] = &[
    ("REDIS_URL", "PostgreSQL is the queue and event bus"),
    (
        "SUPABASE_URL",
        "the daemon talks to PostgreSQL directly through DATABASE_URL",
    ),
    (
        "SUPABASE_ANON_KEY",
        "the daemon talks to PostgreSQL directly through DATABASE_URL",
    ),
    (
        "SUPABASE_KEY",
        "the daemon talks to PostgreSQL directly through DATABASE_URL",
    ),
    (
        "SUPABASE_SERVICE_ROLE_KEY",
        "the daemon talks to PostgreSQL directly through DATABASE_URL",
    ),
    (
        "SUPABASE_SERVICE_KEY",
        "the daemon talks to PostgreSQL directly through DATABASE_URL",
    ),
];

struct Reader<'a> {
    env: &'a HashMap<String, String>,
    errors: Vec<String>,
}

impl Reader<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&mut self, name: &str, default: T, what: &str) -> T {
        match self.get(name) {
            None => default,
            Some(v) => match v.parse::<T>() {
                Ok(t) => t,
                Err(_) => {
                    self.errors.push(format!("{name}={v:?} is not {what}"));
                    default
                }
            },
        }
    }

    fn positive(&mut self, name: &str, default: u64, what: &str) -> u64 {
        let v = self.parse::<u64>(name, default, what);
        if v == 0 {
            self.errors.push(format!("{name} must be greater than 0"));
            return default;
        }
        v
    }

    /// A positive number of seconds.
    fn secs(&mut self, name: &str, default: Duration) -> Duration {
        Duration::from_secs(self.positive(name, default.as_secs(), "a number of seconds"))
    }

    /// A positive number of milliseconds.
    fn millis(&mut self, name: &str, default: Duration) -> Duration {
        let ms = default.as_millis() as u64;
        Duration::from_millis(self.positive(name, ms, "a number of milliseconds"))
    }

    /// A positive whole number (limits, counts, hours) that fits a `u32`.
    fn count(&mut self, name: &str, default: u32, what: &str) -> u32 {
        let v = self.positive(name, default.into(), what);
        u32::try_from(v).unwrap_or_else(|_| {
            self.errors
                .push(format!("{name} must be at most {}", u32::MAX));
            default
        })
    }

    fn url(&mut self, name: &str, default: &str) -> String {
        let v = self.get(name).unwrap_or_else(|| default.to_string());
        if !(v.starts_with("http://") || v.starts_with("https://")) {
            self.errors
                .push(format!("{name}={v:?} is not an http:// or https:// URL"));
        }
        v.trim_end_matches('/').to_string()
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigErrors> {
        Config::from_map(&std::env::vars().collect())
    }

    pub fn from_map(env: &HashMap<String, String>) -> Result<Config, ConfigErrors> {
        let mut r = Reader {
            env,
            errors: Vec::new(),
        };
        let database_url = r.get("DATABASE_URL").map(Secret::new);
        if let Some(url) = &database_url
            && !(url.expose().starts_with("postgres://")
                || url.expose().starts_with("postgresql://"))
        {
            r.errors
                .push("DATABASE_URL must start with postgres:// or postgresql://".into());
        }
        let local_pg_url = r
            .get("LOCAL_PG_URL")
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into());
        let encryption_key = r.get("ENCRYPTION_KEY").map(Secret::new);
        if let Some(key) = &encryption_key
            && let Err(e) = sincro_core::seal::Sealer::from_env_value(key.expose())
        {
            r.errors.push(e.to_string());
        }
        let bind_addr = r.parse(
            "BIND_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "an address like 127.0.0.1:8080",
        );
        // The actors' defaults, written once in `ActorSettings::default`.
        let d = ActorSettings::default();
        let data_dir = r.get("DATA_DIR").map_or(d.data_dir, PathBuf::from);
        let log_format = match r.get("LOG_FORMAT").as_deref() {
            None | Some("text") | Some("pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                r.errors
                    .push(format!("LOG_FORMAT={other:?} must be text or json"));
                LogFormat::Text
            }
        };
        let log_filter = r
            .get("RUST_LOG")
            .or_else(|| r.get("LOG_LEVEL"))
            .unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_filter).is_err() {
            r.errors.push(format!(
                "LOG_LEVEL/RUST_LOG={log_filter:?} is not a log filter (e.g. info, debug)"
            ));
        }
        let node_id_set = r.get("NODE_ID").is_some();
        let node_id = r.get("NODE_ID").unwrap_or_else(default_node_id);
        if node_id.len() > 64 || !node_id.chars().all(|c| c.is_ascii_graphic()) {
            r.errors
                .push("NODE_ID must be at most 64 visible ASCII characters".into());
        }
        let node_lease = Duration::from_secs(r.positive(
            "NODE_LEASE_SECS",
            sincro_core::nodes::ownership::DEFAULT_TTL.as_secs(),
            "a number of seconds",
        ));
        if node_lease < Duration::from_secs(3) {
            r.errors
                .push("NODE_LEASE_SECS must be at least 3 (leases renew every third of it)".into());
        }
        let db_pool_size = r.positive("DB_POOL_SIZE", 16, "a whole number") as usize;
        let shutdown_timeout =
            Duration::from_secs(r.positive("SHUTDOWN_TIMEOUT_SECS", 20, "a number of seconds"));
        let max_body_bytes = r.positive("MAX_BODY_BYTES", 1 << 20, "a number of bytes");
        let api_per_user_per_minute = r.count(
            "API_RATE_PER_USER_PER_MINUTE",
            d.api_per_user_per_minute,
            "a whole number",
        );
        let api_per_ip_per_minute = r.count(
            "API_RATE_PER_IP_PER_MINUTE",
            d.api_per_ip_per_minute,
            "a whole number",
        );
        let auth_failures_per_ip_per_minute =
            r.positive("AUTH_FAILURES_PER_IP_PER_MINUTE", 30, "a whole number") as u32;
        let media_url_ttl =
            Duration::from_secs(r.positive("MEDIA_URL_TTL_SECS", 300, "a number of seconds"));
        if media_url_ttl > Duration::from_secs(24 * 3600) {
            r.errors
                .push("MEDIA_URL_TTL_SECS must be at most 86400 (one day)".into());
        }
        let public_base_url = r
            .get("PUBLIC_BASE_URL")
            .is_some()
            .then(|| r.url("PUBLIC_BASE_URL", ""));
        let media_fetch_allow = match sincro_core::net_guard::AllowList::parse(
            &r.get("MEDIA_FETCH_ALLOW").unwrap_or_default(),
        ) {
            Ok(list) => list,
            Err(e) => {
                r.errors.push(format!("MEDIA_FETCH_ALLOW: {e}"));
                Default::default()
            }
        };
        let event_retention_hours = r.count(
            "EVENT_RETENTION_HOURS",
            d.event_retention_hours,
            "a number of hours",
        );
        let stream_buffer = r.positive(
            "STREAM_BUFFER",
            d.stream_buffer as u64,
            "a number of frames",
        ) as usize;
        let default_region = r.get("DEFAULT_REGION").map(|v| v.to_ascii_uppercase());
        if let Some(region) = &default_region
            && sincro_core::phone::parse_region(region).is_err()
        {
            r.errors.push(format!(
                "DEFAULT_REGION={region:?} is not an ISO 3166 alpha-2 region such as BR"
            ));
        }
        let ingest_concurrency = r.positive(
            "INGEST_CONCURRENCY",
            d.ingest_concurrency as u64,
            "a whole number",
        ) as usize;
        let graph_api_base = r.url("GRAPH_API_BASE", &d.graph_api_base);
        let graph_api_version = r.get("GRAPH_API_VERSION").unwrap_or(d.graph_api_version);
        let version_ok = graph_api_version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
        if !version_ok {
            r.errors.push(format!(
                "GRAPH_API_VERSION={graph_api_version:?} must look like v23.0"
            ));
        }
        let whatsapp_web_url = r.url("WHATSAPP_WEB_URL", "https://web.whatsapp.com");
        let chromium_path = r
            .get("CHROMIUM_PATH")
            .or_else(|| r.get("PUPPETEER_EXECUTABLE_PATH"))
            .map(PathBuf::from);
        let chromium_args = r
            .get("CHROMIUM_ARGS")
            .or_else(|| r.get("PUPPETEER_ARGS"))
            .map(|s| {
                s.split([',', ' '])
                    .map(|a| a.trim().trim_start_matches("--").to_string())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let business_from_env = match (
            r.get("WHATSAPP_BUSINESS_TOKEN"),
            r.get("WHATSAPP_BUSINESS_PHONE_ID"),
        ) {
            (Some(token), Some(phone)) => Some(EnvBusinessNumber {
                access_token: Secret::new(token),
                phone_number_id: phone,
                verify_token: r.get("WHATSAPP_BUSINESS_VERIFY_TOKEN").map(Secret::new),
                app_secret: r.get("WHATSAPP_BUSINESS_APP_SECRET").map(Secret::new),
                waba_id: r.get("WHATSAPP_BUSINESS_WABA_ID"),
                user_email: r.get("WHATSAPP_BUSINESS_USER_EMAIL"),
            }),
            (None, None) => None,
            _ => {
                r.errors.push(
                    "WHATSAPP_BUSINESS_TOKEN and WHATSAPP_BUSINESS_PHONE_ID go together".into(),
                );
                None
            }
        };
        if let Some(email) = r.get("WHATSAPP_BUSINESS_USER_EMAIL")
            && (!email.contains('@') || email.len() > 254)
        {
            r.errors.push(format!(
                "WHATSAPP_BUSINESS_USER_EMAIL={email:?} is not an e-mail address"
            ));
        }
        let public_url = r
            .get("PUBLIC_URL")
            .is_some()
            .then(|| r.url("PUBLIC_URL", ""));
        let outbound = {
            let d = sincro_core::outbound::OutboundSettings::default();
            let secs = |r: &mut Reader, name: &str, default: Duration| {
                Duration::from_secs(r.positive(name, default.as_secs(), "a number of seconds"))
            };
            let millis = |r: &mut Reader, name: &str, default: Duration| {
                Duration::from_millis(r.positive(
                    name,
                    default.as_millis() as u64,
                    "a number of milliseconds",
                ))
            };
            sincro_core::outbound::OutboundSettings {
                business_per_second: r.positive(
                    "BUSINESS_SEND_RATE_PER_SECOND",
                    d.business_per_second as u64,
                    "a whole number",
                ) as u32,
                lite_per_minute: r.positive(
                    "LITE_SEND_RATE_PER_MINUTE",
                    d.lite_per_minute as u64,
                    "a whole number",
                ) as u32,
                pair_burst: r.parse(
                    "PAIR_RATE_BURST",
                    d.pair_burst,
                    "a whole number (0 disables)",
                ),
                pair_interval: millis(&mut r, "PAIR_RATE_INTERVAL_MS", d.pair_interval),
                max_attempts: r
                    .positive(
                        "OUTBOX_MAX_ATTEMPTS",
                        d.max_attempts as u64,
                        "a whole number",
                    )
                    .min(1000) as i32,
                lease: secs(&mut r, "OUTBOX_LEASE_SECS", d.lease),
                poll: millis(&mut r, "OUTBOX_POLL_MS", d.poll),
                send_timeout: secs(&mut r, "SEND_TIMEOUT_SECS", d.send_timeout),
                retry_base: millis(&mut r, "RETRY_BASE_MS", d.retry_base),
                retry_max: secs(&mut r, "RETRY_MAX_SECS", d.retry_max),
                held_budget: r.positive(
                    "OUTBOX_HELD_BUDGET",
                    d.held_budget as u64,
                    "a whole number",
                ) as usize,
            }
        };
        if outbound.send_timeout * 2 > outbound.lease {
            r.errors.push(format!(
                "OUTBOX_LEASE_SECS ({}) must be at least twice SEND_TIMEOUT_SECS ({})",
                outbound.lease.as_secs(),
                outbound.send_timeout.as_secs()
            ));
        }
        let lite = {
            let d = sincro_core::lite::LiteSettings::default();
            sincro_core::lite::LiteSettings {
                web_url: whatsapp_web_url.clone(),
                chromium_path: chromium_path.clone(),
                chromium_args: Vec::<String>::clone(&chromium_args),
                data_dir: data_dir.clone(),
                max_sessions_per_user: r.positive(
                    "LITE_MAX_SESSIONS_PER_USER",
                    d.max_sessions_per_user as u64,
                    "a whole number",
                ) as u32,
                memory_limit_bytes: r.positive(
                    "LITE_MEMORY_LIMIT_MB",
                    d.memory_limit_bytes >> 20,
                    "a number of MiB",
                ) << 20,
                health_interval: Duration::from_millis(r.positive(
                    "LITE_HEALTH_INTERVAL_MS",
                    d.health_interval.as_millis() as u64,
                    "a number of milliseconds",
                )),
                snapshot_delay: Duration::from_millis(r.positive(
                    "LITE_SNAPSHOT_DELAY_MS",
                    d.snapshot_delay.as_millis() as u64,
                    "a number of milliseconds",
                )),
                snapshot_interval: Duration::from_secs(r.positive(
                    "LITE_SNAPSHOT_INTERVAL_SECS",
                    d.snapshot_interval.as_secs(),
                    "a number of seconds",
                )),
                qr_max_cycles: r.positive(
                    "LITE_QR_MAX_CYCLES",
                    d.qr_max_cycles as u64,
                    "a whole number",
                ) as u32,
                launch_timeout: Duration::from_secs(r.positive(
                    "LITE_LAUNCH_TIMEOUT_SECS",
                    d.launch_timeout.as_secs(),
                    "a number of seconds",
                )),
                single_process: r.parse(
                    "LITE_CHROMIUM_SINGLE_PROCESS",
                    d.single_process,
                    "true or false",
                ),
            }
        };
        let alerts = {
            let d = sincro_core::alerts::AlertSettings::default();
            let webhook = r.get("ALERT_WEBHOOK_URL").is_some().then(|| {
                let url = r.url("ALERT_WEBHOOK_URL", "");
                let secret = r.get("ALERT_WEBHOOK_SECRET").map(Secret::new);
                if secret.is_none() {
                    r.errors.push("ALERT_WEBHOOK_URL needs ALERT_WEBHOOK_SECRET (the key its bodies are signed with)".into());
                }
                sincro_core::alerts::settings::AlertWebhook { url, secret: secret.unwrap_or_default() }
            });
            sincro_core::alerts::AlertSettings {
                webhook,
                queue_age: r.secs("ALERT_QUEUE_AGE_SECS", d.queue_age),
                inbox_lag: r.secs("ALERT_INBOX_LAG_SECS", d.inbox_lag),
                stream_latency: r.millis("ALERT_STREAM_LATENCY_MS", d.stream_latency),
                sample_interval: r.millis("METRICS_SAMPLE_MS", d.sample_interval),
                ..d
            }
        };
        let privacy = {
            use sincro_core::privacy::{PrivacySettings, consent::Keywords};
            let d = PrivacySettings::default();
            let days = |r: &mut Reader, name: &str| {
                r.get(name)
                    .is_some()
                    .then(|| r.count(name, 1, "a number of days"))
            };
            PrivacySettings {
                opt_out_keywords: match r.get("OPT_OUT_KEYWORDS").as_deref() {
                    None => d.opt_out_keywords,
                    Some("none") => Keywords::parse(""),
                    Some(list) => Keywords::parse(list),
                },
                retention_days: days(&mut r, "RETENTION_DAYS"),
                inbox_retention_days: days(&mut r, "INBOX_RETENTION_DAYS"),
                audit_retention_days: days(&mut r, "AUDIT_RETENTION_DAYS"),
                retention_interval: Duration::from_secs(r.positive(
                    "RETENTION_INTERVAL_SECS",
                    d.retention_interval.as_secs(),
                    "a number of seconds",
                )),
                retention_batch: d.retention_batch,
            }
        };
        let hooks = hooks::read(&mut r);
        let notices = UNUSED_SEED_VARS
            .iter()
            .filter(|(name, _)| r.get(name).is_some())
            .map(|(name, why)| format!("{name} is set but not used: {why}"))
            .collect();
        if !r.errors.is_empty() {
            return Err(ConfigErrors(r.errors));
        }
        Ok(Config {
            database_url,
            local_pg_url,
            db_pool_size,
            encryption_key,
            bind_addr,
            data_dir,
            log_format,
            log_filter,
            node_id,
            node_id_set,
            node_lease,
            shutdown_timeout,
            max_body_bytes,
            api_per_user_per_minute,
            api_per_ip_per_minute,
            auth_failures_per_ip_per_minute,
            media_url_ttl,
            public_base_url,
            media_fetch_allow,
            event_retention_hours,
            stream_buffer,
            default_region,
            ingest_concurrency,
            graph_api_base,
            graph_api_version,
            whatsapp_web_url,
            chromium_path,
            chromium_args,
            business_from_env,
            public_url,
            outbound,
            lite,
            alerts,
            privacy,
            hooks,
            notices,
        })
    }
}

impl Config {
    /// The settings the actors run with: the one place `Config` is turned into them.
    pub fn actor_settings(&self, fault_injection: bool) -> ActorSettings {
        ActorSettings {
            fault_injection,
            api_per_user_per_minute: self.api_per_user_per_minute,
            api_per_ip_per_minute: self.api_per_ip_per_minute,
            event_retention_hours: self.event_retention_hours,
            stream_buffer: self.stream_buffer,
            default_region: self.default_region.clone(),
            ingest_concurrency: self.ingest_concurrency,
            graph_api_base: self.graph_api_base.clone(),
            graph_api_version: self.graph_api_version.clone(),
            data_dir: self.data_dir.clone(),
            outbound: self.outbound.clone(),
            lite: self.lite.clone(),
            public_url: self.public_url.clone(),
            alerts: self.alerts.clone(),
            privacy: self.privacy.clone(),
            hooks: self.hooks.clone(),
        }
    }
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}
