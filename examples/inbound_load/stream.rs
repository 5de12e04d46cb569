//! Webhook → WebSocket latency: `clients` stream clients of the number's user, one message
//! per POST on an open-loop timetable at `rate`/s; each frame's delay is measured from the
//! moment its POST started to the frame's arrival at each client.

use super::load::{self, Target};
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// What the latency run saw.
pub struct Latency {
    pub sent: usize,
    pub failures: usize,
    /// Frames expected (sent × clients) and received.
    pub expected: usize,
    pub received: usize,
    pub delays: Vec<Duration>,
    pub posts: Vec<Duration>,
}

/// How long clients may take to receive the last frames after the last POST.
const DRAIN: Duration = Duration::from_secs(20);

pub async fn run(
    t: &Target,
    ws_url: &str,
    run: &str,
    clients: usize,
    rate: f64,
    secs: f64,
) -> Result<Latency, super::Error> {
    let total = (rate * secs) as usize;
    // When each message's POST started (set just before it is sent).
    let starts: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..total).map(|_| Mutex::new(None)).collect());
    let prefix = format!("\"external_id\":\"wamid.{run}.");
    let mut readers = Vec::new();
    for _ in 0..clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
        let (starts, prefix) = (starts.clone(), prefix.clone());
        readers.push(tokio::spawn(async move {
            let mut delays = Vec::with_capacity(total);
            let deadline = tokio::time::sleep(Duration::from_secs_f64(secs) + DRAIN * 3);
            tokio::pin!(deadline);
            let mut armed = false;
            loop {
                let frame = tokio::select! {
                    f = ws.next() => f,
                    _ = &mut deadline => break,
                };
                let Some(Ok(Message::Text(text))) = frame else {
                    if matches!(frame, Some(Ok(_))) {
                        continue;
                    }
                    break;
                };
                let now = Instant::now();
                let Some(at) = text.find(&prefix) else {
                    continue;
                };
                let digits: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let Ok(n) = digits.parse::<usize>() else {
                    continue;
                };
                if let Some(start) = starts.get(n).and_then(|s| *s.lock().expect("start")) {
                    delays.push(now.saturating_duration_since(start));
                }
                if delays.len() >= total {
                    break;
                }
                if !armed && n + 1 >= total {
                    // The last message arrived: leave a bounded time for stragglers.
                    deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN);
                    armed = true;
                }
            }
            delays
        }));
    }
    let http = load::client(64);
    let started = Instant::now();
    let mut posts = Vec::new();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (http, t, run, starts) = (http.clone(), t.clone(), run.to_string(), starts.clone());
        posts.push(tokio::spawn(async move {
            let body = load::body(&t, &run, n, 1);
            let begun = Instant::now();
            *starts[n].lock().expect("start") = Some(begun);
            load::post(&http, &t, body).await.map(|()| begun.elapsed())
        }));
    }
    let mut latency = Latency {
        sent: 0,
        failures: 0,
        expected: 0,
        received: 0,
        delays: Vec::new(),
        posts: Vec::new(),
    };
    for p in posts {
        match p.await? {
            Ok(d) => {
                latency.sent += 1;
                latency.posts.push(d);
            }
            Err(_) => latency.failures += 1,
        }
    }
    latency.expected = latency.sent * clients;
    for r in readers {
        let delays = r.await?;
        latency.received += delays.len();
        latency.delays.extend(delays);
    }
    Ok(latency)
}
