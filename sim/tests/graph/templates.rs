//! Message templates: review, approval and rejection webhooks, sending, paging, deletion.

use crate::fixture::{Env, assert_meta_error, fast_config, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn template_lifecycle() {
    let env = Env::new(fast_config()).await;
    let waba = env.s("waba_id");
    let secret = env.secret();
    let path = format!("{waba}/message_templates");
    // Bad name.
    let (st, v) = env
        .call(
            reqwest::Method::POST,
            &path,
            Some(
                json!({"name":"Order-Update","language":"en_US","category":"UTILITY",
                "components":[{"type":"BODY","text":"Hi"}]}),
            ),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], 100);
    let create = json!({"name":"order_update","language":"en_US","category":"UTILITY",
        "components":[{"type":"BODY","text":"Hi {{1}}, order {{2}} shipped","example":{"body_text":[["Ana","42"]]}}]});
    let (st, v) = env
        .call(reqwest::Method::POST, &path, Some(create.clone()))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "PENDING");
    let tid = v["id"].as_str().unwrap().to_string();
    // Duplicate name + language.
    let (st, v) = env.call(reqwest::Method::POST, &path, Some(create)).await;
    assert_eq!(st, 400, "{v}");
    let send = |params: Vec<Value>| {
        json!({"messaging_product":"whatsapp","to":"15551230020","type":"template",
            "template":{"name":"order_update","language":{"code":"en_US"},
                "components":[{"type":"body","parameters":params}]}})
    };
    let two = vec![
        json!({"type":"text","text":"Ana"}),
        json!({"type":"text","text":"42"}),
    ];
    // Still PENDING: not sendable.
    let (st, v) = env.send(send(two.clone())).await;
    assert_meta_error(st, &v, 132001, 404);
    // The approval webhook arrives.
    let update = wait_for("template status webhook", Duration::from_secs(5), || {
        env.cb
            .changes(&secret)
            .into_iter()
            .find(|(f, _)| f == "message_template_status_update")
    })
    .await
    .1;
    assert_eq!(update["event"], "APPROVED");
    assert_eq!(update["message_template_name"], "order_update");
    assert_eq!(update["message_template_language"], "en_US");
    assert_eq!(
        update["message_template_id"].as_u64().unwrap().to_string(),
        tid
    );
    let (st, v) = env.call(reqwest::Method::GET, &tid, None).await;
    assert_eq!((st, v["status"].clone()), (200, json!("APPROVED")));
    // Parameter count mismatch, then a good send (no window needed for templates).
    let (st, v) = env.send(send(two[..1].to_vec())).await;
    assert_meta_error(st, &v, 132000, 400);
    let (st, v) = env.send(send(two.clone())).await;
    assert_eq!(st, 200, "{v}");
    // Wrong language.
    let mut other = send(two.clone());
    other["template"]["language"]["code"] = json!("pt_BR");
    let (st, v) = env.send(other).await;
    assert_meta_error(st, &v, 132001, 404);
    // A reject_ name is rejected, with the webhook.
    let (st, _) = env
        .call(
            reqwest::Method::POST,
            &path,
            Some(
                json!({"name":"reject_me","language":"en_US","category":"MARKETING",
                "components":[{"type":"BODY","text":"Buy"}]}),
            ),
        )
        .await;
    assert_eq!(st, 200);
    let rejected = wait_for("rejection webhook", Duration::from_secs(5), || {
        env.cb.changes(&secret).into_iter().find(|(f, v)| {
            f == "message_template_status_update" && v["message_template_name"] == "reject_me"
        })
    })
    .await
    .1;
    assert_eq!(rejected["event"], "REJECTED");
    assert_eq!(rejected["reason"], "INVALID_FORMAT");
    // List with paging.
    let (st, v) = env
        .call(reqwest::Method::GET, &format!("{path}?limit=1"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let next = v["paging"]["next"].as_str().unwrap().to_string();
    let res = env
        .http
        .get(&next)
        .bearer_auth(env.s("access_token"))
        .send()
        .await
        .unwrap();
    let v2: Value = res.json().await.unwrap();
    assert_eq!(v2["data"].as_array().unwrap().len(), 1);
    assert_ne!(v2["data"][0]["name"], v["data"][0]["name"]);
    assert!(v2["paging"].get("next").is_none());
    // Delete by name; sending it afterwards fails.
    let (st, v) = env
        .call(
            reqwest::Method::DELETE,
            &format!("{path}?name=order_update"),
            None,
        )
        .await;
    assert_eq!((st, v), (200, json!({"success": true})));
    let (st, v) = env.send(send(two)).await;
    assert_meta_error(st, &v, 132001, 404);
    let (st, _) = env
        .call(
            reqwest::Method::DELETE,
            &format!("{path}?name=order_update"),
            None,
        )
        .await;
    assert_eq!(st, 400);
    env.stop().await;
}
