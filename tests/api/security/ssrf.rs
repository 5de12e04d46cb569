//! Media links go through the SSRF guard: a loopback link is refused with 422
//! `link_not_allowed` unless MEDIA_FETCH_ALLOW opens it; an allowed host that redirects to a
//! refused address is refused too (and the refused address is never contacted); an allowed
//! link is fetched once, stored sealed, and the queued message names the stored file.

use crate::helpers::{TestApp, expect_error, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really a picture";

/// A tiny HTTP server on `ip`: `/a.png` answers a PNG, `/to?<url>` redirects to `<url>`.
/// Counts the requests it gets.
async fn file_server(ip: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let reply = if let Some(target) = path.strip_prefix("/to?") {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .into_bytes()
                } else {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        PNG.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(PNG);
                    r
                };
                let _ = sock.write_all(&reply).await;
            });
        }
    });
    (addr, hits)
}

async fn lite_user(app: &TestApp) -> (String, Uuid) {
    let (user, key) = app
        .user(&format!("{}@ssrf.test", Uuid::new_v4().simple()), false)
        .await;
    (key, app.connection(user, "lite").await)
}

fn image(conn: Uuid, link: &str) -> Value {
    json!({"connection_id": conn, "to": "+5511987654321", "type": "image", "image": {"link": link, "caption": "c"}})
}

#[tokio::test]
async fn loopback_links_are_refused_without_an_exception() {
    let mut app = spawn_app_with(|env| {
        env.remove("MEDIA_FETCH_ALLOW");
    })
    .await;
    let (server, hits) = file_server("127.0.0.1").await;
    let (key, lite) = lite_user(&app).await;
    let (user, biz_key) = app.user("ssrf-biz@example.com", false).await;
    let biz = app.connection(user, "business").await;
    for link in [
        format!("http://{server}/a.png"),
        format!("http://localhost:{}/a.png", server.port()),
        format!("http://[::ffff:127.0.0.1]:{}/a.png", server.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fd00:ec2::254]/latest/".to_string(),
        "http://100.64.0.1/x.png".to_string(),
        "http://0.0.0.0/x.png".to_string(),
    ] {
        let resp = app
            .post("/v1/messages", &key)
            .json(&image(lite, &link))
            .send()
            .await
            .unwrap();
        let body = expect_error(resp, 422, "link_not_allowed").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("public address"),
            "{body}"
        );
    }
    // Business numbers hand links to Meta; a link to this machine is still refused.
    let resp = app
        .post("/v1/messages", &biz_key)
        .json(&json!({"connection_id": biz, "to": "+5511987654321", "type": "image", "image": {"link": format!("http://{server}/a.png")}}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 422, "link_not_allowed").await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the loopback server was contacted"
    );
    let queued: i64 = app
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_redirect_to_a_refused_address_is_refused() {
    // Only the first hop's address is opened: it stands for a public host.
    let mut app = spawn_app_with(|env| {
        env.insert("MEDIA_FETCH_ALLOW".into(), "127.0.0.2/32".into());
    })
    .await;
    let (public, _) = file_server("127.0.0.2").await;
    let (internal, internal_hits) = file_server("127.0.0.1").await;
    let (key, lite) = lite_user(&app).await;
    // The first hop alone is fine.
    let resp = app
        .post("/v1/messages", &key)
        .json(&image(lite, &format!("http://{public}/a.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    for target in [
        format!("http://{internal}/a.png"),
        format!("http://localhost:{}/a.png", internal.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let link = format!("http://{public}/to?{target}");
        let resp = app
            .post("/v1/messages", &key)
            .json(&image(lite, &link))
            .send()
            .await
            .unwrap();
        expect_error(resp, 422, "link_not_allowed").await;
    }
    assert_eq!(
        internal_hits.load(Ordering::SeqCst),
        0,
        "the refused server was contacted"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn allowed_links_are_fetched_once_and_stored() {
    // The test helpers open 127.0.0.1 for the simulators.
    let mut app = spawn_app().await;
    let (server, hits) = file_server("127.0.0.1").await;
    let (key, lite) = lite_user(&app).await;
    let resp = app
        .post("/v1/messages", &key)
        .json(&image(lite, &format!("http://{server}/a.png")))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The stored file is what the link gave, and the queued request names it.
    let id: Uuid = v["id"].as_str().unwrap().parse().unwrap();
    let ctx = app.app().context();
    let client = ctx.pool.get().await.unwrap();
    let payload: String = client
        .query_one("SELECT payload FROM outbox WHERE message_id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    let opened: Value = serde_json::from_str(
        &ctx.sealer
            .open_str(sincro_core::seal::Purpose::MessageBody, &payload)
            .unwrap(),
    )
    .unwrap();
    assert!(opened["image"].get("link").is_none(), "{opened}");
    assert_eq!(opened["image"]["caption"], "c");
    let named: Uuid = opened["image"]["id"].as_str().unwrap().parse().unwrap();
    let row = client
        .query_one(
            "SELECT id, mime_type FROM media WHERE direction = 'outbound' AND connection_id = $1",
            &[&lite],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(1), "image/png");
    let media_id: Uuid = row.get(0);
    assert_eq!(media_id, named);
    let resp = app
        .get(&format!("/v1/media/{media_id}"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), PNG);
    app.shutdown().await;
}
