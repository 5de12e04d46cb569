//! WebSocket event stream tests: replay then live with no gap and no duplicate at the
//! seam, the `types` filter, slow consumers closed with 4008 and resumed with `since`, delivery
//! through other nodes (in-process and a separate process), isolation between users, errors
//! before the upgrade, Hub restarts, retention gaps and shutdown.

use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_sharing, spawn_app_with};
use crate::process;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sincro_core::daemon::DaemonMessage;
use sincro_core::hub::{HubMessage, HubStats};
use sincro_core::seal::Sealer;
use sincro_core::store::events;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single frame may take to arrive before a test fails.
const FRAME_WAIT: Duration = Duration::from_secs(20);

fn ws_url(base: &str, query: &str) -> String {
    let base = base.replacen("http://", "ws://", 1);
    if query.is_empty() {
        format!("{base}/v1/stream")
    } else {
        format!("{base}/v1/stream?{query}")
    }
}

async fn try_connect(
    base: &str,
    key: Option<&str>,
    query: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = ws_url(base, query).into_client_request().unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

async fn connect(base: &str, key: &str, query: &str) -> Ws {
    try_connect(base, Some(key), query)
        .await
        .expect("stream connects")
}

/// The status and JSON body of a refused handshake.
async fn refused(base: &str, key: Option<&str>, query: &str) -> (u16, Value) {
    match try_connect(base, key, query).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json: Value = serde_json::from_slice(&body).expect("JSON error body");
            (response.status().as_u16(), json)
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

#[derive(Debug)]
enum Got {
    Frame(Value),
    Closed(u16, String),
    Ended,
}

async fn next(ws: &mut Ws) -> Got {
    loop {
        let message = tokio::time::timeout(FRAME_WAIT, ws.next())
            .await
            .expect("a frame within the wait");
        match message {
            None | Some(Err(_)) => return Got::Ended,
            Some(Ok(Message::Text(text))) => {
                return Got::Frame(serde_json::from_str(text.as_str()).expect("JSON frame"));
            }
            Some(Ok(Message::Close(frame))) => {
                return match frame {
                    Some(f) => Got::Closed(f.code.into(), f.reason.to_string()),
                    None => Got::Closed(1005, String::new()),
                };
            }
            Some(Ok(_)) => continue, // ping, pong
        }
    }
}

/// Reads event frames until one with seq `last`; panics on a close first.
async fn frames_until(ws: &mut Ws, last: i64) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        match next(ws).await {
            Got::Frame(f) => {
                let seq = f["seq"].as_i64();
                out.push(f);
                if seq == Some(last) {
                    return out;
                }
            }
            other => panic!("stream ended before seq {last}: {other:?} after {out:?}"),
        }
    }
}

fn seqs(frames: &[Value]) -> Vec<i64> {
    frames.iter().map(|f| f["seq"].as_i64().unwrap()).collect()
}

fn sealer(app: &TestApp) -> Arc<Sealer> {
    app.app().context().sealer.clone()
}

/// Appends one event per kind in one transaction; returns their seqs.
async fn append_tx(
    pool: &deadpool_postgres::Pool,
    sealer: &Sealer,
    user: Uuid,
    kinds: &[&str],
    data: impl Fn(usize) -> Value,
) -> Vec<i64> {
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let mut out = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        out.push(
            events::append(&tx, sealer, user, kind, &data(i))
                .await
                .unwrap(),
        );
    }
    tx.commit().await.unwrap();
    out
}

async fn append(app: &TestApp, user: Uuid, kind: &str, data: Value) -> i64 {
    append_tx(app.pool(), &sealer(app), user, &[kind], |_| data.clone()).await[0]
}

async fn hub_stats(app: &TestApp) -> Option<HubStats> {
    let hub = app.app().context().actors.children.hub.get()?;
    match hub
        .call(HubMessage::Stats, Some(Duration::from_secs(2)))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(stats)) => Some(stats),
        _ => None,
    }
}

/// Waits until this node's Hub has at least `n` subscribers.
async fn subscribed(app: &TestApp, n: usize) {
    eventually(Duration::from_secs(15), || async {
        hub_stats(app).await.filter(|s| s.subscribers >= n)
    })
    .await
    .unwrap_or_else(|| panic!("{n} subscribers within 15 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_replays_then_goes_live_with_no_gap_and_no_duplicate() {
    // Arrange: a writer busy appending while the client connects.
    const N: i64 = 400;
    let mut app = spawn_app().await;
    let (user, key) = app.user("seam@example.com", false).await;
    let (pool, seal) = (app.pool().clone(), sealer(&app));
    let writer = tokio::spawn(async move {
        for i in 1..=N {
            append_tx(
                &pool,
                &seal,
                user,
                &["message.received"],
                |_| json!({ "i": i }),
            )
            .await;
        }
    });
    let pool = app.pool().clone();
    eventually(Duration::from_secs(20), || async {
        let client = pool.get().await.ok()?;
        (events::last_seq(&client, user).await.ok()? >= 50).then_some(())
    })
    .await
    .expect("the writer got going");
    // Act
    let mut ws = connect(&app.base, &key, "since=0").await;
    let frames = frames_until(&mut ws, N).await;
    writer.await.unwrap();
    // Assert: every seq once, in order, with the frame shape of the design.
    assert_eq!(seqs(&frames), (1..=N).collect::<Vec<_>>());
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["type"], "message.received");
        assert_eq!(f["data"]["i"], i as i64 + 1);
        let at = f["at"].as_str().unwrap();
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| panic!("at is RFC 3339: {at}"));
    }
    ws.close(None).await.ok();
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_without_since_starts_at_the_newest_event() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("live@example.com", false).await;
    append(&app, user, "alert", json!({"old": true})).await;
    let mut ws = connect(&app.base, &key, "").await;
    subscribed(&app, 1).await;
    let seq = append(&app, user, "alert", json!({"new": true})).await;
    let frames = frames_until(&mut ws, seq).await;
    assert_eq!(seqs(&frames), vec![2]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_types_filter_sends_only_what_was_asked() {
    // Arrange
    let mut app = spawn_app().await;
    let (user, key) = app.user("types@example.com", false).await;
    let kinds = [
        "message.received",
        "lead.created",
        "session.qr",
        "lead.merged",
    ];
    let seal = sealer(&app);
    append_tx(app.pool(), &seal, user, &kinds, |i| json!({ "n": i })).await;
    // Act: replay 1..4, then live 5..8.
    let mut ws = connect(&app.base, &key, "since=0&types=lead.*,session.qr").await;
    subscribed(&app, 1).await;
    append_tx(app.pool(), &seal, user, &kinds, |i| json!({ "n": i + 4 })).await;
    let frames = frames_until(&mut ws, 8).await;
    // Assert
    assert_eq!(seqs(&frames), vec![2, 3, 4, 6, 7, 8]);
    let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "lead.created",
            "session.qr",
            "lead.merged",
            "lead.created",
            "session.qr",
            "lead.merged"
        ]
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_slow_consumer_is_closed_with_4008_and_resumes_without_loss() {
    // Arrange: a tiny buffer and a client that does not read while bursts are written.
    const BATCHES: usize = 20;
    const PER_BATCH: usize = 100;
    let total = (BATCHES * PER_BATCH) as i64;
    let mut app = spawn_app_with(|env| {
        env.insert("STREAM_BUFFER".into(), "8".into());
    })
    .await;
    let (user, key) = app.user("slow@example.com", false).await;
    let mut ws = connect(&app.base, &key, "").await;
    subscribed(&app, 1).await;
    let seal = sealer(&app);
    for _ in 0..BATCHES {
        append_tx(
            app.pool(),
            &seal,
            user,
            &["message.received"; PER_BATCH],
            |i| json!({ "i": i, "pad": "x".repeat(100) }),
        )
        .await;
    }
    // Act: read what was sent up to the close.
    let mut got = Vec::new();
    let (code, reason) = loop {
        match next(&mut ws).await {
            Got::Frame(f) => got.push(f["seq"].as_i64().unwrap()),
            Got::Closed(code, reason) => break (code, reason),
            Got::Ended => panic!("ended without a close frame after {got:?}"),
        }
    };
    // Assert: 4008, and the reason names the last seq delivered.
    assert_eq!(code, 4008, "{reason}");
    let last = *got.last().unwrap_or(&0);
    assert!(reason.ends_with(&format!("since={last}")), "{reason}");
    assert_eq!(got, (1..=last).collect::<Vec<_>>());
    assert!(last < total, "closed before the end");
    // Resume with since until everything arrived, each seq once.
    let mut resumes = 0;
    while got.last().copied().unwrap_or(0) < total {
        resumes += 1;
        assert!(resumes < 20, "too many resumes");
        let since = got.last().copied().unwrap_or(0);
        let mut ws = connect(&app.base, &key, &format!("since={since}")).await;
        loop {
            match next(&mut ws).await {
                Got::Frame(f) => {
                    got.push(f["seq"].as_i64().unwrap());
                    if got.last() == Some(&total) {
                        break;
                    }
                }
                Got::Closed(4008, _) => break,
                other => panic!("resumed stream ended: {other:?}"),
            }
        }
    }
    assert_eq!(got, (1..=total).collect::<Vec<_>>());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_delivers_events_written_through_another_node_in_process() {
    let mut first = spawn_app().await;
    let mut second = spawn_app_sharing(&first).await;
    let (user, key) = first.user("nodes@example.com", false).await;
    let mut ws = connect(&second.base, &key, "since=0").await;
    subscribed(&second, 1).await;
    for i in 1..=5 {
        append(&first, user, "message.received", json!({ "i": i })).await;
    }
    let frames = frames_until(&mut ws, 5).await;
    assert_eq!(seqs(&frames), vec![1, 2, 3, 4, 5]);
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_delivers_events_written_through_another_daemon_process() {
    // Arrange: a second node as a separate process on the same database and key.
    let mut app = spawn_app().await;
    let (user, key) = app.user("process@example.com", false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = app.env.clone();
    env.insert("DATA_DIR".into(), dir.path().display().to_string());
    env.insert(
        "NODE_ID".into(),
        format!("test-{}", Uuid::new_v4().simple()),
    );
    let mut daemon = process::serve(env).await;
    let base = format!("http://{}", daemon.addr);
    let mut ws = connect(&base, &key, "since=0").await;
    append(&app, user, "message.received", json!({"i": 1})).await;
    assert_eq!(seqs(&frames_until(&mut ws, 1).await), vec![1]);
    // Act: once the process is live, more events written through this node.
    for i in 2..=10 {
        append(&app, user, "message.received", json!({ "i": i })).await;
    }
    // Assert
    assert_eq!(
        seqs(&frames_until(&mut ws, 10).await),
        (2..=10).collect::<Vec<_>>()
    );
    // SIGTERM: the process closes the stream with 1001 and the position, then exits cleanly.
    daemon.signal(libc::SIGTERM);
    let closed = next(&mut ws).await;
    assert!(
        matches!(&closed, Got::Closed(1001, r) if r.ends_with("since=10")),
        "{closed:?}"
    );
    let status = daemon.exited(Duration::from_secs(30)).await;
    assert!(status.success());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_users_see_only_their_own_events_on_every_connection() {
    // Arrange: two connections for A (header and access_token), one for B.
    let mut app = spawn_app().await;
    let (a, key_a) = app.user("a@example.com", false).await;
    let (b, key_b) = app.user("b@example.com", false).await;
    let mut a1 = connect(&app.base, &key_a, "").await;
    let mut a2 = try_connect(&app.base, None, &format!("access_token={key_a}"))
        .await
        .expect("access_token authenticates");
    let mut b1 = connect(&app.base, &key_b, "").await;
    subscribed(&app, 3).await;
    // Act
    for i in 1..=10 {
        append(&app, a, "message.received", json!({ "owner": "a", "i": i })).await;
        append(&app, b, "message.received", json!({ "owner": "b", "i": i })).await;
    }
    // Assert: per-user seqs 1..10, each with its own data only.
    for ws in [&mut a1, &mut a2] {
        let frames = frames_until(ws, 10).await;
        assert_eq!(seqs(&frames), (1..=10).collect::<Vec<_>>());
        assert!(
            frames.iter().all(|f| f["data"]["owner"] == "a"),
            "{frames:?}"
        );
    }
    let frames = frames_until(&mut b1, 10).await;
    assert_eq!(seqs(&frames), (1..=10).collect::<Vec<_>>());
    assert!(
        frames.iter().all(|f| f["data"]["owner"] == "b"),
        "{frames:?}"
    );
    // A replay for B holds only B's events too.
    let mut b2 = connect(&app.base, &key_b, "since=0").await;
    let replay = frames_until(&mut b2, 10).await;
    assert_eq!(replay.len(), 10);
    assert!(replay.iter().all(|f| f["data"]["owner"] == "b"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_refuses_bad_requests_before_the_upgrade() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("errors@example.com", false).await;
    append(&app, user, "alert", json!({})).await;
    let base = app.base.clone();
    let cases: Vec<(Option<&str>, &str, u16, &str)> = vec![
        (None, "", 401, "missing_api_key"),
        (Some("sw_not_a_key"), "", 401, "invalid_api_key"),
        (None, "access_token=sw_not_a_key", 401, "invalid_api_key"),
        (Some(&key), "since=abc", 400, "invalid_since"),
        (Some(&key), "since=-1", 400, "invalid_since"),
        (Some(&key), "since=2", 400, "invalid_since"),
        (Some(&key), "types=", 400, "invalid_types"),
        (Some(&key), "types=Message.Received", 400, "invalid_types"),
        (Some(&key), "cursor=1", 400, "invalid_query"),
    ];
    for (k, query, status, code) in cases {
        let (got, body) = refused(&base, k, query).await;
        assert_eq!(got, status, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // A plain GET is told to upgrade.
    let resp = app.get("/v1/stream", &key).send().await.unwrap();
    crate::helpers::expect_error(resp, 400, "websocket_required").await;
    // since equal to the newest seq is fine.
    let ws = connect(&base, &key, "since=1").await;
    drop(ws);
    app.shutdown().await;
}

async fn crash_hub(app: &TestApp) {
    let daemon = app.app().context().actors.daemon.clone();
    let asked = daemon
        .call(
            |reply| DaemonMessage::Crash {
                child: "hub".into(),
                reply,
            },
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(matches!(asked, ractor::rpc::CallResult::Success(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_a_hub_restart_and_resumes_with_since() {
    // Arrange
    let mut app = spawn_app().await;
    let (user, key) = app.user("restart@example.com", false).await;
    let mut ws = connect(&app.base, &key, "since=0").await;
    subscribed(&app, 1).await;
    for i in 1..=5 {
        append(&app, user, "message.received", json!({ "i": i })).await;
    }
    assert_eq!(seqs(&frames_until(&mut ws, 5).await), vec![1, 2, 3, 4, 5]);
    let old = app
        .app()
        .context()
        .actors
        .children
        .hub
        .get()
        .unwrap()
        .get_id();
    // Act: crash the Hub and keep writing while it restarts.
    crash_hub(&app).await;
    for i in 6..=10 {
        append(&app, user, "message.received", json!({ "i": i })).await;
    }
    eventually(Duration::from_secs(15), || async {
        let hub = app.app().context().actors.children.hub.get()?;
        (hub.get_id() != old).then_some(())
    })
    .await
    .expect("the hub restarted");
    subscribed(&app, 1).await;
    for i in 11..=15 {
        append(&app, user, "message.received", json!({ "i": i })).await;
    }
    // Assert: the open stream carried on, and a reconnecting client with since gets the rest.
    assert_eq!(
        seqs(&frames_until(&mut ws, 15).await),
        (6..=15).collect::<Vec<_>>()
    );
    let mut again = connect(&app.base, &key, "since=5").await;
    assert_eq!(
        seqs(&frames_until(&mut again, 15).await),
        (6..=15).collect::<Vec<_>>()
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_since_older_than_retention_gets_a_gap_notice_first() {
    // Arrange: five events, the first three older than retention and purged by the Hub.
    let mut app = spawn_app().await;
    let (user, key) = app.user("gap@example.com", false).await;
    for i in 1..=5 {
        append(&app, user, "message.received", json!({ "i": i })).await;
    }
    let client = app.pool().get().await.unwrap();
    client
        .execute(
            "UPDATE events SET created_at = now() - interval '100 hours'
             WHERE usuario_id = $1 AND seq <= 3",
            &[&user],
        )
        .await
        .unwrap();
    let hub = app.app().context().actors.children.hub.get().unwrap();
    let purged = hub
        .call(
            |reply| HubMessage::Purge(Some(reply)),
            Some(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert!(
        matches!(purged, ractor::rpc::CallResult::Success(Ok(3))),
        "{purged:?}"
    );
    // Act
    let mut ws = connect(&app.base, &key, "since=1").await;
    // Assert
    let Got::Frame(notice) = next(&mut ws).await else {
        panic!("a notice first")
    };
    assert_eq!(notice["type"], "stream.gap", "{notice}");
    assert!(notice["seq"].is_null());
    assert_eq!(notice["data"]["since"], 1);
    assert_eq!(notice["data"]["first_available"], 4);
    assert_eq!(seqs(&frames_until(&mut ws, 5).await), vec![4, 5]);
    // Resuming inside what is still stored has no notice.
    let mut ws = connect(&app.base, &key, "since=3").await;
    assert_eq!(seqs(&frames_until(&mut ws, 5).await), vec![4, 5]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_closes_cleanly_on_shutdown() {
    let mut app = spawn_app().await;
    let (user, key) = app.user("bye@example.com", false).await;
    let mut ws = connect(&app.base, &key, "").await;
    subscribed(&app, 1).await;
    append(&app, user, "alert", json!({})).await;
    append(&app, user, "alert", json!({})).await;
    frames_until(&mut ws, 2).await;
    let started = Instant::now();
    let (report, closed) = tokio::join!(app.shutdown(), next(&mut ws));
    assert!(
        matches!(&closed, Got::Closed(1001, r) if r.ends_with("since=2")),
        "{closed:?}"
    );
    assert!(report.still_running.is_empty(), "{report:?}");
    assert!(report.http_drained, "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The client completes the close handshake.
    let _ = ws.send(Message::Close(None)).await;
}
