//! The number's throughput (received messages counted in it) and the pair rate per recipient.

use crate::fixture::{Env, assert_meta_error, fast_config, wait_for};
use serde_json::{Value, json};
use sincro_sim::graph::GraphSimConfig;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One text to every recipient at once: how many were accepted. Every other one must have
/// been refused for throughput (130429).
async fn burst(env: &Arc<Env>, recipients: &[String]) -> usize {
    let answers = futures::future::join_all(recipients.iter().map(|r| {
        let env = Arc::clone(env);
        let r = r.clone();
        async move { env.text(&r, "burst").await }
    }))
    .await;
    for (st, v) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_meta_error(*st, v, 130429, 400);
    }
    answers.iter().filter(|(s, _)| *s == 200).count()
}

#[tokio::test]
async fn inbound_messages_use_up_the_throughput() {
    let env = Arc::new(
        Env::new(GraphSimConfig {
            statuses: vec![],
            ..fast_config()
        })
        .await,
    );
    let recipients: Vec<String> = (0..80).map(|i| format!("1555800{i:04}")).collect();
    let receive = |from: &[String]| {
        futures::future::join_all(from.iter().map(|r| {
            let env = Arc::clone(&env);
            let r = r.clone();
            async move {
                env.inbound(&r, json!({"type":"text","text":{"body":"hi"}}))
                    .await
            }
        }))
    };
    // Every contact's window open, then a quiet second.
    receive(&recipients).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t0 = Instant::now();
    receive(&recipients[..50]).await;
    // The 50 received leave 30 of the number's 80 for sending in the same second.
    let ok = burst(&env, &recipients).await;
    if t0.elapsed() < Duration::from_millis(900) {
        assert_eq!(ok, 30);
    } else {
        assert!(ok < 80, "{ok}");
    }
}

#[tokio::test]
async fn throughput_is_never_exceeded_in_any_second() {
    // Sends alone (the contacts' messages that open their windows not counted here).
    let env = Env::new(GraphSimConfig {
        statuses: vec![],
        throughput_counts_inbound: false,
        ..fast_config()
    })
    .await;
    let n = 100;
    let recipients: Vec<String> = (0..n).map(|i| format!("1555900{i:04}")).collect();
    for r in &recipients {
        env.inbound(r, json!({"type":"text","text":{"body":"hi"}}))
            .await;
    }
    // A burst of 100 at once: exactly 80 pass.
    let env = Arc::new(env);
    let t0 = Instant::now();
    let ok = burst(&env, &recipients).await;
    if t0.elapsed() < Duration::from_millis(900) {
        // All 100 arrived within one second.
        assert_eq!(ok, 80);
    } else {
        assert!(ok >= 80, "{ok}");
    }
    // Keep pushing for ~2 s; the server-side record never has more than 80 in any second.
    let until = Instant::now() + Duration::from_millis(2200);
    let mut i = 0usize;
    while Instant::now() < until {
        let wave = futures::future::join_all((0..20).map(|k| {
            let env = Arc::clone(&env);
            let r = recipients[(i + k) % n].clone();
            async move { env.text(&r, "more").await }
        }))
        .await;
        for (st, v) in wave {
            if st != 200 {
                assert_eq!(v["error"]["code"], 130429, "{v}");
            }
        }
        i += 20;
    }
    let sent: Vec<Value> = env
        .http
        .get(format!("{}/sim/sent", env.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut times: Vec<i128> = sent
        .iter()
        .map(|s| {
            let t = time::OffsetDateTime::parse(
                s["received_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            t.unix_timestamp_nanos() / 1_000_000
        })
        .collect();
    times.sort();
    assert!(
        times.len() > 160,
        "the window slides: {} accepted",
        times.len()
    );
    for (a, &t) in times.iter().enumerate() {
        let in_window = times[a..].iter().take_while(|&&u| u - t < 1000).count();
        assert!(
            in_window <= 80,
            "{in_window} sends within 1 s starting at {t}"
        );
    }
    let env = Arc::try_unwrap(env).ok().unwrap();
    env.stop().await;
}

#[tokio::test]
async fn pair_rate_limits_one_recipient_only() {
    let env = Env::new(GraphSimConfig {
        statuses: vec![],
        ..fast_config()
    })
    .await;
    env.inbound("15551230030", json!({"type":"text","text":{"body":"hi"}}))
        .await;
    env.inbound("15551230031", json!({"type":"text","text":{"body":"hi"}}))
        .await;
    for i in 0..45 {
        let (st, v) = env.text("15551230030", &format!("m{i}")).await;
        assert_eq!(st, 200, "message {i}: {v}");
    }
    let (st, v) = env.text("15551230030", "one too many").await;
    assert_meta_error(st, &v, 131056, 400);
    let (st, _) = env.text("15551230031", "other recipient").await;
    assert_eq!(st, 200);
    env.stop().await;
}

#[tokio::test]
async fn an_upgrade_raises_the_reported_level_and_sends_metas_webhook() {
    let env = Env::new(fast_config()).await;
    let pnid = env.s("phone_number_id");
    let level = || async {
        let (st, v) = env
            .call(
                reqwest::Method::GET,
                &format!("{pnid}?fields=throughput"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v["throughput"]["level"].as_str().unwrap().to_string()
    };
    let set = |number: &str, to: &str| {
        env.control(
            reqwest::Method::POST,
            "throughput",
            json!({"phone_number_id": number, "level": to}),
        )
    };
    assert_eq!(level().await, "STANDARD");

    // Bad levels and unknown numbers are refused and change nothing.
    let (st, _) = set(&pnid, "TURBO").await;
    assert_eq!(st, 400);
    let (st, _) = set("999", "HIGH").await;
    assert_eq!(st, 404);
    assert_eq!(level().await, "STANDARD");

    // The upgrade: reported by Graph, announced by webhook (display number only).
    let (st, v) = set(&pnid, "HIGH").await;
    assert_eq!((st, &v["webhook"]), (200, &json!(true)));
    assert_eq!(level().await, "HIGH");
    let secret = env.secret();
    let change = wait_for("the upgrade webhook", Duration::from_secs(5), || {
        env.cb
            .changes(&secret)
            .into_iter()
            .find(|(field, _)| field == "phone_number_quality_update")
            .map(|(_, v)| v)
    })
    .await;
    assert_eq!(change["event"], "THROUGHPUT_UPGRADE");
    assert_eq!(
        change["display_phone_number"],
        env.s("display_phone_number")
    );
    assert!(change.get("metadata").is_none(), "{change}");
}
