//! Media both ways: `POST /v1/media` (sealed under DATA_DIR, uploaded to Meta for a number),
//! `GET /v1/media/{id}`, sending by the daemon's media id, and inbound media fetched from Meta
//! (URL, then bearer download) with its SHA-256 checked.

use crate::helpers::{eventually, expect_error, spawn_business_app};
use base64::Engine;
use serde_json::{Value, json};
use sincro_core::connection::SendOutcome;
use sincro_sim::graph::GraphSimConfig;
use std::time::Duration;

fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..len).map(|i| (i % 251) as u8));
    v
}

#[tokio::test]
async fn business_media_round_trip() {
    let (app, sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (user, key) = app.user("media@example.com", false).await;
    let n = app.business_number(&sim.base_url(), &key).await;
    let file = png(4000);

    let up = app
        .post(
            &format!(
                "/v1/media?connection_id={}&filename=logo.png",
                n.connection_id
            ),
            &key,
        )
        .header("content-type", "image/png")
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status().as_u16(), 201);
    let m: Value = up.json().await.unwrap();
    assert!(m["provider_id"].is_string(), "{m}");
    assert_eq!(m["size_bytes"], file.len());
    let id = m["id"].as_str().unwrap().to_string();

    let got = app
        .get(&format!("/v1/media/{id}"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.headers()["content-type"], "image/png");
    assert_eq!(got.bytes().await.unwrap().to_vec(), file);
    // Sealed on disk.
    let data_dir = app.env["DATA_DIR"].clone();
    let on_disk = std::fs::read(std::path::Path::new(&data_dir).join("media").join(&id)).unwrap();
    assert!(on_disk.starts_with(b"sw1.") && !on_disk.windows(8).any(|w| w == &file[..8]));

    // Another user: 404.
    let (_, other) = app.user("media2@example.com", false).await;
    expect_error(
        app.get(&format!("/v1/media/{id}"), &other)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;

    // Sending by the daemon's id uses Meta's.
    app.http
        .post(format!("{}/sim/inbound", sim.base_url()))
        .json(&json!({"phone_number_id": n.phone_number_id, "from": "+5511987654321", "message": {"type":"text","text":{"body":"hi"}}}))
        .send()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            (app.count("SELECT count(*) FROM mensajes_conversacion", &[])
                .await
                == 1)
                .then_some(())
        })
        .await
        .is_some()
    );
    let o = app
        .business_send(
            &n,
            user,
            "+5511987654321",
            json!({"type":"image","image":{"id": id, "caption":"logo"}}),
            1,
        )
        .await;
    assert!(
        matches!(o, SendOutcome::Sent { .. } | SendOutcome::SentTo { .. }),
        "{o:?}"
    );
    let sent = sim.sent(Some(&n.phone_number_id));
    assert_eq!(
        sent.last().unwrap().request["image"]["id"],
        m["provider_id"]
    );

    // Inbound media: fetched, checked, sealed, linked to its message.
    let photo = png(9000);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&photo);
    let r: Value = app
        .http
        .post(format!("{}/sim/inbound", sim.base_url()))
        .json(&json!({"phone_number_id": n.phone_number_id, "from": "+5511987654321",
            "message": {"type":"image","image":{"mime_type":"image/png","data_base64": b64, "caption":"photo"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wamid = r["id"].as_str().unwrap().to_string();
    let media_id = eventually(Duration::from_secs(15), || async {
        let client = app.pool().get().await.unwrap();
        client
            .query_opt(
                "SELECT metadata->>'media_id' FROM mensajes_conversacion WHERE external_id = $1",
                &[&wamid],
            )
            .await
            .unwrap()
            .and_then(|r| r.get::<_, Option<String>>(0))
    })
    .await
    .expect("inbound media stored");
    let got = app
        .get(&format!("/v1/media/{media_id}"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), photo);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM media WHERE direction = 'inbound' AND message_id IS NOT NULL",
            &[]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn business_media_bad_uploads_change_nothing() {
    let (app, _sim) = spawn_business_app(GraphSimConfig::default()).await;
    let (_, key) = app.user("mediabad@example.com", false).await;
    let post = |ct: &str, body: Vec<u8>| {
        app.post("/v1/media", &key)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    expect_error(
        post("application/x-msdownload", vec![1, 2, 3])
            .await
            .unwrap(),
        422,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        post("image/png", Vec::new()).await.unwrap(),
        422,
        "empty_file",
    )
    .await;
    expect_error(
        post("image/png", png(5 * 1024 * 1024 + 1)).await.unwrap(),
        422,
        "file_too_large",
    )
    .await;
    let too_big = post("video/mp4", vec![0u8; 16 * 1024 * 1024 + 1])
        .await
        .unwrap();
    assert_eq!(too_big.status().as_u16(), 413);
    let no_type = app
        .post("/v1/media", &key)
        .body(vec![1u8])
        .send()
        .await
        .unwrap();
    expect_error(no_type, 400, "missing_content_type").await;
    let bad_name = app
        .post("/v1/media?filename=../x.png", &key)
        .header("content-type", "image/png")
        .body(png(10))
        .send()
        .await
        .unwrap();
    expect_error(bad_name, 422, "invalid_filename").await;
    assert_eq!(app.count("SELECT count(*) FROM media", &[]).await, 0);
    let ok = post("video/mp4", vec![0u8; 16 * 1024 * 1024])
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 201);
}
