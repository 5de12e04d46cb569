//! Ingest throughput harness: messages per second through the real one-transaction
//! batch (lead find-or-create, conversation upsert, sealed message insert, events), against a
//! baseline measured in the same run: a plain batched INSERT of the same rows (no leads, no
//! conversations, no sealing, no events) into a scratch table of the same shape.
//!
//! `cargo run --release --example ingest_bench [-- MESSAGES [BATCH [CONCURRENCY]]]`
//! (CONCURRENCY: batches in flight at once, as the Ingest actor runs them; default 2); PostgreSQL from
//! `BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432`). It creates and drops its own
//! database and stops by itself.

use serde_json::json;
use sincro_core::ingest::batch::ingest_batch;
use sincro_core::ingest::{InboundItem, InboundMessage, MessageKind};
use sincro_core::seal::Sealer;
use sincro_core::store::{self, migrate};
use std::time::Instant;
use time::OffsetDateTime;
use uuid::Uuid;

const USERS: usize = 10;
const CONTACTS_PER_USER: usize = 500;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let batch: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(500);
    let concurrency: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2);
    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("sw_bench_{}", Uuid::new_v4().simple());
    let (admin, conn) =
        tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let result = run(&format!("{server}/{name}"), total, batch, concurrency).await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    result
}

async fn run(
    url: &str,
    total: usize,
    batch: usize,
    concurrency: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let pool = store::connect_pool(url, concurrency + 2)?;
    let mut client = pool.get().await?;
    migrate::migrate(&mut client).await?;
    let sealer = Sealer::from_env_value(&Sealer::generate_env_value("b1"))?;
    let mut users = Vec::new();
    for i in 0..USERS {
        let u = Uuid::now_v7();
        client
            .execute(
                "INSERT INTO usuarios (id, email) VALUES ($1, $2)",
                &[&u, &format!("bench{i}@example.com")],
            )
            .await?;
        let c: Uuid = client
            .query_one(
                "INSERT INTO configuracion_mensajeria_usuario (usuario_id) VALUES ($1) RETURNING id",
                &[&u],
            )
            .await?
            .get(0);
        users.push((u, c));
    }
    let now = OffsetDateTime::now_utc();
    let items: Vec<InboundItem> = (0..total)
        .map(|i| {
            let (u, c) = users[i % USERS];
            let contact = (i / USERS) % CONTACTS_PER_USER;
            InboundItem::Message(InboundMessage {
                usuario_id: u,
                connection_id: c,
                external_id: format!("wamid.bench.{i}"),
                from: format!("+55119{:08}", 10_000_000 + contact),
                outgoing: false,
                profile_name: Some(format!("Contact {contact}")),
                profile_picture_url: None,
                kind: MessageKind::Texto,
                text: Some(format!(
                    "message number {i} with a realistic length of text, about sixty chars"
                )),
                payload: json!({"body": "..."}),
                details: json!({}),
                timestamp: now,
            })
        })
        .collect();

    // Baseline: the same rows, plain batched INSERT.
    client
        .batch_execute(
            "CREATE TABLE bench_plain (id uuid PRIMARY KEY, usuario_id uuid, connection_id uuid, tipo text,
                 contenido text, remitente text, metadata jsonb, external_id text, created_at timestamptz DEFAULT now())",
        )
        .await?;
    let started = Instant::now();
    for chunk in items.chunks(batch) {
        let mut ids = Vec::new();
        let mut us = Vec::new();
        let mut cs = Vec::new();
        let mut bodies = Vec::new();
        let mut froms = Vec::new();
        let mut metas = Vec::new();
        let mut exts = Vec::new();
        for item in chunk {
            let InboundItem::Message(m) = item else {
                continue;
            };
            ids.push(Uuid::now_v7());
            us.push(m.usuario_id);
            cs.push(m.connection_id);
            bodies.push(m.text.clone().unwrap_or_default());
            froms.push(m.from.clone());
            metas.push(m.details.clone());
            exts.push(m.external_id.clone());
        }
        client
            .execute(
                "INSERT INTO bench_plain (id, usuario_id, connection_id, tipo, contenido, remitente, metadata, external_id)
                 SELECT i, u, c, 'texto', b, f, m, e FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::text[]) AS x(i, u, c, b, f, m, e)",
                &[&ids, &us, &cs, &bodies, &froms, &metas, &exts],
            )
            .await?;
    }
    let baseline = started.elapsed();

    // Ingest: the real pipeline, one transaction per batch, `concurrency` batches in flight.
    let started = Instant::now();
    let reports = run_batches(&pool, &sealer, &items, batch, concurrency).await?;
    let ingest = started.elapsed();
    let inserted: usize = reports.iter().map(|r| r.messages_inserted).sum();
    let events: usize = reports.iter().map(|r| r.events).sum();
    assert_eq!(inserted, total, "every message stored once");

    // Replay: the same batches again (dedupe path).
    let started = Instant::now();
    let reports = run_batches(&pool, &sealer, &items, batch, concurrency).await?;
    assert!(reports.iter().all(|r| r.messages_inserted == 0));
    let replay = started.elapsed();

    let rate = |d: std::time::Duration| total as f64 / d.as_secs_f64();
    println!(
        "ingest_bench: {total} messages, batches of {batch}, {concurrency} in flight, {USERS} users x {CONTACTS_PER_USER} contacts, {events} events"
    );
    println!(
        "  baseline plain batched INSERT: {:>10.0} msg/s ({:.2} s)",
        rate(baseline),
        baseline.as_secs_f64()
    );
    println!(
        "  ingest pipeline:               {:>10.0} msg/s ({:.2} s)  = {:.2} x baseline",
        rate(ingest),
        ingest.as_secs_f64(),
        rate(ingest) / rate(baseline)
    );
    println!(
        "  duplicate replay:              {:>10.0} msg/s ({:.2} s)  = {:.2} x baseline",
        rate(replay),
        replay.as_secs_f64(),
        rate(replay) / rate(baseline)
    );
    Ok(())
}

/// Runs the batches with `concurrency` in flight, each on its own pooled connection, retrying
/// a batch that lost a deadlock as the Ingest actor does.
async fn run_batches(
    pool: &deadpool_postgres::Pool,
    sealer: &Sealer,
    items: &[InboundItem],
    batch: usize,
    concurrency: usize,
) -> Result<Vec<sincro_core::ingest::IngestReport>, Box<dyn std::error::Error>> {
    use futures::StreamExt;
    let results: Vec<Result<_, sincro_core::store::StoreError>> =
        futures::stream::iter(items.chunks(batch))
            .map(|chunk| async move {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let mut client = pool.get().await?;
                    match ingest_batch(&mut client, sealer, Some("BR"), &Default::default(), chunk)
                        .await
                    {
                        Err(e) if attempt < 4 && e.is_retryable_conflict() => continue,
                        other => return other,
                    }
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    Ok(results.into_iter().collect::<Result<Vec<_>, _>>()?)
}
