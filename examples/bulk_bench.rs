//! Bulk sending benchmark: `POST /v1/messages/batch` into a full daemon over loopback, then
//! its real Dispatcher draining the backlog through one HIGH-tier Business number (1,000
//! messages a second at Meta) into the Graph simulator over loopback, which refuses (130429)
//! any send that would put more than 1,000 in one second. One run, two phases:
//!
//! 1. enqueue: `MESSAGES` template messages (distinct recipients) in batches of 1,000 from
//!    `CLIENTS` concurrent HTTP clients, scheduled an hour ahead so no send competes, against
//!    the baseline of a plain multi-row insert of the same message and outbox rows (one
//!    transaction per 1,000, already sealed, same concurrency, no checks, leads or events);
//! 2. dispatch: the backlog made due at once; sends counted where the simulator accepted them
//!    (its own clock): the rate in steady state (after the first second) as a share of the
//!    tier's limit, the busiest sliding one-second window, fixed one-second windows over the
//!    limit, and attempts the simulator refused.
//!
//! Before phase 1, a warm-up of `BENCH_WARMUP` messages (default two batches per client) to
//! other recipients, printed apart and then taken back out of the queue (`0`: none).
//!
//! `cargo run --release --example bulk_bench [-- MESSAGES CLIENTS]` (defaults 20000, 4);
//! PostgreSQL from `BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432`). It creates
//! and drops its own database. `BENCH_STATUSES=0` turns the simulator's status webhooks off
//! (on, as Meta sends them, by default: sent, delivered, read for every message).

use futures::StreamExt;
use serde_json::{Value, json};
use sincro_core::seal::{Purpose, Sealer};
use sincro_sim::graph::{GraphSimConfig, GraphSimHandle};
use sincro_whatsapp::app::{Application, Options};
use sincro_whatsapp::config::Config;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The HIGH throughput tier, messages per second.
const LIMIT: usize = 1000;
/// Messages per batch request (the route's maximum).
const BATCH: usize = 1000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let clients: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("sw_bench_{}", Uuid::new_v4().simple());
    let (admin, conn) =
        tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let result = run(
        &format!("{server}/{name}"),
        total.div_ceil(BATCH) * BATCH,
        clients,
    )
    .await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    result
}

fn recipient(i: usize) -> String {
    format!("+5511{:09}", 900_000_000 + i)
}

/// A Business number of the simulator connected for `key`'s user, its account's webhooks
/// pointing at the daemon.
async fn connect(
    http: &reqwest::Client,
    sim: &str,
    base: &str,
    key: &str,
) -> Result<(Uuid, String), Box<dyn std::error::Error>> {
    let account: Value = http
        .post(format!("{sim}/sim/accounts"))
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let text = |k: &str| account[k].as_str().unwrap_or_default().to_string();
    let created: Value = http
        .post(format!("{base}/v1/business/numbers"))
        .bearer_auth(key)
        .json(&json!({
            "phone_number_id": text("phone_number_id"), "waba_id": text("waba_id"),
            "access_token": text("access_token"), "app_secret": text("app_secret"),
            "verify_token": text("verify_token"),
        }))
        .send()
        .await?
        .json()
        .await?;
    let id: Uuid = created["id"]
        .as_str()
        .ok_or("number not connected")?
        .parse()?;
    let subscribed = http
        .post(format!("{sim}/v23.0/{}/subscribed_apps", text("waba_id")))
        .bearer_auth(text("access_token"))
        .json(&json!({
            "override_callback_uri": format!("{base}/webhooks/whatsapp"),
            "verify_token": text("verify_token"),
        }))
        .send()
        .await?;
    if !subscribed.status().is_success() {
        return Err("webhooks not subscribed".into());
    }
    Ok((id, text("phone_number_id")))
}

/// An approved template `bulk_offer` on the number (created at the simulator, approved by its
/// review webhook).
async fn approved_template(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    conn: Uuid,
) -> Result<(), Box<dyn std::error::Error>> {
    let resp = http
        .post(format!("{base}/v1/templates"))
        .bearer_auth(key)
        .json(&json!({"connection_id": conn, "name": "bulk_offer", "language": "pt_BR", "category": "MARKETING",
                      "components": [{"type": "BODY", "text": "Oferta {{1}}", "example": {"body_text": [["Ana"]]}}]}))
        .send()
        .await?;
    if resp.status().as_u16() != 201 {
        return Err(format!("template: {}", resp.text().await?).into());
    }
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let v: Value = http
            .get(format!("{base}/v1/templates?status=approved"))
            .bearer_auth(key)
            .send()
            .await?
            .json()
            .await?;
        if v["items"].as_array().is_some_and(|i| !i.is_empty()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the template was never approved".into())
}

fn item(conn: Uuid, i: usize, send_at: &str) -> Value {
    json!({"connection_id": conn, "to": recipient(i), "type": "template", "priority": "bulk", "send_at": send_at,
           "template": {"name": "bulk_offer", "language": {"code": "pt_BR"},
                        "components": [{"type": "body", "parameters": [{"type": "text", "text": format!("n{i}")}]}]}})
}

/// Phase 1, the daemon: every batch POSTed, `clients` at a time, to the recipients numbered
/// from `first`; msg/s.
async fn enqueue(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    conn: Uuid,
    (first, total): (usize, usize),
    clients: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let later = (OffsetDateTime::now_utc() + time::Duration::hours(1)).format(&Rfc3339)?;
    let bodies: Vec<Value> = (0..total / BATCH)
        .map(|b| first + b * BATCH)
        .map(|b| json!({"messages": (b..b + BATCH).map(|i| item(conn, i, &later)).collect::<Vec<_>>()}))
        .collect();
    let started = Instant::now();
    let answers: Vec<Result<usize, String>> = futures::stream::iter(bodies)
        .map(|body| async move {
            let resp = http
                .post(format!("{base}/v1/messages/batch"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = resp.json().await.map_err(|e| e.to_string())?;
            let results = v["results"].as_array().ok_or_else(|| v.to_string())?;
            match results.iter().find(|r| r["status"] != 202) {
                Some(r) => Err(r.to_string()),
                None => Ok(results.len()),
            }
        })
        .buffer_unordered(clients)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let queued: usize = answers
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .sum();
    if queued != total {
        return Err(format!("{queued} of {total} queued").into());
    }
    Ok(total as f64 / elapsed)
}

/// Phase 1, the baseline: the same message and outbox rows, sealed beforehand, one plain
/// multi-row insert transaction per 1,000, `clients` at a time; msg/s.
async fn baseline(
    pool: &deadpool_postgres::Pool,
    sealer: &Sealer,
    user: Uuid,
    conn: Uuid,
    total: usize,
    clients: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let client = pool.get().await?;
    let conversation: Uuid = client
        .query_one(
            "INSERT INTO conversaciones (usuario_id, servicio_origen, tipo, remitente, connection_id)
             VALUES ($1, 'whatsapp', 'saliente', 'baseline', $2) RETURNING id",
            &[&user, &conn],
        )
        .await?
        .get(0);
    let payload = sealer.seal_str(Purpose::MessageBody, &item(conn, 0, "x").to_string());
    let started = Instant::now();
    let done: Vec<Result<(), String>> = futures::stream::iter(0..total / BATCH)
        .map(|b| {
            let payload = payload.clone();
            async move {
                let mut client = pool.get().await.map_err(|e| e.to_string())?;
                let tx = client.transaction().await.map_err(|e| e.to_string())?;
                let ids: Vec<Uuid> = (0..BATCH).map(|_| Uuid::now_v7()).collect();
                let to: Vec<String> = (b * BATCH..(b + 1) * BATCH).map(recipient).collect();
                let payloads = vec![payload; BATCH];
                tx.execute(
                    "INSERT INTO mensajes_conversacion (id, conversacion_id, usuario_id, connection_id, tipo, contenido,
                         remitente, canal, metadata, direccion, estado)
                     SELECT i, $1, $2, $3, 'plantilla', p, r, 'whatsapp', jsonb_build_object('payload_sealed', p), 'saliente', 'queued'
                     FROM unnest($4::uuid[], $5::text[], $6::text[]) AS x(i, r, p)",
                    &[&conversation, &user, &conn, &ids, &to, &payloads],
                )
                .await
                .map_err(|e| e.to_string())?;
                tx.execute(
                    "INSERT INTO outbox (message_id, usuario_id, connection_id, recipient, payload, priority, due_at, kind)
                     SELECT i, $1, $2, r, p, 2, now() + interval '1 day', 'template' FROM unnest($3::uuid[], $4::text[], $5::text[]) AS x(i, r, p)",
                    &[&user, &conn, &ids, &to, &payloads],
                )
                .await
                .map_err(|e| e.to_string())?;
                tx.commit().await.map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(clients)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    done.into_iter().collect::<Result<Vec<()>, _>>()?;
    client
        .execute(
            "DELETE FROM mensajes_conversacion WHERE conversacion_id = $1",
            &[&conversation],
        )
        .await?;
    Ok(total as f64 / elapsed)
}

/// Phase 2: when the simulator accepted each send of the number, from its records.
fn accepted_at(sim: &GraphSimHandle, pnid: &str) -> Vec<OffsetDateTime> {
    let mut at: Vec<OffsetDateTime> = sim
        .sent(Some(pnid))
        .iter()
        .filter_map(|s| OffsetDateTime::parse(&s.received_at, &Rfc3339).ok())
        .collect();
    at.sort();
    at
}

async fn run(url: &str, total: usize, clients: usize) -> Result<(), Box<dyn std::error::Error>> {
    let statuses = std::env::var("BENCH_STATUSES").map_or(true, |v| v != "0");
    let mut sim_config = GraphSimConfig {
        throughput_per_sec: LIMIT as u32,
        ..GraphSimConfig::default()
    };
    if !statuses {
        sim_config.statuses.clear();
    }
    let sim = sincro_sim::graph::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        sim_config,
    )
    .await?;
    let data = tempfile::tempdir()?;
    let env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), url.to_string()),
        ("ENCRYPTION_KEY".into(), Sealer::generate_env_value("b1")),
        ("DATA_DIR".into(), data.path().display().to_string()),
        ("NODE_ID".into(), "bench".into()),
        ("DB_POOL_SIZE".into(), "24".into()),
        ("LOG_LEVEL".into(), "warn".into()),
        ("GRAPH_API_BASE".into(), sim.base_url()),
        ("API_RATE_PER_USER_PER_MINUTE".into(), "1000000".into()),
        ("API_RATE_PER_IP_PER_MINUTE".into(), "1000000".into()),
    ]);
    let config = Config::from_map(&env).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = Application::build(
        config,
        listener,
        Options {
            restart_policy: Default::default(),
            fault_injection: false,
        },
    )
    .await?;
    let pool = app.context().pool.clone();
    let sealer = app.context().sealer.clone();
    let created = {
        let mut client = pool.get().await?;
        sincro_core::store::users::create_with_key(&mut client, "bulk@example.com", None, false)
            .await?
            .0
    };
    let (user, key) = (
        created.usuario_id,
        created.key.plaintext.expose().to_string(),
    );
    let http = reqwest::Client::new();
    let (conn, pnid) = connect(&http, &sim.base_url(), &base, &key).await?;
    // Connecting read the number's level from Meta (the simulator's 1,000/s is HIGH).
    let level: Option<String> = pool
        .get()
        .await?
        .query_one(
            "SELECT configuracion->'business_config'->'throughput'->>'level'
             FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&conn],
        )
        .await?
        .get(0);
    if level.as_deref() != Some("HIGH") {
        return Err(format!("the number was connected at level {level:?}, not HIGH").into());
    }
    approved_template(&http, &base, &key, conn).await?;

    // A warm-up first, to other recipients, then taken back out of the queue: a fresh
    // process pays for every page of memory it touches the first time (on this machine's
    // virtual CPUs a third of the process's CPU while its heap grew), which a running daemon
    // paid once, long ago.
    let warm = std::env::var("BENCH_WARMUP")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2 * clients * BATCH)
        / BATCH
        * BATCH;
    if warm > 0 {
        let cold = enqueue(&http, &base, &key, conn, (total, warm), clients).await?;
        let taken = pool
            .get()
            .await?
            .execute(
                "DELETE FROM mensajes_conversacion m USING outbox o
                 WHERE o.message_id = m.id AND o.recipient >= $1",
                &[&recipient(total)],
            )
            .await?;
        println!(
            "warm-up: {warm} messages to other recipients, {clients} clients, fresh process: \
             {cold:.0} msg/s (then {taken} taken back out of the queue)"
        );
    }
    let base_rate = baseline(&pool, &sealer, user, conn, total, clients).await?;
    let rate = enqueue(&http, &base, &key, conn, (0, total), clients).await?;
    println!(
        "enqueue: {total} messages in batches of {BATCH}, {clients} clients: {rate:.0} msg/s; \
         baseline plain multi-row insert of the same rows {base_rate:.0} msg/s; ratio {:.2}",
        rate / base_rate
    );

    // Phase 2: release the backlog.
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE outbox SET due_at = now() WHERE state = 'pending'",
            &[],
        )
        .await?;
    client
        .execute(
            "SELECT pg_notify('sincro_outbox', $1)",
            &[&conn.to_string()],
        )
        .await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs((total / LIMIT) as u64 * 3 + 60);
    loop {
        let sent: i64 = client
            .query_one("SELECT count(*) FROM outbox WHERE state = 'sent'", &[])
            .await?
            .get(0);
        if sent as usize >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let at = accepted_at(&sim, &pnid);
    let refused: i64 = client
        .query_one(
            "SELECT COALESCE(sum(GREATEST(attempts - 1, 0)), 0)::bigint FROM outbox",
            &[],
        )
        .await?
        .get(0);
    report(&at, total, refused, statuses);
    drop(client);
    app.shutdown().await;
    Ok(())
}

/// Phase 2's figures from the accepted sends' times.
fn report(at: &[OffsetDateTime], total: usize, refused: i64, statuses: bool) {
    if at.len() < 2 {
        println!("dispatch: only {} of {total} sent", at.len());
        return;
    }
    let second = time::Duration::seconds(1);
    let steady: Vec<&OffsetDateTime> = at.iter().filter(|t| **t >= at[0] + second).collect();
    let span = (*steady[steady.len() - 1] - *steady[0]).as_seconds_f64();
    let rate = (steady.len() - 1) as f64 / span;
    let mut busiest = 0;
    let mut lo = 0;
    for hi in 0..at.len() {
        while at[hi] - at[lo] >= second {
            lo += 1;
        }
        busiest = busiest.max(hi - lo + 1);
    }
    let mut per_window: HashMap<i64, usize> = HashMap::new();
    for t in at {
        *per_window
            .entry(((*t - at[0]).as_seconds_f64()).floor() as i64)
            .or_default() += 1;
    }
    let over = per_window.values().filter(|n| **n > LIMIT).count();
    println!(
        "dispatch (status webhooks {}): {} of {total} sent in {:.1} s; steady state {rate:.0} msg/s = {:.1} % of the \
         {LIMIT}/s limit; busiest sliding 1-s window {busiest}; fixed 1-s windows over the limit {over} of {}; \
         attempts refused by the simulator {refused}",
        if statuses { "on" } else { "off" },
        at.len(),
        (at[at.len() - 1] - at[0]).as_seconds_f64(),
        rate / LIMIT as f64 * 100.0,
        per_window.len(),
    );
}
