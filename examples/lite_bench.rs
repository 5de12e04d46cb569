//! WhatsApp Lite benchmark: the real daemon (in-process, real HTTP, real PostgreSQL)
//! driving real Chromium against the WhatsApp Web simulator.
//!
//! Measures, in one run:
//! - **cold start → QR**: `POST /v1/lite/sessions` until `GET .../qr` answers (goal: < 2 s);
//! - **restart → WORKING**: `kill -9` of a session's Chromium until the session is WORKING again
//!   (supervisor backoff included), and stop + start of a linked session (goal: < 3 s);
//! - **memory per session** with 1, 5 and 10 linked sessions: PSS summed over each Chromium
//!   process tree (`/proc/<pid>/smaps_rollup`; RSS would count shared pages once per process),
//!   side by side with the same page in Chromium started with WAHA's published flag set
//!   (`renderer-process-limit=2 no-zygote disk-cache-size=0` on top of the usual headless
//!   flags), in the same run (goal: < 120 MiB per session);
//! - **daemon memory per session**: the PSS growth of this process (the daemon) per session.
//!
//! `cargo run --release --example lite_bench [-- MAX_SESSIONS]` (default 10); PostgreSQL from
//! `BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432`), Chromium from `CHROMIUM_PATH`
//! (default `/usr/bin/chromium`). Creates and drops its own database and data directory, and
//! stops by itself.

use serde_json::{Value, json};
use sincro_core::lite::browser::{self, Chromium, LaunchSpec};
use sincro_sim::web::{self, WebSimConfig, WebSimHandle};
use sincro_whatsapp::app::{Application, Options};
use sincro_whatsapp::config::Config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::main]
async fn main() -> Res<()> {
    let max: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("sw_bench_{}", Uuid::new_v4().simple());
    let (admin, conn) =
        tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let data = tempfile::tempdir()?;
    let result = run(&format!("{server}/{name}"), data.path(), max).await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    result
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

struct Bench {
    base: String,
    key: String,
    http: reqwest::Client,
    sim: WebSimHandle,
    lite_dir: PathBuf,
    next_phone: u64,
}

impl Bench {
    async fn get(&self, path: &str) -> Res<(u16, Value)> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn status(&self, id: &str) -> Res<String> {
        let (_, s) = self.get(&format!("/v1/lite/sessions/{id}")).await?;
        Ok(s["status"].as_str().unwrap_or("").to_string())
    }

    async fn wait_status(&self, id: &str, want: &str) -> Res<Duration> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if self.status(id).await? == want {
                return Ok(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(format!("session {id} never became {want}").into())
    }

    /// Creates a session; returns its id and the time until its QR was served.
    async fn create(&self) -> Res<(String, Duration)> {
        let t = Instant::now();
        let created: Value = self
            .http
            .post(format!("{}/v1/lite/sessions", self.base))
            .bearer_auth(&self.key)
            .send()
            .await?
            .json()
            .await?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| format!("no session: {created}"))?
            .to_string();
        while t.elapsed() < Duration::from_secs(60) {
            if self.get(&format!("/v1/lite/sessions/{id}/qr")).await?.0 == 200 {
                return Ok((id, t.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err("no QR within 60 s".into())
    }

    fn phone(&mut self) -> String {
        self.next_phone += 1;
        format!("55119{:08}", self.next_phone)
    }

    async fn scan(&self, qr: &str, phone: &str) -> Res<bool> {
        let res = self
            .http
            .post(format!("{}sim/scan", self.sim.base_url()))
            .json(&json!({"qr": qr, "phone": phone}))
            .send()
            .await?;
        Ok(res.status().is_success())
    }

    async fn link(&mut self, id: &str) -> Res<()> {
        let phone = self.phone();
        for _ in 0..50 {
            let (status, qr) = self.get(&format!("/v1/lite/sessions/{id}/qr")).await?;
            if status == 200 && self.scan(qr["qr"].as_str().unwrap_or(""), &phone).await? {
                self.wait_status(id, "WORKING").await?;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("could not link".into())
    }

    /// PSS of one session's Chromium tree (group + stragglers naming its directory).
    fn session_pss(&self, id: &str) -> u64 {
        tree_pss(&self.lite_dir.join(id))
    }
}

/// PSS of every live process naming `dir` plus the rest of their process groups.
fn tree_pss(dir: &Path) -> u64 {
    let mut pids = browser::live_under(dir);
    let groups: Vec<i32> = pids
        .iter()
        .filter_map(|&p| browser::state_and_pgid(p).map(|(_, g)| g))
        .collect();
    for g in groups {
        pids.extend(browser::live_group(g));
    }
    pids.sort();
    pids.dedup();
    pids.into_iter().map(browser::pss_bytes).sum()
}

fn my_pss() -> u64 {
    browser::pss_bytes(std::process::id() as i32)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn stats(v: &mut [Duration]) -> String {
    v.sort();
    let p50 = v[v.len() / 2];
    let max = v[v.len() - 1];
    format!("p50 {} / max {} (n={})", ms(p50), ms(max), v.len())
}

async fn run(database_url: &str, data_dir: &Path, max: usize) -> Res<()> {
    let sim = web::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        WebSimConfig::default(),
    )
    .await?;
    let env = HashMap::from([
        ("DATABASE_URL".to_string(), database_url.to_string()),
        (
            "ENCRYPTION_KEY".to_string(),
            sincro_core::seal::Sealer::generate_env_value("b1"),
        ),
        ("DATA_DIR".to_string(), data_dir.display().to_string()),
        ("WHATSAPP_WEB_URL".to_string(), sim.base_url()),
        (
            "CHROMIUM_PATH".to_string(),
            chromium().display().to_string(),
        ),
        (
            "LITE_MAX_SESSIONS_PER_USER".to_string(),
            max.max(5).to_string(),
        ),
        ("LOG_LEVEL".to_string(), "warn".to_string()),
        // The bench polls every 10 ms.
        (
            "API_RATE_PER_USER_PER_MINUTE".to_string(),
            "1000000".to_string(),
        ),
        (
            "API_RATE_PER_IP_PER_MINUTE".to_string(),
            "1000000".to_string(),
        ),
    ]);
    let mut env = env;
    if let Ok(extra) = std::env::var("CHROMIUM_ARGS") {
        env.insert("CHROMIUM_ARGS".to_string(), extra);
    }
    let config = Config::from_map(&env).map_err(|e| e.to_string())?;
    let app = Application::build(
        config,
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        Options::default(),
    )
    .await?;
    let key = {
        let mut client = app.context().pool.get().await?;
        sincro_core::store::users::create_with_key(&mut client, "bench@example.com", None, false)
            .await?
            .0
            .key
            .plaintext
            .expose()
            .to_string()
    };
    let mut b = Bench {
        base: format!("http://{}", app.addr()),
        key,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        sim,
        lite_dir: sincro_core::lite::absolute(data_dir).join("lite"),
        next_phone: 0,
    };
    let daemon_before = my_pss();

    // 1. Cold start → QR, then link; the first session also measures the restarts.
    let mut cold = Vec::new();
    let mut ids = Vec::new();
    let (id, t) = b.create().await?;
    cold.push(t);
    b.link(&id).await?;
    ids.push(id.clone());

    // Wait for the login state to be on disk (the first snapshot), then restart 3 ways.
    let t = Instant::now();
    while b.get(&format!("/v1/lite/sessions/{id}")).await?.1["profile_snapshot_at"].is_null() {
        if t.elapsed() > Duration::from_secs(30) {
            return Err("no snapshot".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut kill_restart = Vec::new();
    let mut stop_start = Vec::new();
    for _ in 0..3 {
        let main = browser::live_under(&b.lite_dir.join(&id))
            .into_iter()
            .find(|&p| browser::state_and_pgid(p).is_some_and(|(_, g)| g == p))
            .ok_or("no browser")?;
        let t = Instant::now();
        // SAFETY: the bench's own session browser.
        unsafe { libc::kill(main, libc::SIGKILL) };
        while b.status(&id).await? == "WORKING" && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        b.wait_status(&id, "WORKING").await?;
        kill_restart.push(t.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;

        b.http
            .delete(format!("{}/v1/lite/sessions/{id}", b.base))
            .bearer_auth(&b.key)
            .send()
            .await?;
        let t = Instant::now();
        b.http
            .post(format!("{}/v1/lite/sessions", b.base))
            .bearer_auth(&b.key)
            .json(&json!({"id": id}))
            .send()
            .await?;
        b.wait_status(&id, "WORKING").await?;
        stop_start.push(t.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // 2. Memory with 1, 5, 10 linked sessions.
    let mut ours: Vec<(usize, f64, f64)> = Vec::new();
    let mut daemon_per_session = 0.0;
    for n in [1usize, 5, 10].into_iter().filter(|&n| n <= max) {
        while ids.len() < n {
            let (id, t) = b.create().await?;
            cold.push(t);
            b.link(&id).await?;
            ids.push(id);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let per: Vec<u64> = ids.iter().map(|id| b.session_pss(id)).collect();
        let total: u64 = per.iter().sum();
        ours.push((n, total as f64 / MIB, total as f64 / n as f64 / MIB));
        daemon_per_session = (my_pss() as f64 - daemon_before as f64) / n as f64 / MIB;
    }
    let daemon_total = my_pss() as f64 / MIB;

    // Stop our sessions before measuring the other flag set.
    for id in &ids {
        b.http
            .delete(format!("{}/v1/lite/sessions/{id}", b.base))
            .bearer_auth(&b.key)
            .send()
            .await?;
    }

    // 3. The same page (logged in) under WAHA's flag set.
    let waha = waha_memory(&mut b, data_dir, max).await?;

    app.shutdown().await;
    b.sim.shutdown().await;

    println!(
        "WhatsApp Lite benchmark ({} CPUs)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!("  cold start -> QR served:       {}", stats(&mut cold));
    println!(
        "  kill -9 Chromium -> WORKING:   {}",
        stats(&mut kill_restart)
    );
    println!(
        "  stop + start -> WORKING:       {}",
        stats(&mut stop_start)
    );
    println!("  PSS per session (Chromium tree), logged-in simulator page:");
    println!(
        "    sessions | sincro total | sincro/session | WAHA flags total | WAHA/session | ratio"
    );
    for (n, total, per) in &ours {
        let (wt, wp) = waha
            .iter()
            .find(|(m, _, _)| m == n)
            .map(|(_, t, p)| (*t, *p))
            .unwrap_or((f64::NAN, f64::NAN));
        println!(
            "    {n:>8} | {total:>8.1} MiB | {per:>10.1} MiB | {wt:>12.1} MiB | {wp:>8.1} MiB | {:.2}",
            per / wp
        );
    }
    println!(
        "  daemon PSS: {daemon_total:.1} MiB total, +{daemon_per_session:.2} MiB per session (beyond Chromium)"
    );
    Ok(())
}

/// Chromium with WAHA's published flags on the simulator page, logged in, N at a time.
async fn waha_memory(b: &mut Bench, data_dir: &Path, max: usize) -> Res<Vec<(usize, f64, f64)>> {
    let flags: Vec<String> = [
        "headless=new",
        "no-sandbox",
        "disable-gpu",
        "disable-dev-shm-usage",
        "disable-extensions",
        "disable-sync",
        "disable-background-networking",
        "disable-component-update",
        "no-first-run",
        "renderer-process-limit=2",
        "no-zygote",
        "disk-cache-size=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let root = sincro_core::lite::absolute(data_dir).join("waha");
    let mut running = Vec::new();
    let mut out = Vec::new();
    for n in [1usize, 5, 10].into_iter().filter(|&n| n <= max) {
        while running.len() < n {
            let dir = root.join(format!("s{}", running.len()));
            let spec = LaunchSpec {
                exe: Some(chromium()),
                marker_dir: dir.clone(),
                user_data_dir: dir.join("profile"),
                flags: flags.clone(),
                timeout: Duration::from_secs(30),
            };
            let c = Chromium::launch(&spec).await?;
            let (browser, mut handler) = c.connect().await?;
            let h = tokio::spawn(async move {
                use futures::StreamExt;
                while let Some(Ok(_)) = handler.next().await {}
            });
            let page = browser.new_page("about:blank").await?;
            let before: Vec<String> = qrs(b).await?;
            page.goto(b.sim.base_url()).await?;
            // Scan this page's QR (the one that was not shown before).
            let phone = b.phone();
            let t = Instant::now();
            loop {
                let now = qrs(b).await?;
                if let Some(qr) = now.iter().find(|q| !before.contains(q))
                    && b.scan(qr, &phone).await?
                {
                    break;
                }
                if t.elapsed() > Duration::from_secs(30) {
                    return Err("WAHA-flag page never showed a QR".into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            running.push((c, browser, h, dir));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let total: u64 = running
            .iter()
            .map(|(_, _, _, d): &(Chromium, _, _, PathBuf)| tree_pss(d))
            .sum();
        out.push((n, total as f64 / MIB, total as f64 / n as f64 / MIB));
    }
    for (mut c, browser, h, _) in running {
        drop(browser);
        h.abort();
        c.terminate(Duration::ZERO).await;
    }
    Ok(out)
}

async fn qrs(b: &Bench) -> Res<Vec<String>> {
    let v: Value = reqwest::get(format!("{}sim/qr", b.sim.base_url()))
        .await?
        .json()
        .await?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["qr"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}
