//! `demo`: the daemon with the embedded defaults, both simulators in-process and a demo user,
//! so a new user can try everything with one command. `sim graph|web` run one simulator alone.

use crate::app::{Application, Options};
use crate::cli::{SimCommand, shutdown_signal};
use crate::config::Config;
use anyhow::Context;
use sincro_actors::store::users;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.bind_addr)
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
    println!("  API:        {base}/v1/  (Authorization: Bearer {key})");
    println!("  status:     curl -H 'Authorization: Bearer {key}' {base}/v1/status");
    println!("  health:     {base}/healthz   readiness: {base}/readyz   metrics: {base}/metrics");
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    app.shutdown().await;
    Ok(())
}

pub async fn run_simulator(which: SimCommand) -> anyhow::Result<()> {
    match which {
        SimCommand::Graph { bind } | SimCommand::Web { bind } => {
            anyhow::bail!("the simulator for {bind} is not built yet")
        }
    }
}
