//! `demo`: the daemon with the embedded defaults, both simulators in-process and a demo user,
//! so a new user can try everything with one command. `sim graph|web` run one simulator alone.

use crate::app::{Application, Options};
use crate::cli::{SimCommand, shutdown_signal};
use crate::config::Config;
use anyhow::Context;
use sincro_actors::store::users;
use sincro_sim::{graph, web};
use tokio::net::TcpListener;

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
    };
    println!("sincro-whatsapp demo is running");
    println!("  API:              {base}/v1/   (Authorization: Bearer {key})");
    println!("  status:           curl -H 'Authorization: Bearer {key}' {base}/v1/status");
    println!("  health:           {base}/healthz   readiness: {base}/readyz   metrics: {base}/metrics");
    println!("  Graph API sim:    {}   (GRAPH_API_BASE)", graph_sim.base_url());
    println!("  WhatsApp Web sim: {}   (WHATSAPP_WEB_URL)", web_sim.base_url());
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    app.shutdown().await;
    graph_sim.shutdown().await;
    web_sim.shutdown().await;
    Ok(())
}

pub async fn run_simulator(which: SimCommand) -> anyhow::Result<()> {
    match which {
        SimCommand::Graph { bind } => {
            let sim = graph::start(TcpListener::bind(bind).await?, graph::GraphSimConfig::default()).await?;
            println!("Graph API simulator on {}", sim.base_url());
            shutdown_signal().await;
            sim.shutdown().await;
        }
        SimCommand::Web { bind } => {
            let sim = web::start(TcpListener::bind(bind).await?, web::WebSimConfig::default()).await?;
            println!("WhatsApp Web simulator on {}", sim.base_url());
            shutdown_signal().await;
            sim.shutdown().await;
        }
    }
    Ok(())
}
