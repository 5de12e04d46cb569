//! What the Dispatcher needs from a connection actor (a Business number or a Lite session),
//! whatever its kind: one outbound message in, one [`SendOutcome`] out. Connection actors put
//! a [`ConnectionRef`] in the node's [`Connections`] registry when they start and take it out
//! when they stop, so the Dispatcher routes by connection id to whichever incarnation runs on
//! this node now.

use ractor::{ActorRef, RpcReplyPort};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// One message to send, as the API accepted it.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub message_id: Uuid,
    pub usuario_id: Uuid,
    pub connection_id: Uuid,
    /// Recipient in E.164 (`+5511987654321`).
    pub to: String,
    /// The Cloud API `type` (`text`, `template`, `interactive`, `image`, ...).
    pub kind: String,
    /// The request as Meta's Cloud API shapes it, without `messaging_product`/`to`
    /// (e.g. `{"type":"text","text":{"body":"hi"},"context":{...}}`); Lite maps it too.
    pub body: Value,
    /// 1 for the first try.
    pub attempt: u32,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// The provider accepted it under this id (wamid or WhatsApp Web id).
    Sent { external_id: String },
    /// Try again later (rate limits, 5xx, timeouts before the request was sent...).
    /// `after`: the provider's or policy's wait, if it dictates one.
    Retry {
        code: Option<i64>,
        error: String,
        after: Option<Duration>,
    },
    /// Will never succeed as is; fail the message with the provider's code and reason.
    Failed { code: Option<i64>, error: String },
    /// The request may have reached the provider but its answer was lost: do not resend
    /// blindly (no idempotency key at Meta); mark the message for a person to decide.
    Uncertain { error: String },
    /// The connection cannot send now (needs new credentials, logged out, not WORKING):
    /// keep the message queued without spending an attempt.
    Unavailable { reason: String },
}

/// A running connection actor, by kind. Each kind's message enum has a variant carrying an
/// [`OutboundMessage`] and a reply port; `send` builds it.
#[derive(Clone)]
pub struct ConnectionRef {
    pub kind: ConnectionKind,
    sender: Arc<dyn Fn(OutboundMessage, RpcReplyPort<SendOutcome>) -> bool + Send + Sync>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Business,
    Lite,
}

impl ConnectionRef {
    /// Wraps an actor whose message type builds a send request with `make`.
    pub fn new<M: ractor::Message>(
        kind: ConnectionKind,
        actor: ActorRef<M>,
        make: fn(OutboundMessage, RpcReplyPort<SendOutcome>) -> M,
    ) -> Self {
        ConnectionRef {
            kind,
            sender: Arc::new(move |msg, reply| actor.cast(make(msg, reply)).is_ok()),
        }
    }

    /// Sends and waits at most `timeout`; a dead actor or a timeout is `Unavailable` when the
    /// request surely never left, `Uncertain` when it may have.
    pub async fn send(&self, msg: OutboundMessage, timeout: Duration) -> SendOutcome {
        self.begin(msg).outcome(timeout).await
    }

    /// Hands the message to the actor now (its mailbox keeps the order and the spacing the
    /// caller gave); the answer is awaited with [`Pending::outcome`].
    pub fn begin(&self, msg: OutboundMessage) -> Pending {
        let (tx, rx) = ractor::concurrency::oneshot();
        Pending((self.sender)(msg, tx.into()).then_some(rx))
    }
}

/// A send handed to its connection actor, its answer not read yet.
pub struct Pending(Option<ractor::concurrency::OneshotReceiver<SendOutcome>>);

impl Pending {
    /// The answer, waiting at most `timeout`.
    pub async fn outcome(self, timeout: Duration) -> SendOutcome {
        let Some(rx) = self.0 else {
            return SendOutcome::Unavailable {
                reason: "connection actor is not running".into(),
            };
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => SendOutcome::Uncertain {
                error: "connection actor stopped while sending".into(),
            },
            Err(_) => SendOutcome::Uncertain {
                error: format!("no answer from the connection actor within {timeout:?}"),
            },
        }
    }
}

/// The connection actors running on this node, by connection id.
#[derive(Clone, Default)]
pub struct Connections(Arc<RwLock<HashMap<Uuid, ConnectionRef>>>);

impl Connections {
    pub fn register(&self, connection_id: Uuid, r: ConnectionRef) {
        self.0
            .write()
            .expect("connections lock")
            .insert(connection_id, r);
    }

    pub fn unregister(&self, connection_id: Uuid) {
        self.0
            .write()
            .expect("connections lock")
            .remove(&connection_id);
    }

    pub fn get(&self, connection_id: Uuid) -> Option<ConnectionRef> {
        self.0
            .read()
            .expect("connections lock")
            .get(&connection_id)
            .cloned()
    }

    /// Every connection running here with its kind, read under one lock.
    pub fn kinds(&self) -> Vec<(Uuid, ConnectionKind)> {
        self.0
            .read()
            .expect("connections lock")
            .iter()
            .map(|(id, r)| (*id, r.kind))
            .collect()
    }

    /// Ids of every connection running here (the Dispatcher claims only their messages).
    pub fn ids(&self) -> Vec<Uuid> {
        self.0
            .read()
            .expect("connections lock")
            .keys()
            .copied()
            .collect()
    }
}
