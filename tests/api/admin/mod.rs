//! The admin panel: its files served from the binary under a strict Content-Security-Policy,
//! the read routes it needs (queue depth, users and their keys), the stream reached with the
//! key as a WebSocket subprotocol, and (in [`browser`]) the whole panel in real Chromium.

mod browser;
mod chrome;

use crate::helpers::{TestApp, expect_error, spawn_app};
use crate::queue::{send, text, user_with_connection};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const FILES: &[&str] = &[
    "index.html",
    "style.css",
    "app.js",
    "api.js",
    "dom.js",
    "i18n.js",
    "tree.js",
    "lite.js",
    "business.js",
    "queue.js",
    "alerts.js",
    "events.js",
    "users.js",
];

fn source(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/http/admin/assets")
            .join(name),
    )
    .unwrap()
}

/// `GET path` without a key.
async fn fetch(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

/// `GET path` with `key`, answered 200: its JSON body.
async fn get_json(app: &TestApp, path: &str, key: &str) -> Value {
    let resp = app.get(path, key).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn admin_files_are_served_under_a_strict_csp() {
    let app = spawn_app().await;
    for path in ["/admin", "/admin/", "/admin/index.html"] {
        let resp = fetch(&app, path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    }
    for name in FILES {
        let resp = fetch(&app, &format!("/admin/{name}")).await;
        assert_eq!(resp.status(), 200, "{name}");
        let h = resp.headers().clone();
        let csp = h["content-security-policy"].to_str().unwrap().to_string();
        let directive = |name: &str| {
            csp.split(';')
                .map(str::trim)
                .find(|d| d.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in {csp}"))
                .to_string()
        };
        assert_eq!(directive("default-src"), "default-src 'none'");
        assert_eq!(directive("script-src"), "script-src 'self'");
        assert_eq!(directive("style-src"), "style-src 'self'");
        assert_eq!(directive("frame-ancestors"), "frame-ancestors 'none'");
        assert_eq!(directive("base-uri"), "base-uri 'none'");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        if name.ends_with(".js") {
            assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
        }
        // What is served is what the repository holds.
        assert_eq!(resp.text().await.unwrap(), source(name), "{name}");
    }
    let resp = fetch(&app, "/admin/nothing.js").await;
    expect_error(resp, 404, "not_found").await;
}

/// The page has nothing the CSP would refuse, and never turns text into HTML.
#[test]
fn admin_sources_hold_no_inline_code_and_no_html_sinks() {
    let index = source("index.html");
    for tag in index.split("<script").skip(1) {
        assert!(
            tag.split('>').next().unwrap().contains("src="),
            "inline script"
        );
    }
    assert!(!index.contains("<style") && !index.contains(" style="));
    assert!(!index.contains(" on"), "an inline handler in index.html");
    for name in FILES.iter().filter(|n| n.ends_with(".js")) {
        let js = source(name);
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "createContextualFragment",
        ] {
            assert!(!js.contains(sink), "{name} uses {sink}");
        }
        assert!(
            !js.contains("access_token="),
            "{name} puts the key in a URL"
        );
    }
}

#[tokio::test]
async fn queue_depth_per_connection_and_priority() {
    let app = spawn_app().await;
    let (_, key, conn) = user_with_connection(&app, "lite", json!({})).await;
    let (_, other_key, _) = user_with_connection(&app, "lite", json!({})).await;
    let (_, admin_key) = app.user("queue-admin@example.com", true).await;
    // Scheduled an hour ahead: nothing sends them meanwhile.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (i, priority) in ["high", "bulk", "bulk"].iter().enumerate() {
        let mut body = text(conn, &format!("+55119123456{i:02}"), "later");
        body["priority"] = json!(priority);
        body["send_at"] = json!(later);
        send(&app, &key, &body).await;
    }
    let depth = async |key: &str| {
        get_json(&app, "/v1/queue", key).await["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    let mine = depth(&key).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    let bulk = mine.iter().find(|d| d["priority"] == "bulk").unwrap();
    assert_eq!(bulk["connection_id"], json!(conn));
    assert_eq!(bulk["connection_type"], "lite");
    assert_eq!(
        (bulk["pending"].as_i64(), bulk["scheduled"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(bulk["sending"], 0);
    assert!(bulk["oldest_age_secs"].as_f64().unwrap() >= 0.0);
    assert!(bulk["oldest_queued_at"].is_string());
    let high = mine.iter().find(|d| d["priority"] == "high").unwrap();
    assert_eq!(high["pending"], 1);
    // Another user sees none of it; an admin sees it all.
    assert!(depth(&other_key).await.is_empty());
    assert_eq!(depth(&admin_key).await.len(), 2);
    let resp = app.get("/v1/queue", "swk_nope").send().await.unwrap();
    expect_error(resp, 401, "invalid_api_key").await;
}

#[tokio::test]
async fn admins_list_users_and_revoke_their_keys() {
    let app = spawn_app().await;
    let (admin, admin_key) = app.user("boss@example.com", true).await;
    let (user, user_key) = app.user("ana@example.com", false).await;

    let resp = app.get("/v1/users", &user_key).send().await.unwrap();
    expect_error(resp, 403, "insufficient_scope").await;
    let resp = app
        .get(&format!("/v1/users/{admin}/keys"), &user_key)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "insufficient_scope").await;

    let page = get_json(&app, "/v1/users?limit=1", &admin_key).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let rest = get_json(&app, &format!("/v1/users?cursor={cursor}"), &admin_key).await;
    let all: Vec<Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .cloned()
        .collect();
    let find = |id: uuid::Uuid| all.iter().find(|u| u["id"] == json!(id)).unwrap().clone();
    assert_eq!(find(admin)["admin"], true);
    assert_eq!(find(user)["admin"], false);
    assert_eq!(find(user)["email"], "ana@example.com");
    assert_eq!(find(user)["active_keys"], 1);
    assert!(!all.iter().any(|u| u.to_string().contains("swk_")));

    let keys = get_json(&app, &format!("/v1/users/{user}/keys"), &admin_key).await;
    let key_id = keys["items"][0]["id"].as_str().unwrap().to_string();
    assert!(!keys.to_string().contains(&user_key));
    let resp = app
        .get(
            &format!("/v1/users/{}/keys", uuid::Uuid::new_v4()),
            &admin_key,
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    // A key of another user under this one's path is not found, and nothing changes.
    let resp = app
        .delete(&format!("/v1/users/{admin}/keys/{key_id}"), &admin_key)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    assert_eq!(
        app.get("/v1/me", &user_key).send().await.unwrap().status(),
        200
    );

    let resp = app
        .delete(&format!("/v1/users/{user}/keys/{key_id}"), &admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let revoked: Value = resp.json().await.unwrap();
    assert!(revoked["revoked_at"].is_string());
    let resp = app.get("/v1/me", &user_key).send().await.unwrap();
    expect_error(resp, 401, "invalid_api_key").await;
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE action = 'key.revoke' AND target = $1 AND outcome = 'ok'",
            &[&key_id],
        )
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn the_stream_takes_the_key_as_a_subprotocol() {
    let app = spawn_app().await;
    let (_, key) = app.user("ws@example.com", false).await;
    let url = format!("{}/v1/stream", app.base.replacen("http://", "ws://", 1));
    let mut request = url.clone().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("sincro.stream, bearer.{key}").parse().unwrap(),
    );
    let (_ws, resp) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the stream accepts the key as a subprotocol");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "sincro.stream");

    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "sincro.stream, bearer.swk_0123456789ab_notakeynotakeynotakeynotakeynotakey"
            .parse()
            .unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401)
        }
        other => panic!("a bad key was not refused: {:?}", other.map(|(_, r)| r)),
    }
    // Only the stream reads keys from there.
    let resp = app
        .http
        .get(format!("{}/v1/me", app.base))
        .header("sec-websocket-protocol", format!("bearer.{key}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "missing_api_key").await;
}
