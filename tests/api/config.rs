//! Configuration: defaults, every bad value reported on its own line, secrets redacted.

use sincro_whatsapp::config::{Config, LogFormat};
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_apply_on_an_empty_environment() {
    let c = Config::from_map(&HashMap::new()).unwrap();
    assert!(c.database_url.is_none());
    assert!(c.encryption_key.is_none());
    assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.graph_api_version, "v23.0");
    assert_eq!(c.graph_api_base, "https://graph.facebook.com");
}

#[test]
fn every_bad_value_is_reported_once() {
    let err = Config::from_map(&env(&[
        ("DATABASE_URL", "mysql://nope"),
        ("ENCRYPTION_KEY", "k1:tooshort"),
        ("BIND_ADDR", "not-an-address"),
        ("LOG_FORMAT", "xml"),
        ("DB_POOL_SIZE", "0"),
        ("SHUTDOWN_TIMEOUT_SECS", "soon"),
        ("GRAPH_API_BASE", "ftp://x"),
        ("GRAPH_API_VERSION", "23"),
        ("WHATSAPP_BUSINESS_TOKEN", "tok"),
    ]))
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "DATABASE_URL",
        "ENCRYPTION_KEY",
        "BIND_ADDR",
        "LOG_FORMAT",
        "DB_POOL_SIZE",
        "SHUTDOWN_TIMEOUT_SECS",
        "GRAPH_API_BASE",
        "GRAPH_API_VERSION",
        "WHATSAPP_BUSINESS_PHONE_ID",
    ] {
        assert_eq!(
            err.0.iter().filter(|l| l.contains(needle)).count(),
            1,
            "{needle} should be reported once in:\n{text}"
        );
    }
    assert_eq!(err.0.len(), 9, "{text}");
    assert!(
        !text.contains("tooshort"),
        "a key value leaked into the message"
    );
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let key = sincro_core::seal::Sealer::generate_env_value("k9");
    let c = Config::from_map(&env(&[
        ("DATABASE_URL", "postgres://u:hunter2@db/x"),
        ("ENCRYPTION_KEY", &key),
        ("WHATSAPP_BUSINESS_TOKEN", "EAAGsecret"),
        ("WHATSAPP_BUSINESS_PHONE_ID", "1066"),
    ]))
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"));
    assert!(!debug.contains(key.split(':').nth(1).unwrap()));
    assert!(!debug.contains("EAAGsecret"));
    assert!(debug.contains("1066"));
}

#[test]
fn seed_aliases_and_notices() {
    let c = Config::from_map(&env(&[
        ("PUPPETEER_EXECUTABLE_PATH", "/opt/chromium"),
        ("PUPPETEER_ARGS", "--disable-gpu --lang=pt-BR"),
        ("REDIS_URL", "redis://localhost"),
        ("LOG_FORMAT", "json"),
    ]))
    .unwrap();
    assert_eq!(c.chromium_path.unwrap().to_str(), Some("/opt/chromium"));
    assert_eq!(c.chromium_args, vec!["disable-gpu", "lang=pt-BR"]);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.notices.len(), 1);
    assert!(c.notices[0].starts_with("REDIS_URL"));
}
