//! BusinessNumber: one actor per connected phone_number_id. It owns the number's Graph client
//! (nobody else calls Meta with this token), registers itself in `shared.connections` for the
//! Dispatcher while it runs, sends (checks, Meta's answer classified by
//! [`super::classify`]), keeps its templates in step with Meta, uploads outbound media and
//! fetches inbound media; at start it reads the number's throughput level again.
//!
//! Calls to Meta run in tasks the actor spawns, so one slow call (up to its timeout) never
//! holds up the number's other sends; what they share (the client, whether sending is halted,
//! the pair-rate strikes per recipient) lives in [`Inner`]. When Meta refuses the token
//! (0/190) or blocks the account (368/131031) the number halts: every send answers
//! `Unavailable` (the message stays queued), the status is stored with a `business.status`
//! event and an alert is raised, once. New credentials (`PATCH`) start a fresh actor.

use super::graph::{GraphClient, GraphError};
use super::store::{self, NumberRecord, status};
use super::templates::SyncReport;
use super::{BusinessError, GraphSettings};
use crate::connection::{ConnectionKind, ConnectionRef, Departures, OutboundMessage, SendOutcome};
use crate::shared::Shared;
use crate::store::alerts::Severity;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

mod inbound_media;
mod level;
mod sending;
mod template_calls;

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
    /// Reply once the work the actor does at start (template sync, throughput level) is done,
    /// failed or skipped: whoever changes templates behind Meta's back (tests, operators'
    /// scripts) waits for it, or the start sync may undo the change.
    StartDone(RpcReplyPort<()>),
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
    /// Turns true when the work done at start is over.
    start_done: tokio::sync::watch::Sender<bool>,
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
        crate::alerts::raise(
            &self.shared,
            crate::alerts::AlertCondition {
                key: crate::alerts::keys::business_status(r.connection_id, new_status),
                usuario_id: Some(r.usuario_id),
                connection_id: Some(r.connection_id),
                kind: format!("business_{new_status}"),
                severity: Severity::Critical,
                source: format!("business_number/{}", r.phone_number_id),
                message: match new_status {
                    status::NEEDS_CREDENTIALS => format!(
                        "Meta refused the access token of WhatsApp Business number {}; sending is stopped until new credentials are given (PATCH /v1/business/numbers/{})",
                        r.display_phone_number
                            .as_deref()
                            .unwrap_or(&r.phone_number_id),
                        r.connection_id
                    ),
                    _ => format!(
                        "Meta restricted WhatsApp Business number {}; sending is stopped",
                        r.display_phone_number
                            .as_deref()
                            .unwrap_or(&r.phone_number_id)
                    ),
                },
                details: json!({"connection_id": r.connection_id, "phone_number_id": r.phone_number_id, "reason": why}),
            },
        );
    }

    /// Reacts to a Graph error of a management call (a dead token halts the number).
    async fn on_error(&self, e: GraphError) -> BusinessError {
        if e.is_auth() {
            self.halt(status::NEEDS_CREDENTIALS, &e.to_string()).await;
            return BusinessError::NeedsCredentials(e.to_string());
        }
        BusinessError::Graph(e)
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
        if halted.is_none() {
            // Started connected (new credentials accepted): a refused token or a restriction
            // raised before has cleared.
            for cleared in [status::NEEDS_CREDENTIALS, status::RESTRICTED] {
                let key = crate::alerts::keys::business_status(record.connection_id, cleared);
                crate::alerts::resolve(&shared, key);
            }
        }
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
            start_done: tokio::sync::watch::Sender::new(false),
        });
        // The templates and the throughput level in step with Meta from the start (a dead
        // token shows up here too). Templates first: a send may be waiting on their approval.
        let first = inner.clone();
        tokio::spawn(async move {
            if first.halted().is_none()
                && let Err(e) = first.sync_templates().await
            {
                tracing::warn!(connection = %first.record.connection_id, error = %e, "template sync at start failed");
            }
            if first.halted().is_none()
                && let Err(e) = first.refresh_level().await
            {
                tracing::warn!(connection = %first.record.connection_id, error = %e, "reading the throughput level at start failed");
            }
            first.start_done.send_replace(true);
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
            BusinessNumberMessage::StartDone(reply) => {
                let mut done = inner.start_done.subscribe();
                tokio::spawn(async move {
                    if done.wait_for(|d| *d).await.is_ok() {
                        let _ = reply.send(());
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
