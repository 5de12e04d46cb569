//! Inbound load harness: the daemon in this process (on a runtime of its own, so its CPU is
//! counted apart from the load generator's), the Graph simulator, one connected Business
//! number, and signed Meta-shaped webhook floods over loopback keep-alive HTTP:
//!
//! - (a) 1 message per POST, 8 connections, closed loop;
//! - (b) 50 messages per POST, 4 connections, closed loop;
//! - (latency) 100 stream clients, 1 message per POST at 1,000 msg/s open loop: the delay
//!   from a POST's start to its `message.received` frame at each client, after a warm-up.
//!
//! For (a) and (b) it waits until every acknowledged message is a committed row and reports
//! end-to-end msg/s, POST p50/p99, the largest inbox backlog seen, and CPU seconds per 1,000
//! messages of the daemon and of the PostgreSQL backends serving its database (from `/proc`),
//! and the inbox's group commits the 200s waited for (how many, rows each, mean time; from the
//! daemon's `/metrics`).
//! Each is printed next to the PostgreSQL baselines measured in the same run on the same
//! server: the same messages as plain batched inserts into a table without keys, and one
//! commit per message (`baseline.rs`); and the same messages written by plain SQL into the
//! daemon's own tables, through the inbox as the scenario posts them (`crm_baseline.rs`).
//! Last, for each scenario, the rate the machine's cores would allow at the CPU its messages
//! took (the daemon's, PostgreSQL's and the load generator's, which share the cores) as a
//! ratio to its tables by plain SQL, and the CPU per message that 0.8 of those would leave.
//!
//! ```text
//! cargo run --release --example inbound_load
//! ```
//!
//! Knobs (environment): LOAD_PG (server URL, default postgres://postgres@127.0.0.1:5432),
//! LOAD_SECS (20 per scenario), LOAD_CONTACTS (5000), LOAD_CLIENTS (100), LOAD_RATE (1000),
//! LOAD_SCENARIOS (`a,b,latency`). It creates its own database and drops it at the end.

mod baseline;
mod commits;
mod cpu;
mod crm_baseline;
mod load;
mod stream;

use load::{Target, ms, quantile};
use sincro_whatsapp::app::{Application, Options};
use sincro_whatsapp::config::Config;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Error> {
    // Two workers each, as on the 2-CPU reference machine; the daemon's blocking threads stay
    // alive for the run so their CPU time is still readable at the end of a phase.
    let daemon = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(cpu::DAEMON_THREAD)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()?;
    let harness = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(cpu::LOAD_THREAD)
        .enable_all()
        .build()?;
    harness.block_on(bench(daemon.handle().clone()))
}

async fn bench(daemon: tokio::runtime::Handle) -> Result<(), Error> {
    let server =
        std::env::var("LOAD_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("sw_bench_{}", Uuid::new_v4().simple());
    let admin = connect(&format!("{server}/postgres")).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let result = run(&server, &name, daemon).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    result
}

async fn run(server: &str, name: &str, daemon: tokio::runtime::Handle) -> Result<(), Error> {
    let url = format!("{server}/{name}");
    let secs: f64 = env_or("LOAD_SECS", 20.0);
    let contacts: usize = env_or("LOAD_CONTACTS", 5000);
    let scenarios: String = env_or("LOAD_SCENARIOS", "a,b,latency".to_string());
    let sim = sincro_sim::graph::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        Default::default(),
    )
    .await?;
    let data_dir = tempfile::tempdir()?;
    let mut env = HashMap::from([
        ("DATABASE_URL".to_string(), url.clone()),
        (
            "ENCRYPTION_KEY".to_string(),
            sincro_core::seal::Sealer::generate_env_value("b1"),
        ),
        ("DATA_DIR".into(), data_dir.path().display().to_string()),
        ("NODE_ID".into(), "bench".into()),
        ("GRAPH_API_BASE".into(), sim.base_url()),
        ("LOG_LEVEL".into(), "warn".into()),
        ("API_RATE_PER_IP_PER_MINUTE".into(), "10000000".into()),
        ("API_RATE_PER_USER_PER_MINUTE".into(), "10000000".into()),
    ]);
    // The daemon's own knob for parallel ingest transactions (the drain's lanes), to compare.
    if let Ok(lanes) = std::env::var("INGEST_CONCURRENCY") {
        env.insert("INGEST_CONCURRENCY".into(), lanes);
    }
    let config = Config::from_map(&env).map_err(|e| format!("{e:?}"))?;
    let app = daemon
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            Application::build(config, listener, Options::default())
                .await
                .map_err(|e| Error::from(e.to_string()))
        })
        .await??;
    let base = format!("http://{}", app.addr());
    let (key, target) = connect_number(&app, &sim.base_url(), &base, contacts).await?;
    let watch = connect(&url).await?;
    println!(
        "inbound_load: daemon on {base}, {} CPU(s), load average {}, {secs} s per scenario, {contacts} contacts",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu::load_average(),
    );

    let mut measured = Vec::new();
    for (label, connections, per_post) in [("a", 8, 1), ("b", 4, 50)] {
        if scenarios.split(',').any(|s| s == label) {
            let m = closed(
                &url,
                &base,
                &watch,
                name,
                &target,
                label,
                connections,
                per_post,
                secs,
            )
            .await?;
            measured.push(m);
        }
    }
    if !measured.is_empty() {
        let rows = measured.iter().map(|m| m.messages).max().unwrap_or(0);
        let (batched, single) =
            baseline::measure(&url, rows.clamp(10_000, 100_000), contacts).await?;
        println!("\nPostgreSQL baselines, same run, same messages:");
        println!(
            "  into a table without keys, batched ({} rows per statement, {} connections): {batched:>9.0} msg/s",
            baseline::BATCH,
            baseline::BATCH_CONNECTIONS
        );
        println!(
            "  into a table without keys, one commit per message ({} connections):          {single:>9.0} msg/s",
            baseline::SINGLE_CONNECTIONS
        );
        // The same messages into the daemon's tables by plain SQL, shaped as each scenario
        // posts them (at most 50,000: they are sealed beforehand, in memory).
        let mut in_tables = Vec::new();
        for m in &measured {
            let count = m.messages.clamp(10_000, 50_000) / m.per_post * m.per_post;
            let t = crm_baseline::measure(
                &url,
                &watch,
                name,
                &target,
                count,
                m.per_post,
                m.connections,
            )
            .await?;
            println!(
                "  ({}) into the daemon's tables by plain SQL ({} msg/POST, one commit per POST on {} connections, stored about {} per transaction on {}): {:>9.0} msg/s, PostgreSQL {:.3} CPU s per 1k msgs",
                m.label,
                m.per_post,
                m.connections,
                crm_baseline::STEP,
                crm_baseline::WRITERS,
                t.rate,
                t.cpu_pg,
            );
            in_tables.push(t);
        }
        println!(
            "\nscenario | end to end | vs batched | vs 1 commit/msg | vs its tables by plain SQL | POST p50 / p99 | max inbox backlog | CPU s per 1k msgs (daemon + PostgreSQL)"
        );
        for (m, tables) in measured.iter().zip(&in_tables) {
            println!(
                "{} | {:.0} msg/s | {:.2}x | {:.2}x | {:.2}x | {} / {} | {} rows | {:.3} ({:.3} + {:.3})",
                m.label,
                m.rate,
                m.rate / batched,
                m.rate / single,
                m.rate / tables.rate,
                ms(m.p50),
                ms(m.p99),
                m.backlog,
                m.cpu_daemon + m.cpu_pg,
                m.cpu_daemon,
                m.cpu_pg
            );
        }
        let cpus = cpu::machine_cpus();
        println!(
            "\nwhat the machine's {cpus} CPU(s) would allow at the CPU each message took, if the three shared them all:"
        );
        for (m, tables) in measured.iter().zip(&in_tables) {
            println!("{}", ceiling(cpus, m, tables));
        }
    }
    if scenarios.split(',').any(|s| s == "latency") {
        let clients: usize = env_or("LOAD_CLIENTS", 100);
        let rate: f64 = env_or("LOAD_RATE", 1000.0);
        let ws = format!(
            "ws://{}/v1/stream?types=message.received&access_token={key}",
            app.addr()
        );
        // Warm-up, as for (a) and (b): the pool's connections and their prepared statements,
        // the contacts' leads and conversations; what is measured is the sustained rate.
        let warm = format!("warmlat{}", Uuid::now_v7().simple());
        load::closed_loop(&target, &warm, 8, 1, secs.min(3.0)).await;
        settled(&watch).await?;
        let run = format!("lat{}", Uuid::now_v7().simple());
        let mut l = stream::run(&target, &ws, &run, clients, rate, secs).await?;
        println!(
            "\nlatency: {clients} stream clients, {rate:.0} msg/s open loop for {secs} s: {} posted ({} failed), frames {}/{}; webhook -> frame p50 {} p99 {} max {}; POST p99 {}; load average {}",
            l.sent,
            l.failures,
            l.received,
            l.expected,
            ms(quantile(&mut l.delays, 0.5)),
            ms(quantile(&mut l.delays, 0.99)),
            ms(quantile(&mut l.delays, 1.0)),
            ms(quantile(&mut l.posts, 0.99)),
            cpu::load_average(),
        );
    }
    daemon.spawn(app.shutdown()).await?;
    Ok(())
}

/// The rate the machine's cores allow a scenario if they did nothing but its work, at the CPU
/// its messages took (the daemon's, PostgreSQL's for its rows, the load generator's), next to
/// its tables by plain SQL, whose run is PostgreSQL's work alone on the same cores; and what
/// 0.8 of that baseline leaves for all three. A measured ratio near this ceiling is bound by
/// the cores, not by waiting.
fn ceiling(cpus: usize, m: &Measured, tables: &crm_baseline::Measured) -> String {
    let per_k = m.cpu_daemon + m.cpu_pg + m.cpu_load;
    let most = cpus as f64 / per_k * 1000.0;
    let budget = cpus as f64 / (0.8 * tables.rate) * 1000.0;
    format!(
        "({}) {:.3} CPU s per 1k msgs (daemon {:.3} + PostgreSQL {:.3} + load generator {:.3}): at most {:.0} msg/s, {:.2}x its tables by plain SQL ({:.0} msg/s, PostgreSQL alone {:.3} per 1k); 0.8x of them leaves {:.3} per 1k for all three",
        m.label,
        per_k,
        m.cpu_daemon,
        m.cpu_pg,
        m.cpu_load,
        most,
        most / tables.rate,
        tables.rate,
        tables.cpu_pg,
        budget,
    )
}

/// One closed-loop scenario's figures.
struct Measured {
    label: &'static str,
    connections: usize,
    per_post: usize,
    messages: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
    backlog: i64,
    cpu_daemon: f64,
    cpu_pg: f64,
    /// The load generator's CPU seconds per 1,000 messages (same cores, same process).
    cpu_load: f64,
}

#[allow(clippy::too_many_arguments)]
async fn closed(
    url: &str,
    base: &str,
    watch: &tokio_postgres::Client,
    database: &str,
    target: &Target,
    label: &'static str,
    connections: usize,
    per_post: usize,
    secs: f64,
) -> Result<Measured, Error> {
    // Warm-up: connections, caches, the contacts' leads and conversations.
    let warm = format!("warm{label}{}", Uuid::now_v7().simple());
    load::closed_loop(target, &warm, connections, per_post, secs.min(5.0)).await;
    settled(watch).await?;
    let run = format!("{label}{}", Uuid::now_v7().simple());
    let meter = cpu::CpuMeter::start(watch, database).await;
    let scrape = load::client(1);
    let commits_before = commits::Snapshot::take(&scrape, base).await?;
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let sampler = backlog_sampler(url.to_string(), stopped);
    let mut posted = load::closed_loop(target, &run, connections, per_post, secs).await;
    let _ = stop.send(());
    let commits = commits::Snapshot::take(&scrape, base)
        .await?
        .since(&commits_before);
    let backlog = drained(watch).await?.max(sampler.await?);
    let took = started.elapsed();
    let spent = meter.stop(watch, database).await;
    let stored = stored(watch, &run).await?;
    let per_k = posted.messages as f64 / 1000.0;
    let m = Measured {
        label,
        connections,
        per_post,
        messages: posted.messages,
        rate: posted.messages as f64 / took.as_secs_f64(),
        p50: quantile(&mut posted.latencies, 0.5),
        p99: quantile(&mut posted.latencies, 0.99),
        backlog,
        cpu_daemon: spent.daemon / per_k,
        cpu_pg: spent.pg / per_k,
        cpu_load: spent.load / per_k,
    };
    println!(
        "({label}) {per_post} msg/POST, {connections} connections: {} messages in {} POSTs ({} failed), accepted at {:.0} msg/s; all committed as rows after {:.1} s: {:.0} msg/s end to end; stored {stored} ({}); load average {}",
        posted.messages,
        posted.posts,
        posted.failures,
        posted.messages as f64 / posted.elapsed.as_secs_f64(),
        took.as_secs_f64(),
        m.rate,
        if stored as usize == posted.messages {
            "none lost"
        } else {
            "MISMATCH"
        },
        cpu::load_average(),
    );
    println!(
        "({label}) inbox: {:.0} group commits while posting, {:.1} rows each, {:.2} ms each on average",
        commits.count, commits.rows_each, commits.mean_ms,
    );
    Ok(m)
}

/// A session of its own on `url`, its connection polled by a task.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// The messages of run `run` (its external ids, `load::wamid`) stored so far.
pub async fn stored(client: &tokio_postgres::Client, run: &str) -> Result<i64, Error> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM mensajes_conversacion WHERE external_id LIKE $1",
            &[&format!("wamid.{run}.%")],
        )
        .await?
        .get(0))
}

/// Waits until no inbox row is left to drain; returns the largest backlog seen meanwhile.
/// After a warm-up: everything drained, and the tables' statistics taken, as autovacuum does
/// in production after that many new rows (a test server may run with autovacuum off; then
/// the planner would go on costing the warmed-up tables as empty).
async fn settled(watch: &tokio_postgres::Client) -> Result<(), Error> {
    drained(watch).await?;
    watch.batch_execute("ANALYZE").await?;
    Ok(())
}

async fn drained(watch: &tokio_postgres::Client) -> Result<i64, Error> {
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(900);
    loop {
        let left: i64 = watch
            .query_one(
                "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL",
                &[],
            )
            .await?
            .get(0);
        most = most.max(left);
        if left == 0 {
            return Ok(most);
        }
        if Instant::now() > until {
            return Err(format!("{left} inbox rows still undrained after 15 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The largest inbox backlog while the load runs, sampled every 250 ms on its own connection
/// until `stop` fires.
fn backlog_sampler(
    url: String,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let Ok(client) = connect(&url).await else {
            return 0;
        };
        tokio::pin!(stop);
        let mut most = 0;
        loop {
            if let Ok(row) = client
                .query_one(
                    "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL",
                    &[],
                )
                .await
            {
                most = most.max(row.get::<_, i64>(0));
            }
            tokio::select! {
                _ = &mut stop => return most,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    })
}

/// A user with an API key, and a Business number of a simulator account connected for it
/// through the API.
async fn connect_number(
    app: &Application,
    sim: &str,
    base: &str,
    contacts: usize,
) -> Result<(String, Target), Error> {
    let mut client = app.context().pool.get().await?;
    let (created, _) =
        sincro_core::store::users::create_with_key(&mut client, "load@example.com", None, false)
            .await?;
    let key = created.key.plaintext.expose().to_string();
    let http = reqwest::Client::new();
    let account: serde_json::Value = http
        .post(format!("{sim}/sim/accounts"))
        .json(&serde_json::json!({}))
        .send()
        .await?
        .json()
        .await?;
    let text = |k: &str| account[k].as_str().unwrap_or_default().to_string();
    let resp = http
        .post(format!("{base}/v1/business/numbers"))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "phone_number_id": text("phone_number_id"), "waba_id": text("waba_id"),
            "access_token": text("access_token"), "app_secret": text("app_secret"),
            "verify_token": text("verify_token"),
        }))
        .send()
        .await?;
    if resp.status().as_u16() != 201 {
        return Err(format!("connecting the number: {}", resp.text().await?).into());
    }
    let target = Target {
        url: format!("{base}/webhooks/whatsapp"),
        app_secret: text("app_secret"),
        phone_number_id: text("phone_number_id"),
        waba_id: text("waba_id"),
        display_phone_number: text("display_phone_number"),
        contacts,
    };
    Ok((key, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(daemon: f64, pg: f64, load: f64) -> Measured {
        Measured {
            label: "b",
            connections: 4,
            per_post: 50,
            messages: 100_000,
            rate: 10_000.0,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            backlog: 0,
            cpu_daemon: daemon,
            cpu_pg: pg,
            cpu_load: load,
        }
    }

    #[test]
    fn the_ceiling_is_the_cores_over_the_cpu_of_a_message() {
        // Two cores, 0.1 CPU s per 1k messages in all: 20,000 msg/s at most; the baseline
        // made 25,000, so 0.8 of it (20,000) leaves exactly 0.1 per 1k.
        let tables = crm_baseline::Measured {
            rate: 25_000.0,
            cpu_pg: 0.07,
        };
        let line = ceiling(2, &measured(0.04, 0.05, 0.01), &tables);
        assert!(line.contains("(b) 0.100 CPU s per 1k msgs (daemon 0.040 + PostgreSQL 0.050 + load generator 0.010)"), "{line}");
        assert!(line.contains("at most 20000 msg/s, 0.80x its tables by plain SQL (25000 msg/s, PostgreSQL alone 0.070 per 1k)"), "{line}");
        assert!(
            line.ends_with("leaves 0.100 per 1k for all three"),
            "{line}"
        );
    }
}
