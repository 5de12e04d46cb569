//! Load harness for event webhooks: a daemon in-process on loopback, 10 endpoints of one user
//! (each a local HTTP receiver taking every event), events appended at 1,000 a second, and
//! the lag from each append's commit to its delivery arriving at each receiver (p50/p99/max),
//! checked for loss, duplicates and order per endpoint.
//!
//! The baseline, measured in the same run just before, against receivers of the same kind:
//! frames POSTed straight from a plain HTTP client as each commit returns (no event log, no
//! signing, no cursor), one request at a time per receiver; figures are also printed as ratios
//! to it. The two phases run one after the other so that neither takes the other's CPU.
//!
//! ```text
//! cargo run --release --example hooks_bench
//! ```
//!
//! Knobs (environment): BENCH_PG (server URL, default postgres://postgres@127.0.0.1:5432),
//! BENCH_ENDPOINTS (10), BENCH_RATE (events/s, 1000), BENCH_SECS (10), BENCH_IN_FLIGHT
//! (deliveries in flight per endpoint, 16; 1 is strict one-at-a-time), DB_POOL_SIZE (the
//! daemon's, 16 as by default). It creates its own database and drops it at the end.

use serde_json::json;
use sincro_core::store::events::{self, NewEvent};
use sincro_whatsapp::app::{Application, Options};
use sincro_whatsapp::config::Config;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;
use uuid::Uuid;
use warp::Filter;

/// Lag goal for p99 on the reference 2-core machine.
const GOAL_P99: Duration = Duration::from_millis(100);
/// The writer commits one transaction per tick.
const TICK: Duration = Duration::from_millis(10);
/// How long deliveries may take to finish after the writer stopped.
const DRAIN: Duration = Duration::from_secs(60);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Arrivals per receiver: (seq, when).
type Arrivals = Arc<Mutex<HashMap<usize, Vec<(i64, Instant)>>>>;

/// Receivers on one local server: `/r/<n>` answers 200 and records the seq.
async fn receivers() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let route = warp::path!("r" / usize)
        .and(warp::post())
        .and(warp::header::optional::<i64>("x-sincro-seq"))
        .and(warp::body::bytes())
        .map(move |n: usize, seq: Option<i64>, body: bytes::Bytes| {
            let seq = seq.unwrap_or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["seq"].as_i64())
                    .unwrap_or(-1)
            });
            seen.lock()
                .unwrap()
                .entry(n)
                .or_default()
                .push((seq, Instant::now()));
            warp::reply()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}"), arrivals)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Report {
    p50: Duration,
    p99: Duration,
    max: Duration,
    lost: usize,
    duplicates: usize,
    out_of_order: usize,
}

/// Lags of every arrival against the commit of its seq, and the per-receiver checks.
fn report(commits: &HashMap<i64, Instant>, arrivals: &Arrivals, receivers: usize) -> Report {
    let arrivals = arrivals.lock().unwrap();
    let mut lags = Vec::new();
    let (mut lost, mut duplicates, mut out_of_order) = (0, 0, 0);
    for n in 0..receivers {
        let got = arrivals.get(&n).cloned().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut last = 0;
        for (seq, at) in &got {
            if !seen.insert(*seq) {
                duplicates += 1;
                continue;
            }
            if *seq < last {
                out_of_order += 1;
            }
            last = *seq;
            if let Some(c) = commits.get(seq) {
                lags.push(at.saturating_duration_since(*c));
            }
        }
        lost += commits.keys().filter(|s| !seen.contains(s)).count();
    }
    lags.sort();
    Report {
        p50: percentile(&lags, 0.50),
        p99: percentile(&lags, 0.99),
        max: lags.last().copied().unwrap_or_default(),
        lost,
        duplicates,
        out_of_order,
    }
}

/// Appends events at `rate` for `secs`: one transaction per [`TICK`] with as many events as
/// the timetable owes; `on_commit` gets each event's seq and frame as its commit returns.
struct Writer {
    pool: deadpool_postgres::Pool,
    sealer: Arc<sincro_core::seal::Sealer>,
    user: Uuid,
    rate: f64,
    secs: u64,
}

impl Writer {
    /// Appends `batch` in one transaction; the seqs once it committed.
    async fn commit(&self, batch: &[NewEvent]) -> Result<Vec<i64>, Box<dyn std::error::Error>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let seqs = events::append_many(&tx, &self.sealer, batch).await?;
        tx.commit().await?;
        Ok(seqs)
    }

    /// One event, committed.
    async fn once(&self) -> Result<(), Box<dyn std::error::Error>> {
        let warm = NewEvent {
            usuario_id: self.user,
            kind: "message.received",
            data: json!({"warm_up": true}),
        };
        self.commit(&[warm]).await.map(|_| ())
    }

    async fn run(
        &self,
        mut on_commit: impl FnMut(i64, String),
    ) -> Result<HashMap<i64, Instant>, Box<dyn std::error::Error>> {
        let mut commits: HashMap<i64, Instant> = HashMap::new();
        let started = Instant::now();
        let mut ticker = tokio::time::interval(TICK);
        let mut written = 0usize;
        while started.elapsed() < Duration::from_secs(self.secs) {
            ticker.tick().await;
            // As many as the timetable owes by now: a slow commit makes the next one larger,
            // so the rate holds while the machine can take it.
            let due = (self.rate * started.elapsed().as_secs_f64()) as usize;
            let per_tick = due.saturating_sub(written).max(1);
            written += per_tick;
            let batch: Vec<NewEvent> = (0..per_tick)
                .map(|i| NewEvent {
                    usuario_id: self.user,
                    kind: "message.received",
                    data: json!({"i": i, "text": "x".repeat(150)}),
                })
                .collect();
            let seqs = self.commit(&batch).await?;
            let at = Instant::now();
            for (seq, e) in seqs.iter().zip(&batch) {
                commits.insert(*seq, at);
                on_commit(
                    *seq,
                    json!({"seq": seq, "type": e.kind, "data": e.data}).to_string(),
                );
            }
        }
        Ok(commits)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server =
        std::env::var("BENCH_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("sw_bench_{}", Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&format!("{server}/postgres"), NoTls).await?;
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let result = bench(&format!("{server}/{name}")).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    result
}

async fn bench(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let endpoints: usize = env_or("BENCH_ENDPOINTS", 10);
    let rate: f64 = env_or("BENCH_RATE", 1000.0);
    let secs: u64 = env_or("BENCH_SECS", 10);
    let in_flight: i32 = env_or("BENCH_IN_FLIGHT", 16);
    let data_dir = tempfile::tempdir()?;
    let env = HashMap::from([
        ("DATABASE_URL".to_string(), url.to_string()),
        (
            "ENCRYPTION_KEY".to_string(),
            sincro_core::seal::Sealer::generate_env_value("b1"),
        ),
        (
            "DATA_DIR".to_string(),
            data_dir.path().display().to_string(),
        ),
        ("NODE_ID".to_string(), "bench".to_string()),
        ("WEBHOOK_URL_ALLOW".to_string(), "127.0.0.1/32".to_string()),
        (
            "DB_POOL_SIZE".to_string(),
            std::env::var("DB_POOL_SIZE").unwrap_or_else(|_| "16".into()),
        ),
    ]);
    let config = Config::from_map(&env).map_err(|e| format!("{e:?}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = Application::build(config, listener, Options::default()).await?;
    let ctx = app.context();
    let pool = ctx.pool.clone();
    let sealer = ctx.sealer.clone();
    let (user, key) = {
        let mut client = pool.get().await?;
        let (made, _) =
            sincro_core::store::users::create_with_key(&mut client, "bench@hooks", None, false)
                .await?;
        (made.usuario_id, made.key.plaintext.expose().to_string())
    };
    let (rx_base, arrivals) = receivers().await;
    let (direct_base, direct_arrivals) = receivers().await;
    let http = reqwest::Client::new();
    println!(
        "hooks_bench: {endpoints} endpoints x {rate} events/s for {secs} s, max_in_flight {in_flight}, {} CPU(s)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let writer = Writer {
        pool: pool.clone(),
        sealer: sealer.clone(),
        user,
        rate,
        secs,
    };

    // Phase 1, the baseline: one plain client per receiver, one request at a time, fed each
    // frame as its commit returns. It runs alone, so neither phase slows the other.
    let (direct_tx, _) = tokio::sync::broadcast::channel::<(i64, Arc<str>)>(1 << 16);
    let mut direct_tasks = Vec::new();
    for n in 0..endpoints {
        let mut frames = direct_tx.subscribe();
        let (client, target) = (http.clone(), format!("{direct_base}/r/{n}"));
        direct_tasks.push(tokio::spawn(async move {
            while let Ok((seq, body)) = frames.recv().await {
                let _ = client
                    .post(&target)
                    .header("x-sincro-seq", seq)
                    .body(body.to_string())
                    .send()
                    .await;
            }
        }));
    }
    let direct_commits = writer
        .run(|seq, frame| {
            let _ = direct_tx.send((seq, frame.into()));
        })
        .await?;
    drop(direct_tx);
    for t in direct_tasks {
        let _ = tokio::time::timeout(DRAIN, t).await;
    }

    // Phase 2, the daemon: endpoints created now start after the baseline's events.
    for n in 0..endpoints {
        let resp = http
            .post(format!("http://{}/v1/webhooks", app.addr()))
            .bearer_auth(&key)
            .json(&json!({"url": format!("{rx_base}/r/{n}"), "max_in_flight": in_flight}))
            .send()
            .await?;
        if resp.status().as_u16() != 201 {
            return Err(format!("create endpoint: {}", resp.text().await?).into());
        }
    }
    // The lanes start on the dispatcher's next tick (up to a second): one event delivered to
    // every endpoint first, so the measured events do not wait for that.
    writer.once().await?;
    let until = Instant::now() + DRAIN;
    while arrivals.lock().unwrap().len() < endpoints && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let commits = writer.run(|_, _| {}).await?;
    let total = commits.len();
    let until = Instant::now() + DRAIN;
    while Instant::now() < until {
        let done = arrivals
            .lock()
            .unwrap()
            .values()
            .map(|v| v.len())
            .sum::<usize>();
        if done >= total * endpoints {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hooks = report(&commits, &arrivals, endpoints);
    let direct = report(&direct_commits, &direct_arrivals, endpoints);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-6);
    println!(
        "events {total} per endpoint ({:.0}/s reached); webhooks lag p50 {:?} p99 {:?} max {:?}; lost {}, duplicates {}, out of order {} (expected only with max_in_flight > 1)",
        total as f64 / secs as f64,
        hooks.p50,
        hooks.p99,
        hooks.max,
        hooks.lost,
        hooks.duplicates,
        hooks.out_of_order
    );
    println!(
        "baseline (plain POST at commit, run before, {} events) p50 {:?} p99 {:?} max {:?}; lost {}",
        direct_commits.len(),
        direct.p50,
        direct.p99,
        direct.max,
        direct.lost
    );
    println!(
        "ratio to baseline: p50 {:.1}x, p99 {:.1}x; goal p99 < {:?}: {}",
        ratio(hooks.p50, direct.p50),
        ratio(hooks.p99, direct.p99),
        GOAL_P99,
        if hooks.p99 < GOAL_P99 {
            "met"
        } else {
            "NOT met"
        }
    );
    let report = app.shutdown().await;
    if !report.still_running.is_empty() {
        println!("still running at shutdown: {:?}", report.still_running);
    }
    Ok(())
}
