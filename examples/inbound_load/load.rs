//! The load: Meta-shaped, signed `messages` webhooks (batched as Meta batches them: at most
//! 10 messages per change and 5 changes per entry), posted over keep-alive HTTP/1.1, closed
//! loop per connection or open loop on a timetable.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where and as whom the webhooks are posted.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub app_secret: String,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: String,
    /// Distinct senders (Brazilian mobiles `55119` + 8 digits).
    pub contacts: usize,
}

/// The external id of message `n` of run `run`.
pub fn wamid(run: &str, n: usize) -> String {
    format!("wamid.{run}.{n}")
}

/// The webhook body carrying messages `first..first + count` of `run`.
pub fn body(t: &Target, run: &str, first: usize, count: usize) -> Vec<u8> {
    let message = |n: usize| {
        let contact = n % t.contacts;
        let from = format!("55119{:08}", 10_000_000 + contact);
        (
            json!({"profile": {"name": format!("Contact {contact}")}, "wa_id": from}),
            json!({"from": from, "id": wamid(run, n), "timestamp": "1760000000", "type": "text",
                   "text": {"body": format!("message {n}: a reply of realistic length to the campaign")}}),
        )
    };
    let ids: Vec<usize> = (first..first + count).collect();
    let changes: Vec<Value> = ids
        .chunks(10)
        .map(|chunk| {
            let (contacts, messages): (Vec<Value>, Vec<Value>) =
                chunk.iter().map(|&n| message(n)).unzip();
            json!({"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": t.display_phone_number, "phone_number_id": t.phone_number_id},
                "contacts": contacts, "messages": messages}})
        })
        .collect();
    let entries: Vec<Value> = changes
        .chunks(5)
        .map(|c| json!({"id": t.waba_id, "changes": c}))
        .collect();
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": entries}))
        .expect("json")
}

/// Posts one signed body; Err with the status or the transport error.
pub async fn post(http: &reqwest::Client, t: &Target, body: Vec<u8>) -> Result<(), String> {
    let signature = sincro_core::business::webhook::sign(&t.app_secret, &body);
    let resp = http
        .post(&t.url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().as_u16() == 200 {
        let _ = resp.bytes().await;
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

/// What a closed-loop run did.
pub struct Posted {
    pub messages: usize,
    pub posts: usize,
    pub failures: usize,
    /// Each POST's latency.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

/// `connections` closed loops, each on its own keep-alive connection, posting `per_post`
/// messages at a time for `secs`.
pub async fn closed_loop(
    t: &Target,
    run: &str,
    connections: usize,
    per_post: usize,
    secs: f64,
) -> Posted {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (t, run, next) = (t.clone(), run.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let http = client(1);
            let (mut lat, mut failures) = (Vec::new(), 0usize);
            while Instant::now() < until {
                let first = next.fetch_add(per_post, Ordering::Relaxed);
                let body = body(&t, &run, first, per_post);
                let sent = Instant::now();
                match post(&http, &t, body).await {
                    Ok(()) => lat.push(sent.elapsed()),
                    Err(e) => {
                        failures += 1;
                        if failures <= 3 {
                            eprintln!("POST failed: {e}");
                        }
                    }
                }
            }
            (lat, failures)
        }));
    }
    let mut posted = Posted {
        messages: 0,
        posts: 0,
        failures: 0,
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (lat, failures) = task.await.expect("load task");
        posted.latencies.extend(lat);
        posted.failures += failures;
    }
    posted.elapsed = started.elapsed();
    posted.posts = posted.latencies.len();
    posted.messages = posted.posts * per_post;
    posted
}

/// An HTTP client keeping up to `idle` keep-alive connections to the daemon.
pub fn client(idle: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(idle)
        .tcp_nodelay(true)
        .build()
        .expect("http client")
}

/// The `q` quantile of `values` (sorted in place).
pub fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let i = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[i.min(values.len() - 1)]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
