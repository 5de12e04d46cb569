//! What the page reports to a Lite session: bridge events and connection states, the move to
//! WORKING, the resume of what the daemon may have missed, and inbound messages and acks, each
//! stored durably before the page is told it may forget them.

use super::{CALL_TIMEOUT, LiteSessionMessage, SessionState};
use crate::ingest::InboundItem;
use crate::lite::bridge::{self, BridgeEvent, PageMessage};
use crate::lite::{LiteError, Status, inbound, picture, reason, store};
use ractor::ActorRef;
use serde_json::json;
use std::time::Duration;

impl SessionState {
    pub(super) async fn on_event(
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

    pub(super) async fn on_state(
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
    pub(super) async fn working(
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

    /// Asks the page for what the daemon may not have: the messages it keeps from a little
    /// before the last event stored, and the events it still holds unconfirmed.
    pub(super) async fn resume(&mut self) {
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

    /// Stores one page event's items durably, then confirms the event to the page (which
    /// reports it again until then). A store that fails leaves it unconfirmed.
    pub(super) async fn durable(
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
    /// unless the daemon sent it). Stored durably first; its media and the contact's profile
    /// picture are fetched afterwards.
    pub(super) async fn inbound(&mut self, eid: Option<String>, msg: PageMessage) {
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
            && let Some(r) = &mut self.running
            && let Some(task) =
                picture::spawn(self.args.shared.clone(), r.page.clone(), self.args.id, &msg)
        {
            r.tasks.retain(|t| !t.is_finished());
            r.tasks.push(task);
        }
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
}
