//! LiteSession: one linked WhatsApp account, one headless Chromium.
//!
//! The actor is the only owner of its browser ([`Chromium`]), its CDP connection and its page;
//! they live in its state, so when the actor fails or stops they die with it (the `Drop` of
//! [`Chromium`] kills and reaps the process group). Everything the page reports arrives as
//! [`LiteSessionMessage::Bridge`]; everything that can go wrong with the browser (crash, OOM,
//! `kill -9`, a page that stops answering) ends in an error returned from `handle`, so the
//! LiteSupervisor restarts the session with backoff, from the same profile, without a new QR.
//!
//! Status flow: STARTING (browser launching, page loading) → SCAN_QR_CODE (a QR on every ref
//! rotation, `refreshQR` after UNPAIRED_IDLE, at most `qr_max_cycles` cycles) → WORKING (the page
//! is CONNECTED and has synced). Logout from the phone → STOPPED with reason LOGOUT and the
//! profile wiped. A page in TOS_BLOCK/PROXYBLOCK/DEPRECATED_VERSION → FAILED. Stopping on
//! purpose ends with `stop("final:…")` so the supervisor forgets the session instead of
//! restarting it.

mod events;
pub mod handle;
mod lifecycle;
mod page;
mod pairing;
mod send;
mod send_plan;

use super::bridge::{self, BridgeEvent};
use super::error::LiteSessionError;
use super::{LiteError, LiteSettings, Status, inbound, reason, store};
use crate::connection::{ConnectionKind, ConnectionRef, Departures, OutboundMessage, SendOutcome};
use crate::shared::Shared;
use page::Running;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Prefix of the stop reason of a session that must not be restarted.
pub const FINAL: &str = "final:";

/// Time allowed for one ordinary page call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub enum LiteSessionMessage {
    /// Launch the browser and load the page (sent to itself after start, and to recycle).
    Boot,
    /// A report from the page's bridge (the binding's JSON payload).
    Bridge(String),
    /// The browser of boot `.0`, its CDP connection or its page died: fail, so the supervisor
    /// restarts us (reports about a browser we already closed are ignored).
    BrowserGone(u64, String),
    /// Periodic check: browser alive, page answering, memory under the limit, retries.
    Health,
    /// Save the profile's login state (generation-tagged so old schedules lapse).
    Snapshot(u64),
    /// Refresh the QR after UNPAIRED_IDLE.
    RefreshQr,
    /// Take the session back after CONFLICT (WhatsApp opened elsewhere).
    Takeover,
    /// Send one message (the Dispatcher's contract, see [`crate::connection`]).
    Send(OutboundMessage, RpcReplyPort<SendOutcome>),
    /// A pairing code for linking by phone number (digits only); only while SCAN_QR_CODE.
    PairingCode {
        phone: String,
        reply: RpcReplyPort<Result<String, LiteSessionError>>,
    },
    /// Stop on purpose: close the browser gracefully and keep the profile, or (`logout`)
    /// unlink the device and wipe the profile. Replies once done; the session then ends.
    Stop {
        logout: bool,
        reply: RpcReplyPort<()>,
    },
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(LiteSessionMessage);

/// What a session is started with.
#[derive(Clone)]
pub struct SessionArgs {
    pub shared: Arc<Shared>,
    pub id: Uuid,
    pub usuario_id: Uuid,
}

pub struct LiteSession;

/// Unregisters the session from the node's connections when the state goes away, whatever
/// way the actor ended.
struct Registration {
    shared: Arc<Shared>,
    id: Uuid,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.connections.unregister(self.id);
        self.shared.lite_memory.forget(self.id);
        crate::telemetry::chromium_gauges(self.id, 0, 0);
    }
}

pub struct SessionState {
    args: SessionArgs,
    settings: LiteSettings,
    running: Option<Running>,
    status: Status,
    /// The page reported `hasSynced` in this document.
    synced: bool,
    /// The page is CONNECTED (not TIMEOUT/CONFLICT...).
    connected: bool,
    phone: Option<String>,
    qr_cycles: u32,
    snapshot_gen: u64,
    /// Inbound media being fetched from the page.
    media: inbound::MediaFetches,
    health_failures: u32,
    /// Set before stopping on purpose: `post_stop` then leaves the status alone.
    finished: bool,
    booted_at: Option<Instant>,
    /// Incremented on every browser launch; tags the launch's death reports.
    boot_gen: u64,
    /// When sends leave (the Dispatcher's pacing, kept at the last moment).
    departures: Departures,
    _registration: Registration,
}

impl Actor for LiteSession {
    type Msg = LiteSessionMessage;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SessionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        args.shared.connections.register(
            args.id,
            ConnectionRef::new(
                ConnectionKind::Lite,
                myself.clone(),
                LiteSessionMessage::Send,
            ),
        );
        let settings = args.shared.settings.lite.clone();
        let registration = Registration {
            shared: args.shared.clone(),
            id: args.id,
        };
        myself.cast(LiteSessionMessage::Boot)?;
        Ok(SessionState {
            args,
            settings,
            running: None,
            status: Status::Starting,
            synced: false,
            connected: false,
            phone: None,
            qr_cycles: 0,
            snapshot_gen: 0,
            media: inbound::MediaFetches::default(),
            health_failures: 0,
            finished: false,
            booted_at: None,
            boot_gen: 0,
            departures: Departures::default(),
            _registration: registration,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.finished {
            // Stopping on purpose: only answer callers.
            match message {
                LiteSessionMessage::Send(_, reply) => {
                    let _ = reply.send(SendOutcome::Unavailable {
                        reason: "session is stopping".into(),
                    });
                }
                LiteSessionMessage::PairingCode { reply, .. } => {
                    let _ = reply.send(Err(LiteSessionError::Stopping));
                }
                LiteSessionMessage::Stop { reply, .. } => {
                    let _ = reply.send(());
                }
                _ => {}
            }
            return Ok(());
        }
        match message {
            LiteSessionMessage::Boot => state.boot(&myself).await?,
            LiteSessionMessage::Bridge(payload) => match BridgeEvent::parse(&payload) {
                Ok(ev) => state.on_event(&myself, ev).await?,
                Err(e) => {
                    tracing::warn!(session = %state.args.id, error = %e, "unreadable bridge event")
                }
            },
            LiteSessionMessage::BrowserGone(boot, why) => {
                if boot == state.boot_gen && state.running.is_some() {
                    return Err(LiteError::Page(format!("{}: {why}", reason::BROWSER_DIED)).into());
                }
            }
            LiteSessionMessage::Health => state.health(&myself).await?,
            LiteSessionMessage::Snapshot(generation) => {
                if generation == state.snapshot_gen && state.status == Status::Working {
                    state.snapshot().await;
                    let interval = state.settings.snapshot_interval;
                    myself.send_after(interval, move || LiteSessionMessage::Snapshot(generation));
                }
            }
            LiteSessionMessage::RefreshQr => {
                if let Some(r) = &state.running
                    && state.status != Status::Working
                    && let Err(e) = bridge::call(&r.page, "refreshQr", &[], CALL_TIMEOUT).await
                {
                    tracing::warn!(session = %state.args.id, error = %e, "refreshQR failed");
                }
            }
            LiteSessionMessage::Takeover => {
                if let Some(r) = &state.running
                    && !state.connected
                    && let Err(e) = bridge::call(&r.page, "takeover", &[], CALL_TIMEOUT).await
                {
                    tracing::warn!(session = %state.args.id, error = %e, "takeover failed");
                }
            }
            LiteSessionMessage::Send(msg, reply) => {
                let outcome = state.send(msg).await;
                let _ = reply.send(outcome);
            }
            LiteSessionMessage::PairingCode { phone, reply } => {
                let _ = reply.send(state.pairing_code(&phone).await);
            }
            LiteSessionMessage::Stop { logout, reply } => {
                state.stop(logout).await;
                let _ = reply.send(());
                myself.stop(Some(format!(
                    "{FINAL}{}",
                    if logout {
                        reason::LOGOUT
                    } else {
                        reason::STOPPED
                    }
                )));
            }
            LiteSessionMessage::Panic => panic!("fault injection in lite session"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !state.finished {
            // The daemon is shutting down: close gracefully, keep the session wanted so the
            // next start resumes it.
            state.close_browser(true).await;
            if state.status == Status::Working {
                state.snapshot().await;
            }
            let _ = store::set_status(
                &state.args.shared.pool,
                &state.args.shared.sealer,
                state.args.id,
                Status::Starting,
                Some(reason::SHUTDOWN),
                None,
                None,
            )
            .await;
        }
        state.running = None;
        Ok(())
    }
}

impl SessionState {
    fn id(&self) -> Uuid {
        self.args.id
    }

    async fn set_status(
        &mut self,
        status: Status,
        why: Option<&str>,
        status_reason: Option<&str>,
    ) -> Result<(), LiteError> {
        let phone = self.phone.clone();
        store::set_status(
            &self.args.shared.pool,
            &self.args.shared.sealer,
            self.id(),
            status,
            why,
            status_reason,
            phone.as_deref(),
        )
        .await?;
        if status != self.status {
            tracing::info!(session = %self.id(), from = self.status.as_str(), to = status.as_str(), reason = ?why, "lite session status");
            if status == Status::Working {
                // Back in service: whatever took it down has cleared.
                crate::alerts::resolve(
                    &self.args.shared,
                    crate::alerts::keys::lite_down(self.id()),
                );
                let logged_out = crate::alerts::keys::lite_logged_out(self.id());
                crate::alerts::resolve(&self.args.shared, logged_out);
            }
        }
        self.status = status;
        Ok(())
    }
}
