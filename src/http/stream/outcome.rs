//! How a stream connection's phases end: [`Outcome`] (why the connection closes, with its close
//! code) and [`Step`] (end, or subscribe again), shared by the connection loop and the socket
//! writer.

use sincro_core::hub::Ended;

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    ClientGone,
    SlowConsumer,
    Shutdown,
    Keepalive,
    HubUnavailable,
    StoreFailed,
}

impl Outcome {
    pub(super) fn label(self) -> &'static str {
        match self {
            Outcome::ClientGone => "client_closed",
            Outcome::SlowConsumer => "slow_consumer",
            Outcome::Shutdown => "shutdown",
            Outcome::Keepalive => "keepalive_timeout",
            Outcome::HubUnavailable => "hub_unavailable",
            Outcome::StoreFailed => "store_failed",
        }
    }

    /// The close code and the reason's prefix (the reason ends with `since=<N>`).
    pub(super) fn close(self) -> Option<(u16, &'static str)> {
        match self {
            Outcome::ClientGone => None,
            Outcome::SlowConsumer => Some((4008, "too slow")),
            Outcome::Shutdown => Some((1001, "server shutting down")),
            Outcome::Keepalive => Some((4000, "no pong")),
            Outcome::HubUnavailable => Some((1013, "event hub unavailable")),
            Outcome::StoreFailed => Some((1011, "store unavailable")),
        }
    }
}

/// What interrupted a replay or the live phase.
pub(super) enum Step {
    /// Subscribe again (the Hub restarted, or dropped us while we replayed) and carry on.
    Resubscribe,
    End(Outcome),
}

impl From<Outcome> for Step {
    fn from(o: Outcome) -> Self {
        Step::End(o)
    }
}

/// What the Hub's end of a subscription means for the connection.
pub(super) fn ended_step(ended: Ended) -> Step {
    match ended {
        Ended::Overflow => Outcome::SlowConsumer.into(),
        Ended::Shutdown => Outcome::Shutdown.into(),
        Ended::HubGone => Step::Resubscribe,
    }
}
