//! The queue against the Graph simulator and real Business number actors: 1,000 messages to
//! one number never exceed its 80/s in any one-second window at the simulator; `kill -9` of a
//! daemon process in the middle of a 2,000-message backlog, then a restart: every message sent
//! once (by the simulator's count), except those marked uncertain (sent at most once, and only
//! those in flight when the daemon died); two
//! daemons on one database and one number: one sender at a time (the lease holder), never
//! over 80 in a second together, and the survivor takes over when the other stops.

use super::{dispatcher_stats, outbox_states, text};
use crate::helpers::{
    BusinessNumber, TestApp, base_env, eventually, fresh_database, spawn_app_sharing,
    spawn_app_with,
};
use crate::process;
use serde_json::json;
use sincro_sim::graph::{GraphSimConfig, GraphSimHandle, SentMessage};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

fn contact(i: usize) -> String {
    format!("+551198800{:04}", i)
}

async fn start_sim() -> GraphSimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sincro_sim::graph::start(listener, GraphSimConfig::default())
        .await
        .expect("graph simulator")
}

fn queue_env(env: &mut HashMap<String, String>, sim: &str) {
    env.insert("GRAPH_API_BASE".into(), sim.to_string());
    env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "1000000".into());
    env.insert("API_RATE_PER_IP_PER_MINUTE".into(), "1000000".into());
}

/// Each contact writes once, all within a moment (opening the 24 h window at the simulator
/// and, through the signed webhook, in the daemon's store).
async fn contacts_write(
    http: &reqwest::Client,
    sim: &str,
    n: &BusinessNumber,
    count: usize,
    pool: &deadpool_postgres::Pool,
) {
    use futures::StreamExt;
    futures::stream::iter(0..count)
        .map(|i| {
            let req = http
                .post(format!("{sim}/sim/inbound"))
                .json(&json!({"phone_number_id": n.phone_number_id, "from": contact(i), "name": "C", "message": {"type": "text", "text": {"body": "hi"}}}));
            async move {
                let r = req.send().await.unwrap();
                assert_eq!(r.status().as_u16(), 202);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let open = eventually(Duration::from_secs(30), || async {
        let client = pool.get().await.ok()?;
        let n: i64 = client
            .query_one("SELECT count(*) FROM conversaciones WHERE last_inbound_at > now() - interval '1 hour'", &[])
            .await
            .ok()?
            .get(0);
        (n as usize >= count).then_some(())
    })
    .await;
    assert!(open.is_some(), "the contacts' messages reached the daemon");
}

/// Queues `count` texts "m-<i>" round-robin over `contacts` recipients, 16 requests at a time.
async fn queue_many(app: &TestApp, key: &str, conn: Uuid, count: usize, contacts: usize) {
    queue_many_at(app, key, conn, count, contacts, None).await
}

/// As [`queue_many`], every message due at `send_at` if given.
async fn queue_many_at(
    app: &TestApp,
    key: &str,
    conn: Uuid,
    count: usize,
    contacts: usize,
    send_at: Option<String>,
) {
    use futures::StreamExt;
    futures::stream::iter(0..count)
        .map(|i| {
            let mut body = text(conn, &contact(i % contacts), &format!("m-{i}"));
            if let Some(at) = &send_at {
                body["send_at"] = json!(at);
            }
            let req = app.post("/v1/messages", key).json(&body);
            async move {
                let r = req.send().await.unwrap();
                assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

fn by_body(sent: &[SentMessage]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for s in sent {
        if let Some(b) = s.request["text"]["body"].as_str() {
            *out.entry(b.to_string()).or_default() += 1;
        }
    }
    out
}

fn max_per_second(sent: &[SentMessage]) -> usize {
    let mut times: Vec<OffsetDateTime> = sent
        .iter()
        .map(|s| {
            OffsetDateTime::parse(
                &s.received_at,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    times.sort();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= time::Duration::seconds(1) {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Sends that needed more than one attempt (here: refused for throughput and retried).
async fn retried_sends(app: &TestApp) -> i64 {
    app.pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM outbox WHERE attempts > 1", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn queue_sim_thousand_messages_never_over_80_per_second() {
    let sim = start_sim().await;
    let base = sim.base_url();
    let app = spawn_app_with(|env| queue_env(env, &base)).await;
    let (_, key) = app.user("rate@queue.test", false).await;
    let n = app.business_number(&base, &key).await;
    contacts_write(&app.http, &base, &n, 25, app.pool()).await;
    queue_many(&app, &key, n.connection_id, 1000, 25).await;
    let done = eventually(Duration::from_secs(60), || async {
        (outbox_states(&app).await.get("sent") == Some(&1000)).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "not all sent: {:?}",
        outbox_states(&app).await
    );
    let sent = sim.sent(Some(&n.phone_number_id));
    assert_eq!(sent.len(), 1000);
    assert!(by_body(&sent).values().all(|c| *c == 1));
    let worst = max_per_second(&sent);
    assert!(worst <= 80, "{worst} messages accepted in one second");
    // The daemon kept to the limit itself: its number actor lets at most 77 sends leave in any
    // second, counted when they actually leave (after the store's checks), so the simulator
    // refused none in our runs, under the full parallel suite too (up to 22 were before that
    // count moved to the last moment). A few are allowed for a pause of this whole test
    // process between a send leaving and the simulator (in the same process) stamping it.
    let retried = retried_sends(&app).await;
    eprintln!("queue: {retried} of 1000 sends refused by the simulator for throughput and retried");
    assert!(retried <= 5, "{retried} of 1000 needed a retry");
}

#[tokio::test]
async fn queue_sim_two_daemons_one_number_one_sender_then_takeover() {
    // Arrange: two nodes on one database; the number is connected on the first and queued
    // through the second.
    let sim = start_sim().await;
    let base = sim.base_url();
    let mut a = spawn_app_with(|env| {
        queue_env(env, &base);
        env.insert("NODE_LEASE_SECS".into(), "3".into());
    })
    .await;
    let b = spawn_app_sharing(&a).await;
    let (_, key) = a.user("two@queue.test", false).await;
    let n = a.business_number(&base, &key).await;
    contacts_write(&a.http, &base, &n, 20, a.pool()).await;
    // The second node learns of the number from the first and runs its actor too.
    let on_b = eventually(Duration::from_secs(10), || async {
        b.app()
            .context()
            .shared
            .connections
            .get(n.connection_id)
            .map(|_| ())
    })
    .await;
    assert!(on_b.is_some(), "the second node never started the number");

    // Act: a backlog of 600 (7.5 s at 80/s); the first node stops gracefully midway.
    queue_many(&b, &key, n.connection_id, 600, 20).await;
    let midway = eventually(Duration::from_secs(60), || async {
        (sim.sent(Some(&n.phone_number_id)).len() >= 150).then_some(())
    })
    .await;
    assert!(midway.is_some(), "nothing was sent");
    let (la, lb) = (
        dispatcher_stats(&a).await.lanes,
        dispatcher_stats(&b).await.lanes,
    );
    assert_eq!(
        la.len() + lb.len(),
        1,
        "exactly one node sends for the number: {la:?} / {lb:?}"
    );
    let stopped_first = if la.is_empty() { "b" } else { "a" };
    let mut b = b;
    let survivor = if stopped_first == "a" {
        a.shutdown().await;
        &b
    } else {
        b.shutdown().await;
        &a
    };

    // Assert: the survivor takes the number over and every message is sent once, never more
    // than 80 in any second at the simulator across both senders.
    let done = eventually(Duration::from_secs(60), || async {
        (outbox_states(survivor).await.get("sent") == Some(&600)).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "not all sent: {:?}",
        outbox_states(survivor).await
    );
    let sent = sim.sent(Some(&n.phone_number_id));
    assert_eq!(sent.len(), 600);
    assert!(by_body(&sent).values().all(|c| *c == 1));
    let worst = max_per_second(&sent);
    assert!(worst <= 80, "{worst} messages accepted in one second");
}

#[tokio::test]
async fn queue_sim_received_messages_take_their_share_of_the_throughput() {
    // Arrange: 60 contacts write within a moment; Meta (and the simulator) count those 60 in
    // the number's 80 per second.
    let sim = start_sim().await;
    let base = sim.base_url();
    let app = spawn_app_with(|env| queue_env(env, &base)).await;
    let (_, key) = app.user("inbound@queue.test", false).await;
    let n = app.business_number(&base, &key).await;
    let write_started = std::time::Instant::now();
    contacts_write(&app.http, &base, &n, 60, app.pool()).await;

    // Act: a backlog to those contacts as soon as their messages are in.
    queue_many(&app, &key, n.connection_id, 120, 60).await;
    let done = eventually(Duration::from_secs(30), || async {
        (outbox_states(&app).await.get("sent") == Some(&120)).then_some(())
    })
    .await;

    // Assert: every message sent once. The sends make room for the received messages (the
    // unit test `received_messages_take_send_slots` pins the accounting): none was refused
    // with 130429 in our runs (4–5 are without the accounting); a few are allowed for a pause
    // of this whole test process, which the simulator shares.
    assert!(done.is_some(), "{:?}", outbox_states(&app).await);
    let sent = sim.sent(Some(&n.phone_number_id));
    assert_eq!(sent.len(), 120);
    assert!(by_body(&sent).values().all(|c| *c == 1));
    let retried = retried_sends(&app).await;
    eprintln!(
        "queue: {retried} of 120 sends after 60 received messages refused for throughput ({} ms after the first inbound)",
        write_started.elapsed().as_millis()
    );
    assert!(retried <= 5, "{retried} sends refused for throughput");
}

#[tokio::test]
async fn queue_sim_lost_answer_is_resolved_by_the_status_webhook() {
    // Arrange: the simulator answers the first send only after the daemon stopped waiting.
    let sim = start_sim().await;
    let base = sim.base_url();
    let app = spawn_app_with(|env| {
        queue_env(env, &base);
        env.insert("SEND_TIMEOUT_SECS".into(), "1".into());
        env.insert("OUTBOX_LEASE_SECS".into(), "10".into());
    })
    .await;
    let (_, key) = app.user("lost@queue.test", false).await;
    let n = app.business_number(&base, &key).await;
    contacts_write(&app.http, &base, &n, 1, app.pool()).await;
    let r = app
        .http
        .post(format!("{base}/sim/faults"))
        .json(&json!({"phone_number_id": n.phone_number_id, "latency_ms": 2500, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());

    // Act
    let id = super::send(
        &app,
        &key,
        &text(n.connection_id, &contact(0), "late answer"),
    )
    .await;

    // Assert: first uncertain (the answer did not come in time), then resolved by the `sent`
    // status carrying our callback data: sent once, with the provider's id, never resent.
    let uncertain = eventually(Duration::from_secs(10), || async {
        (outbox_states(&app).await.get("uncertain") == Some(&1)).then_some(())
    })
    .await;
    assert!(uncertain.is_some(), "{:?}", outbox_states(&app).await);
    let v = super::wait_estado(&app, &key, id, "sent", Duration::from_secs(15)).await;
    let sent = sim.sent(Some(&n.phone_number_id));
    assert_eq!(sent.len(), 1);
    assert_eq!(v["external_id"], json!(sent[0].id), "{v}");
    assert_eq!(
        sent[0].request["biz_opaque_callback_data"],
        json!(format!("sincro:{id}"))
    );
    assert_eq!(outbox_states(&app).await.get("sent"), Some(&1));
    assert_eq!(v["attempts"], 1, "{v}");
}

/// The application name of the test's own database sessions.
const OBSERVER: &str = "sincro-test-observer";

/// The outbox rows in flight (marked, outcome not recorded) once no session of a killed daemon
/// is left on the database. Its sessions end when PostgreSQL reads the closed socket, after
/// finishing whatever statement it was running.
async fn in_flight_after_kill(pool: &deadpool_postgres::Pool) -> HashSet<Uuid> {
    let client = pool.get().await.unwrap();
    let gone = eventually(Duration::from_secs(30), || async {
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name LIKE 'sincro-whatsapp%'",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (left == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the killed daemon's sessions stayed open");
    client
        .query(
            "SELECT message_id FROM outbox WHERE state = 'sending' AND inflight_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn queue_sim_kill_9_mid_backlog_sends_each_once() {
    let sim = start_sim().await;
    let base = sim.base_url();
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let mut env = base_env(&db, data.path());
    queue_env(&mut env, &base);
    env.insert("OUTBOX_LEASE_SECS".into(), "10".into());
    env.insert("SEND_TIMEOUT_SECS".into(), "5".into());
    let mut first = process::serve(env.clone()).await;
    // The test's own connections carry their own application name, so the killed daemon's
    // sessions can be told apart from them in pg_stat_activity.
    let pool =
        sincro_core::store::connect_pool(&format!("{db}?application_name={OBSERVER}"), 4).unwrap();
    let (created, _) = {
        let mut client = pool.get().await.unwrap();
        sincro_core::store::users::create_with_key(&mut client, "kill@queue.test", None, false)
            .await
            .unwrap()
    };
    let key = created.key.plaintext.expose().to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let view = TestApp {
        app: None,
        base: format!("http://{}", first.addr),
        database_url: db.clone(),
        env: env.clone(),
        http: http.clone(),
        _data_dir: tempfile::tempdir().unwrap(),
    };
    let n = view.business_number(&base, &key).await;
    contacts_write(&http, &base, &n, 50, &pool).await;
    // The whole backlog first (scheduled far ahead), then due at once: however slow the
    // requests are here, the kill lands in the middle of the sending.
    let later = (OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    queue_many_at(&view, &key, n.connection_id, 2000, 50, Some(later)).await;
    super::all_due_now(&pool, n.connection_id).await;
    // Mid-backlog: kill -9.
    let midway = eventually(Duration::from_secs(60), || async {
        (sim.sent(Some(&n.phone_number_id)).len() >= 700).then_some(())
    })
    .await;
    assert!(midway.is_some());
    first.signal(libc::SIGKILL);
    let _ = first.child.wait().await;
    let at_kill = sim.sent(Some(&n.phone_number_id)).len();
    assert!(at_kill < 2000, "the backlog was done before the kill");
    // Only the sends in flight when the daemon died may end uncertain: read them once the
    // killed daemon's sessions are gone (a commit it sent just before dying still lands).
    let in_flight = in_flight_after_kill(&pool).await;
    // The same node comes back.
    let mut second = process::serve(env.clone()).await;
    let states = || async {
        let client = pool.get().await.unwrap();
        client
            .query("SELECT state, count(*) FROM outbox GROUP BY state", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect::<HashMap<String, i64>>()
    };
    let settled = eventually(Duration::from_secs(120), || async {
        let s = states().await;
        let done = s.get("sent").copied().unwrap_or(0) + s.get("uncertain").copied().unwrap_or(0);
        (done == 2000).then_some(s)
    })
    .await;
    assert!(settled.is_some(), "not settled: {:?}", states().await);
    let client = pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT o.state, m.contenido, o.message_id, o.last_error FROM outbox o
             JOIN mensajes_conversacion m ON m.id = o.message_id",
            &[],
        )
        .await
        .unwrap();
    let sealer = sincro_core::seal::Sealer::from_env_value(&env["ENCRYPTION_KEY"]).unwrap();
    let sent = sim.sent(Some(&n.phone_number_id));
    let counts = by_body(&sent);
    let (mut uncertain, mut late_answers) = (0, 0);
    for r in &rows {
        let state: String = r.get(0);
        let id: Uuid = r.get(2);
        let body = sealer
            .open_str(
                sincro_core::seal::Purpose::MessageBody,
                &r.get::<_, String>(1),
            )
            .unwrap();
        let c = counts.get(&body).copied().unwrap_or(0);
        if state == "uncertain" {
            uncertain += 1;
            assert!(c <= 1, "{body} (uncertain) sent {c} times");
            // Made uncertain by the restart's recovery: it must have been in flight at the
            // kill. (A send of the second run whose answer timed out is uncertain too, with
            // the transport's error, and still sent at most once.)
            let error: Option<String> = r.get(3);
            if error.is_some_and(|e| e.starts_with("the daemon stopped")) {
                assert!(
                    in_flight.contains(&id),
                    "{body} made uncertain by the restart but not in flight at the kill"
                );
            } else {
                late_answers += 1;
            }
        } else {
            assert_eq!(c, 1, "{body} sent {c} times");
        }
    }
    eprintln!(
        "queue: {uncertain} of 2000 uncertain after kill -9 (at {at_kill} sent, {} in flight, \
         {late_answers} answers of the second run timed out)",
        in_flight.len()
    );
    assert_eq!(sent.len(), counts.values().sum::<usize>());
    second.signal(libc::SIGKILL);
    let _ = second.child.wait().await;
}
