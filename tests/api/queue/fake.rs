//! A fake connection actor for the queue tests: registered in the daemon's connections
//! registry like a Business number or Lite session, it records every send (with the time it
//! left: its departure, kept as a real connection actor keeps it) and answers with a scripted
//! outcome, after an optional delay.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use sincro_core::connection::{
    ConnectionKind, ConnectionRef, Departures, OutboundMessage, SendOutcome,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Decides the outcome of each send.
pub type Script = Box<dyn FnMut(&OutboundMessage) -> SendOutcome + Send>;

pub enum FakeMessage {
    /// One send from the Dispatcher.
    Send(OutboundMessage, RpcReplyPort<SendOutcome>),
}

/// One send as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub message: OutboundMessage,
    pub at: Instant,
}

#[derive(Clone)]
pub struct Fake {
    /// Kept so the actor's handle lives as long as the fake.
    pub _actor: ActorRef<FakeMessage>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub script: Arc<Mutex<Script>>,
}

impl Fake {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn sends_of(&self, id: Uuid) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.message.message_id == id)
            .count()
    }

    pub fn set_script(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }
}

/// Always accepted, with the external id `fake.<message id>.<attempt>`.
pub fn accept() -> Script {
    Box::new(|m: &OutboundMessage| SendOutcome::Sent {
        external_id: format!("fake.{}.{}", m.message_id, m.attempt),
    })
}

struct FakeActor;

struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
    delay: Duration,
    departures: Departures,
}

impl Actor for FakeActor {
    type Msg = FakeMessage;
    type State = FakeState;
    type Arguments = FakeState;

    async fn pre_start(
        &self,
        _: ActorRef<FakeMessage>,
        s: FakeState,
    ) -> Result<FakeState, ActorProcessingErr> {
        Ok(s)
    }

    async fn handle(
        &self,
        _: ActorRef<FakeMessage>,
        msg: FakeMessage,
        s: &mut FakeState,
    ) -> Result<(), ActorProcessingErr> {
        let FakeMessage::Send(m, reply) = msg;
        s.departures.wait(m.departure).await;
        s.seen.lock().unwrap().push(Seen {
            message: m.clone(),
            at: Instant::now(),
        });
        let outcome = (s.script.lock().unwrap())(&m);
        if s.delay.is_zero() {
            let _ = reply.send(outcome);
        } else {
            let delay = s.delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = reply.send(outcome);
            });
        }
        Ok(())
    }
}

/// Starts a fake for `connection_id` and registers it in `shared`'s registry.
pub async fn register(
    shared: &sincro_core::Shared,
    connection_id: Uuid,
    kind: ConnectionKind,
    script: Script,
    delay: Duration,
) -> Fake {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script));
    let (actor, _) = Actor::spawn(
        None,
        FakeActor,
        FakeState {
            seen: seen.clone(),
            script: script.clone(),
            delay,
            departures: Departures::default(),
        },
    )
    .await
    .expect("fake connection starts");
    shared.connections.register(
        connection_id,
        ConnectionRef::new(kind, actor.clone(), FakeMessage::Send),
    );
    Fake {
        _actor: actor,
        seen,
        script,
    }
}
