//! BusinessNumber: one actor per connected phone_number_id. It owns the number's Graph client
//! (nobody else calls Meta with this token), registers itself in `shared.connections` for the
//! Dispatcher while it runs, sends (checks, Meta's answer classified by
//! [`super::classify`]), keeps its templates in step with Meta, uploads outbound media and
//! fetches inbound media.
//!
//! Calls to Meta run in tasks the actor spawns, so one slow call (up to its timeout) never
//! holds up the number's other sends; what they share (the client, whether sending is halted,
//! the pair-rate strikes per recipient) lives in [`Inner`]. When Meta refuses the token
//! (0/190) or blocks the account (368/131031) the number halts: every send answers
//! `Unavailable` (the message stays queued), the status is stored with a `business.status`
//! event and an alert is raised, once. New credentials (`PATCH`) start a fresh actor.

use super::classify::{self, Attempt, Reaction};
use super::graph::{GraphClient, GraphError};
use super::media::digest_matches;
use super::send;
use super::store::{self, NumberRecord, status};
use super::templates::{self, SyncReport};
use super::{BusinessError, GraphSettings};
use crate::connection::{ConnectionKind, ConnectionRef, Departures, OutboundMessage, SendOutcome};
use crate::media_store::{self, MAX_MEDIA_BYTES, NewMedia};
use crate::rate_limiter::RateLimiterMessage;
use crate::shared::Shared;
use crate::store::alerts::{NewAlert, Severity};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

pub enum BusinessNumberMessage {
    /// Send one message (the Dispatcher, through [`ConnectionRef`]).
    Send(OutboundMessage, RpcReplyPort<SendOutcome>),
    /// Re-read the WABA's templates from Meta into `whatsapp_templates`.
    SyncTemplates(RpcReplyPort<Result<SyncReport, BusinessError>>),
    /// Create a template at Meta (body as Meta takes it) and record it PENDING.
    CreateTemplate {
        body: Value,
        reply: RpcReplyPort<Result<Value, BusinessError>>,
    },
    /// Delete a template at Meta (every language, or one) and its rows.
    DeleteTemplate {
        name: String,
        language: Option<String>,
        reply: RpcReplyPort<Result<u64, BusinessError>>,
    },
    /// Upload a stored media file to Meta; replies with Meta's media id.
    UploadMedia {
        media_id: Uuid,
        reply: RpcReplyPort<Result<String, BusinessError>>,
    },
    /// Download the media of an inbound message (after it was stored) and keep it sealed.
    FetchMedia { external_id: String, details: Value },
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(BusinessNumberMessage);

/// What the actor and its tasks share.
pub struct Inner {
    shared: Arc<Shared>,
    pub record: NumberRecord,
    client: GraphClient,
    /// Why sending is halted (needs credentials, restricted), if it is.
    halted: Mutex<Option<String>>,
    /// 131056 strikes in a row per recipient: Meta's X in 4^X.
    pair_strikes: Mutex<HashMap<String, u32>>,
    /// When sends leave (the Dispatcher's pacing, kept at the last moment).
    departures: Departures,
}

impl Inner {
    fn halted(&self) -> Option<String> {
        self.halted.lock().expect("halted lock").clone()
    }

    /// Halts sending and records why (status, event, alert), the first time only.
    async fn halt(&self, new_status: &str, why: &str) {
        {
            let mut h = self.halted.lock().expect("halted lock");
            if h.is_some() {
                return;
            }
            *h = Some(format!("{new_status}: {why}"));
        }
        let r = &self.record;
        tracing::error!(connection = %r.connection_id, phone_number_id = %r.phone_number_id, status = new_status, "business number halted");
        match self.shared.pool.get().await {
            Ok(mut c) => {
                if let Err(e) =
                    store::set_status(&mut c, &self.shared.sealer, r, new_status, Some(why)).await
                {
                    tracing::error!(error = %e, "could not store the number's status");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not store the number's status"),
        }
        self.shared.raise_alert(NewAlert {
            usuario_id: Some(r.usuario_id),
            kind: format!("business_{new_status}"),
            severity: Severity::Critical,
            source: format!("business_number/{}", r.phone_number_id),
            message: match new_status {
                status::NEEDS_CREDENTIALS => format!(
                    "Meta refused the access token of WhatsApp Business number {}; sending is stopped until new credentials are given (PATCH /v1/business/numbers/{})",
                    r.display_phone_number.as_deref().unwrap_or(&r.phone_number_id),
                    r.connection_id
                ),
                _ => format!(
                    "Meta restricted WhatsApp Business number {}; sending is stopped",
                    r.display_phone_number.as_deref().unwrap_or(&r.phone_number_id)
                ),
            },
            details: json!({"connection_id": r.connection_id, "phone_number_id": r.phone_number_id, "reason": why}),
        });
    }

    /// Reacts to a Graph error of a management call (a dead token halts the number).
    async fn on_error(&self, e: GraphError) -> BusinessError {
        if e.is_auth() {
            self.halt(status::NEEDS_CREDENTIALS, &e.to_string()).await;
            return BusinessError::NeedsCredentials(e.to_string());
        }
        BusinessError::Graph(e)
    }

    async fn send(&self, msg: OutboundMessage) -> SendOutcome {
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
    async fn resolve_media(
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

    async fn upload(
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

    async fn sync_templates(&self) -> Result<SyncReport, BusinessError> {
        let list = match self.client.list_templates(&self.record.waba_id).await {
            Ok(l) => l,
            Err(e) => return Err(self.on_error(e).await),
        };
        let mut client = self.shared.pool.get().await?;
        let tx = client.transaction().await?;
        let r = &self.record;
        let report = templates::replace_all(
            &tx,
            &self.shared.sealer,
            r.usuario_id,
            r.connection_id,
            &list,
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn create_template(&self, body: Value) -> Result<Value, BusinessError> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
        let (Some(name), Some(language)) = (text("name"), text("language")) else {
            return Err(BusinessError::Invalid(
                "a template needs name and language".into(),
            ));
        };
        let created = match self
            .client
            .create_template(&self.record.waba_id, &body)
            .await
        {
            Ok(c) => c,
            Err(e) => return Err(self.on_error(e).await),
        };
        let id = created.get("id").map(|v| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        });
        let status = created
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("PENDING");
        let category = created
            .get("category")
            .and_then(Value::as_str)
            .map(String::from)
            .or(text("category"));
        let client = self.shared.pool.get().await?;
        let r = &self.record;
        templates::insert_created(
            &client,
            r.usuario_id,
            r.connection_id,
            id.as_deref(),
            &name,
            &language,
            category.as_deref(),
            status,
            body.get("components").unwrap_or(&json!([])),
        )
        .await
    }

    async fn delete_template(
        &self,
        name: String,
        language: Option<String>,
    ) -> Result<u64, BusinessError> {
        let client = self.shared.pool.get().await?;
        let r = &self.record;
        let hsm = match &language {
            Some(l) => Some(
                templates::meta_id(&client, r.connection_id, &name, l)
                    .await?
                    .ok_or(BusinessError::NotFound)?,
            ),
            None => None,
        };
        if let Err(e) = self
            .client
            .delete_template(&r.waba_id, &name, hsm.as_deref())
            .await
        {
            if let GraphError::Api(m) = &e
                && m.code == 100
                && templates::delete(&client, r.connection_id, &name, language.as_deref()).await?
                    > 0
            {
                // Meta no longer has it: our rows were stale.
                return Ok(0);
            }
            return Err(self.on_error(e).await);
        }
        templates::delete(&client, r.connection_id, &name, language.as_deref()).await
    }

    async fn fetch_media(&self, external_id: &str, details: &Value) -> Result<(), BusinessError> {
        let r = &self.record;
        let Some(media_id) = details.get("media_id").and_then(Value::as_str) else {
            return Ok(());
        };
        let client = self.shared.pool.get().await?;
        let Some(row) = client
            .query_opt(
                "SELECT id FROM mensajes_conversacion WHERE connection_id = $1 AND external_id = $2",
                &[&r.connection_id, &external_id],
            )
            .await?
        else {
            return Ok(());
        };
        let message_id: Uuid = row.get(0);
        if media_store::for_message(&client, message_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let info = match self.client.media_info(media_id, &r.phone_number_id).await {
            Ok(i) => i,
            Err(e) => return Err(self.on_error(e).await),
        };
        if info.file_size.is_some_and(|n| n > MAX_MEDIA_BYTES as u64) {
            return Err(BusinessError::Invalid(format!(
                "media {media_id} is larger than 16 MB"
            )));
        }
        let (data, content_type) = self.client.download(&info.url, MAX_MEDIA_BYTES).await?;
        let expected = [
            info.sha256.as_deref(),
            details.get("media_sha256").and_then(Value::as_str),
        ];
        if expected.iter().flatten().any(|d| !digest_matches(&data, d)) {
            return Err(BusinessError::Invalid(format!(
                "media {media_id} does not match its SHA-256"
            )));
        }
        let mime = info
            .mime_type
            .or_else(|| {
                details
                    .get("media_mime_type")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .or(content_type)
            .unwrap_or_else(|| "application/octet-stream".into());
        let stored = media_store::store(
            &client,
            &self.shared.sealer,
            &self.shared.settings.data_dir,
            NewMedia {
                usuario_id: r.usuario_id,
                connection_id: Some(r.connection_id),
                direction: "inbound",
                mime_type: &mime,
                filename: details.get("media_filename").and_then(Value::as_str),
                provider_id: Some(media_id),
                message_id: Some(message_id),
            },
            &data,
        )
        .await?;
        client
            .execute(
                "UPDATE mensajes_conversacion SET metadata = metadata || jsonb_build_object('media_id', $2::uuid),
                     updated_at = now() WHERE id = $1",
                &[&message_id, &stored.id],
            )
            .await?;
        Ok(())
    }
}

pub struct BusinessNumber;

pub struct BusinessNumberArgs {
    pub shared: Arc<Shared>,
    pub connection_id: Uuid,
}

impl Actor for BusinessNumber {
    type Msg = BusinessNumberMessage;
    type State = Arc<Inner>;
    type Arguments = BusinessNumberArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: BusinessNumberArgs,
    ) -> Result<Arc<Inner>, ActorProcessingErr> {
        let shared = args.shared;
        let record = {
            let client = shared.pool.get().await?;
            store::load(&client, &shared.sealer, args.connection_id)
                .await?
                .ok_or_else(|| format!("business number {} is not active", args.connection_id))?
        };
        let settings = GraphSettings {
            base: shared.settings.graph_api_base.clone(),
            version: shared.settings.graph_api_version.clone(),
        };
        let client = GraphClient::new(
            &settings.base,
            &settings.version,
            record.access_token.expose(),
        )?;
        let halted = (record.status != status::CONNECTED).then(|| record.status.clone());
        shared.connections.register(
            record.connection_id,
            ConnectionRef::new(
                ConnectionKind::Business,
                myself.clone(),
                BusinessNumberMessage::Send,
            ),
        );
        tracing::info!(connection = %record.connection_id, phone_number_id = %record.phone_number_id, "business number started");
        let inner = Arc::new(Inner {
            shared,
            record,
            client,
            halted: Mutex::new(halted),
            pair_strikes: Mutex::new(HashMap::new()),
            departures: Departures::default(),
        });
        // Templates in step with Meta from the start (a dead token shows up here too).
        let first = inner.clone();
        tokio::spawn(async move {
            if first.halted().is_none()
                && let Err(e) = first.sync_templates().await
            {
                tracing::warn!(connection = %first.record.connection_id, error = %e, "template sync at start failed");
            }
        });
        Ok(inner)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        inner: &mut Arc<Inner>,
    ) -> Result<(), ActorProcessingErr> {
        let inner = inner.clone();
        match message {
            BusinessNumberMessage::Send(msg, reply) => {
                tokio::spawn(async move {
                    let _ = reply.send(inner.send(msg).await);
                });
            }
            BusinessNumberMessage::SyncTemplates(reply) => {
                tokio::spawn(async move {
                    let _ = reply.send(inner.sync_templates().await);
                });
            }
            BusinessNumberMessage::CreateTemplate { body, reply } => {
                tokio::spawn(async move {
                    let _ = reply.send(inner.create_template(body).await);
                });
            }
            BusinessNumberMessage::DeleteTemplate {
                name,
                language,
                reply,
            } => {
                tokio::spawn(async move {
                    let _ = reply.send(inner.delete_template(name, language).await);
                });
            }
            BusinessNumberMessage::UploadMedia { media_id, reply } => {
                tokio::spawn(async move {
                    let result = match inner.shared.pool.get().await {
                        Ok(client) => inner.upload(&client, media_id).await,
                        Err(e) => Err(e.into()),
                    };
                    let _ = reply.send(result);
                });
            }
            BusinessNumberMessage::FetchMedia {
                external_id,
                details,
            } => {
                tokio::spawn(async move {
                    // A few tries: the URL lookup or download may fail transiently.
                    for wait in [1u64, 4, 16] {
                        match inner.fetch_media(&external_id, &details).await {
                            Ok(()) => return,
                            Err(
                                e
                                @ (BusinessError::Invalid(_) | BusinessError::NeedsCredentials(_)),
                            ) => {
                                tracing::warn!(connection = %inner.record.connection_id, error = %e, "inbound media not stored");
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(connection = %inner.record.connection_id, error = %e, "inbound media fetch failed; retrying");
                                tokio::time::sleep(Duration::from_secs(wait)).await;
                            }
                        }
                    }
                });
            }
            BusinessNumberMessage::Panic => panic!("fault injection in business_number"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        inner: &mut Arc<Inner>,
    ) -> Result<(), ActorProcessingErr> {
        inner
            .shared
            .connections
            .unregister(inner.record.connection_id);
        tracing::info!(connection = %inner.record.connection_id, "business number stopped");
        Ok(())
    }
}
