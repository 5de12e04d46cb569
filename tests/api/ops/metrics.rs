//! Metrics: the example Prometheus rules parse and name only metrics `/metrics` serves (the
//! full flow in `logs.rs` scrapes a daemon that did everything once and checks them);
//! requests are counted by route template, never by path; `X-Request-Id` is echoed, or made
//! when absent.

use crate::helpers::spawn_app;
use std::collections::BTreeSet;
use std::path::Path;

/// Every `sincro_*` metric the example rules file names (with `_bucket` where a rule reads a
/// histogram's buckets), after checking the file's shape: groups of named rules, each with
/// an expression, a severity and a summary.
pub fn rule_metrics() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prometheus-rules.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("the rules file is YAML");
    let groups = doc["groups"].as_sequence().expect("groups");
    assert!(!groups.is_empty());
    let mut names = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    for group in groups {
        assert!(group["name"].as_str().is_some(), "a group without a name");
        for rule in group["rules"].as_sequence().expect("rules") {
            let alert = rule["alert"].as_str().expect("each rule is an alert");
            assert!(
                alerts.insert(alert.to_string()),
                "alert {alert} named twice"
            );
            assert!(
                ["critical", "warning", "info"]
                    .contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                "{alert}: severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{alert}: summary"
            );
            let expr = rule["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("sincro_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    // The original design's alerts: connections down, authentication errors, rate limits,
    // performance.
    for expected in [
        "LiteSessionFailed",
        "BusinessNumberNeedsCredentials",
        "SendAuthErrors",
        "RateLimitReached",
        "QueueOldestMessageOld",
        "InboxLagging",
    ] {
        assert!(alerts.contains(expected), "the rules lack {expected}");
    }
    names
}

/// The metric names (series names) of a Prometheus text exposition.
pub fn served(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn the_rules_file_parses_and_names_metrics() {
    let names = rule_metrics();
    assert!(names.len() >= 15, "{names:?}");
    assert!(names.contains("sincro_sends_total"));
}

#[tokio::test]
async fn requests_are_counted_by_route_and_carry_a_request_id() {
    let app = spawn_app().await;
    let (_, key) = app.user("metrics@example.com", false).await;
    let id = uuid::Uuid::now_v7();
    let resp = app
        .get(&format!("/v1/messages/{id}"), &key)
        .header("x-request-id", "ops-test-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.headers()["x-request-id"], "ops-test-42");
    let made = app.get("/v1/me", &key).send().await.unwrap();
    let generated = made.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    let bad = app
        .get("/v1/me", &key)
        .header("x-request-id", "has spaces in it")
        .send()
        .await
        .unwrap();
    assert_ne!(bad.headers()["x-request-id"], "has spaces in it");

    let text = app.metrics_text().await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("sincro_http_requests_total{")
                && l.contains("route=\"/v1/messages/{id}\"")
                && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(!text.contains(&id.to_string()), "an id became a label");
    assert!(served(&text).contains("sincro_http_request_duration_seconds_bucket"));
}
