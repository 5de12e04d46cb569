//! The PostgreSQL limit for the daemon's own rows: the same messages written by plain SQL,
//! with the daemon's durability, into the daemon's tables as the scenarios left them (their
//! leads, conversations, keys, indexes and sizes). `baseline.rs` writes one row a message into
//! a table without keys; the daemon writes about five, so that figure bounds nothing it could
//! reach. This one is what PostgreSQL allows for the rows the daemon must write.
//!
//! Each POST's sealed body is committed to `webhook_inbox` on its own (one commit per POST, on
//! the scenario's number of connections), and once committed its messages are stored by
//! [`WRITERS`] connections in transactions of about [`STEP`] messages (whole POSTs): the contacts'
//! conversations updated, the messages inserted (bodies sealed, metadata as the daemon keeps
//! it), their `message.received` events appended (sealed, the user's counter bumped, taken
//! last) and the inbox rows marked done. Left out is the daemon's own work: HTTP, the
//! signature, parsing, finding each contact's lead and conversation (known here), the claim's
//! read and the stream.

use super::load::{self, Target};
use futures::StreamExt;
use sincro_core::seal::{Purpose, Sealer};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Mutex, mpsc};
use tokio_postgres::Client;
use uuid::Uuid;

/// Connections storing the committed messages (the drain's default lanes).
pub const WRITERS: usize = 2;
/// Messages per storing transaction: POSTs are added while fewer than this are taken.
pub const STEP: usize = 500;

/// One contact's conversation as the scenarios left it.
#[derive(Clone)]
struct Conversation {
    id: Uuid,
    lead: Uuid,
    remitente: String,
}

/// One POST's worth: its sealed inbox body and its messages' rows.
struct Post {
    body: String,
    messages: Vec<Message>,
}

struct Message {
    conversation: usize,
    external_id: String,
    body: String,
    metadata: serde_json::Value,
    event: String,
}

/// What the baseline measured.
pub struct Measured {
    /// Messages per second, from the first inbox insert until the last message was stored.
    pub rate: f64,
    /// CPU seconds of PostgreSQL's backends per 1,000 messages.
    pub cpu_pg: f64,
}

/// `count` messages through the inbox and into the daemon's tables, in POSTs of `per_post`
/// on `connections` connections; `watch` (on `database`) reads the backends' CPU.
pub async fn measure(
    url: &str,
    watch: &Client,
    database: &str,
    target: &Target,
    count: usize,
    per_post: usize,
    connections: usize,
) -> Result<Measured, super::Error> {
    let connection: Uuid = watch
        .query_one(
            "SELECT connection_id FROM conversaciones WHERE connection_id IS NOT NULL LIMIT 1",
            &[],
        )
        .await?
        .get(0);
    let user: Uuid = watch
        .query_one(
            "SELECT usuario_id FROM configuracion_mensajeria_usuario WHERE id = $1",
            &[&connection],
        )
        .await?
        .get(0);
    let conversations: Vec<Conversation> = watch
        .query(
            "SELECT id, lead_id, remitente FROM conversaciones WHERE connection_id = $1 ORDER BY id",
            &[&connection],
        )
        .await?
        .iter()
        .map(|r| Conversation {
            id: r.get(0),
            lead: r.get(1),
            remitente: r.get(2),
        })
        .collect();
    let sealer = Sealer::from_env_value(&Sealer::generate_env_value("b1"))?;
    let run = format!("crm{}", Uuid::now_v7().simple());
    let posts = posts(
        &sealer,
        target,
        &run,
        count,
        per_post,
        &conversations,
        connection,
    );
    let rows = Rows {
        user,
        connection,
        phone_number_id: target.phone_number_id.clone(),
        conversations,
    };

    let meter = super::cpu::CpuMeter::start(watch, database).await;
    let started = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel::<(i64, Arc<Post>)>();
    let rx = Arc::new(Mutex::new(rx));
    let mut storing = Vec::new();
    for _ in 0..WRITERS {
        let c = super::connect(url).await?;
        let (rx, rows) = (rx.clone(), rows.clone());
        storing.push(tokio::spawn(async move { store(c, &rx, &rows).await }));
    }
    let mut inbox = Vec::new();
    for _ in 0..connections {
        inbox.push(super::connect(url).await?);
    }
    let posts: Vec<Arc<Post>> = posts.into_iter().map(Arc::new).collect();
    let results: Vec<Result<(), tokio_postgres::Error>> = futures::stream::iter(
        inbox
            .iter()
            .enumerate()
            .map(|(i, c)| (c, posts.iter().skip(i).step_by(connections))),
    )
    .map(|(client, mine)| {
        let (tx, rows) = (tx.clone(), &rows);
        async move {
            // Due never: the daemon's own drain, still running, must not take these rows.
            let insert = client
                .prepare(
                    "INSERT INTO webhook_inbox (source, phone_number_id, signed_by, body, next_attempt_at)
                     VALUES ('meta', $1, $2, $3, 'infinity') RETURNING id",
                )
                .await?;
            let signed_by = vec![rows.user];
            for post in mine {
                let id: i64 = client
                    .query_one(&insert, &[&rows.phone_number_id, &signed_by, &post.body])
                    .await?
                    .get(0);
                let _ = tx.send((id, post.clone()));
            }
            Ok(())
        }
    })
    .buffer_unordered(connections)
    .collect()
    .await;
    drop(tx);
    for r in results {
        r?;
    }
    // The storing connections stay open until the CPU is read: a closed backend's is lost.
    let mut open = Vec::new();
    for s in storing {
        open.push(s.await??);
    }
    let took = started.elapsed();
    let cpu_pg = meter.stop(watch, database).await.pg;
    drop(open);
    let stored = super::stored(watch, &run).await?;
    if stored as usize != count {
        return Err(format!("the CRM baseline stored {stored} of {count} messages").into());
    }
    Ok(Measured {
        rate: count as f64 / took.as_secs_f64(),
        cpu_pg: cpu_pg / (count as f64 / 1000.0),
    })
}

/// What every storing connection writes for.
#[derive(Clone)]
struct Rows {
    user: Uuid,
    connection: Uuid,
    phone_number_id: String,
    conversations: Vec<Conversation>,
}

/// The POSTs of the run, sealed beforehand so that only PostgreSQL's work is timed.
fn posts(
    sealer: &Sealer,
    target: &Target,
    run: &str,
    count: usize,
    per_post: usize,
    conversations: &[Conversation],
    connection: Uuid,
) -> Vec<Post> {
    (0..count)
        .step_by(per_post)
        .map(|first| {
            let n = per_post.min(count - first);
            let body = sealer.seal(Purpose::Webhook, &load::body(target, run, first, n));
            let messages = (first..first + n)
                .map(|i| {
                    let conversation = i % conversations.len();
                    let external_id = load::wamid(run, i);
                    let text = format!("message {i}: a reply of realistic length to the campaign");
                    let c = &conversations[conversation];
                    let wa_id = c.remitente.trim_start_matches('+');
                    let event = serde_json::json!({
                        "message_id": Uuid::now_v7(), "conversation_id": c.id,
                        "lead_id": c.lead, "connection_id": connection, "external_id": external_id,
                        "from": c.remitente, "wa_id": wa_id,
                        "direction": "entrante", "name": format!("Contact {i}"), "type": "text",
                        "text": text, "payload": null, "details": {}, "timestamp": 1760000000,
                    });
                    Message {
                        conversation,
                        body: sealer.seal_str(Purpose::MessageBody, &text),
                        metadata: serde_json::json!({"connection_id": connection,
                            "provider_timestamp": 1760000000, "wa_id": wa_id, "details": {}}),
                        event: sealer.seal(Purpose::Event, event.to_string().as_bytes()),
                        external_id,
                    }
                })
                .collect();
            Post { body, messages }
        })
        .collect()
}

/// Takes committed POSTs off the queue, about [`STEP`] messages a transaction, until the
/// queue is closed and empty; gives the connection back.
async fn store(
    client: Client,
    queue: &Mutex<mpsc::UnboundedReceiver<(i64, Arc<Post>)>>,
    rows: &Rows,
) -> Result<Client, super::Error> {
    let conversations = client
        .prepare(
            "UPDATE conversaciones AS c SET last_inbound_at = GREATEST(c.last_inbound_at, now()),
                 last_message_at = GREATEST(c.last_message_at, now()), updated_at = now()
             FROM unnest($1::uuid[]) AS x(i) WHERE c.id = x.i",
        )
        .await?;
    let messages = client
        .prepare(
            "INSERT INTO mensajes_conversacion (id, conversacion_id, usuario_id, connection_id, tipo,
                 contenido, remitente, canal, metadata, direccion, external_id, estado)
             SELECT i, v, $3, $4, 'texto', b, f, 'whatsapp', m, 'entrante', e, 'received'
             FROM unnest($1::uuid[], $2::uuid[], $5::text[], $6::text[], $7::jsonb[], $8::text[])
                  AS x(i, v, b, f, m, e)
             ON CONFLICT (connection_id, external_id) WHERE external_id IS NOT NULL DO NOTHING",
        )
        .await?;
    let counter = client
        .prepare(
            "INSERT INTO event_counters (usuario_id, last_seq) VALUES ($1, $2)
             ON CONFLICT (usuario_id) DO UPDATE SET last_seq = event_counters.last_seq + EXCLUDED.last_seq
             RETURNING last_seq",
        )
        .await?;
    let events = client
        .prepare(
            "INSERT INTO events (usuario_id, seq, type, payload)
             SELECT $1, s, 'message.received', p FROM unnest($2::bigint[], $3::text[]) AS x(s, p)",
        )
        .await?;
    let mark = client
        .prepare(
            "UPDATE webhook_inbox SET processed_at = now(), attempts = attempts + 1, error = NULL
             WHERE id = ANY($1)",
        )
        .await?;
    loop {
        let mut step: Vec<(i64, Arc<Post>)> = Vec::new();
        {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(first) => step.push(first),
                None => return Ok(client),
            }
            let mut n = step[0].1.messages.len();
            while n < STEP {
                match queue.try_recv() {
                    Ok(next) => {
                        n += next.1.messages.len();
                        step.push(next);
                    }
                    Err(_) => break,
                }
            }
        }
        let all: Vec<&Message> = step.iter().flat_map(|(_, p)| &p.messages).collect();
        let ids: Vec<Uuid> = all.iter().map(|_| Uuid::now_v7()).collect();
        let of: Vec<Uuid> = all
            .iter()
            .map(|m| rows.conversations[m.conversation].id)
            .collect();
        // Each conversation once, in one order for every writer (no deadlock between them).
        let mut convs = of.clone();
        convs.sort_unstable();
        convs.dedup();
        let bodies: Vec<&str> = all.iter().map(|m| m.body.as_str()).collect();
        let froms: Vec<&str> = all
            .iter()
            .map(|m| rows.conversations[m.conversation].remitente.as_str())
            .collect();
        let metas: Vec<&serde_json::Value> = all.iter().map(|m| &m.metadata).collect();
        let exts: Vec<&str> = all.iter().map(|m| m.external_id.as_str()).collect();
        let payloads: Vec<&str> = all.iter().map(|m| m.event.as_str()).collect();
        let inbox: Vec<i64> = step.iter().map(|(id, _)| *id).collect();
        client.batch_execute("BEGIN").await?;
        client.execute(&conversations, &[&convs]).await?;
        client
            .execute(
                &messages,
                &[
                    &ids,
                    &of,
                    &rows.user,
                    &rows.connection,
                    &bodies,
                    &froms,
                    &metas,
                    &exts,
                ],
            )
            .await?;
        client.execute(&mark, &[&inbox]).await?;
        let n = all.len() as i64;
        let last: i64 = client.query_one(&counter, &[&rows.user, &n]).await?.get(0);
        let seqs: Vec<i64> = (last - n + 1..=last).collect();
        client
            .execute(&events, &[&rows.user, &seqs, &payloads])
            .await?;
        client.batch_execute("COMMIT").await?;
    }
}
