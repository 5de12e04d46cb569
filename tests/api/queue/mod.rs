//! The durable outbound queue: the API (validation, idempotency, cancel, dead
//! letters, batches), the Dispatcher against fake connection actors (priorities, scheduling, retries,
//! leases, fairness, pacing, limits, two nodes), and against the Graph simulator.

mod api;
mod batch;
mod dispatch;
pub mod fake;
mod leases;
mod limits;
mod sim;

use crate::helpers::{TestApp, eventually};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// A user with a key and one connection of `tipo` (`business` or `lite`) with `settings`.
pub async fn user_with_connection(
    app: &TestApp,
    tipo: &str,
    settings: Value,
) -> (Uuid, String, Uuid) {
    let (user, key) = app
        .user(&format!("{}@queue.test", Uuid::new_v4().simple()), false)
        .await;
    let conn = app.connection(user, tipo).await;
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE configuracion_mensajeria_usuario SET configuracion = configuracion || jsonb_build_object('settings', $2::jsonb) WHERE id = $1",
            &[&conn, &settings],
        )
        .await
        .unwrap();
    (user, key, conn)
}

/// Opens the 24 h window of `phone` on a Business connection (as an inbound message would).
pub async fn open_window(app: &TestApp, user: Uuid, conn: Uuid, phone: &str) {
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "INSERT INTO conversaciones (usuario_id, servicio_origen, tipo, remitente, connection_id, last_inbound_at)
             VALUES ($1, 'whatsapp', 'entrante', $2, $3, now())
             ON CONFLICT (usuario_id, connection_id, remitente) WHERE servicio_origen = 'whatsapp' AND connection_id IS NOT NULL
             DO UPDATE SET last_inbound_at = now()",
            &[&user, &phone, &conn],
        )
        .await
        .unwrap();
}

pub fn text(conn: Uuid, to: &str, body: &str) -> Value {
    json!({"connection_id": conn, "to": to, "type": "text", "text": {"body": body}})
}

/// POSTs a message; asserts 202 and returns its id.
pub async fn send(app: &TestApp, key: &str, body: &Value) -> Uuid {
    let resp = app
        .post("/v1/messages", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["estado"], "queued");
    v["id"].as_str().unwrap().parse().unwrap()
}

/// `GET /v1/messages/{id}`.
pub async fn message(app: &TestApp, key: &str, id: Uuid) -> Value {
    app.get(&format!("/v1/messages/{id}"), key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the message's estado is `estado`.
pub async fn wait_estado(
    app: &TestApp,
    key: &str,
    id: Uuid,
    estado: &str,
    limit: Duration,
) -> Value {
    let found = eventually(limit, || async move {
        let v = message(app, key, id).await;
        reached(v["estado"].as_str().unwrap_or(""), estado).then_some(v)
    })
    .await;
    match found {
        Some(v) => v,
        None => panic!(
            "message {id} never reached {estado}: {}",
            message(app, key, id).await
        ),
    }
}

/// Whether a message at `now` has reached `wanted`: statuses only move forward (queued, sent,
/// delivered, read) and a status webhook may already have moved it past the one a test waits
/// for, so waiting for an exact intermediate state would be a race. `failed` and other states
/// are compared exactly.
pub fn reached(now: &str, wanted: &str) -> bool {
    let rank = |s: &str| {
        ["queued", "sent", "delivered", "read"]
            .iter()
            .position(|x| *x == s)
    };
    match (rank(now), rank(wanted)) {
        (Some(n), Some(w)) => n >= w,
        _ => now == wanted,
    }
}

/// Counts outbox rows by state.
pub async fn outbox_states(app: &TestApp) -> std::collections::HashMap<String, i64> {
    let client = app.pool().get().await.unwrap();
    client
        .query("SELECT state, count(*) FROM outbox GROUP BY state", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Makes every queued message due now and wakes the lanes of `connection_id` (as a commit
/// of the enqueue transaction would), for tests that queue a backlog scheduled ahead and then
/// release it at once.
pub async fn all_due_now(pool: &deadpool_postgres::Pool, connection_id: Uuid) {
    let client = pool.get().await.unwrap();
    client
        .execute("UPDATE outbox SET due_at = now()", &[])
        .await
        .unwrap();
    client
        .execute(
            "SELECT pg_notify('sincro_outbox', $1)",
            &[&connection_id.to_string()],
        )
        .await
        .unwrap();
}

/// Quick retries, for tests that wait through a few of them.
pub fn fast_retries(env: &mut std::collections::HashMap<String, String>) {
    env.insert("RETRY_BASE_MS".into(), "50".into());
    env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "100000".into());
    env.insert("API_RATE_PER_IP_PER_MINUTE".into(), "100000".into());
}

/// A distinct recipient per `i`.
pub fn recipient(i: usize) -> String {
    format!("+551198765{:04}", i)
}

/// Queues `n` text messages to distinct recipients through the API.
pub async fn backlog(app: &TestApp, key: &str, conn: Uuid, n: usize, priority: &str) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let mut body = text(conn, &recipient(i), "bulk");
        body["priority"] = json!(priority);
        ids.push(send(app, key, &body).await);
    }
    ids
}

/// The daemon's running Dispatcher.
pub fn dispatcher(
    app: &TestApp,
) -> ractor::ActorRef<sincro_core::outbound::dispatcher::DispatcherMessage> {
    app.app()
        .context()
        .actors
        .children
        .dispatcher
        .get()
        .expect("dispatcher")
}

/// What the daemon's Dispatcher holds now (its lanes, sends in flight).
pub async fn dispatcher_stats(app: &TestApp) -> sincro_core::outbound::dispatcher::DispatcherStats {
    match dispatcher(app)
        .call(
            sincro_core::outbound::dispatcher::DispatcherMessage::Stats,
            Some(Duration::from_secs(5)),
        )
        .await
    {
        Ok(ractor::rpc::CallResult::Success(s)) => s,
        _ => panic!("no dispatcher stats"),
    }
}

/// Waits until the Dispatcher holds no claimed row and has no send in flight.
pub async fn lane_idle(app: &TestApp) {
    let idle = eventually(Duration::from_secs(15), || async {
        let s = dispatcher_stats(app).await;
        (s.held == 0 && s.sending == 0).then_some(())
    })
    .await;
    assert!(idle.is_some(), "the Dispatcher never went idle");
}
