//! Media: multipart upload, URL, download with the token, expiry, deletion; inbound media.

use crate::fixture::{Env, assert_meta_error, fast_config, wait_for};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sincro_sim::graph::GraphSimConfig;
use std::time::{Duration, Instant};

fn multipart_body(boundary: &str, mime: &str, data: &[u8], with_type: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n").as_bytes());
    if with_type {
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n{mime}\r\n"
            )
            .as_bytes(),
        );
    }
    b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\nContent-Type: {mime}\r\n\r\n").as_bytes());
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

async fn upload(env: &Env, mime: &str, data: &[u8], with_type: bool) -> (u16, Value) {
    let res = env
        .http
        .post(env.url(&format!("{}/media", env.s("phone_number_id"))))
        .bearer_auth(env.s("access_token"))
        .header("content-type", "multipart/form-data; boundary=BOUNDARY42")
        .body(multipart_body("BOUNDARY42", mime, data, with_type))
        .send()
        .await
        .unwrap();
    let st = res.status().as_u16();
    (st, res.json().await.unwrap())
}

#[tokio::test]
async fn media_upload_url_download_and_expiry() {
    let env = Env::new(GraphSimConfig {
        media_url_lifetime: Duration::from_millis(400),
        statuses: vec![],
        ..fast_config()
    })
    .await;
    let data = b"\xff\xd8\xff\xe0 a tiny jpeg \xff\xd9".to_vec();
    let (st, v) = upload(&env, "image/jpeg", &data, true).await;
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // Validation: unsupported type, oversize image, missing type field.
    let (st, v) = upload(&env, "image/gif", b"GIF89a", true).await;
    assert_meta_error(st, &v, 131053, 400);
    let (st, v) = upload(&env, "image/png", &vec![0u8; 5 * 1024 * 1024 + 1], true).await;
    assert_meta_error(st, &v, 131053, 400);
    let (st, v) = upload(&env, "image/png", b"png", false).await;
    assert_meta_error(st, &v, 131008, 400);
    // Lookup.
    let (st, info) = env.call(reqwest::Method::GET, &id, None).await;
    assert_eq!(st, 200, "{info}");
    let hex: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(info["sha256"], hex.as_str());
    assert_eq!(info["mime_type"], "image/jpeg");
    assert_eq!(info["file_size"], data.len().to_string().as_str());
    assert_eq!(info["messaging_product"], "whatsapp");
    let url = info["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&env.base));
    // Download: no bearer 401, wrong bearer 401, right bearer 200.
    let res = env.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = env
        .http
        .get(&url)
        .bearer_auth("EAAGnope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = env
        .http
        .get(&url)
        .bearer_auth(env.s("access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().to_vec(), data);
    // Sending it: as an image works, as audio is a media error.
    env.inbound("15551230040", json!({"type":"text","text":{"body":"hi"}}))
        .await;
    let (st, v) = env
        .send(json!({"messaging_product":"whatsapp","to":"15551230040","type":"image","image":{"id":id}}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = env
        .send(json!({"messaging_product":"whatsapp","to":"15551230040","type":"audio","audio":{"id":id}}))
        .await;
    assert_meta_error(st, &v, 131053, 400);
    // The URL expires.
    let token = env.s("access_token");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = env.http.get(&url).bearer_auth(&token).send().await.unwrap();
        if res.status() == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "media URL never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Delete.
    let (st, v) = env.call(reqwest::Method::DELETE, &id, None).await;
    assert_eq!((st, v), (200, json!({"success": true})));
    let (st, _) = env.call(reqwest::Method::GET, &id, None).await;
    assert_eq!(st, 400);
    env.stop().await;
}

#[tokio::test]
async fn inbound_media_is_downloadable_with_matching_sha256() {
    let env = Env::new(fast_config()).await;
    let bytes = b"%PDF-1.4 hello %%EOF".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    env.inbound(
        "15551230050",
        json!({"type":"document","document":{"data_base64":b64,"mime_type":"application/pdf","filename":"x.pdf","caption":"c"}}),
    )
    .await;
    env.inbound("15551230050", json!({"type":"image","image":{}}))
        .await;
    let secret = env.secret();
    let msgs = wait_for("two media webhooks", Duration::from_secs(5), || {
        let m: Vec<Value> = env
            .cb
            .changes(&secret)
            .into_iter()
            .filter_map(|(_, v)| v["messages"].get(0).cloned())
            .collect();
        (m.len() == 2).then_some(m)
    })
    .await;
    let doc = msgs.iter().find(|m| m["type"] == "document").unwrap();
    let d = &doc["document"];
    assert!(d.get("data_base64").is_none());
    assert_eq!(d["mime_type"], "application/pdf");
    assert_eq!(d["filename"], "x.pdf");
    assert_eq!(d["caption"], "c");
    let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
    assert_eq!(d["sha256"], want.as_str());
    let (st, info) = env
        .call(reqwest::Method::GET, d["id"].as_str().unwrap(), None)
        .await;
    assert_eq!(st, 200);
    let got = env
        .http
        .get(info["url"].as_str().unwrap())
        .bearer_auth(env.s("access_token"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.to_vec(), bytes);
    // Generated image bytes also match their advertised digest.
    let img = msgs.iter().find(|m| m["type"] == "image").unwrap();
    let (_, info) = env
        .call(
            reqwest::Method::GET,
            img["image"]["id"].as_str().unwrap(),
            None,
        )
        .await;
    let got = env
        .http
        .get(info["url"].as_str().unwrap())
        .bearer_auth(env.s("access_token"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&got)),
        img["image"]["sha256"].as_str().unwrap()
    );
    assert_eq!(img["image"]["mime_type"], "image/jpeg");
    env.stop().await;
}
