//! Messages: sends, acks and the sent list; pushes kept for an offline device until its page
//! confirms them; restore, logout and a revoked login; the phone's own sends.

use crate::fake_page::{
    FakePage, assert_error, fast, get, post, sha256_hex, sim, urlencode, wait_kept, wait_offline,
    wait_ready,
};
use serde_json::{Value, json};

#[tokio::test]
async fn web_messages_send_acks_and_sent_list() {
    let sim = sim(fast()).await;
    let mut page = FakePage::open(&sim, None, None).await;
    page.link(&sim, "5511999990002").await;

    // Inbound text.
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990002", "from": "5511888880001", "name": "Ana", "text": "oi"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let msg = page.next("msg").await["msg"].clone();
    assert_eq!(msg["id"]["id"], id);
    assert_eq!(msg["id"]["fromMe"], false);
    assert_eq!(msg["id"]["_serialized"], body["serialized"]);
    assert_eq!(msg["from"], "5511888880001@c.us");
    assert_eq!(msg["to"], "5511999990002@c.us");
    assert_eq!(msg["type"], "chat");
    assert_eq!(msg["body"], "oi");
    assert_eq!(msg["notifyName"], "Ana");
    assert_eq!(msg["isNewMsg"], true);

    // Inbound media: the bytes are downloadable by directPath.
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990002", "from": "5511888880001", "name": "Ana",
               "media": {"mimetype": "image/jpeg", "filename": "a.jpg",
                         "data_base64": "AAECAwQ=", "caption": "foto"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let msg = page.next("msg").await["msg"].clone();
    assert_eq!(msg["type"], "image");
    assert_eq!(msg["caption"], "foto");
    assert_eq!(msg["size"], 5);
    let res = reqwest::get(format!(
        "{}sim/media?direct_path={}&media_key={}",
        sim.base_url(),
        msg["directPath"].as_str().unwrap(),
        urlencode(msg["mediaKey"].as_str().unwrap()),
    ))
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &[0, 1, 2, 3, 4]);

    // Outbound text: ack 1 at once, listed by /sim/sent.
    page.send(json!({"t": "send", "msg": {
        "id": "3EB0AAAA", "serialized": "true_5511888880001@c.us_3EB0AAAA",
        "to": "5511888880001@c.us", "type": "chat", "body": "olá"}}))
        .await;
    let ack = page.next("ack").await;
    assert_eq!(
        ack,
        json!({"t": "ack", "id": "true_5511888880001@c.us_3EB0AAAA", "ack": 1})
    );
    let (status, sent) = get(&sim, "sim/sent?account=5511999990002").await;
    assert_eq!(status, 200);
    assert_eq!(sent[0]["id"], "3EB0AAAA");
    assert_eq!(sent[0]["to"], "5511888880001@c.us");
    assert_eq!(sent[0]["type"], "chat");
    assert_eq!(sent[0]["body"], "olá");
    assert_eq!(sent[0]["ack"], 1);
    assert!(sent[0]["sent_at"].as_str().unwrap().ends_with('Z'));

    // Outbound media, uploaded first as the page's uploadMedia does.
    let entry: Value = reqwest::Client::new()
        .post(format!(
            "{}sim/upload?mimetype=application/pdf&filename=c.pdf",
            sim.base_url()
        ))
        .body(b"%PDF-1.4 test".to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page.send(json!({"t": "send", "msg": {
        "id": "3EB0BBBB", "serialized": "true_5511888880001@c.us_3EB0BBBB",
        "to": "5511888880001@c.us", "type": "document", "mimetype": "application/pdf",
        "filename": "c.pdf", "directPath": entry["directPath"], "mediaKey": entry["mediaKey"]}}))
        .await;
    page.next("ack").await;
    let (_, sent) = get(&sim, "sim/sent?account=5511999990002").await;
    let media = &sent[1]["media"];
    assert_eq!(media["mimetype"], "application/pdf");
    assert_eq!(media["filename"], "c.pdf");
    assert_eq!(media["size"], 13);
    assert_eq!(media["sha256"], sha256_hex(b"%PDF-1.4 test"));

    // Acks from the recipient's phone.
    let (status, body) = post(&sim, "acks", json!({"id": "3EB0AAAA", "ack": 3})).await;
    assert_eq!(status, 200, "{body}");
    let ack = page.next("ack").await;
    assert_eq!(ack["id"], "true_5511888880001@c.us_3EB0AAAA");
    assert_eq!(ack["ack"], 3);
    let (status, _) = post(
        &sim,
        "acks",
        json!({"id": "true_5511888880001@c.us_3EB0AAAA", "ack": 2}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page.next("ack").await["ack"], 2);
    let (_, sent) = get(&sim, "sim/sent?account=5511999990002").await;
    assert_eq!(sent[0]["ack"], 2);
    let (status, body) = post(&sim, "acks", json!({"id": "nope", "ack": 2})).await;
    assert_error(status, &body, 404, "unknown_message");
    let (status, body) = post(&sim, "acks", json!({"id": "3EB0AAAA", "ack": 9})).await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = post(&sim, "acks", json!({"id": id, "ack": 3})).await;
    assert_error(status, &body, 409, "not_outgoing");

    // Errors.
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511000000000", "from": "5511888880001", "text": "x"}),
    )
    .await;
    assert_error(status, &body, 404, "unknown_account");
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990002", "from": "5511888880001"}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = get(&sim, "sim/sent?account=5511000000000").await;
    assert_error(status, &body, 404, "unknown_account");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_offline_queue_restore_logout_and_revoked_login() {
    let sim = sim(fast()).await;
    let mut page = FakePage::open(&sim, None, None).await;
    page.link(&sim, "5511999990003").await;
    let device = page.device.clone();
    drop(page); // the browser goes away
    wait_offline(&sim, &device).await;
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990003", "from": "5511777770001", "text": "while away"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, state) = get(&sim, "sim/state").await;
    assert_eq!(state["devices"][0]["queued"], 1, "{state}");

    // Restored: straight to linked (no ref), then the queued message.
    let mut page = FakePage::open(&sim, Some(&device), Some("5511999990003")).await;
    assert_eq!(page.device, device);
    let linked = page.next("linked").await;
    assert_eq!(linked["fresh"], false);
    page.next("synced").await;
    page.next("offline").await;
    assert_eq!(page.next("msg").await["msg"]["body"], "while away");
    page.next("offline_done").await;

    // Conflict and takeover.
    let (status, body) = post(&sim, "conflict", json!({"account": "5511999990003"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pages"], 1);
    assert_eq!(page.next("state").await["state"], "CONFLICT");
    page.send(json!({"t": "takeover"})).await;
    assert_eq!(page.next("state").await["state"], "CONNECTED");
    let (status, body) = post(
        &sim,
        "socket-state",
        json!({"account": "5511999990003", "state": "NOPE"}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");

    // Logout from the phone.
    let (status, body) = post(&sim, "logout", json!({"account": "5511999990003"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page.next("logout").await["reason"], "phone");
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": "5511999990003", "from": "5511777770001", "text": "x"}),
    )
    .await;
    assert_error(status, &body, 409, "no_linked_device");
    drop(page);

    // A profile that still holds the login is told it was revoked.
    let page = FakePage::open(&sim, Some(&device), Some("5511999990003")).await;
    assert_eq!(page.welcome_status(), "revoked");
    let (status, body) = post(&sim, "logout", json!({"account": "5511000000009"})).await;
    assert_error(status, &body, 404, "unknown_account");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_messages_are_kept_for_the_device_until_the_page_confirms_them() {
    let sim = sim(fast()).await;
    let account = "5511999990004";
    let mut page = FakePage::open(&sim, None, None).await;
    page.link(&sim, account).await;
    let device = page.device.clone();

    // A page that is there gets it at once; the server keeps it until the page's receipt.
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": account, "from": "5511777770002", "text": "live"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let live = page.next("msg").await;
    assert_eq!(live["msg"]["body"], "live");
    wait_kept(&sim, &device, 1).await;
    page.send(json!({"t": "receipt", "sids": [live["sid"]]}))
        .await;
    wait_kept(&sim, &device, 0).await;

    // Away: kept, and delivered when the device's page is back.
    drop(page);
    let (status, body) = post(
        &sim,
        "messages",
        json!({"account": account, "from": "5511777770002", "text": "while away"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut page = FakePage::open(&sim, Some(&device), Some(account)).await;
    page.next("offline").await;
    let first = page.next("msg").await;
    assert_eq!(first["msg"]["body"], "while away");
    page.next("offline_done").await;

    // The page crashed before it had the message in its store: delivered again.
    drop(page);
    let mut page = FakePage::open(&sim, Some(&device), Some(account)).await;
    page.next("offline").await;
    let again = page.next("msg").await;
    assert_eq!(again["msg"]["id"], first["msg"]["id"]);
    page.send(json!({"t": "receipt", "sids": [again["sid"]]}))
        .await;
    wait_kept(&sim, &device, 0).await;

    // Confirmed: a later page of the device does not get it again.
    drop(page);
    let mut page = FakePage::open(&sim, Some(&device), Some(account)).await;
    page.next("synced").await;
    wait_ready(&sim, &device).await;
    let (status, _) = post(
        &sim,
        "messages",
        json!({"account": account, "from": "5511777770002", "text": "next"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page.next("msg").await["msg"]["body"], "next");
    sim.shutdown().await;
}

#[tokio::test]
async fn web_phone_send_reaches_the_page_as_from_me() {
    let sim = sim(fast()).await;
    let account = "5511999990005";
    let contact = "5511777770003";
    let mut page = FakePage::open(&sim, None, None).await;
    page.link(&sim, account).await;

    let (status, body) = post(
        &sim,
        "phone-send",
        json!({"account": account, "to": contact, "text": "do celular"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["devices"], 1);
    let id = body["id"].as_str().unwrap().to_string();
    let msg = page.next("msg").await["msg"].clone();
    assert_eq!(msg["id"]["fromMe"], true);
    assert_eq!(msg["id"]["id"], id.as_str());
    assert_eq!(msg["id"]["remote"], format!("{contact}@c.us"));
    assert_eq!(msg["id"]["_serialized"], body["serialized"]);
    assert_eq!(msg["from"], format!("{account}@c.us"));
    assert_eq!(msg["to"], format!("{contact}@c.us"));
    assert_eq!(msg["body"], "do celular");
    assert_eq!(msg["isNewMsg"], true);

    // Listed with what the account sent, and acked like any sent message.
    let (_, sent) = get(&sim, &format!("sim/sent?account={account}")).await;
    let listed = sent
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(listed["message"]["from_phone"], true);
    let (status, body) = post(&sim, "acks", json!({"id": id, "ack": 3})).await;
    assert_eq!(status, 200, "{body}");
    let ack = page.next("ack").await;
    assert_eq!(ack["id"], msg["id"]["_serialized"]);
    assert_eq!(ack["ack"], 3);

    let (status, body) = post(
        &sim,
        "phone-send",
        json!({"account": account, "to": contact, "text": ""}),
    )
    .await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = post(
        &sim,
        "phone-send",
        json!({"account": "5511000000008", "to": contact, "text": "x"}),
    )
    .await;
    assert_error(status, &body, 404, "unknown_account");
    sim.shutdown().await;
}
