//! Asking an actor and waiting for its answer: the two ways a call fails whatever the actor
//! ([`Unanswered`]), shared by every typed handle (`LiteSupervisorHandle`, `HubHandle`...).
//! Each handle names its own timeouts and turns [`Unanswered`] into its actor's error enum.

use super::slot::Slot;
use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use std::time::Duration;

/// Why a call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    /// No incarnation runs (the supervisor is restarting it), or it stopped before answering.
    #[error("not running")]
    NotRunning,
    /// It runs but did not answer within the call's timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Calls `actor` with the message `make` builds around the reply port.
pub async fn ask<M, T>(
    actor: &ActorRef<M>,
    make: impl FnOnce(RpcReplyPort<T>) -> M,
    timeout: Duration,
) -> Result<T, Unanswered>
where
    M: ractor::Message,
    T: Send + 'static,
{
    match actor.call(make, Some(timeout)).await {
        Ok(CallResult::Success(answer)) => Ok(answer),
        Ok(CallResult::Timeout) => Err(Unanswered::TimedOut(timeout)),
        // The actor dropped the reply port (it stopped meanwhile) or its mailbox is closed.
        Ok(CallResult::SenderError) | Err(_) => Err(Unanswered::NotRunning),
    }
}

/// Calls whichever incarnation of the child runs now.
pub async fn ask_slot<M: ractor::Message, T: Send + 'static>(
    slot: &Slot<M>,
    make: impl FnOnce(RpcReplyPort<T>) -> M,
    timeout: Duration,
) -> Result<T, Unanswered> {
    ask(&slot.get().ok_or(Unanswered::NotRunning)?, make, timeout).await
}

/// Implements `From<Unanswered>` for an actor's error enum with `NotRunning` and
/// `TimedOut(Duration)` variants.
#[macro_export]
macro_rules! unanswered_into {
    ($error:ident) => {
        impl From<$crate::supervision::Unanswered> for $error {
            fn from(e: $crate::supervision::Unanswered) -> Self {
                match e {
                    $crate::supervision::Unanswered::NotRunning => $error::NotRunning,
                    $crate::supervision::Unanswered::TimedOut(t) => $error::TimedOut(t),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};

    struct Echo;

    enum EchoMessage {
        /// Answers with the number.
        Now(u32, RpcReplyPort<u32>),
        /// Never answers (the port is dropped after the caller gave up).
        Late(RpcReplyPort<u32>),
        /// Drops the port at once.
        Drop(RpcReplyPort<u32>),
    }

    impl Actor for Echo {
        type Msg = EchoMessage;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<Self::Msg>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<Self::Msg>,
            message: EchoMessage,
            _state: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            match message {
                EchoMessage::Now(n, reply) => {
                    let _ = reply.send(n);
                }
                EchoMessage::Late(reply) => {
                    tokio::spawn(async move {
                        while !reply.is_closed() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    });
                }
                EchoMessage::Drop(reply) => drop(reply),
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn tells_answers_timeouts_and_absence_apart() {
        let (actor, join) = Actor::spawn(None, Echo, ()).await.unwrap();
        let t = Duration::from_millis(200);
        assert_eq!(ask(&actor, |r| EchoMessage::Now(7, r), t).await, Ok(7));
        assert_eq!(
            ask(&actor, EchoMessage::Late, t).await,
            Err(Unanswered::TimedOut(t))
        );
        assert_eq!(
            ask(&actor, EchoMessage::Drop, t).await,
            Err(Unanswered::NotRunning)
        );
        let slot: Slot<EchoMessage> = Slot::default();
        assert_eq!(
            ask_slot(&slot, |r| EchoMessage::Now(1, r), t).await,
            Err(Unanswered::NotRunning)
        );
        actor.stop(None);
        join.await.unwrap();
        assert_eq!(
            ask(&actor, |r| EchoMessage::Now(2, r), t).await,
            Err(Unanswered::NotRunning)
        );
    }
}
