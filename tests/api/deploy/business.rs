//! Single-number installs from `WHATSAPP_BUSINESS_*` (connected at start through the same
//! sequence as the API, updated on the next start, a clear start error when Meta refuses), and
//! webhooks wired automatically with `PUBLIC_URL` (API and environment), the state Meta reports
//! shown by `GET /v1/business/numbers/{id}`.

use crate::helpers::{TestApp, base_env, eventually, fast_restarts, fresh_database};
use serde_json::{Value, json};
use sincro_whatsapp::app::{Application, Options};
use sincro_whatsapp::config::Config;
use std::collections::HashMap;
use std::time::Duration;

async fn sim() -> sincro_sim::graph::GraphSimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sincro_sim::graph::start(listener, Default::default())
        .await
        .unwrap()
}

async fn account(base: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/sim/accounts"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn business_env(env: &mut HashMap<String, String>, sim: &str, a: &Value, email: &str) {
    let t = |k: &str| a[k].as_str().unwrap().to_string();
    env.insert("GRAPH_API_BASE".into(), sim.into());
    env.insert("WHATSAPP_BUSINESS_TOKEN".into(), t("access_token"));
    env.insert("WHATSAPP_BUSINESS_PHONE_ID".into(), t("phone_number_id"));
    env.insert("WHATSAPP_BUSINESS_WABA_ID".into(), t("waba_id"));
    env.insert("WHATSAPP_BUSINESS_APP_SECRET".into(), t("app_secret"));
    env.insert("WHATSAPP_BUSINESS_VERIFY_TOKEN".into(), t("verify_token"));
    env.insert("WHATSAPP_BUSINESS_USER_EMAIL".into(), email.into());
}

/// A daemon on `listener` (bound by the caller, so PUBLIC_URL can name it).
async fn build(
    env: &HashMap<String, String>,
    listener: tokio::net::TcpListener,
) -> Result<Application, String> {
    Application::build(
        Config::from_map(env).unwrap(),
        listener,
        Options {
            restart_policy: fast_restarts(),
            fault_injection: false,
        },
    )
    .await
    .map_err(|e| e.to_string())
}

fn view(app: &Application, db: &str, env: &HashMap<String, String>) -> TestApp {
    TestApp {
        app: None,
        base: format!("http://{}", app.addr()),
        database_url: db.to_string(),
        env: env.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        _data_dir: tempfile::tempdir().unwrap(),
    }
}

async fn key_for(app: &Application, email: &str) -> String {
    let mut client = app.context().pool.get().await.unwrap();
    sincro_core::store::users::create_with_key(&mut client, email, None, false)
        .await
        .unwrap()
        .0
        .key
        .plaintext
        .expose()
        .to_string()
}

async fn numbers(app: &Application) -> Vec<(uuid::Uuid, String, bool)> {
    let client = app.context().pool.get().await.unwrap();
    client
        .query(
            "SELECT c.usuario_id, u.email, c.activo FROM configuracion_mensajeria_usuario c
             JOIN usuarios u ON u.id = c.usuario_id ORDER BY c.created_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_from_the_environment_is_connected_at_start_and_updated_on_the_next() {
    // Arrange
    let sim = sim().await;
    let base = sim.base_url();
    let a = account(&base).await;
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let mut env = base_env(&db, data.path());
    business_env(&mut env, &base, &a, "owner@single.test");

    // Act: first start.
    let app = build(
        &env,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .expect("starts");

    // Assert: the user was created and the number is connected and running.
    let rows = numbers(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, "owner@single.test");
    assert!(rows[0].2);
    let key = key_for(&app, "owner@single.test").await;
    let v = view(&app, &db, &env);
    let list: Value = v
        .get("/v1/business/numbers", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["phone_number_id"], a["phone_number_id"], "{list}");
    assert_eq!(items[0]["status"], "connected", "{list}");
    // It sends: the number's actor runs here.
    let conn: uuid::Uuid = items[0]["id"].as_str().unwrap().parse().unwrap();
    let running = eventually(Duration::from_secs(10), || async {
        let sup = app.context().actors.children.business.get()?;
        match sup
            .call(
                |reply| sincro_core::business::supervisor::BusinessSupervisorMessage::Number {
                    connection_id: conn,
                    reply,
                },
                Some(Duration::from_secs(5)),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(Some(_))) => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(running.is_some(), "the number's actor runs");
    app.shutdown().await;

    // Act: the next start, on the same database: the same number, credentials refreshed.
    let data2 = tempfile::tempdir().unwrap();
    env.insert("DATA_DIR".into(), data2.path().display().to_string());
    let again = build(
        &env,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .expect("starts again");
    assert_eq!(numbers(&again).await.len(), 1, "no second number");
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_refusing_the_environment_number_stops_the_start() {
    // Arrange: a token Meta does not know.
    let sim = sim().await;
    let base = sim.base_url();
    let a = account(&base).await;
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let mut env = base_env(&db, data.path());
    business_env(&mut env, &base, &a, "owner@single.test");
    env.insert("WHATSAPP_BUSINESS_TOKEN".into(), "EAAGnotatoken".into());

    // Act
    let err = build(
        &env,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .err()
    .expect("refused");

    // Assert
    assert!(
        err.contains("WHATSAPP_BUSINESS_*") && err.contains("not accepted") && err.contains("Meta"),
        "{err}"
    );
    let client = crate::helpers::connect(&db).await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM configuracion_mensajeria_usuario", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    // And an incomplete set is refused before Meta is asked.
    env.remove("WHATSAPP_BUSINESS_APP_SECRET");
    let err = build(
        &env,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.contains("WHATSAPP_BUSINESS_APP_SECRET"), "{err}");
}

/// What Meta (the simulator) says about the account's subscription.
async fn subscribed_apps(sim: &str, a: &Value) -> Value {
    reqwest::Client::new()
        .get(format!(
            "{sim}/v23.0/{}/subscribed_apps",
            a["waba_id"].as_str().unwrap()
        ))
        .bearer_auth(a["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_public_url_connecting_a_number_wires_its_webhooks() {
    // Arrange: PUBLIC_URL is this daemon's own address.
    let sim = sim().await;
    let base = sim.base_url();
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let mut env = base_env(&db, data.path());
    env.insert("GRAPH_API_BASE".into(), base.clone());
    env.insert("PUBLIC_URL".into(), format!("{public}/"));
    let app = build(&env, listener).await.expect("starts");
    let key = key_for(&app, "hooks@deploy.test").await;
    let v = view(&app, &db, &env);
    let a = account(&base).await;
    let t = |k: &str| a[k].as_str().unwrap().to_string();

    // Act: connect through the API, and nothing else.
    let resp = v
        .post("/v1/business/numbers", &key)
        .json(&json!({
            "phone_number_id": t("phone_number_id"),
            "waba_id": t("waba_id"),
            "access_token": t("access_token"),
            "app_secret": t("app_secret"),
            "verify_token": t("verify_token"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.unwrap();

    // Assert: subscribed with this daemon as the callback (Meta's handshake passed).
    let callback = format!("{public}/webhooks/whatsapp");
    assert_eq!(created["webhooks"]["state"], "subscribed", "{created}");
    assert_eq!(created["webhooks"]["callback_uri"], callback, "{created}");
    let apps = subscribed_apps(&base, &a).await;
    assert_eq!(apps["data"][0]["override_callback_uri"], callback, "{apps}");
    let id = created["id"].as_str().unwrap();
    let one: Value = v
        .get(&format!("/v1/business/numbers/{id}"), &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wc = &one["webhook_configuration"];
    assert_eq!(wc["state"], "subscribed", "{one}");
    assert_eq!(wc["callback_uri"], callback, "{one}");
    assert_eq!(wc["points_here"], true, "{one}");
    // A contact's message reaches the daemon through the wired webhook.
    let r = reqwest::Client::new()
        .post(format!("{base}/sim/inbound"))
        .json(&json!({"phone_number_id": t("phone_number_id"), "from": "+5511977001234", "name": "C", "message": {"type": "text", "text": {"body": "hola"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let stored = eventually(Duration::from_secs(20), || async {
        let client = app.context().pool.get().await.ok()?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM mensajes_conversacion WHERE direccion = 'entrante'",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the inbound message arrived by webhook");
    // Removing it unsubscribes: Meta reports no app any more.
    let removed: Value = v
        .delete(&format!("/v1/business/numbers/{id}"), &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed["webhooks"]["state"], "unsubscribed", "{removed}");
    assert_eq!(subscribed_apps(&base, &a).await["data"], json!([]));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_public_url_a_number_from_the_environment_is_wired_too() {
    let sim = sim().await;
    let base = sim.base_url();
    let a = account(&base).await;
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let mut env = base_env(&db, data.path());
    business_env(&mut env, &base, &a, "env-hooks@deploy.test");
    env.remove("WHATSAPP_BUSINESS_VERIFY_TOKEN");
    env.insert("PUBLIC_URL".into(), public.clone());

    let app = build(&env, listener).await.expect("starts");

    let apps = subscribed_apps(&base, &a).await;
    assert_eq!(
        apps["data"][0]["override_callback_uri"],
        format!("{public}/webhooks/whatsapp"),
        "{apps}"
    );
    app.shutdown().await;
}
