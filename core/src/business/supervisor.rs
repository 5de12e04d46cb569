//! BusinessSupervisor: supervises the webhook inbox poller and one BusinessNumber actor per
//! connected phone_number_id, each owning its Graph API client. At start it loads the active
//! numbers from the store (retrying while the store is down); the HTTP routes ask it to start,
//! replace or stop a number, and for a number's actor when they need its Graph client.
//! Restarts follow the daemon's [`RestartPolicy`]; on stop it stops its children first.

use crate::business::error::BusinessSupervisorError;
use crate::business::inbox::MediaToFetch;
use crate::business::number::{BusinessNumber, BusinessNumberArgs, BusinessNumberMessage};
use crate::business::store;
use crate::ingest::drain::{InboxPoller, MediaSink};
use crate::shared::Shared;
use crate::supervision::{ChildSpec, Children, Decision, RestartPolicy, Slot, StatusNode, react};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub enum BusinessSupervisorMessage {
    /// The status of every BusinessNumber, for `GET /v1/status`.
    Status(RpcReplyPort<Vec<StatusNode>>),
    /// Restart the named BusinessNumber; sent to itself once the backoff has passed.
    Restart(String),
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
    /// Start the actors of the active numbers not running yet (at start; retried while the
    /// store does not answer).
    LoadNumbers,
    /// Start the number's actor, or replace it (new credentials): it reads its row anew.
    Connect {
        connection_id: Uuid,
        reply: RpcReplyPort<Result<(), BusinessSupervisorError>>,
    },
    /// Stop the number's actor for good (the number was removed).
    Disconnect {
        connection_id: Uuid,
        reply: RpcReplyPort<()>,
    },
    /// The running actor of a number, for routes that need its Graph client.
    Number {
        connection_id: Uuid,
        reply: RpcReplyPort<Option<ActorRef<BusinessNumberMessage>>>,
    },
    /// Another node connected, changed or removed the number: start, replace or stop this
    /// node's actor by what the store says now.
    Reload(Uuid),
    /// Inbound media found by the inbox, for the owning numbers to fetch.
    FetchMedia(Vec<MediaToFetch>),
}
crate::supervised_message!(BusinessSupervisorMessage, status);

/// How long the supervisor waits for a stopping number.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before loading the numbers again after the store failed.
const LOAD_RETRY: Duration = Duration::from_secs(2);

pub struct BusinessSupervisor;

pub struct BusinessSupervisorState {
    shared: Arc<Shared>,
    children: Children,
    /// Connection id → (child name, its slot).
    numbers: HashMap<Uuid, (String, Slot<BusinessNumberMessage>)>,
}

fn child_name(connection_id: Uuid) -> String {
    format!("business_number:{connection_id}")
}

impl BusinessSupervisorState {
    async fn start_number(
        &mut self,
        connection_id: Uuid,
        myself: &ActorRef<BusinessSupervisorMessage>,
    ) -> Result<(), BusinessSupervisorError> {
        self.stop_number(connection_id).await;
        let name = child_name(connection_id);
        let slot: Slot<BusinessNumberMessage> = Slot::default();
        let shared = self.shared.clone();
        let spec = ChildSpec::new(name.clone(), false, slot.clone(), move || {
            (
                BusinessNumber,
                BusinessNumberArgs {
                    shared: shared.clone(),
                    connection_id,
                },
            )
        });
        match self.children.add_and_start(spec, &myself.get_cell()).await {
            Ok(_) => {
                self.numbers.insert(connection_id, (name, slot));
                Ok(())
            }
            Err(e) => {
                self.children.forget(&name);
                Err(BusinessSupervisorError::Spawn(e.to_string()))
            }
        }
    }

    async fn stop_number(&mut self, connection_id: Uuid) {
        if let Some((name, _)) = self.numbers.remove(&connection_id)
            && let Some(index) = self.children.index_by_name(&name)
        {
            if !self.children.stop_one(index, STOP_TIMEOUT).await {
                tracing::warn!(child = %name, "business number did not stop in time");
            }
            self.children.forget(&name);
        }
    }
}

impl Actor for BusinessSupervisor {
    type Msg = BusinessSupervisorMessage;
    type State = BusinessSupervisorState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut children = Children::new(RestartPolicy::default());
        let inbox = Slot::default();
        let me = myself.clone();
        let sink: MediaSink = Arc::new(move |media| {
            let _ = me.cast(BusinessSupervisorMessage::FetchMedia(media));
        });
        let s = shared.clone();
        let spec = ChildSpec::new("webhook_inbox", false, inbox, move || {
            (InboxPoller, (s.clone(), sink.clone()))
        });
        children.add_and_start(spec, &myself.get_cell()).await?;
        myself.cast(BusinessSupervisorMessage::LoadNumbers)?;
        Ok(BusinessSupervisorState {
            shared,
            children,
            numbers: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BusinessSupervisorMessage::Status(reply) => {
                let _ = reply.send(state.children.status().await);
            }
            BusinessSupervisorMessage::Restart(name) => {
                let decision = state.children.restart(&name, &myself.get_cell()).await;
                decide(&myself, state, decision);
            }
            BusinessSupervisorMessage::Panic => panic!("fault injection in business_supervisor"),
            BusinessSupervisorMessage::LoadNumbers => {
                let loaded = match state.shared.pool.get().await {
                    Ok(client) => store::active(&client).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match loaded {
                    Ok(numbers) => {
                        for (connection_id, phone_number_id) in numbers {
                            if state.numbers.contains_key(&connection_id) {
                                continue;
                            }
                            if let Err(e) = state.start_number(connection_id, &myself).await {
                                tracing::error!(%connection_id, %phone_number_id, error = %e, "business number did not start");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot load business numbers yet; retrying");
                        myself.send_after(LOAD_RETRY, || BusinessSupervisorMessage::LoadNumbers);
                    }
                }
            }
            BusinessSupervisorMessage::Connect {
                connection_id,
                reply,
            } => {
                let _ = reply.send(state.start_number(connection_id, &myself).await);
            }
            BusinessSupervisorMessage::Disconnect {
                connection_id,
                reply,
            } => {
                state.stop_number(connection_id).await;
                let _ = reply.send(());
            }
            BusinessSupervisorMessage::Number {
                connection_id,
                reply,
            } => {
                let actor = state
                    .numbers
                    .get(&connection_id)
                    .and_then(|(_, slot)| slot.get());
                let _ = reply.send(actor);
            }
            BusinessSupervisorMessage::Reload(connection_id) => {
                let active = match state.shared.pool.get().await {
                    Ok(client) => store::active(&client).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match active {
                    Ok(list) if list.iter().any(|(c, _)| *c == connection_id) => {
                        if let Err(e) = state.start_number(connection_id, &myself).await {
                            tracing::error!(%connection_id, error = %e, "business number did not start");
                        }
                    }
                    Ok(_) => state.stop_number(connection_id).await,
                    Err(e) => {
                        tracing::warn!(%connection_id, error = %e, "could not reload a business number")
                    }
                }
            }
            BusinessSupervisorMessage::FetchMedia(list) => {
                for m in list {
                    let actor = state
                        .numbers
                        .get(&m.connection_id)
                        .and_then(|(_, slot)| slot.get());
                    if let Some(actor) = actor {
                        let _ = actor.cast(BusinessNumberMessage::FetchMedia {
                            external_id: m.external_id,
                            details: m.details,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let decision = state.children.on_event(&evt);
        decide(&myself, state, decision);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state
            .children
            .stop_all_or_warn("business_supervisor", Duration::from_secs(10))
            .await;
        Ok(())
    }
}

/// Acts on a restart decision: a restart later, or the alert when a child failed too often.
fn decide(
    myself: &ActorRef<BusinessSupervisorMessage>,
    state: &BusinessSupervisorState,
    decision: Decision,
) {
    react(
        myself,
        &state.shared,
        "business_supervisor",
        decision,
        BusinessSupervisorMessage::Restart,
    );
}
