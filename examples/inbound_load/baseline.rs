//! The PostgreSQL baselines, measured in the same run on the same server: the same message
//! rows written (1) as plain batched inserts, [`BATCH`] rows per statement (one commit each) on
//! [`BATCH_CONNECTIONS`] connections, the most PostgreSQL takes here; (2) one commit per
//! message on [`SINGLE_CONNECTIONS`] connections, what a request-per-commit server gets.
//! Into a scratch table shaped like the messages table (no leads, conversations, sealing or
//! events), as `examples/ingest_bench.rs` does.

use futures::StreamExt;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const BATCH: usize = 100;
pub const BATCH_CONNECTIONS: usize = 4;
pub const SINGLE_CONNECTIONS: usize = 8;

/// One scratch row.
struct Row {
    id: Uuid,
    from: String,
    body: String,
    external_id: String,
}

fn rows(run: &str, count: usize, contacts: usize) -> Vec<Row> {
    (0..count)
        .map(|n| Row {
            id: Uuid::now_v7(),
            from: format!("+55119{:08}", 10_000_000 + n % contacts),
            body: format!("message {n}: a reply of realistic length to the campaign"),
            external_id: format!("wamid.{run}.{n}"),
        })
        .collect()
}

/// Messages per second of each baseline: (batched, one commit per message).
pub async fn measure(url: &str, count: usize, contacts: usize) -> Result<(f64, f64), super::Error> {
    let client = super::connect(url).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_plain (id uuid PRIMARY KEY, usuario_id uuid, connection_id uuid,
                 tipo text, contenido text, remitente text, metadata jsonb, external_id text UNIQUE,
                 created_at timestamptz DEFAULT now())",
        )
        .await?;
    let user = Uuid::now_v7();
    let batched = rows("base-batch", count, contacts);
    let took = write(url, &batched, BATCH, BATCH_CONNECTIONS, user).await?;
    let batched_rate = count as f64 / took.as_secs_f64();
    let single = rows("base-single", count.min(20_000), contacts);
    let took = write(url, &single, 1, SINGLE_CONNECTIONS, user).await?;
    let single_rate = single.len() as f64 / took.as_secs_f64();
    client.batch_execute("DROP TABLE bench_plain").await?;
    Ok((batched_rate, single_rate))
}

/// Writes `rows` in statements of `per` rows over `connections` connections.
async fn write(
    url: &str,
    rows: &[Row],
    per: usize,
    connections: usize,
    user: Uuid,
) -> Result<Duration, super::Error> {
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(super::connect(url).await?);
    }
    let started = Instant::now();
    let chunks: Vec<&[Row]> = rows.chunks(per).collect();
    let results: Vec<Result<u64, tokio_postgres::Error>> = futures::stream::iter(
        clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c, chunks.iter().skip(i).step_by(connections))),
    )
    .map(|(client, mine)| async move {
        let mut n = 0;
        for chunk in mine {
            let ids: Vec<Uuid> = chunk.iter().map(|r| r.id).collect();
            let froms: Vec<&str> = chunk.iter().map(|r| r.from.as_str()).collect();
            let bodies: Vec<&str> = chunk.iter().map(|r| r.body.as_str()).collect();
            let exts: Vec<&str> = chunk.iter().map(|r| r.external_id.as_str()).collect();
            n += client
                .execute(
                    "INSERT INTO bench_plain (id, usuario_id, connection_id, tipo, contenido, remitente, metadata, external_id)
                     SELECT i, $5, $5, 'texto', b, f, '{}'::jsonb, e
                     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS x(i, f, b, e)",
                    &[&ids, &froms, &bodies, &exts, &user],
                )
                .await?;
        }
        Ok(n)
    })
    .buffer_unordered(connections)
    .collect()
    .await;
    for r in results {
        r?;
    }
    Ok(started.elapsed())
}
