//! WhatsApp Web simulator: the page as browser drivers see it (WhatsApp Web 2.3000.x, Comet),
//! and the phone and server behind it.
//!
//! One local HTTP server plays both sides of WhatsApp Web:
//! - the **page** (`GET /`): a self-contained web app that imitates the surface browser drivers
//!   rely on: `window.Debug.VERSION`, modules defined through `__d` and served by
//!   `window.require(name)` under the real modules' names, the Socket/Conn/Cmd state
//!   machine with rotating QR refs, the Backbone-like `Msg`/`Chat`/`Contact` collections, sending,
//!   acks, media, logout and conflict. It keeps its device token, keys and login in the browser
//!   profile (localStorage), so a restarted browser on the same user-data-dir comes back logged in;
//! - the **phone and WhatsApp server** (`/sim/...`): accounts, linked devices, message queues for
//!   offline devices, and the JSON control routes tests and `demo` use (see [`control`]).
//!
//! The page talks to the server over a WebSocket at `/sim/ws` (see [`socket`]).
//!
//! Simplifications (documented, not hidden): the QR canvas is a placeholder drawing (the payload
//! is in `data-ref`); media is stored unencrypted (`mediaKey` only gates downloads); messages
//! are not persisted in the page across reloads (an ack for a message sent before a restart is
//! ignored by the new page); groups, reactions, polls, revokes and edits are not generated.
//!
//! This file owns the public API ([`WebSimConfig`], [`start`], [`WebSimHandle`]) and the wiring of
//! the routes.

mod assets;
pub mod control;
mod error;
pub mod socket;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use warp::Filter;

pub use error::SimError;

/// Timings and knobs of the simulator. `Default` gives WhatsApp-like values; tests shorten them.
#[derive(Debug, Clone)]
pub struct WebSimConfig {
    /// How long the first QR ref of a cycle is shown (WhatsApp: 60 s).
    pub first_ref_ms: u64,
    /// How long each later ref of a cycle is shown (WhatsApp: 20 s).
    pub next_ref_ms: u64,
    /// How many refs one QR cycle has, the first included; afterwards the page goes
    /// `UNPAIRED_IDLE` until `Cmd.refreshQR()`.
    pub refs_per_qr_cycle: u32,
    /// `PAIRING` → `CONNECTED` delay after a scan or pairing code.
    pub pairing_ms: u64,
    /// `CONNECTED` → `hasSynced` delay.
    pub sync_ms: u64,
    /// Delay between `hasSynced` and the delivery of messages queued while the page was away
    /// (and of any new message): gives a driver time to attach its `Msg` listeners.
    pub ready_ms: u64,
    /// `window.Debug.VERSION`; drivers expect `2.3000.<n>`.
    pub web_version: String,
    /// Largest request body accepted by the control routes (media is sent inline as base64).
    pub max_body_bytes: u64,
}

impl Default for WebSimConfig {
    fn default() -> Self {
        Self {
            first_ref_ms: 60_000,
            next_ref_ms: 20_000,
            refs_per_qr_cycle: 6,
            pairing_ms: 300,
            sync_ms: 300,
            ready_ms: 500,
            web_version: "2.3000.1017054665".to_string(),
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

impl WebSimConfig {
    /// Short timings for tests: refs rotate every few hundred milliseconds, linking is instant-ish.
    pub fn fast() -> Self {
        Self {
            first_ref_ms: 1_500,
            next_ref_ms: 500,
            refs_per_qr_cycle: 3,
            pairing_ms: 50,
            sync_ms: 50,
            ready_ms: 100,
            ..Self::default()
        }
    }
}

/// A running simulator. Dropping it stops the server too (without waiting); prefer
/// [`WebSimHandle::shutdown`].
#[derive(Debug)]
pub struct WebSimHandle {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl WebSimHandle {
    /// The page URL, `http://IP:PORT/`; control routes live under `<base_url>sim/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every page channel, stops accepting connections and waits (at most 5 s) for the
    /// open ones to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}

/// Starts the simulator on an already bound listener (bind `127.0.0.1:0` for tests).
pub async fn start(
    listener: tokio::net::TcpListener,
    config: WebSimConfig,
) -> std::io::Result<WebSimHandle> {
    let addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sim = Arc::new(state::Sim::new(config, shutdown_rx.clone()));

    let page_html = Arc::new(assets::page_html(&sim.config));
    let page = warp::get().and(warp::path::end()).map(move || {
        warp::reply::with_header(
            warp::reply::html(page_html.as_str().to_owned()),
            "cache-control",
            "no-store",
        )
    });
    let favicon = warp::get()
        .and(warp::path("favicon.ico"))
        .and(warp::path::end())
        .map(|| warp::http::StatusCode::NO_CONTENT);

    let routes = page
        .or(favicon)
        .or(socket::route(sim.clone()))
        .or(control::routes(sim.clone()))
        .recover(control::recover);

    let mut signal = shutdown_rx;
    let server = warp::serve(routes).incoming(listener).graceful(async move {
        let _ = signal.wait_for(|stop| *stop).await;
    });
    let server = tokio::spawn(server.run());
    Ok(WebSimHandle {
        addr,
        shutdown: shutdown_tx,
        server,
    })
}
