//! Dispatch benchmark: the real Dispatcher of a full daemon (claims under lease,
//! RateLimiter permits, in-flight marking, outcome recording with events) draining a backlog
//! spread over 50 Business connections into fake connection actors that keep each message's
//! departure (its slot, spacing and window cap, as the real actors do) and then accept it at
//! once. The fake stands in for the Graph API, so the figures are the queue's own cost, not
//! Meta's latency; the windows are counted where requests would leave. Three phases, one run:
//!
//! 1. baseline: a plain claim-and-update loop over the same rows (`FOR UPDATE SKIP LOCKED`
//!    batches of 100 set straight to `sent`; no leases, permits, events or actors);
//! 2. throughput: the Dispatcher with limits raised out of the way (100,000/s per connection);
//! 3. limits: every connection at `LIMIT`/s with a backlog of several seconds: the share of
//!    each limit used in steady state and the busiest 1-s window of each connection.
//!
//! `cargo run --release --example dispatch_bench [-- MESSAGES LIMIT SECONDS]` (defaults
//! 30000, 100, 8); PostgreSQL from `BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432`).
//! It creates and drops its own database.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sincro_core::connection::{
    ConnectionKind, ConnectionRef, Departures, OutboundMessage, SendOutcome,
};
use sincro_core::seal::{Purpose, Sealer};
use sincro_whatsapp::app::{Application, Options};
use sincro_whatsapp::config::Config;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Connections, 50 unless `BENCH_CONNECTIONS` says otherwise.
fn connections() -> usize {
    std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

type Log = Arc<Mutex<Vec<(Uuid, Instant)>>>;

enum FastMsg {
    Send(OutboundMessage, RpcReplyPort<SendOutcome>),
}

struct Fast;

impl Actor for Fast {
    type Msg = FastMsg;
    type State = (Log, Departures);
    type Arguments = Log;
    async fn pre_start(
        &self,
        _: ActorRef<FastMsg>,
        log: Log,
    ) -> Result<(Log, Departures), ActorProcessingErr> {
        Ok((log, Departures::default()))
    }
    async fn handle(
        &self,
        _: ActorRef<FastMsg>,
        m: FastMsg,
        (log, departures): &mut (Log, Departures),
    ) -> Result<(), ActorProcessingErr> {
        let FastMsg::Send(m, reply) = m;
        // The request "leaves" when its departure says, as a real connection actor lets it.
        departures.wait(m.departure).await;
        log.lock().unwrap().push((m.connection_id, Instant::now()));
        let _ = reply.send(SendOutcome::Sent {
            external_id: format!("bench.{}", m.message_id),
        });
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(30_000);
    let limit: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let seconds: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(8);
    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("sw_bench_{}", Uuid::new_v4().simple());
    let (admin, conn) =
        tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let result = run(&format!("{server}/{name}"), total, limit, seconds).await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    result
}

/// Inserts `per_connection` queued messages (message + outbox rows) on each connection.
async fn fill(
    client: &deadpool_postgres::Client,
    sealer: &Sealer,
    user: Uuid,
    conns: &[Uuid],
    per_connection: usize,
    tag: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let payload = sealer.seal_str(
        Purpose::MessageBody,
        r#"{"type":"text","text":{"body":"benchmark message"}}"#,
    );
    for (k, c) in conns.iter().enumerate() {
        client
            .execute(
                "WITH conv AS (
                     INSERT INTO conversaciones (usuario_id, servicio_origen, tipo, remitente, connection_id)
                     VALUES ($1, 'whatsapp', 'saliente', $5, $2) RETURNING id),
                 ids AS (SELECT gen_random_uuid() AS id, g FROM generate_series(1, $3) g),
                 m AS (INSERT INTO mensajes_conversacion (id, conversacion_id, usuario_id, connection_id, tipo,
                           canal, direccion, estado)
                       SELECT ids.id, conv.id, $1, $2, 'texto', 'whatsapp', 'saliente', 'queued' FROM ids, conv
                       RETURNING id)
                 INSERT INTO outbox (message_id, usuario_id, connection_id, recipient, payload, priority, kind, created_at, due_at)
                 SELECT ids.id, $1, $2, '+55119' || lpad((ids.g + $6)::text, 8, '0'), $4, 2, 'text',
                        now() + ids.g * interval '1 microsecond', now() + ids.g * interval '1 microsecond'
                 FROM ids",
                &[&user, c, &(per_connection as i32), &payload, &format!("+5511{tag}{k:04}"), &((k * 100_000) as i32)],
            )
            .await?;
    }
    Ok(())
}

async fn sent_count(client: &deadpool_postgres::Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT count(*) FROM outbox WHERE state = 'sent'", &[])
        .await?
        .get(0))
}

async fn run(
    url: &str,
    total: usize,
    limit: u32,
    seconds: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let key = Sealer::generate_env_value("b1");
    let env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), url.to_string()),
        ("ENCRYPTION_KEY".into(), key.clone()),
        ("DATA_DIR".into(), data.path().display().to_string()),
        ("NODE_ID".into(), "bench".into()),
        ("DB_POOL_SIZE".into(), "24".into()),
        ("LOG_LEVEL".into(), "warn".into()),
    ]);
    let config = Config::from_map(&env).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = Application::build(
        config,
        listener,
        Options {
            restart_policy: Default::default(),
            fault_injection: false,
        },
    )
    .await?;
    let shared = app.context().shared.clone();
    let sealer = app.context().sealer.clone();
    let client = app.context().pool.get().await?;
    let user: Uuid = client
        .query_one(
            "INSERT INTO usuarios (email) VALUES ('bench@example.com') RETURNING id",
            &[],
        )
        .await?
        .get(0);
    let mut conns = Vec::new();
    for _ in 0..connections() {
        let c: Uuid = client
            .query_one(
                "INSERT INTO configuracion_mensajeria_usuario (usuario_id, configuracion)
                 VALUES ($1, '{\"tipo_conexion\":\"business\",\"settings\":{\"send_rate_per_second\":100000}}') RETURNING id",
                &[&user],
            )
            .await?
            .get(0);
        conns.push(c);
    }
    let per = total / connections();
    let n = (per * connections()) as f64;

    // 1. Baseline: claim and update the same rows, nothing else.
    fill(&client, &sealer, user, &conns, per, "1").await?;
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let pool = app.context().pool.clone();
            tokio::spawn(async move {
                let client = pool.get().await.unwrap();
                loop {
                    let n = client
                        .execute(
                            "UPDATE outbox o SET state = 'sent', sent_at = now(), attempts = attempts + 1, updated_at = now()
                             FROM (SELECT message_id FROM outbox WHERE state = 'pending' AND due_at <= now()
                                   ORDER BY priority, due_at LIMIT 100 FOR UPDATE SKIP LOCKED) c
                             WHERE o.message_id = c.message_id",
                            &[],
                        )
                        .await
                        .unwrap();
                    if n == 0 {
                        break;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let baseline = n / started.elapsed().as_secs_f64();
    println!(
        "baseline claim-and-update loop: {n} rows in {:.2} s = {baseline:.0} msg/s",
        started.elapsed().as_secs_f64()
    );
    client
        .batch_execute(
            "DELETE FROM outbox; DELETE FROM mensajes_conversacion; DELETE FROM conversaciones",
        )
        .await?;

    // 2. The Dispatcher with limits out of the way.
    fill(&client, &sealer, user, &conns, per, "2").await?;
    let log: Log = Arc::default();
    let started = Instant::now();
    let mut actors = Vec::new();
    for c in &conns {
        let (actor, _) = Actor::spawn(None, Fast, log.clone()).await?;
        shared.connections.register(
            *c,
            ConnectionRef::new(ConnectionKind::Business, actor.clone(), FastMsg::Send),
        );
        actors.push(actor);
    }
    while sent_count(&client).await? < n as i64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = n / elapsed;
    println!(
        "dispatcher, limits raised: {n} messages over {} connections in {elapsed:.2} s = {rate:.0} msg/s ({:.2}x the baseline)",
        connections(),
        rate / baseline
    );
    for c in &conns {
        shared.connections.unregister(*c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    client
        .batch_execute(
            "DELETE FROM outbox; DELETE FROM mensajes_conversacion; DELETE FROM conversaciones",
        )
        .await?;

    // 3. Every connection at `limit`/s with a backlog of `seconds` seconds.
    client
        .execute(
            "UPDATE configuracion_mensajeria_usuario SET configuracion = jsonb_set(configuracion, '{settings,send_rate_per_second}', to_jsonb($1::int))",
            &[&(limit as i32)],
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(31)).await; // lanes re-read limits every 30 s; new lanes read them at once
    let per = (limit * seconds) as usize;
    fill(&client, &sealer, user, &conns, per, "3").await?;
    log.lock().unwrap().clear();
    let started = Instant::now();
    for (c, actor) in conns.iter().zip(&actors) {
        shared.connections.register(
            *c,
            ConnectionRef::new(ConnectionKind::Business, actor.clone(), FastMsg::Send),
        );
    }
    let expected = (per * connections()) as i64;
    while sent_count(&client).await? < expected {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut by_conn: HashMap<Uuid, Vec<Instant>> = HashMap::new();
    for (c, at) in log.lock().unwrap().iter() {
        by_conn.entry(*c).or_default().push(*at);
    }
    let mut shares = Vec::new();
    let mut worst_window = 0;
    for times in by_conn.values_mut() {
        times.sort();
        // Steady state: from the end of the first second to the last send.
        let t0 = times[0] + Duration::from_secs(1);
        let steady: Vec<&Instant> = times.iter().filter(|t| **t >= t0).collect();
        if steady.len() > 1 {
            let span = steady
                .last()
                .unwrap()
                .duration_since(*steady[0])
                .as_secs_f64();
            shares.push((steady.len() - 1) as f64 / span / limit as f64);
        }
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi].duration_since(times[lo]) >= Duration::from_secs(1) {
                lo += 1;
            }
            worst_window = worst_window.max(hi - lo + 1);
        }
    }
    shares.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = shares.iter().sum::<f64>() / shares.len() as f64;
    println!(
        "limits {limit}/s x {} connections, {expected} messages in {elapsed:.2} s = {:.0} msg/s ({:.2}x the baseline); \
         share of each limit used in steady state: min {:.1} %, mean {mean_pct:.1} %, max {:.1} %; busiest 1-s window {worst_window} (limit {limit})",
        connections(),
        expected as f64 / elapsed,
        expected as f64 / elapsed / baseline,
        shares[0] * 100.0,
        shares[shares.len() - 1] * 100.0,
        mean_pct = mean * 100.0,
    );
    for a in actors {
        a.stop(None);
    }
    drop(client);
    app.shutdown().await;
    Ok(())
}
