//! What passes between the Hub and one WebSocket connection: the serialised [`Frame`]s (made
//! once per event, shared by every subscriber of the user), the bounded frame channel, and the
//! one-shot [`Closing`] signal telling the connection why the Hub let go of it. A connection
//! that sees its channel end with no signal knows the Hub itself died (a crash, a lost LISTEN
//! connection) and re-subscribes to the next incarnation.

use super::filter::TypeFilter;
use crate::store::events::Event;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// One event as sent on the wire: `{"seq":..,"type":..,"at":..,"data":{..}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub seq: i64,
    pub kind: String,
    pub json: Arc<str>,
    /// When the event was written: a live frame's delay to its client is measured from it.
    pub at: time::OffsetDateTime,
    /// Its connection had notifications off: only admin keys receive it.
    pub muted: bool,
}

impl Frame {
    pub fn from_event(event: &Event) -> Frame {
        // Serialising an `Event` cannot fail (a JSON value and an RFC 3339 timestamp); the
        // fallback only keeps the seq flowing if that ever changes.
        let json = serde_json::to_string(event).unwrap_or_else(|_| {
            format!(
                r#"{{"seq":{},"type":{:?},"at":null,"data":{{"unreadable":true}}}}"#,
                event.seq, event.kind
            )
        });
        Frame {
            seq: event.seq,
            kind: event.kind.clone(),
            json: json.into(),
            at: event.at,
            muted: event.muted,
        }
    }
}

/// Why the Hub stopped feeding a subscriber (sent before its frame channel is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// The subscriber's buffer was full: the client is too slow (close code 4008).
    Overflow,
    /// The Hub is stopping because the daemon shuts down (close code 1001).
    Shutdown,
}

/// How a subscription ended, as the connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Overflow,
    Shutdown,
    /// The Hub went away without a word: it crashed and is being restarted.
    HubGone,
}

/// A request to the Hub to feed a user's live events into a channel.
pub struct Subscription {
    pub usuario_id: Uuid,
    pub filter: Option<Arc<TypeFilter>>,
    /// A seq every event up to which the subscriber reads from the store itself (the user's
    /// `last_seq` read *before* subscribing). The Hub starts fetching after it when it does not
    /// follow this user yet; anything lower is only re-sent, and the subscriber skips it.
    pub known_seq: i64,
    pub(super) frames: mpsc::Sender<Arc<Frame>>,
    pub(super) closing: oneshot::Sender<Closing>,
}

/// The subscriber's end: live frames, oldest first, and the closing signal.
pub struct Subscribed {
    pub frames: mpsc::Receiver<Arc<Frame>>,
    pub closing: ClosingSignal,
}

/// A subscription and its receiving end; `capacity` frames are buffered before the Hub
/// counts the subscriber as too slow.
pub fn subscription(
    usuario_id: Uuid,
    filter: Option<Arc<TypeFilter>>,
    known_seq: i64,
    capacity: usize,
) -> (Subscription, Subscribed) {
    let (frames_tx, frames_rx) = mpsc::channel(capacity.max(1));
    let (closing_tx, closing_rx) = oneshot::channel();
    (
        Subscription {
            usuario_id,
            filter,
            known_seq,
            frames: frames_tx,
            closing: closing_tx,
        },
        Subscribed {
            frames: frames_rx,
            closing: ClosingSignal {
                pending: Some(closing_rx),
                resolved: None,
            },
        },
    )
}

/// The closing signal, pollable any number of times (a bare oneshot may be awaited once).
pub struct ClosingSignal {
    pending: Option<oneshot::Receiver<Closing>>,
    resolved: Option<Ended>,
}

impl ClosingSignal {
    /// Waits until the Hub lets go of this subscriber. Cancel-safe.
    pub async fn wait(&mut self) -> Ended {
        if let Some(ended) = self.resolved {
            return ended;
        }
        // Awaited through `&mut` so that a caller racing this in `select!` loses nothing.
        let ended = match self.pending.as_mut() {
            Some(rx) => match rx.await {
                Ok(closing) => ended_from(closing),
                Err(_) => Ended::HubGone,
            },
            None => Ended::HubGone,
        };
        self.pending = None;
        self.resolved = Some(ended);
        ended
    }

    /// The ending if it already happened.
    pub fn try_get(&mut self) -> Option<Ended> {
        if self.resolved.is_some() {
            return self.resolved;
        }
        let rx = self.pending.as_mut()?;
        let ended = match rx.try_recv() {
            Ok(closing) => ended_from(closing),
            Err(oneshot::error::TryRecvError::Empty) => return None,
            Err(oneshot::error::TryRecvError::Closed) => Ended::HubGone,
        };
        self.pending = None;
        self.resolved = Some(ended);
        Some(ended)
    }
}

fn ended_from(closing: Closing) -> Ended {
    match closing {
        Closing::Overflow => Ended::Overflow,
        Closing::Shutdown => Ended::Shutdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_signal_resolves_once_and_stays() {
        let (sub, mut rx) = subscription(Uuid::nil(), None, 0, 4);
        assert_eq!(rx.closing.try_get(), None);
        sub.closing.send(Closing::Overflow).unwrap();
        assert_eq!(rx.closing.wait().await, Ended::Overflow);
        assert_eq!(rx.closing.try_get(), Some(Ended::Overflow));
        assert_eq!(rx.closing.wait().await, Ended::Overflow);
    }

    #[tokio::test]
    async fn a_dropped_subscription_means_the_hub_is_gone() {
        let (sub, mut rx) = subscription(Uuid::nil(), None, 0, 4);
        drop(sub);
        assert_eq!(rx.closing.wait().await, Ended::HubGone);
        assert!(rx.frames.recv().await.is_none());
    }
}
