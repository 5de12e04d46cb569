//! Sending one message from a number: the halt and pair-rate checks, the Graph call with
//! Meta's answer classified, and outbound media resolved to Meta's media id (uploaded
//! first when this number has not yet).

use super::Inner;
use crate::business::BusinessError;
use crate::business::classify::{self, Attempt, Reaction};
use crate::business::send;
use crate::business::store::status;
use crate::connection::{OutboundMessage, SendOutcome};
use crate::media_store;
use crate::rate_limiter::RateLimiterMessage;
use serde_json::{Value, json};
use uuid::Uuid;

impl Inner {
    /// Sends `msg`, every log line of it in a `send` span naming the message.
    pub(super) async fn send(&self, msg: OutboundMessage) -> SendOutcome {
        use tracing::Instrument;
        let span = tracing::info_span!("send", message_id = %msg.message_id);
        self.send_now(msg).instrument(span).await
    }

    async fn send_now(&self, msg: OutboundMessage) -> SendOutcome {
        if let Some(reason) = self.halted() {
            return SendOutcome::Unavailable { reason };
        }
        let mut body = match send::request_body(&msg) {
            Ok(b) => b,
            Err(outcome) => return outcome,
        };
        match self.shared.pool.get().await {
            Ok(client) => {
                if let Err(outcome) = send::store_checks(&client, &msg).await {
                    return outcome;
                }
                if let Err(outcome) = self.resolve_media(&client, &msg, &mut body).await {
                    return outcome;
                }
            }
            Err(e) => {
                return SendOutcome::Retry {
                    code: None,
                    error: format!("database: {e}"),
                    after: None,
                };
            }
        }
        // Everything the store had to say is known: the request leaves on its send slot.
        self.departures.wait(msg.departure).await;
        match self
            .client
            .send_message_to(&self.record.phone_number_id, &body)
            .await
        {
            Ok(accepted) => {
                self.pair_strikes.lock().expect("strikes").remove(&msg.to);
                metrics::counter!("sincro_business_sent_total").increment(1);
                match accepted.wa_id {
                    Some(wa_id) => SendOutcome::SentTo {
                        external_id: accepted.id,
                        wa_id,
                    },
                    None => SendOutcome::Sent {
                        external_id: accepted.id,
                    },
                }
            }
            Err(e) => {
                let strikes = self
                    .pair_strikes
                    .lock()
                    .expect("strikes")
                    .get(&msg.to)
                    .copied()
                    .unwrap_or(0);
                let attempt = Attempt {
                    attempt: msg.attempt.max(1),
                    pair_strikes: strikes,
                    jitter: rand::random(),
                };
                let (outcome, reaction) = classify::classify(&e, attempt);
                metrics::counter!("sincro_business_send_errors_total").increment(1);
                tracing::warn!(connection = %self.record.connection_id, code = ?e.code(), outcome = ?std::mem::discriminant(&outcome), "business send failed");
                match reaction {
                    Reaction::None => {}
                    Reaction::PairRate => {
                        *self
                            .pair_strikes
                            .lock()
                            .expect("strikes")
                            .entry(msg.to.clone())
                            .or_default() += 1;
                    }
                    Reaction::Throughput => {
                        if let Some(limiter) = self.shared.rate_limiter.get() {
                            let _ = limiter.cast(RateLimiterMessage::Refused {
                                connection: self.record.connection_id,
                            });
                        }
                    }
                    Reaction::NeedsCredentials => {
                        self.halt(status::NEEDS_CREDENTIALS, &e.to_string()).await
                    }
                    Reaction::Restricted => self.halt(status::RESTRICTED, &e.to_string()).await,
                }
                outcome
            }
        }
    }

    /// Media sent by the daemon's own media id (a UUID from `POST /v1/media`) goes out under
    /// Meta's id, uploading the file first if this number has not yet.
    pub(super) async fn resolve_media(
        &self,
        client: &deadpool_postgres::Client,
        msg: &OutboundMessage,
        body: &mut Value,
    ) -> Result<(), SendOutcome> {
        if !send::MEDIA_KINDS.contains(&msg.kind.as_str()) {
            return Ok(());
        }
        let Some(id) = body[&msg.kind]["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            return Ok(());
        };
        let provider = self.upload(client, id).await.map_err(|e| match e {
            BusinessError::NotFound => SendOutcome::Failed {
                code: None,
                error: format!("media {id} does not exist"),
            },
            BusinessError::NeedsCredentials(reason) => SendOutcome::Unavailable { reason },
            BusinessError::Graph(g) => {
                classify::classify(
                    &g,
                    Attempt {
                        attempt: msg.attempt.max(1),
                        pair_strikes: 0,
                        jitter: rand::random(),
                    },
                )
                .0
            }
            other => SendOutcome::Retry {
                code: None,
                error: other.to_string(),
                after: None,
            },
        })?;
        body[&msg.kind]["id"] = json!(provider);
        Ok(())
    }

    pub(super) async fn upload(
        &self,
        client: &deadpool_postgres::Client,
        id: Uuid,
    ) -> Result<String, BusinessError> {
        let row = media_store::get(client, self.record.usuario_id, id)
            .await?
            .ok_or(BusinessError::NotFound)?;
        if let Some(p) = &row.provider_id
            && row.connection_id == Some(self.record.connection_id)
        {
            return Ok(p.clone());
        }
        let data =
            media_store::read(&self.shared.sealer, &self.shared.settings.data_dir, &row).await?;
        let provider = match self
            .client
            .upload_media(
                &self.record.phone_number_id,
                data.into(),
                &row.mime_type,
                row.filename.as_deref(),
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return Err(self.on_error(e).await),
        };
        media_store::set_provider_id(client, id, self.record.connection_id, &provider).await?;
        Ok(provider)
    }
}
