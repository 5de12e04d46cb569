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

use super::bridge::{self, BridgeEvent, PageMessage};
use super::browser::{Chromium, LaunchSpec};
use super::login_storage::{self, LoginStorage};
use super::media;
use super::{LiteError, LiteSettings, Status, inbound, profile, reason, store};
use crate::connection::{ConnectionKind, ConnectionRef, Departures, OutboundMessage, SendOutcome};
use crate::ingest::InboundItem;
use crate::media_store::MAX_MEDIA_BYTES;
use crate::seal::Purpose;
use crate::shared::Shared;
use base64::Engine as _;
use chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed;
use chromiumoxide::cdp::browser_protocol::network::{BlockPattern, SetBlockedUrLsParams};
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::browser_protocol::target::{CloseTargetParams, GetTargetsParams};
use chromiumoxide::cdp::js_protocol::runtime::{AddBindingParams, EventBindingCalled};
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Prefix of the stop reason of a session that must not be restarted.
pub const FINAL: &str = "final:";

/// Base64 characters per chunk moved through `Runtime.evaluate` (media both ways).
const CHUNK_B64: usize = 1 << 20;

/// Time allowed for one ordinary page call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Resources the page never needs (images are off through blink-settings).
const BLOCKED: &[&str] = &[
    "*://*:*/*.woff2",
    "*://*:*/*.woff",
    "*://*:*/*.ttf",
    "*://*:*/*.otf",
    "*://*:*/*.mp4",
    "*://*:*/*.webm",
    "*://pps.whatsapp.net/*",
];

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
        reply: RpcReplyPort<Result<String, String>>,
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

/// The running browser with its CDP connection and page; the tasks that forward its events.
struct Running {
    chromium: Chromium,
    browser: Browser,
    page: Page,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Unregisters the session from the node's connections when the state goes away, whatever
/// way the actor ended.
struct Registration {
    shared: Arc<Shared>,
    id: Uuid,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.connections.unregister(self.id);
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
                    let _ = reply.send(Err("session is stopping".into()));
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
        }
        self.status = status;
        Ok(())
    }

    /// Launches Chromium on the session's profile (restored from the snapshot if the directory
    /// is missing), opens the page with the bridge and starts the health ticks.
    async fn boot(&mut self, myself: &ActorRef<LiteSessionMessage>) -> Result<(), LiteError> {
        if self.running.is_some() {
            self.close_browser(true).await;
        }
        let started = Instant::now();
        self.synced = false;
        self.connected = false;
        self.qr_cycles = 0;
        self.set_status(Status::Starting, None, None).await?;
        store::claim(&self.args.shared.pool, self.id(), &self.args.shared.node_id).await?;
        let profile_dir = self.settings.profile_dir(self.id());
        if !profile_dir.exists() {
            if let Some(archive) =
                store::load_snapshot(&self.args.shared.pool, &self.args.shared.sealer, self.id())
                    .await?
            {
                let dir = profile_dir.clone();
                let files = tokio::task::spawn_blocking(move || profile::unpack(&archive, &dir))
                    .await
                    .map_err(|e| LiteError::Invalid(e.to_string()))??;
                tracing::info!(session = %self.id(), files, "profile restored from its snapshot");
            } else {
                crate::private_fs::create_dir_all(&profile_dir)?;
            }
        }
        let spec = LaunchSpec::with_mode(
            self.settings.chromium_path.clone(),
            profile_dir,
            &self.settings.chromium_args,
            self.settings.launch_timeout,
            self.settings.single_process,
        );
        let kept = login_storage::load(&self.args.shared.pool, &self.args.shared.sealer, self.id())
            .await?;
        let chromium = Chromium::launch(&spec).await?;
        self.boot_gen += 1;
        let running = tokio::time::timeout(
            self.settings.launch_timeout,
            open_page(
                chromium,
                myself.clone(),
                self.boot_gen,
                &self.settings.web_url,
                kept.as_ref(),
            ),
        )
        .await
        .map_err(|_| LiteError::Timeout(self.settings.launch_timeout))??;
        self.running = Some(running);
        self.booted_at = Some(started);
        self.health_failures = 0;
        tracing::info!(session = %self.id(), elapsed_ms = started.elapsed().as_millis() as u64, "page loaded");
        if let Some(r) = &mut self.running {
            let tick =
                myself.send_interval(self.settings.health_interval, || LiteSessionMessage::Health);
            r.tasks.push(tick);
        }
        Ok(())
    }

    async fn on_event(
        &mut self,
        myself: &ActorRef<LiteSessionMessage>,
        ev: BridgeEvent,
    ) -> Result<(), LiteError> {
        match ev {
            BridgeEvent::Ready {
                version,
                state,
                synced,
                post_logout,
            } => {
                tracing::debug!(session = %self.id(), %version, ?state, synced, "bridge ready");
                if post_logout && self.status == Status::Working {
                    return self.logged_out(myself).await;
                }
                self.connected = state.as_deref() == Some("CONNECTED");
                if synced {
                    self.working(myself, None).await?;
                }
            }
            BridgeEvent::State { state } => self.on_state(myself, &state).await?,
            BridgeEvent::Qr { qr } => {
                if self.status != Status::Working {
                    store::set_qr(
                        &self.args.shared.pool,
                        &self.args.shared.sealer,
                        self.id(),
                        &qr,
                        &self.args.shared.node_id,
                    )
                    .await?;
                    if self.status != Status::ScanQrCode {
                        if let Some(t) = self.booted_at {
                            tracing::info!(session = %self.id(), elapsed_ms = t.elapsed().as_millis() as u64, "QR shown");
                        }
                        self.status = Status::ScanQrCode;
                    }
                }
            }
            BridgeEvent::Synced { me } => {
                self.connected = true;
                self.working(myself, me).await?;
            }
            BridgeEvent::Logout => return self.logged_out(myself).await,
            BridgeEvent::Msg { eid, msg } => self.inbound(eid, *msg).await,
            BridgeEvent::Ack { eid, id, ack } => {
                let items: Vec<InboundItem> =
                    inbound::ack_item(self.args.usuario_id, self.id(), id, ack)
                        .into_iter()
                        .collect();
                self.durable(eid, items, None).await;
            }
            BridgeEvent::Error { error } => {
                tracing::warn!(session = %self.id(), %error, "bridge error");
                if error.contains("modules not found") {
                    return Err(LiteError::Page(error));
                }
            }
        }
        Ok(())
    }

    async fn on_state(
        &mut self,
        myself: &ActorRef<LiteSessionMessage>,
        state: &str,
    ) -> Result<(), LiteError> {
        self.connected = state == "CONNECTED";
        match state {
            "CONNECTED" if self.synced && self.status != Status::Working => {
                self.working(myself, None).await?;
            }
            "UNPAIRED" | "UNPAIRED_IDLE" => {
                if self.status == Status::Working {
                    // Unlinked without the logout event (waha#756): still a logout.
                    return self.logged_out(myself).await;
                }
                if state == "UNPAIRED_IDLE" {
                    self.qr_cycles += 1;
                    if self.qr_cycles >= self.settings.qr_max_cycles {
                        tracing::info!(session = %self.id(), cycles = self.qr_cycles, "nobody scanned the QR; stopping");
                        self.close_browser(true).await;
                        self.set_status(Status::Stopped, Some(reason::QR_TIMEOUT), None)
                            .await?;
                        self.finish(myself, reason::QR_TIMEOUT);
                    } else {
                        myself.cast(LiteSessionMessage::RefreshQr).ok();
                    }
                }
            }
            "CONFLICT" => {
                tracing::info!(session = %self.id(), "WhatsApp opened elsewhere; taking the session back");
                if self.status == Status::Working {
                    self.set_status(Status::Starting, Some("CONFLICT"), None)
                        .await?;
                }
                myself.send_after(Duration::from_secs(1), || LiteSessionMessage::Takeover);
            }
            "TIMEOUT" if self.status == Status::Working => {
                self.set_status(Status::Starting, Some("TIMEOUT"), None)
                    .await?;
            }
            "TOS_BLOCK" | "SMB_TOS_BLOCK" | "PROXYBLOCK" | "DEPRECATED_VERSION" => {
                tracing::warn!(session = %self.id(), %state, "WhatsApp refuses this session");
                self.close_browser(true).await;
                self.set_status(Status::Failed, Some(state), Some(state))
                    .await?;
                self.finish(myself, state);
            }
            _ => {}
        }
        Ok(())
    }

    /// The page is logged in and loaded.
    async fn working(
        &mut self,
        myself: &ActorRef<LiteSessionMessage>,
        me: Option<String>,
    ) -> Result<(), LiteError> {
        self.synced = true;
        if let Some(me) = me {
            let digits: String = me
                .split('@')
                .next()
                .unwrap_or("")
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            if !digits.is_empty() {
                self.phone = Some(digits);
            }
        }
        if self.status == Status::Working || !self.connected {
            return Ok(());
        }
        self.qr_cycles = 0;
        self.set_status(Status::Working, None, None).await?;
        if let Some(t) = self.booted_at.take() {
            tracing::info!(session = %self.id(), elapsed_ms = t.elapsed().as_millis() as u64, "WORKING");
        }
        // The login state is kept at once: the profile has it only seconds later.
        self.keep_login_storage().await;
        self.snapshot_gen += 1;
        let generation = self.snapshot_gen;
        myself.send_after(self.settings.snapshot_delay, move || {
            LiteSessionMessage::Snapshot(generation)
        });
        self.resume().await;
        Ok(())
    }

    /// Reads the page's login storage and keeps it sealed (see [`login_storage`]).
    async fn keep_login_storage(&mut self) {
        let Some(r) = &self.running else {
            return;
        };
        let kept: Result<LoginStorage, LiteError> = async {
            let kept = login_storage::capture(&r.page).await?;
            login_storage::save(
                &self.args.shared.pool,
                &self.args.shared.sealer,
                self.id(),
                &kept,
            )
            .await?;
            Ok(kept)
        }
        .await;
        match kept {
            Ok(k) => {
                tracing::debug!(session = %self.id(), keys = k.items.len(), "login storage kept")
            }
            Err(e) => tracing::warn!(session = %self.id(), error = %e, "login storage not kept"),
        }
    }

    /// Asks the page for what the daemon may not have: the messages it keeps from a little
    /// before the last event stored, and the events it still holds unconfirmed.
    async fn resume(&mut self) {
        let since = match inbound::resume_from(&self.args.shared, self.id()).await {
            Ok(s) => s,
            Err(e) => {
                // The page keeps its pending events and reports them again later.
                tracing::warn!(session = %self.id(), error = %e, "inbound cursor not read");
                return;
            }
        };
        let Some(r) = &self.running else {
            return;
        };
        match bridge::call(&r.page, "resume", &[json!(since)], CALL_TIMEOUT).await {
            Ok(n) => tracing::debug!(session = %self.id(), since, messages = %n, "page resumed"),
            Err(e) => tracing::warn!(session = %self.id(), error = %e, "page resume failed"),
        }
        let _ = bridge::call(&r.page, "resend", &[], CALL_TIMEOUT).await;
    }

    /// Logged out from the phone: STOPPED with reason LOGOUT, browser gone, profile and
    /// snapshot wiped, session ended.
    async fn logged_out(&mut self, myself: &ActorRef<LiteSessionMessage>) -> Result<(), LiteError> {
        tracing::info!(session = %self.id(), "logged out; wiping the profile");
        self.close_browser(false).await;
        self.wipe().await?;
        self.set_status(Status::Stopped, Some(reason::LOGOUT), None)
            .await?;
        self.finish(myself, reason::LOGOUT);
        Ok(())
    }

    async fn wipe(&mut self) -> Result<(), LiteError> {
        let dir = self.settings.session_dir(self.id());
        tokio::task::spawn_blocking(move || profile::wipe(&dir))
            .await
            .map_err(|e| LiteError::Invalid(e.to_string()))??;
        store::clear_snapshot(&self.args.shared.pool, self.id()).await?;
        Ok(())
    }

    fn finish(&mut self, myself: &ActorRef<LiteSessionMessage>, why: &str) {
        self.finished = true;
        myself.stop(Some(format!("{FINAL}{why}")));
    }

    /// Stop through the API.
    async fn stop(&mut self, logout: bool) {
        self.finished = true;
        let result: Result<(), LiteError> = async {
            if logout {
                if let Some(r) = &self.running
                    && self.status == Status::Working
                {
                    // Unlink on the phone side, then wait (bounded) for the page to drop it.
                    if let Err(e) = bridge::call(&r.page, "logout", &[], CALL_TIMEOUT).await {
                        tracing::warn!(session = %self.id(), error = %e, "page logout failed; wiping anyway");
                    }
                    let until = Instant::now() + Duration::from_secs(5);
                    while Instant::now() < until {
                        let state = bridge::call(&r.page, "health", &[], Duration::from_secs(2))
                            .await
                            .ok()
                            .and_then(|v| v["state"].as_str().map(str::to_string));
                        if state.as_deref() != Some("CONNECTED") {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                self.close_browser(false).await;
                self.wipe().await?;
                self.set_status(Status::Stopped, Some(reason::LOGOUT), None).await?;
            } else {
                let was_working = self.status == Status::Working;
                self.close_browser(true).await;
                if was_working {
                    self.snapshot().await;
                }
                self.set_status(Status::Stopped, Some(reason::STOPPED), None).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(session = %self.id(), error = %e, "stopping the session");
        }
    }

    /// Ends the browser: a CDP `Browser.close` first when `graceful` (so the profile is
    /// flushed), then the process group is killed and reaped.
    async fn close_browser(&mut self, graceful: bool) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        let grace = if graceful {
            // The request leaves at once (the CDP handler still runs); its answer may never
            // come (the browser is closing), so wait for the process instead.
            let _ = tokio::time::timeout(Duration::from_millis(300), r.browser.close()).await;
            Duration::from_secs(3)
        } else {
            Duration::ZERO
        };
        for t in &r.tasks {
            t.abort();
        }
        r.chromium.terminate(grace).await;
    }

    /// Saves the sealed login state to PostgreSQL.
    async fn snapshot(&mut self) {
        self.keep_login_storage().await;
        let dir = self.settings.profile_dir(self.id());
        let packed = tokio::task::spawn_blocking(move || profile::pack(&dir)).await;
        let archive = match packed {
            Ok(Ok(Some(a))) => a,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::warn!(session = %self.id(), error = %e, "profile snapshot skipped");
                return;
            }
            Err(e) => {
                tracing::warn!(session = %self.id(), error = %e, "profile snapshot task failed");
                return;
            }
        };
        let sealed = self
            .args
            .shared
            .sealer
            .seal(Purpose::ProfileSnapshot, &archive);
        match store::save_snapshot(&self.args.shared.pool, self.id(), &sealed).await {
            Ok(()) => {
                tracing::debug!(session = %self.id(), bytes = archive.len(), "profile snapshot saved")
            }
            Err(e) => {
                tracing::warn!(session = %self.id(), error = %e, "profile snapshot not saved")
            }
        }
    }

    async fn health(&mut self, myself: &ActorRef<LiteSessionMessage>) -> Result<(), LiteError> {
        let id = self.id();
        let Some(r) = &mut self.running else {
            return Ok(());
        };
        if let Some(exit) = r.chromium.try_wait() {
            return Err(LiteError::Page(format!("{}: {exit}", reason::BROWSER_DIED)));
        }
        match bridge::call(&r.page, "health", &[], CALL_TIMEOUT).await {
            Ok(_) => self.health_failures = 0,
            Err(e) => {
                self.health_failures += 1;
                tracing::warn!(session = %id, error = %e, failures = self.health_failures, "page health check failed");
                if self.health_failures >= 3 {
                    return Err(LiteError::Page(format!("page stopped answering: {e}")));
                }
            }
        }
        let pids = r.chromium.pids();
        let pss = tokio::task::spawn_blocking(move || {
            pids.into_iter().map(super::browser::pss_bytes).sum::<u64>()
        })
        .await
        .unwrap_or(0);
        metrics::histogram!("sincro_lite_chromium_pss_bytes").record(pss as f64);
        if pss > self.settings.memory_limit_bytes {
            tracing::info!(session = %self.id(), pss_mib = pss >> 20, limit_mib = self.settings.memory_limit_bytes >> 20, "Chromium over its memory limit; recycling");
            metrics::counter!("sincro_lite_recycles_total").increment(1);
            if self.status == Status::Working {
                self.snapshot().await;
            }
            self.close_browser(true).await;
            self.set_status(Status::Starting, Some(reason::MEMORY_LIMIT), None)
                .await?;
            myself.cast(LiteSessionMessage::Boot).ok();
        }
        Ok(())
    }

    /// Stores one page event's items durably, then confirms the event to the page (which
    /// reports it again until then). A store that fails leaves it unconfirmed.
    async fn durable(
        &mut self,
        eid: Option<String>,
        items: Vec<InboundItem>,
        page_time: Option<i64>,
    ) -> bool {
        if !items.is_empty() {
            if let Err(e) = inbound::store(
                &self.args.shared,
                self.args.usuario_id,
                self.id(),
                &items,
                page_time,
            )
            .await
            {
                tracing::warn!(session = %self.id(), error = %e, "inbound event not stored; the page reports it again");
                return false;
            }
        }
        if let (Some(eid), Some(r)) = (eid, &self.running)
            && let Err(e) = bridge::call(&r.page, "confirm", &[json!([eid])], CALL_TIMEOUT).await
        {
            tracing::debug!(session = %self.id(), error = %e, "confirm to the page failed; it reports the event again");
        }
        true
    }

    /// A message the page reports: from a contact, or sent by the account (from its phone
    /// unless the daemon sent it). Stored durably first; its media is fetched afterwards.
    async fn inbound(&mut self, eid: Option<String>, msg: PageMessage) {
        let Some(item) = inbound::message_item(self.args.usuario_id, self.id(), &msg) else {
            tracing::debug!(session = %self.id(), "ignored a message that is not a contact's chat");
            self.durable(eid, Vec::new(), None).await;
            return;
        };
        if msg.from_me {
            match inbound::is_own_send(&self.args.shared, self.id(), &msg.id).await {
                Ok(true) => {
                    self.durable(eid, Vec::new(), None).await;
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(session = %self.id(), error = %e, "cannot tell whose message this is; the page reports it again");
                    return;
                }
            }
        }
        let stored = self
            .durable(eid, vec![InboundItem::Message(item)], msg.t)
            .await;
        if stored
            && msg.media
            && let Some(r) = &mut self.running
            && let Some(task) = self.media.spawn(
                self.args.shared.clone(),
                r.page.clone(),
                self.args.usuario_id,
                self.args.id,
                msg,
            )
        {
            r.tasks.retain(|t| !t.is_finished());
            r.tasks.push(task);
        }
    }

    async fn pairing_code(&mut self, phone: &str) -> Result<String, String> {
        if self.status == Status::Working {
            return Err("the session is already linked".into());
        }
        let Some(r) = &self.running else {
            return Err("the session's browser is starting; retry shortly".into());
        };
        if self.status != Status::ScanQrCode {
            return Err("the session is not waiting for a login yet; retry shortly".into());
        }
        match bridge::call(&r.page, "pair", &[json!(phone)], Duration::from_secs(20)).await {
            Ok(Value::String(code)) => Ok(code),
            Ok(other) => Err(format!("unexpected answer from the page: {other}")),
            Err(e) => Err(format!("the page could not make a pairing code: {e}")),
        }
    }

    /// Sends one Cloud-API-shaped message through the page.
    async fn send(&mut self, msg: OutboundMessage) -> SendOutcome {
        if self.status != Status::Working || !self.connected {
            return SendOutcome::Unavailable {
                reason: format!("Lite session is {}", self.status.as_str()),
            };
        }
        let Some(r) = &self.running else {
            return SendOutcome::Unavailable {
                reason: "browser not running".into(),
            };
        };
        let to: String = msg.to.chars().filter(char::is_ascii_digit).collect();
        let fail = |error: String| SendOutcome::Failed { code: None, error };
        let mut request = json!({"to": to, "timeout_ms": 20_000});
        let body = &msg.body;
        match msg.kind.as_str() {
            "text" => match body["text"]["body"].as_str() {
                Some(text) if !text.is_empty() => request["text"] = json!(text),
                _ => return fail("text.body is missing".into()),
            },
            "image" | "video" | "audio" | "document" | "sticker" => {
                let obj = &body[msg.kind.as_str()];
                let loaded = if let Some(id) = obj["id"].as_str() {
                    match id.parse::<Uuid>() {
                        Ok(media_id) => media::load(
                            &self.args.shared.pool,
                            &self.args.shared.sealer,
                            &self.settings.data_dir,
                            msg.usuario_id,
                            media_id,
                        )
                        .await
                        .map(|(b, m, f)| (b, Some(m), f)),
                        Err(_) => Err(LiteError::Invalid(format!("media id {id:?} is not ours"))),
                    }
                } else if let Some(link) = obj["link"].as_str() {
                    media::fetch_link_with(&self.args.shared.media_fetcher, link)
                        .await
                        .map(|(b, m)| (b, m, None))
                } else {
                    Err(LiteError::Invalid(format!(
                        "{}.id or {}.link is required",
                        msg.kind, msg.kind
                    )))
                };
                let (bytes, mime, stored_name) = match loaded {
                    Ok(v) => v,
                    Err(LiteError::Invalid(e)) => return fail(e),
                    Err(e) => {
                        return SendOutcome::Retry {
                            code: None,
                            error: e.to_string(),
                            after: None,
                        };
                    }
                };
                if bytes.len() > MAX_MEDIA_BYTES {
                    return fail("media is larger than 16 MB".into());
                }
                let mimetype = mime.unwrap_or_else(|| "application/octet-stream".into());
                let key = msg.message_id.to_string();
                let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
                for part in b64.as_bytes().chunks(CHUNK_B64) {
                    let part = std::str::from_utf8(part).expect("base64 is ASCII");
                    if let Err(e) = bridge::call(
                        &r.page,
                        "put",
                        &[json!(key), json!(part)],
                        Duration::from_secs(20),
                    )
                    .await
                    {
                        let _ = bridge::call(&r.page, "release", &[json!(key)], CALL_TIMEOUT).await;
                        return SendOutcome::Retry {
                            code: None,
                            error: format!("media upload to the page: {e}"),
                            after: None,
                        };
                    }
                }
                request["media"] = json!({
                    "key": key,
                    "mimetype": mimetype,
                    "filename": obj["filename"].as_str().map(str::to_string).or(stored_name),
                    "caption": obj["caption"].as_str(),
                    "asDocument": msg.kind == "document",
                });
            }
            "location" => {
                let l = &body["location"];
                let (Some(lat), Some(lng)) = (l["latitude"].as_f64(), l["longitude"].as_f64())
                else {
                    return fail("location.latitude and location.longitude are required".into());
                };
                let loc = [l["name"].as_str(), l["address"].as_str()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("\n");
                request["location"] = json!({"lat": lat, "lng": lng, "loc": loc});
            }
            other => {
                return fail(format!(
                    "messages of type {other} cannot be sent through a Lite connection"
                ));
            }
        }
        // The message's WhatsApp id is on its row before it leaves: however the page reports
        // it back (as a message the account sent), it is known as ours.
        let key_id = match bridge::call(&r.page, "newId", &[], CALL_TIMEOUT).await {
            Ok(Value::String(id)) if !id.is_empty() => id,
            other => {
                return SendOutcome::Retry {
                    code: None,
                    error: format!("the page gave no message id: {other:?}"),
                    after: None,
                };
            }
        };
        if let Err(e) = inbound::mark_own_send(&self.args.shared, msg.message_id, &key_id).await {
            return SendOutcome::Retry {
                code: None,
                error: format!("the message id was not recorded: {e}"),
                after: None,
            };
        }
        request["id"] = json!(key_id);
        // The media is on the page: the message leaves on its send slot.
        self.departures.wait(msg.departure).await;
        let answer = bridge::call(&r.page, "send", &[request], Duration::from_secs(30)).await;
        match answer {
            Err(LiteError::Timeout(t)) => SendOutcome::Uncertain {
                error: format!("the page did not confirm the send within {t:?}"),
            },
            Err(e) => SendOutcome::Uncertain {
                error: format!("the page failed while sending: {e}"),
            },
            Ok(v) => match v["status"].as_str() {
                Some("not_logged_in") => SendOutcome::Unavailable {
                    reason: "the page is not logged in".into(),
                },
                Some("done") => {
                    let id = v["id"].as_str().unwrap_or_default().to_string();
                    let result = &v["result"];
                    if result["timeout"] == json!(true) {
                        SendOutcome::Uncertain {
                            error: format!("WhatsApp did not acknowledge message {id} in time"),
                        }
                    } else if result["messageSendResult"] == "OK" {
                        SendOutcome::Sent { external_id: id }
                    } else {
                        let error = result["error"]
                            .as_str()
                            .unwrap_or("send failed")
                            .to_string();
                        match error.as_str() {
                            "not_connected" | "not_linked" => SendOutcome::Retry {
                                code: None,
                                error,
                                after: Some(Duration::from_secs(5)),
                            },
                            _ => SendOutcome::Failed { code: None, error },
                        }
                    }
                }
                _ => SendOutcome::Uncertain {
                    error: format!("unexpected answer from the page: {v}"),
                },
            },
        }
    }
}

/// Attaches to the browser, keeps one page with the bridge installed, and loads WhatsApp Web.
async fn open_page(
    chromium: Chromium,
    myself: ActorRef<LiteSessionMessage>,
    boot: u64,
    url: &str,
    kept: Option<&LoginStorage>,
) -> Result<Running, LiteError> {
    let (browser, mut handler) = chromium.connect().await?;
    let mut tasks = Vec::new();
    let gone = myself.clone();
    tasks.push(tokio::spawn(async move {
        let why = loop {
            match handler.next().await {
                Some(Ok(())) => {}
                Some(Err(e)) => break format!("CDP connection: {e}"),
                None => break "CDP connection closed".to_string(),
            }
        };
        let _ = gone.cast(LiteSessionMessage::BrowserGone(boot, why));
    }));
    // From here the Running value owns everything: an error drops it, which kills the tree.
    let mut running = Running {
        page: match browser.new_page("about:blank").await {
            Ok(p) => p,
            Err(e) => {
                let mut chromium = chromium;
                for t in &tasks {
                    t.abort();
                }
                chromium.terminate(Duration::ZERO).await;
                return Err(LiteError::Page(format!("new page: {e}")));
            }
        },
        chromium,
        browser,
        tasks,
    };
    let page = running.page.clone();
    let page_err = |e: chromiumoxide::error::CdpError| LiteError::Page(e.to_string());
    // Headless opens a tab of its own: close it (one renderer less).
    if let Ok(targets) = running.browser.execute(GetTargetsParams::default()).await {
        for t in &targets.result.target_infos {
            if t.r#type == "page" && &t.target_id != page.target_id() {
                let _ = running
                    .browser
                    .execute(CloseTargetParams::new(t.target_id.clone()))
                    .await;
            }
        }
    }
    let mut bindings = page
        .event_listener::<EventBindingCalled>()
        .await
        .map_err(page_err)?;
    let to = myself.clone();
    running.tasks.push(tokio::spawn(async move {
        while let Some(ev) = bindings.next().await {
            if ev.name == bridge::BINDING
                && to
                    .cast(LiteSessionMessage::Bridge(ev.payload.clone()))
                    .is_err()
            {
                break;
            }
        }
    }));
    let mut crashes = page
        .event_listener::<EventTargetCrashed>()
        .await
        .map_err(page_err)?;
    let to = myself;
    running.tasks.push(tokio::spawn(async move {
        if crashes.next().await.is_some() {
            let _ = to.cast(LiteSessionMessage::BrowserGone(boot, "page crashed".into()));
        }
    }));
    page.execute(AddBindingParams::new(bridge::BINDING))
        .await
        .map_err(page_err)?;
    // The kept login storage goes back first, before the page's scripts read it.
    if let Some(kept) = kept {
        page.execute(AddScriptToEvaluateOnNewDocumentParams::new(
            login_storage::restore_script(kept),
        ))
        .await
        .map_err(page_err)?;
    }
    page.execute(AddScriptToEvaluateOnNewDocumentParams::new(bridge::script()))
        .await
        .map_err(page_err)?;
    let mut block = SetBlockedUrLsParams::builder();
    for p in BLOCKED {
        block = block.url_pattern(BlockPattern::new(*p, true));
    }
    if let Err(e) = page.execute(block.build()).await {
        tracing::debug!(error = %e, "resource blocking unavailable");
    }
    page.goto(url).await.map_err(page_err)?;
    Ok(running)
}
