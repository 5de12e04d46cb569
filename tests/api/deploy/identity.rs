//! NODE_ID unset: the name is generated once and kept in DATA_DIR, so a daemon `kill -9`ed
//! and started again at once takes its own leases back instead of waiting for them to
//! expire; and a second daemon on the same DATA_DIR refuses to start.

use crate::helpers::{TestApp, base_env, eventually, fresh_database};
use crate::process;
use crate::queue::text;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn contact(i: usize) -> String {
    format!("+551197700{:04}", i)
}

/// The daemon's environment without NODE_ID (the default under test).
fn env_without_node_id(db: &str, data: &std::path::Path, sim: &str) -> HashMap<String, String> {
    let mut env = base_env(db, data);
    env.remove("NODE_ID");
    env.insert("GRAPH_API_BASE".into(), sim.to_string());
    env.insert("API_RATE_PER_USER_PER_MINUTE".into(), "1000000".into());
    env.insert("API_RATE_PER_IP_PER_MINUTE".into(), "1000000".into());
    env
}

fn node_of(log: &[String]) -> Option<String> {
    log.iter().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["message"] == "listening").then(|| v["node"].as_str().map(str::to_string))?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_resumes_sending_within_2_s() {
    // Arrange: a daemon process with NODE_ID unset, a Business number on the Graph simulator
    // and a backlog being sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = sincro_sim::graph::start(listener, Default::default())
        .await
        .unwrap();
    let base = sim.base_url();
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let env = env_without_node_id(&db, data.path(), &base);
    let mut first = process::serve(env.clone()).await;
    let first_node = node_of(&first.log()).expect("node in the listening line");
    let kept = std::fs::read_to_string(data.path().join("node-id")).unwrap();
    assert_eq!(kept.trim(), first_node);
    let pool = sincro_core::store::connect_pool(&db, 2).unwrap();
    let key = {
        let mut client = pool.get().await.unwrap();
        sincro_core::store::users::create_with_key(&mut client, "id@deploy.test", None, false)
            .await
            .unwrap()
            .0
            .key
            .plaintext
            .expose()
            .to_string()
    };
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
    // Enough contacts that no recipient reaches Meta's pair rate (the restarted daemon's
    // pair limiter starts empty, the simulator's does not).
    let contacts = 200;
    {
        use futures::StreamExt;
        futures::stream::iter(0..contacts)
            .map(|i| {
                let req = http
                    .post(format!("{base}/sim/inbound"))
                    .json(&json!({"phone_number_id": n.phone_number_id, "from": contact(i), "name": "C", "message": {"type": "text", "text": {"body": "hi"}}}));
                async move {
                    assert_eq!(req.send().await.unwrap().status().as_u16(), 202);
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    }
    let open = eventually(Duration::from_secs(30), || async {
        let client = pool.get().await.ok()?;
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM conversaciones WHERE last_inbound_at IS NOT NULL",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (open as usize >= contacts).then_some(())
    })
    .await;
    assert!(open.is_some(), "the contacts' messages reached the daemon");
    // A backlog of 1,000 (12 s at 80/s, 5 per contact), queued for later and then made due
    // at once, so the kill lands in the middle of the sending however slow queueing is here.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    {
        use futures::StreamExt;
        futures::stream::iter(0..1000)
            .map(|i| {
                let mut body = text(n.connection_id, &contact(i % contacts), &format!("b-{i}"));
                body["send_at"] = json!(later);
                let req = view.post("/v1/messages", &key).json(&body);
                async move {
                    let r = req.send().await.unwrap();
                    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    }
    crate::queue::all_due_now(&pool, n.connection_id).await;
    let sending = eventually(Duration::from_secs(30), || async {
        (sim.sent(Some(&n.phone_number_id)).len() >= 80).then_some(())
    })
    .await;
    assert!(sending.is_some(), "the backlog is being sent");

    // Act: kill -9, then start again at once on the same DATA_DIR.
    first.signal(libc::SIGKILL);
    let _ = first.child.wait().await;
    let at_kill = sim.sent(Some(&n.phone_number_id)).len();
    assert!(at_kill < 1000, "the backlog was done before the kill");
    let mut second = process::serve(env.clone()).await;
    let ready = Instant::now();

    // Assert: the same name, and sending again within 2 s of the restart listening.
    assert_eq!(node_of(&second.log()).as_deref(), Some(first_node.as_str()));
    let resumed = eventually(Duration::from_secs(20), || async {
        (sim.sent(Some(&n.phone_number_id)).len() > at_kill).then(|| ready.elapsed())
    })
    .await;
    eprintln!("deploy: first send {resumed:?} after the restarted daemon listened");
    if resumed.is_none_or(|r| r > Duration::from_secs(2)) {
        for line in second.log() {
            eprintln!("{line}");
        }
        let client = pool.get().await.unwrap();
        for r in client
            .query(
                "SELECT state, inflight_at IS NOT NULL, lease_owner, min(due_at)::text, count(*) FROM outbox GROUP BY 1, 2, 3",
                &[],
            )
            .await
            .unwrap()
        {
            eprintln!(
                "outbox: {} {} {:?} {:?} {}",
                r.get::<_, String>(0),
                r.get::<_, bool>(1),
                r.get::<_, Option<String>>(2),
                r.get::<_, Option<String>>(3),
                r.get::<_, i64>(4)
            );
        }
        eprintln!(
            "at kill {at_kill}, now {}",
            sim.sent(Some(&n.phone_number_id)).len()
        );
    }
    let resumed = resumed.expect("sending resumes");
    assert!(
        resumed <= Duration::from_secs(2),
        "first send only {resumed:?} after the restart"
    );
    second.signal(libc::SIGKILL);
    let _ = second.child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_data_dir_refuses_to_start() {
    // Arrange
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let mut env = base_env(&db, data.path());
    env.remove("NODE_ID");
    let mut first = process::serve(env.clone()).await;

    // Act: the same DATA_DIR, even under another NODE_ID.
    env.insert("NODE_ID".into(), "another".into());
    env.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        process::command(&["serve"], &env).output(),
    )
    .await
    .expect("exits")
    .unwrap();

    // Assert
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another sincro-whatsapp daemon")
            && stderr.contains(&format!("pid {}", first.child.id().unwrap())),
        "{stderr}"
    );
    first.signal(libc::SIGTERM);
    assert!(first.exited(Duration::from_secs(30)).await.success());
    // Once the first has stopped, the directory is free again.
    let mut third = process::serve(env).await;
    third.signal(libc::SIGTERM);
    assert!(third.exited(Duration::from_secs(30)).await.success());
}
