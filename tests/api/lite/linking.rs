//! Linking a session: the QR (string, PNG, SVG) and its rotation and refresh, scanning it to
//! WORKING, and linking by pairing code.

use super::{ACCOUNT, CHROMIUM, lite_app};
use crate::helpers::{eventually, expect_error};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Decodes a QR PNG.
fn decode_png(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("PNG").to_luma8();
    let (w, h) = img.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
            img.get_pixel(x as u32, y as u32)[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR in the PNG");
    grids[0].decode().expect("QR decodes").1
}

#[tokio::test]
async fn lite_qr_png_rotation_refresh_scan_working() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let asked = Instant::now();
    let created = lite.create().await;
    assert_eq!(created["status"], "STARTING");
    let id = created["id"].as_str().unwrap().to_string();

    // The QR arrives; its PNG and the raw string are what the simulator shows.
    let first = eventually(Duration::from_secs(20), || lite.qr(&id))
        .await
        .expect("a QR");
    eprintln!(
        "lite: QR {} ms after the request",
        asked.elapsed().as_millis()
    );
    assert_eq!(first.split(',').count(), 5, "{first}");
    let shown = lite.sim_get("sim/qr").await;
    let res = lite
        .app
        .get(&format!("/v1/lite/sessions/{id}/qr.png"), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    let decoded = decode_png(&res.bytes().await.unwrap());
    let sim_now: Vec<String> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["qr"].as_str().unwrap().to_string())
        .collect();
    assert!(
        sim_now.contains(&decoded) || decoded == first,
        "PNG {decoded} not shown by the simulator {sim_now:?}"
    );
    let res = lite
        .app
        .get(&format!("/v1/lite/sessions/{id}/qr.svg"), &lite.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(res.text().await.unwrap().contains("<svg"));

    // Rotation, then the end of the cycle (UNPAIRED_IDLE) and refreshQR: the fast simulator
    // has 3 refs per cycle, so a 4th distinct QR means the daemon refreshed.
    let seen = std::cell::RefCell::new(vec![first.clone()]);
    let rotated = eventually(Duration::from_secs(20), || {
        let f = lite.qr(&id);
        let seen = &seen;
        async move {
            if let Some(q) = f.await
                && !seen.borrow().contains(&q)
            {
                seen.borrow_mut().push(q);
            }
            (seen.borrow().len() >= 4).then_some(())
        }
    })
    .await;
    assert!(rotated.is_some(), "QRs seen: {}", seen.borrow().len());
    assert!(lite.events("session.qr").await >= 4);

    // Scan → WORKING, with the phone number.
    let s = lite.link(&id, ACCOUNT).await;
    assert_eq!(s["phone"], format!("+{ACCOUNT}"));
    assert_eq!(s["qr_available"], false);
    expect_error(
        lite.app
            .get(&format!("/v1/lite/sessions/{id}/qr"), &lite.key)
            .send()
            .await
            .unwrap(),
        409,
        "qr_not_available",
    )
    .await;
    // Kept in configuracion_mensajeria_usuario too, and pushed as events.
    let client = lite.app.pool().get().await.unwrap();
    let conf: Value = client
        .query_one(
            "SELECT configuracion FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&id.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    // The original data model's lowercase status, ours beside it.
    assert_eq!(conf["connection_status"], "connected");
    assert_eq!(conf["lite_status"], "WORKING");
    assert_eq!(conf["tipo_conexion"], "lite");
    assert_eq!(conf["numero_telefono"], format!("+{ACCOUNT}"));
    assert!(lite.events("session.status").await >= 3);
    // The list shows it; another user does not see it.
    let list: Value = lite
        .app
        .get("/v1/lite/sessions", &lite.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, other) = lite.app.user("lite-other@example.com", false).await;
    expect_error(
        lite.app
            .get(&format!("/v1/lite/sessions/{id}"), &other)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    lite.finish().await;
}

#[tokio::test]
async fn lite_pairing_code_links() {
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app().await else { return };
    let id = lite.create().await["id"].as_str().unwrap().to_string();
    lite.wait_status(&id, "SCAN_QR_CODE", Duration::from_secs(20))
        .await;
    let path = format!("/v1/lite/sessions/{id}/pairing-code");
    expect_error(
        lite.app
            .post(&path, &lite.key)
            .json(&json!({"phone": "not a phone"}))
            .send()
            .await
            .unwrap(),
        422,
        "invalid_phone",
    )
    .await;
    expect_error(
        lite.app
            .post(&path, &lite.key)
            .json(&json!({"number": "+5511999990002"}))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_body",
    )
    .await;
    let res = lite
        .app
        .post(&path, &lite.key)
        .json(&json!({"phone": "+55 11 99999-0002"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    let code = body["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8, "{body}");
    assert_eq!(body["phone"], "+5511999990002");
    let (status, answer) = lite
        .sim_post("pair", json!({"code": code, "phone": "5511999990002"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let s = lite
        .wait_status(&id, "WORKING", Duration::from_secs(20))
        .await;
    assert_eq!(s["phone"], "+5511999990002");
    lite.finish().await;
}
