//! `demo`: the daemon with the embedded defaults, both simulators in-process and a demo user,
//! so a new user can try everything with one command. `sim graph|web` run one simulator alone.

use crate::app::{Application, Options, shutdown_signal};
use crate::config::Config;
use anyhow::Context;
use clap::Subcommand;
use sincro_core::store::users;
use sincro_sim::{graph, web};
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The simulators `sim graph|web` runs alone.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Meta Graph API (WhatsApp Cloud API) simulator.
    Graph {
        #[arg(long, default_value = "127.0.0.1:9090")]
        bind: SocketAddr,
    },
    /// WhatsApp Web simulator.
    Web {
        #[arg(long, default_value = "127.0.0.1:9091")]
        bind: SocketAddr,
    },
}

pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let graph_sim = graph::start(
        TcpListener::bind("127.0.0.1:0").await?,
        graph::GraphSimConfig::default(),
    )
    .await
    .context("start the Graph API simulator")?;
    let web_sim = web::start(
        TcpListener::bind("127.0.0.1:0").await?,
        web::WebSimConfig::default(),
    )
    .await
    .context("start the WhatsApp Web simulator")?;
    config.graph_api_base = graph_sim.base_url();
    config.whatsapp_web_url = web_sim.base_url().trim_end_matches('/').to_string();
    config.lite.web_url = config.whatsapp_web_url.clone();
    let listener = TcpListener::bind(config.bind_addr)
        .await
        .with_context(|| format!("cannot listen on BIND_ADDR {}", config.bind_addr))?;
    let app = Application::build(config, listener, Options::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = format!("http://{}", app.addr());
    let key = {
        let mut client = app.context().pool.get().await?;
        users::create_with_key(&mut client, "demo@sincro.local", Some("Demo"), true)
            .await?
            .0
            .key
            .plaintext
            .expose()
            .to_string()
    };
    println!("sincro-whatsapp demo is running");
    println!("  API:              {base}/v1/   (Authorization: Bearer {key})");
    println!("  status:           curl -H 'Authorization: Bearer {key}' {base}/v1/status");
    println!(
        "  health:           {base}/healthz   readiness: {base}/readyz   metrics: {base}/metrics"
    );
    println!(
        "  Graph API sim:    {}   (GRAPH_API_BASE)",
        graph_sim.base_url()
    );
    println!(
        "  WhatsApp Web sim: {}   (WHATSAPP_WEB_URL)",
        web_sim.base_url()
    );
    print_lite_help(&base, &key, &web_sim.base_url());
    connect_demo_business(&app, &base, &key, &graph_sim.base_url()).await;
    let qr_printer = tokio::spawn(print_lite_qrs(
        app.context().pool.clone(),
        web_sim.base_url(),
    ));
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    qr_printer.abort();
    app.shutdown().await;
    graph_sim.shutdown().await;
    web_sim.shutdown().await;
    Ok(())
}

pub async fn run_simulator(which: SimCommand) -> anyhow::Result<()> {
    match which {
        SimCommand::Graph { bind } => {
            let sim = graph::start(
                TcpListener::bind(bind).await?,
                graph::GraphSimConfig::default(),
            )
            .await?;
            println!("Graph API simulator on {}", sim.base_url());
            shutdown_signal().await;
            sim.shutdown().await;
        }
        SimCommand::Web { bind } => {
            let sim =
                web::start(TcpListener::bind(bind).await?, web::WebSimConfig::default()).await?;
            println!("WhatsApp Web simulator on {}", sim.base_url());
            shutdown_signal().await;
            sim.shutdown().await;
        }
    }
    Ok(())
}

/// How to link a Lite session with the WhatsApp Web simulator.
fn print_lite_help(base: &str, key: &str, sim: &str) {
    println!("WhatsApp Lite (the simulator plays the phone):");
    println!(
        "  1. start a session:  curl -X POST -H 'Authorization: Bearer {key}' {base}/v1/lite/sessions"
    );
    println!(
        "  2. its QR is printed here on every rotation (also GET {base}/v1/lite/sessions/<id>/qr, .png, .svg)"
    );
    println!(
        "  3. \"scan\" it:        curl -X POST {sim}sim/scan -H 'content-type: application/json' -d '{{\"qr\":\"<qr>\",\"phone\":\"5511999990001\"}}'"
    );
    println!(
        "  4. a contact writes: curl -X POST {sim}sim/messages -H 'content-type: application/json' -d '{{\"account\":\"5511999990001\",\"from\":\"5511988887777\",\"text\":\"hi\"}}'"
    );
}

/// Prints every new Lite QR in the terminal, with the command that scans it.
async fn print_lite_qrs(pool: deadpool_postgres::Pool, sim: String) {
    let mut shown: std::collections::HashMap<uuid::Uuid, String> = Default::default();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let Ok(client) = pool.get().await else {
            continue;
        };
        let Ok(rows) = client
            .query(
                "SELECT id, qr_code FROM whatsapp_lite_sessions
                 WHERE status = 'SCAN_QR_CODE' AND qr_code IS NOT NULL",
                &[],
            )
            .await
        else {
            continue;
        };
        for row in rows {
            let (id, qr): (uuid::Uuid, String) = (row.get(0), row.get(1));
            if shown.get(&id) == Some(&qr) {
                continue;
            }
            if let Ok(text) = sincro_core::lite::qr::terminal(&qr) {
                println!("\nLite session {id}: scan this QR\n{text}");
            }
            println!(
                "  curl -X POST {sim}sim/scan -H 'content-type: application/json' -d '{}'",
                serde_json::json!({"qr": qr, "phone": "5511999990001"})
            );
            shown.insert(id, qr);
        }
    }
}

/// Connects a Business number on the Graph simulator for the demo user, its webhooks going to
/// this daemon, and prints how a contact writes to it and how to answer.
async fn connect_demo_business(app: &Application, base: &str, key: &str, sim: &str) {
    let ctx = app.context();
    let found = async {
        let client = ctx.pool.get().await?;
        let row = client
            .query_one(
                "SELECT id FROM usuarios WHERE lower(email) = 'demo@sincro.local' ORDER BY created_at LIMIT 1",
                &[],
            )
            .await?;
        Ok::<uuid::Uuid, anyhow::Error>(row.get(0))
    };
    let (Ok(user), Some(_)) = (found.await, ctx.actors.children.business.get()) else {
        println!("WhatsApp Business: the demo number could not be set up (see the logs)");
        return;
    };
    match sincro_core::business::demo::connect(
        &ctx.shared,
        &ctx.actors.children.business,
        user,
        sim,
        base,
    )
    .await
    {
        Ok(n) => {
            let contact = "+5511988887777";
            println!(
                "WhatsApp Business (the Graph simulator plays Meta): number +{} connected as {}",
                n.display_phone_number, n.connection_id
            );
            println!(
                "  a contact writes:   curl -X POST {sim}/sim/inbound -H 'content-type: application/json' -d '{}'",
                serde_json::json!({"phone_number_id": n.phone_number_id, "from": contact, "name": "Ana", "message": {"type": "text", "text": {"body": "hi"}}})
            );
            println!(
                "  read it:            curl -H 'Authorization: Bearer {key}' {base}/v1/conversations"
            );
            println!(
                "  answer it:          curl -X POST {base}/v1/messages -H 'Authorization: Bearer {key}' -H 'content-type: application/json' -d '{}'",
                serde_json::json!({"connection_id": n.connection_id, "to": contact, "type": "text", "text": {"body": "hello!"}})
            );
            println!(
                "  what Meta got:      curl '{sim}/sim/sent?phone_number_id={}'",
                n.phone_number_id
            );
        }
        Err(e) => println!("WhatsApp Business: the demo number could not be connected: {e}"),
    }
}
