//! The I/O of a Lite send: load the media, put it on the page in chunks, get the message's
//! WhatsApp id recorded, wait for the send slot and call the page. Every decision in between is
//! in [`super::send_plan`].

use super::send_plan::{self, MediaSource};
use super::{CALL_TIMEOUT, SessionState};
use crate::connection::{OutboundMessage, SendOutcome};
use crate::lite::{LiteError, bridge, inbound, media};
use base64::Engine as _;
use chromiumoxide::Page;
use serde_json::json;
use std::time::Duration;

/// Base64 characters per chunk moved through `Runtime.evaluate` (media both ways).
const CHUNK_B64: usize = 1 << 20;

/// Bytes, MIME type when known, and the stored file name when there is one.
type Loaded = (Vec<u8>, Option<String>, Option<String>);

impl SessionState {
    /// Sends one Cloud-API-shaped message through the page.
    /// Every log line of the send is in a `send` span naming the message.
    pub(super) async fn send(&mut self, msg: OutboundMessage) -> SendOutcome {
        use tracing::Instrument;
        let span = tracing::info_span!("send", message_id = %msg.message_id);
        match self.try_send(msg).instrument(span).await {
            Ok(outcome) | Err(outcome) => outcome,
        }
    }

    async fn try_send(&mut self, msg: OutboundMessage) -> Result<SendOutcome, SendOutcome> {
        send_plan::readiness(self.status, self.connected, self.running.is_some())?;
        let page = match &self.running {
            Some(r) => r.page.clone(),
            None => unreachable!("readiness checked the browser"),
        };
        let mut plan = send_plan::translate(&msg.to, &msg.kind, &msg.body)?;
        if let Some(attachment) = &plan.media {
            let (bytes, mime, stored_name) = self
                .load_media(&msg, &attachment.source)
                .await
                .map_err(send_plan::load_failure)?;
            send_plan::check_size(bytes.len())?;
            let key = msg.message_id.to_string();
            upload(&page, &key, &bytes).await?;
            plan.request["media"] = send_plan::media_request(&key, mime, attachment, stored_name);
        }
        // The message's WhatsApp id is on its row before it leaves: however the page reports
        // it back (as a message the account sent), it is known as ours.
        let key_id = send_plan::page_id(bridge::call(&page, "newId", &[], CALL_TIMEOUT).await)?;
        inbound::mark_own_send(&self.args.shared, msg.message_id, &key_id)
            .await
            .map_err(|e| send_plan::retry(format!("the message id was not recorded: {e}")))?;
        plan.request["id"] = json!(key_id);
        // The media is on the page: the message leaves on its send slot.
        self.departures.wait(msg.departure).await;
        let answer = bridge::call(&page, "send", &[plan.request], Duration::from_secs(30)).await;
        Ok(send_plan::classify_answer(answer))
    }

    async fn load_media(
        &self,
        msg: &OutboundMessage,
        source: &MediaSource,
    ) -> Result<Loaded, LiteError> {
        match source {
            MediaSource::Stored(media_id) => media::load(
                &self.args.shared.pool,
                &self.args.shared.sealer,
                &self.settings.data_dir,
                msg.usuario_id,
                *media_id,
            )
            .await
            .map(|(b, m, f)| (b, Some(m), f)),
            MediaSource::Link(link) => {
                media::fetch_link_with(&self.args.shared.media_fetcher, link)
                    .await
                    .map(|(b, m)| (b, m, None))
            }
        }
    }
}

/// Puts the media on the page under `key`, in chunks; on failure the page drops what it got.
async fn upload(page: &Page, key: &str, bytes: &[u8]) -> Result<(), SendOutcome> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    for part in b64.as_bytes().chunks(CHUNK_B64) {
        let part = std::str::from_utf8(part).expect("base64 is ASCII");
        if let Err(e) = bridge::call(
            page,
            "put",
            &[json!(key), json!(part)],
            Duration::from_secs(20),
        )
        .await
        {
            let _ = bridge::call(page, "release", &[json!(key)], CALL_TIMEOUT).await;
            return Err(send_plan::retry(format!("media upload to the page: {e}")));
        }
    }
    Ok(())
}
