//! Floods and bodies: a flood of bad keys from one IP is refused with 429 and Retry-After
//! before any key lookup; a chunked body over the cap is refused with 413 as it streams.

use crate::helpers::{TestApp, expect_error, spawn_app_with};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_flood_of_bad_keys_is_refused_without_lookups() {
    let mut app = spawn_app_with(|env| {
        env.insert("AUTH_FAILURES_PER_IP_PER_MINUTE".into(), "5".into());
    })
    .await;
    let lookups = || app.app().context().key_lookups.load(Ordering::Relaxed);
    let before = lookups();
    let bad = "swk_0123456789ab_notarealkeynotarealkeynotarealkey12";
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..60 {
        let resp = app.get("/v1/leads", bad).send().await.unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    // Only the failures that fit the bucket reached the store.
    assert_eq!(lookups() - before, 5);
    // Missing keys and query-string keys count as failures too.
    let resp = app
        .http
        .get(format!("{}/v1/leads", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    // A good key from the same IP is refused as well while the bucket is empty: the IP is
    // what floods.
    let (_, key) = app.user("flood@example.com", false).await;
    let resp = app.get("/v1/leads", &key).send().await.unwrap();
    expect_error(resp, 429, "rate_limited").await;
    app.shutdown().await;
}

/// POSTs a chunked body of `total` bytes (no Content-Length) over a raw socket and returns the
/// response's status and body, read while the body is still being written.
async fn chunked_post(app: &TestApp, path: &str, key: &str, total: usize) -> (u16, String) {
    let addr = app.base.strip_prefix("http://").unwrap().to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            wr.write_all(&chunk).await?;
            wr.write_all(b"\r\n").await?;
            sent += chunk.len();
        }
        wr.write_all(b"0\r\n\r\n").await?;
        // Keep the socket open for writing: a half-closed request is dropped unanswered.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
        Ok::<usize, std::io::Error>(sent)
    });
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rd.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
            let text = String::from_utf8_lossy(&buf);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if len.is_some_and(|n| body.len() >= n) {
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was streaming");
    let sent = writer.abort_handle();
    sent.abort();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn chunked_bodies_over_the_cap_are_refused_while_streaming() {
    let mut app = spawn_app_with(|env| {
        env.insert("MAX_BODY_BYTES".into(), "65536".into());
    })
    .await;
    let (_, key) = app.user("chunked@example.com", false).await;
    // 256 MiB would be sent if nothing refused it; the answer comes long before.
    for path in ["/v1/lite/sessions", "/v1/messages", "/v1/keys"] {
        let (status, body) = chunked_post(&app, path, &key, 256 << 20).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert!(body.contains("body_too_large"), "{path}: {body}");
    }
    // Under the cap, an empty chunked body still starts a session's validation as before.
    let (status, body) = chunked_post(&app, "/v1/phone-numbers/validate", &key, 0).await;
    assert_eq!(status, 400, "{body}");
    app.shutdown().await;
}
