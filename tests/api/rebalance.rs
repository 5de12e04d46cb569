//! Rebalancing between nodes (docs/ARCHITECTURE.md §5): a node that joins takes its fair share
//! of Lite sessions (real Chromium, WhatsApp Web simulator) and Business numbers (Graph
//! simulator) from the busier nodes by graceful hand-over, every message sent or received
//! meanwhile arriving exactly once; a node killed outright leaves its sessions to the others
//! once its leases expire, WORKING again from their snapshots without a QR.

use crate::helpers::{TestApp, eventually, spawn_app_sharing, spawn_app_with};
use crate::lite::{CHROMIUM, CONTACT, Lite, assert_no_chromium, lite_app_with};
use crate::process;
use crate::queue::{outbox_states, send, text, wait_estado};
use serde_json::{Value, json};
use sincro_core::lite::browser;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Lease time to live in these tests: short, so a killed node's sessions move soon, but long
/// enough that nine browsers starting on two cores do not make a node miss its renewals.
const LEASE_SECS: u64 = 8;

/// The account (phone digits) of the i-th session.
fn account(i: usize) -> String {
    format!("55119999902{i:02}")
}

/// Live leases of a kind (`lite:` / `business:`) by node.
async fn leases_by_node(pool: &deadpool_postgres::Pool, prefix: &str) -> HashMap<String, i64> {
    let client = pool.get().await.unwrap();
    client
        .query(
            "SELECT node_id, count(*) FROM leases
             WHERE resource LIKE $1 || '%' AND expires_at > now() GROUP BY node_id",
            &[&prefix],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Per-node counts, largest first (node names differ per run).
fn shape(by_node: &HashMap<String, i64>) -> Vec<i64> {
    let mut v: Vec<i64> = by_node.values().copied().collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

/// Statuses of the user's Lite sessions.
async fn statuses(pool: &deadpool_postgres::Pool) -> Vec<String> {
    let client = pool.get().await.unwrap();
    client
        .query("SELECT status FROM whatsapp_lite_sessions", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Sessions whose row names `node` as the one that last booted them.
async fn rows_on(pool: &deadpool_postgres::Pool, node: &str) -> i64 {
    let client = pool.get().await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM whatsapp_lite_sessions WHERE node_id = $1",
            &[&node],
        )
        .await
        .unwrap()
        .get(0)
}

/// Chromium main processes (group leaders) under a node's `DATA_DIR/lite`.
fn browsers(lite_dir: &Path) -> usize {
    browser::processes_under(lite_dir)
        .into_iter()
        .filter(|&p| browser::state_and_pgid(p).is_some_and(|(s, g)| s != 'Z' && g == p))
        .count()
}

fn lite_dir(data_dir: &str) -> PathBuf {
    sincro_core::lite::absolute(Path::new(data_dir)).join("lite")
}

/// Creates a session through `app` (it starts on that node) and returns its id.
async fn create_on(app: &TestApp, key: &str) -> String {
    let res = app
        .post("/v1/lite/sessions", key)
        .json(&json!({"name": "rebalance"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "create session");
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Queues one text to CONTACT from each session; returns (message id, body).
async fn queue_round(lite: &Lite, sessions: &[String], tag: &str) -> Vec<(Uuid, String)> {
    let mut out = Vec::new();
    for (i, id) in sessions.iter().enumerate() {
        let body = format!("{tag}-{i}");
        let conn: Uuid = id.parse().unwrap();
        let mid = send(
            &lite.app,
            &lite.key,
            &text(conn, &format!("+{CONTACT}"), &body),
        )
        .await;
        out.push((mid, body));
    }
    out
}

/// The contact writes to every session's account; returns the simulator's message ids.
async fn contact_writes_all(lite: &Lite, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = lite
            .sim_post(
                "messages",
                json!({"account": account(i), "from": CONTACT, "name": "Ana", "text": format!("{tag}-{i}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Asserts every queued message was sent once at the simulator (by its body, per account).
async fn sent_once(lite: &Lite, sessions: &[String], queued: &[(Uuid, String)]) {
    for (mid, _) in queued {
        wait_estado(&lite.app, &lite.key, *mid, "sent", Duration::from_secs(120)).await;
    }
    for (i, _) in sessions.iter().enumerate() {
        let on_sim = lite
            .sim_get(&format!("sim/sent?account={}", account(i)))
            .await;
        for (_, body) in queued.iter().filter(|(_, b)| b.ends_with(&format!("-{i}"))) {
            let copies = on_sim
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["body"] == body.as_str())
                .count();
            assert_eq!(copies, 1, "{body} sent {copies} times from {}", account(i));
        }
    }
}

/// Waits until every inbound id is stored, then asserts each is stored once.
async fn received_once(lite: &Lite, ids: &[String]) {
    let client = lite.app.pool().get().await.unwrap();
    let count = |distinct: bool| {
        let client = &client;
        async move {
            let sql = if distinct {
                "SELECT count(DISTINCT external_id) FROM mensajes_conversacion WHERE external_id = ANY($1)"
            } else {
                "SELECT count(*) FROM mensajes_conversacion WHERE external_id = ANY($1)"
            };
            client
                .query_one(sql, &[&ids])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let all = eventually(Duration::from_secs(90), || async {
        (count(true).await == ids.len() as i64).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "only {} of {} inbound stored",
        count(true).await,
        ids.len()
    );
    assert_eq!(
        count(false).await,
        ids.len() as i64,
        "an inbound message stored twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_lite_joining_node_takes_its_share_and_survivors_take_a_killed_nodes() {
    // Arrange: nodes A and B (in this process) run 9 linked sessions, 5 and 4.
    let _turn = CHROMIUM.lock().await;
    let Some(lite) = lite_app_with(|env| {
        env.insert("NODE_LEASE_SECS".into(), LEASE_SECS.to_string());
        env.insert("LITE_MAX_SESSIONS_PER_USER".into(), "9".into());
        env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "1000000".into());
        env.insert("API_RATE_PER_IP_PER_MINUTE".into(), "1000000".into());
        env.insert("DB_POOL_SIZE".into(), "10".into());
    })
    .await
    else {
        return;
    };
    let started = Instant::now();
    let mut b = spawn_app_sharing(&lite.app).await;
    let pool = lite.app.pool().clone();
    // One at a time: nine browsers starting at once on two cores take longer than a QR lasts.
    let mut sessions = Vec::new();
    for i in 0..9 {
        let on = if i < 5 { &lite.app } else { &b };
        let id = create_on(on, &lite.key).await;
        lite.wait_status(&id, "SCAN_QR_CODE", Duration::from_secs(60))
            .await;
        lite.link(&id, &account(i)).await;
        sessions.push(id);
    }
    for id in &sessions {
        lite.wait_snapshot(id).await;
    }
    assert_eq!(shape(&leases_by_node(&pool, "lite:").await), vec![5, 4]);
    let qrs = lite.events("session.qr").await;
    eprintln!(
        "rebalance: 9 sessions WORKING on 2 nodes in {} ms",
        started.elapsed().as_millis()
    );

    // Act: node C (a daemon process) joins; messages go both ways during the hand-over.
    let c_data = tempfile::tempdir().unwrap();
    let mut c_env = lite.app.env.clone();
    c_env.insert("DATA_DIR".into(), c_data.path().display().to_string());
    let c_node = format!("test-c-{}", Uuid::new_v4().simple());
    c_env.insert("NODE_ID".into(), c_node.clone());
    let c_lite = lite_dir(&c_env["DATA_DIR"]);
    let joined = Instant::now();
    let mut c = process::serve(c_env).await;
    let mut queued = queue_round(&lite, &sessions, "before").await;
    let mut inbound = contact_writes_all(&lite, sessions.len(), "oi").await;
    let moving = eventually(Duration::from_secs(60), || async {
        let by_node = leases_by_node(&pool, "lite:").await;
        (by_node.len() == 3).then_some(())
    })
    .await;
    assert!(moving.is_some(), "C never took a session");
    queued.extend(queue_round(&lite, &sessions, "during").await);
    inbound.extend(contact_writes_all(&lite, sessions.len(), "ola").await);

    // Assert: 3 sessions per node, every one WORKING, no new QR; each message once.
    let balanced = eventually(Duration::from_secs(120), || async {
        let shape = shape(&leases_by_node(&pool, "lite:").await);
        let working = statuses(&pool).await.iter().all(|s| s == "WORKING");
        (shape == vec![3, 3, 3] && working && browsers(&c_lite) == 3).then_some(())
    })
    .await;
    assert!(
        balanced.is_some(),
        "not balanced: {:?}, {:?}, C runs {} browsers",
        leases_by_node(&pool, "lite:").await,
        statuses(&pool).await,
        browsers(&c_lite)
    );
    eprintln!(
        "rebalance: 3/3/3, all WORKING, {} ms after C joined",
        joined.elapsed().as_millis()
    );
    assert_eq!(browsers(&lite.lite_dir()), 3, "A runs its share");
    assert_eq!(
        browsers(&lite_dir(&b.env["DATA_DIR"])),
        3,
        "B runs its share"
    );
    assert_eq!(lite.events("session.qr").await, qrs, "no new QR");
    sent_once(&lite, &sessions, &queued).await;
    received_once(&lite, &inbound).await;
    assert_eq!(
        outbox_states(&lite.app).await.get("sent"),
        Some(&(queued.len() as i64))
    );
    eprintln!(
        "rebalance: messages checked {} ms after C joined",
        joined.elapsed().as_millis()
    );

    // Act: C is killed outright (its browsers die with it).
    c.signal(libc::SIGKILL);
    let _ = c.child.wait().await;
    let killed = Instant::now();

    // Assert: A and B hold all 9 within the lease time and 5 s, then run them WORKING, no QR.
    let taken = eventually(Duration::from_secs(LEASE_SECS + 5), || async {
        let by_node = leases_by_node(&pool, "lite:").await;
        (by_node.len() == 2 && by_node.values().sum::<i64>() == 9).then_some(())
    })
    .await;
    assert!(
        taken.is_some(),
        "the survivors did not take C's sessions: {:?}",
        leases_by_node(&pool, "lite:").await
    );
    eprintln!(
        "rebalance: C's sessions taken {} ms after the kill",
        killed.elapsed().as_millis()
    );
    // A row still naming C shows C's last status, not a new browser's.
    let back = eventually(Duration::from_secs(60), || async {
        let on_c = rows_on(&pool, &c_node).await;
        let working = statuses(&pool).await.iter().all(|s| s == "WORKING");
        (on_c == 0 && working).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "not all WORKING again: {:?}",
        statuses(&pool).await
    );
    eprintln!(
        "rebalance: all WORKING {} ms after the kill; whole test {} ms",
        killed.elapsed().as_millis(),
        started.elapsed().as_millis()
    );
    assert_eq!(lite.events("session.qr").await, qrs, "no new QR");
    assert_eq!(browsers(&c_lite), 0, "C's browsers died with it");
    let b_lite = lite_dir(&b.env["DATA_DIR"]);
    b.shutdown().await;
    assert_no_chromium(&b_lite).await;
    lite.finish().await;
}

/// Contacts `0..n` write to the number (opening their 24 h window).
async fn contacts_write(app: &TestApp, sim: &str, phone_number_id: &str, n: usize) {
    for i in 0..n {
        let r = app
            .http
            .post(format!("{sim}/sim/inbound"))
            .json(
                &json!({"phone_number_id": phone_number_id, "from": contact(i), "name": "C",
                          "message": {"type": "text", "text": {"body": "hi"}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
}

fn contact(i: usize) -> String {
    format!("+551198811{i:04}")
}

#[tokio::test]
async fn rebalance_business_joining_node_takes_half_the_numbers_each_send_once() {
    // Arrange: one node sends for 4 numbers; each has contacts whose window is open.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = sincro_sim::graph::start(listener, Default::default())
        .await
        .unwrap();
    let base = sim.base_url();
    let mut a = spawn_app_with(|env| {
        env.insert("GRAPH_API_BASE".into(), base.clone());
        env.insert("NODE_LEASE_SECS".into(), "3".into());
        env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "1000000".into());
        env.insert("API_RATE_PER_IP_PER_MINUTE".into(), "1000000".into());
    })
    .await;
    let (_, key) = a.user("rebalance@business.test", false).await;
    let contacts = 10;
    let mut numbers = Vec::new();
    for _ in 0..4 {
        let n = a.business_number(&base, &key).await;
        contacts_write(&a, &base, &n.phone_number_id, contacts).await;
        numbers.push(n);
    }
    let open = eventually(Duration::from_secs(30), || async {
        let n = a
            .count(
                "SELECT count(*) FROM conversaciones WHERE last_inbound_at IS NOT NULL",
                &[],
            )
            .await;
        (n == 4 * contacts as i64).then_some(())
    })
    .await;
    assert!(open.is_some(), "the contacts' messages reached the daemon");
    let pool = a.pool().clone();
    let all_on_a = eventually(Duration::from_secs(10), || async {
        (shape(&leases_by_node(&pool, "business:").await) == vec![4]).then_some(())
    })
    .await;
    assert!(
        all_on_a.is_some(),
        "{:?}",
        leases_by_node(&pool, "business:").await
    );

    // Act: node B joins while messages keep being queued to every number.
    let joined = Instant::now();
    let mut b = spawn_app_sharing(&a).await;
    let mut queued: Vec<Uuid> = Vec::new();
    let mut after_split = 0;
    for round in 0..400 {
        for (k, n) in numbers.iter().enumerate() {
            let body = text(
                n.connection_id,
                &contact(round % contacts),
                &format!("r{round}-n{k}"),
            );
            queued.push(send(&a, &key, &body).await);
        }
        if shape(&leases_by_node(&pool, "business:").await) == vec![2, 2] {
            after_split += 1;
            if after_split == 3 {
                break;
            }
        }
    }
    assert_eq!(
        after_split,
        3,
        "the numbers were never split: {:?}",
        leases_by_node(&pool, "business:").await
    );
    eprintln!(
        "rebalance: Business numbers split 2/2 {} ms after B joined, {} messages queued",
        joined.elapsed().as_millis(),
        queued.len()
    );

    // Assert: each node sends for two numbers; every message sent once at the simulator.
    let done = eventually(Duration::from_secs(60), || async {
        (outbox_states(&a).await.get("sent") == Some(&(queued.len() as i64))).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "not all sent: {:?}",
        outbox_states(&a).await
    );
    let sent = sim.sent(None);
    assert_eq!(sent.len(), queued.len(), "sent once each");
    let mut bodies: HashMap<String, usize> = HashMap::new();
    for s in &sent {
        *bodies
            .entry(s.request["text"]["body"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    assert!(bodies.values().all(|c| *c == 1), "a message was sent twice");
    let lanes = |app: &TestApp| {
        let shared = app.app().context().shared.clone();
        numbers
            .iter()
            .filter(|n| {
                shared.ownership.holds(
                    sincro_core::connection::ConnectionKind::Business,
                    n.connection_id,
                )
            })
            .count()
    };
    assert_eq!(
        (lanes(&a), lanes(&b)),
        (2, 2),
        "each node sends for two numbers"
    );
    eprintln!(
        "rebalance: Business test {} ms after B joined",
        joined.elapsed().as_millis()
    );
    b.shutdown().await;
    a.shutdown().await;
    sim.shutdown().await;
}
