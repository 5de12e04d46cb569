//! The OpenAPI document against the router: every route the code declares (each
//! `warp::path!` in `src/http/` and the method filter after it) is documented and every
//! documented operation is declared, and each one answers when probed (never the router's 404
//! or 405) with a body its documented response allows; a signed-in pass checks real successful
//! responses of the routes that need no connection against their schemas.

use super::schema::violations;
use crate::helpers::{spawn_app, spawn_app_with};
use serde_json::{Value, json};
use sincro_whatsapp::http::openapi;
use std::collections::BTreeSet;
use std::path::Path;

/// `{anything}` → `{}`, so parameter names do not matter.
fn normalize(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
}

/// Every `(METHOD, /path/{})` the HTTP layer declares: each `warp::path!(…)` and the first
/// method filter after it (before the next route).
pub fn declared_routes() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"),
        &mut files,
    );
    let mut out = BTreeSet::new();
    for (file, text) in files {
        let starts: Vec<usize> = text.match_indices("warp::path!(").map(|(i, _)| i).collect();
        for (n, &start) in starts.iter().enumerate() {
            let args_start = start + "warp::path!(".len();
            let args_end = args_start + text[args_start..].find(')').expect("closing )");
            let path: String = text[args_start..args_end]
                .split('/')
                .map(|seg| {
                    let seg = seg.trim();
                    match seg.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                        Some(lit) => format!("/{lit}"),
                        None => "/{}".to_string(),
                    }
                })
                .collect();
            let until = starts.get(n + 1).copied().unwrap_or(text.len());
            let chain = &text[args_end..until];
            let method = ["get", "post", "put", "patch", "delete"]
                .iter()
                .filter_map(|m| chain.find(&format!("warp::{m}()")).map(|i| (i, m)))
                .min()
                .map(|(_, m)| m.to_ascii_uppercase())
                .unwrap_or_else(|| panic!("{file}: route {path} has no method filter"));
            out.insert((method, path));
        }
    }
    out
}

fn documented() -> BTreeSet<(String, String)> {
    openapi::operations()
        .into_iter()
        .map(|(m, p)| (m, normalize(&p)))
        .collect()
}

/// Checks `body` (JSON, or anything for non-JSON responses) against the response documented
/// for `method path` and `status`.
pub fn assert_conforms(method: &str, template: &str, status: u16, body: &[u8]) {
    let doc = openapi::document();
    let op = &doc["paths"][template][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let response = &op["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {template} answered {status}, which is not documented: {}",
        String::from_utf8_lossy(body)
    );
    let response = match response.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
        None => response,
    };
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return;
    };
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{method} {template} {status}: not JSON: {}",
            String::from_utf8_lossy(body)
        )
    });
    let wrong = violations(doc, schema, &value);
    assert!(
        wrong.is_empty(),
        "{method} {template} {status} does not match its schema: {wrong:#?}\n{value}"
    );
}

#[test]
fn every_served_route_is_documented_and_every_documented_one_served() {
    let declared = declared_routes();
    let documented = documented();
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in docs/openapi/: {undocumented:#?}\ndocumented but not served: {unserved:#?}"
    );
    assert_eq!(openapi::document()["openapi"], "3.1.0");
}

/// A concrete path for a template: ids become a fresh UUID, other parameters `x`.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| match s {
            s if s == "{id}" || s.ends_with("_id}") => uuid::Uuid::now_v7().to_string(),
            s if s.starts_with('{') => "x".into(),
            s => s.into(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    // Every probe is unauthenticated: room for all of them before the per-IP limit.
    let app = spawn_app_with(|env| {
        env.insert("AUTH_FAILURES_PER_IP_PER_MINUTE".into(), "1000".into());
    })
    .await;
    let served: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        &served,
        openapi::document(),
        "/openapi.json serves the repository's document"
    );
    for (method, template) in openapi::operations() {
        let url = format!("{}{}", app.base, concrete(&template));
        let resp = app
            .http
            .request(method.parse().unwrap(), &url)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        if status == 404 || status == 405 {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_ne!(
                v["error"]["message"], "route",
                "{method} {template} is documented but the router does not serve it"
            );
        }
        assert_conforms(&method, &template, status, &body);
    }
}

#[tokio::test]
async fn signed_in_responses_match_their_schemas() {
    let app = spawn_app().await;
    let (user, key) = app.user("openapi@example.com", true).await;
    let raised = sincro_core::alerts::raise_now(
        &app.app().context().shared,
        &sincro_core::alerts::AlertCondition {
            key: "test:openapi".into(),
            usuario_id: Some(user),
            connection_id: None,
            kind: "test".into(),
            severity: sincro_core::store::alerts::Severity::Info,
            source: "test".into(),
            message: "a test alert".into(),
            details: json!({}),
        },
    )
    .await
    .unwrap()
    .0;
    let made: Value = app
        .post("/v1/keys", &key)
        .json(&json!({"name": "probe", "scopes": ["read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls: Vec<(&str, String, &str, Value)> = vec![
        ("GET", "/healthz".into(), "/healthz", Value::Null),
        ("GET", "/readyz".into(), "/readyz", Value::Null),
        ("GET", "/v1/status".into(), "/v1/status", Value::Null),
        ("GET", "/v1/me".into(), "/v1/me", Value::Null),
        (
            "PATCH",
            "/v1/me".into(),
            "/v1/me",
            json!({"default_region": "BR"}),
        ),
        ("GET", "/v1/keys".into(), "/v1/keys", Value::Null),
        ("GET", "/v1/leads".into(), "/v1/leads", Value::Null),
        (
            "POST",
            "/v1/leads/merge-duplicates".into(),
            "/v1/leads/merge-duplicates",
            json!({}),
        ),
        (
            "GET",
            "/v1/conversations".into(),
            "/v1/conversations",
            Value::Null,
        ),
        (
            "POST",
            "/v1/phone-numbers/validate".into(),
            "/v1/phone-numbers/validate",
            json!({"phone": "+5511987654321"}),
        ),
        (
            "GET",
            "/v1/lite/sessions".into(),
            "/v1/lite/sessions",
            Value::Null,
        ),
        (
            "GET",
            "/v1/business/numbers".into(),
            "/v1/business/numbers",
            Value::Null,
        ),
        (
            "GET",
            "/v1/messages/dead-letter".into(),
            "/v1/messages/dead-letter",
            Value::Null,
        ),
        (
            "GET",
            "/v1/inbound/dead-letter".into(),
            "/v1/inbound/dead-letter",
            Value::Null,
        ),
        (
            "GET",
            "/v1/alerts?state=all".into(),
            "/v1/alerts",
            Value::Null,
        ),
        (
            "POST",
            format!("/v1/alerts/{}/ack", raised.id),
            "/v1/alerts/{id}/ack",
            Value::Null,
        ),
        (
            "DELETE",
            format!("/v1/keys/{}", made["id"].as_str().unwrap()),
            "/v1/keys/{id}",
            Value::Null,
        ),
    ];
    for (method, path, template, body) in calls {
        let mut req = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.base))
            .bearer_auth(&key);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_conforms(method, template, status, &bytes);
    }
}
