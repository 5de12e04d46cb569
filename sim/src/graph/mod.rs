//! Meta Graph API simulator (docs/ARCHITECTURE.md §6): a strict local imitation of the
//! WhatsApp Business Cloud API, for the daemon's integration tests (in-process) and for
//! `sincro-whatsapp demo` / `sincro-whatsapp sim graph --bind ADDR`.
//!
//! Strict on purpose: a simulator that accepts what Meta rejects hides bugs. Requests are
//! validated with Meta's limits and answered with Meta's error shape and codes; sends are
//! subject to the 24 h window, throughput and pair-rate limits; webhooks are signed like
//! Meta's and may be duplicated, reordered, delayed or batched on request.
//!
//! Graph routes (under `/{version}/`, `version` = `v<digits>.<digits>`; bearer token or
//! `access_token` query parameter, code 190 when missing or unknown):
//! - `POST /{phone_number_id}/messages` (all message types, mark-as-read)
//! - `POST /{phone_number_id}/media`; `GET` / `DELETE /{media_id}`; `GET <media url>` with bearer
//! - `GET|POST|DELETE /{waba_id}/message_templates`; `GET /{template_id}`
//! - `GET /{phone_number_id}[?fields=]`, `GET /{waba_id}`, `GET /{waba_id}/phone_numbers`,
//!   `POST /{phone_number_id}/register`, `GET /debug_token?input_token=`,
//!   `POST|GET|DELETE /{waba_id}/subscribed_apps`
//!
//! Control routes (JSON; see `control.rs`): `POST|GET /sim/accounts`, `POST /sim/inbound`,
//! `GET /sim/sent`, `POST|GET|DELETE /sim/faults`, `POST|GET /sim/webhooks`,
//! `POST /sim/statuses`, `POST /sim/throughput` (a number's level; see `levels.rs`).

mod config;
mod control;
mod errors;
mod faults;
mod ids;
mod inbound_extras;
mod levels;
mod limits;
mod media;
mod messages;
mod multipart;
mod phone;
mod records;
mod router;
mod send;
mod state;
mod templates;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use config::{GraphSimConfig, StatusKind, TemplateReviewOutcome};
pub use records::{DeliveryRecord, FaultSpec, WebhookOptions};
pub use state::{Account, SentMessage};
pub use webhooks::signature;

use state::Sim;

/// A running simulator. Dropping it stops the server too; `shutdown` does it gracefully.
pub struct GraphSimHandle {
    sim: Arc<Sim>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Starts the simulator on `listener` (bind port 0 for tests) and returns at once.
pub async fn start(
    listener: tokio::net::TcpListener,
    config: GraphSimConfig,
) -> std::io::Result<GraphSimHandle> {
    let addr = listener.local_addr()?;
    let base_url = match &config.public_base_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let mut shown = addr;
            if addr.ip().is_unspecified() {
                shown.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{shown}")
        }
    };
    let http = reqwest::Client::builder()
        .timeout(config.webhook_timeout)
        .connect_timeout(config.webhook_timeout)
        .build()
        .map_err(std::io::Error::other)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let sim = Arc::new(Sim::new(config, base_url, http, tx));
    sim.spawn(webhooks::run_dispatcher(Arc::clone(&sim), rx));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = warp::serve(router::routes(Arc::clone(&sim)))
        .incoming(listener)
        .graceful(async move {
            let _ = stop_rx.await;
        });
    let server = tokio::spawn(server.run());
    tracing::info!(%addr, "graph simulator listening");
    Ok(GraphSimHandle {
        sim,
        addr,
        stop: Some(stop_tx),
        server: Some(server),
    })
}

impl GraphSimHandle {
    /// `http://HOST:PORT` without a trailing slash; callers append `/v23.0/...`.
    pub fn base_url(&self) -> String {
        self.sim.base_url.clone()
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to 2 s), and aborts the background
    /// tasks (status emission, webhook delivery and retries, template reviews).
    pub async fn shutdown(mut self) {
        self.sim.closing.send_replace(true);
        self.sim.abort_tasks();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }

    /// Every accepted send of `phone_number_id` (all numbers when `None`), oldest first.
    pub fn sent(&self, phone_number_id: Option<&str>) -> Vec<SentMessage> {
        self.sim
            .lock()
            .sent
            .iter()
            .filter(|s| phone_number_id.is_none_or(|p| s.phone_number_id == p))
            .cloned()
            .collect()
    }

    /// Every account, ordered by phone_number_id.
    pub fn accounts(&self) -> Vec<Account> {
        self.sim.lock().accounts.values().cloned().collect()
    }

    /// The webhook delivery log (most recent 1000 attempts).
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.sim.lock().deliveries.iter().cloned().collect()
    }

    /// Same as `POST /sim/webhooks`.
    pub fn set_webhook_options(&self, options: WebhookOptions) {
        self.sim.lock().webhook_options = options;
    }
}

impl Drop for GraphSimHandle {
    fn drop(&mut self) {
        self.sim.closing.send_replace(true);
        self.sim.abort_tasks();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
