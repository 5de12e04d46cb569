//! Served media cannot run in a browser: an inbound `text/html` document is served as
//! `application/octet-stream` with nosniff, attachment and a sandbox; keys in the query string
//! are refused on media; signed links work without a key until they expire, and a tampered
//! or expired one is a 403.

use crate::helpers::{TestApp, expect_error, spawn_app};
use serde_json::Value;
use sincro_core::media_store::{self as media, NewMedia};
use uuid::Uuid;

async fn inbound_html(app: &TestApp, user: Uuid) -> Uuid {
    let ctx = app.app().context();
    let client = ctx.pool.get().await.unwrap();
    media::store(
        &client,
        &ctx.sealer,
        &ctx.config.data_dir,
        NewMedia {
            usuario_id: user,
            connection_id: None,
            direction: "inbound",
            mime_type: "text/html",
            filename: Some("invoice\";.html\r\nX-Evil: 1"),
            provider_id: None,
            message_id: None,
        },
        b"<script>alert(document.cookie)</script>",
    )
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn html_is_served_as_an_inert_attachment() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("media-html@example.com", false).await;
    let id = inbound_html(&app, user).await;
    let resp = app
        .get(&format!("/v1/media/{id}"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "sandbox");
    let disposition = h["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\""),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''invoice%22%3B.html%0D%0AX-Evil%3A%201"),
        "{disposition}"
    );
    assert!(h.get("x-evil").is_none());
    // Keys in the query string are for the stream only.
    let resp = app
        .http
        .get(format!("{}/v1/media/{id}?access_token={key}", app.base))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "query_token_not_allowed").await;
    app.shutdown().await;
}

#[tokio::test]
async fn signed_links_work_without_a_key_until_they_expire() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("media-url@example.com", false).await;
    let id = inbound_html(&app, user).await;
    let resp = app
        .get(&format!("/v1/media/{id}/url"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let url = v["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&app.base), "{url}");
    let expires_at = time::OffsetDateTime::parse(
        v["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires_at - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(1) && left <= time::Duration::minutes(10),
        "{left}"
    );
    // No key needed; the same inert headers.
    let resp = app.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        b"<script>alert(document.cookie)</script>"
    );
    // Tampered: another expiry, another media id, a changed signature.
    let (_, query) = url.split_once('?').unwrap();
    let expires: i64 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("expires="))
        .unwrap()
        .parse()
        .unwrap();
    let sig = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .unwrap();
    let other = inbound_html(&app, user).await;
    let mut flipped = sig.to_string();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        format!("/v1/media/{id}?expires={}&sig={sig}", expires + 3600),
        format!("/v1/media/{other}?expires={expires}&sig={sig}"),
        format!("/v1/media/{id}?expires={expires}&sig={flipped}"),
        format!("/v1/media/{id}?sig={sig}"),
    ] {
        let resp = app
            .http
            .get(format!("{}{bad}", app.base))
            .send()
            .await
            .unwrap();
        expect_error(resp, 403, "forbidden").await;
    }
    // Expired: a link signed for the past (the same key the daemon derives).
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 5;
    let key_bytes = app.app().context().sealer.derive_key("media-url-v1");
    let sig = {
        use base64::Engine;
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key_bytes).unwrap();
        mac.update(format!("media:{id}:{past}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    };
    let resp = app
        .http
        .get(format!(
            "{}/v1/media/{id}?expires={past}&sig={sig}",
            app.base
        ))
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, 403, "forbidden").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // Another user's media: no link.
    let (_, stranger) = app.user("media-stranger@example.com", false).await;
    let resp = app
        .get(&format!("/v1/media/{id}/url"), &stranger)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    app.shutdown().await;
}
