//! What the Dispatcher needs from a connection actor (a Business number or a Lite session),
//! whatever its kind: one outbound message in, one [`SendOutcome`] out. Connection actors put
//! a [`ConnectionRef`] in the node's [`Connections`] registry when they start and take it out
//! when they stop, so the Dispatcher routes by connection id to whichever incarnation runs on
//! this node now.

use ractor::{ActorRef, RpcReplyPort};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
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
    /// When the request may leave (the Dispatcher's pacing); None: at once.
    pub departure: Option<Departure>,
}

/// When a send may leave, and the connection's window rule. The Dispatcher hands a message
/// over a little before its slot, so whatever else the send needs (the store's checks, media)
/// is done by then and the request leaves when the pacing chose, not that plus the store's
/// latency. The connection actor keeps it with [`Departures`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departure {
    /// Not before this instant: the send's slot.
    pub at: Instant,
    /// Not sooner than this after the connection's previous send actually left: sends that
    /// fell behind catch up at a bounded rate, never in one burst.
    pub spacing: Duration,
    /// Never more than `cap` of the connection's sends leaving in any `period` (the limit
    /// less a margin), counted from when they actually left.
    pub cap: usize,
    pub period: Duration,
}

/// One connection's departures: each send leaves at its [`Departure::at`], at least its
/// spacing after the previous one, and never as one more than the cap in a period, all
/// counted from when sends actually left. That is the provider's rule, kept at the last
/// moment before the request goes: whatever delayed a send before (a slow store, a busy
/// machine, the process pausing), the sends that fell due meanwhile do not leave in a burst,
/// and a burst is what a per-second limit refuses.
///
/// The spacing runs from when the previous send was due to leave, not from when its timer
/// fired: a timer wakes on the next millisecond tick or later (`TIMER_SLACK`), so spacing
/// each send from the last one's wake-up adds that lateness to every send, and capped a
/// 1,000/s number at about 550 sends a second. A due time is never counted as more than the
/// slack in the past, so after a stall at most the slack's worth of sends leaves at once.
#[derive(Debug, Default)]
pub struct Departures(tokio::sync::Mutex<Left>);

/// What [`Departures`] remembers.
#[derive(Debug, Default)]
struct Left {
    /// When the last sends actually left (as many as the cap).
    at: VecDeque<Instant>,
    /// When the last send was due to leave.
    due: Option<Instant>,
}

/// How late a timer may fire: tokio's timers end on a whole millisecond tick, and a busy
/// machine wakes the task later still.
const TIMER_SLACK: Duration = Duration::from_millis(4);

impl Left {
    /// When a send with `d` may leave.
    fn due(&self, d: &Departure) -> Instant {
        let mut due = d.at;
        if let Some(previous) = self.due {
            due = due.max(previous + d.spacing);
        }
        if d.cap > 0
            && self.at.len() >= d.cap
            && let Some(oldest) = self.at.get(self.at.len() - d.cap)
        {
            due = due.max(*oldest + d.period);
        }
        due
    }

    /// Counts a send that was due at `due` as left at `now`.
    fn leave(&mut self, d: &Departure, due: Instant, now: Instant) {
        self.due = Some(due.max(now.checked_sub(TIMER_SLACK).unwrap_or(now)));
        self.at.push_back(now);
        while self.at.len() > d.cap.max(1) {
            self.at.pop_front();
        }
    }
}

impl Departures {
    /// Waits until a send with `departure` may leave and counts it as left. Sends wait in
    /// the order they ask.
    pub async fn wait(&self, departure: Option<Departure>) {
        let Some(d) = departure else {
            return;
        };
        let mut left = self.0.lock().await;
        let due = left.due(&d);
        tokio::time::sleep_until(due.into()).await;
        left.leave(&d, due, tokio::time::Instant::now().into_std());
    }
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// The provider accepted it under this id (wamid or WhatsApp Web id).
    Sent { external_id: String },
    /// Accepted (Business) under this id, and the provider named the recipient's WhatsApp
    /// account (`contacts[].wa_id` of Meta's answer), which may be spelled otherwise than the
    /// number sent to (a Brazilian account without the ninth digit): kept for the contact.
    SentTo { external_id: String, wa_id: String },
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

#[cfg(test)]
mod tests {
    use super::{Departure, Departures, TIMER_SLACK};
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn sends_leave_on_their_slots_and_spaced_after_a_stall() {
        let d = Departures::default();
        let t0 = Instant::now();
        let spacing = Duration::from_millis(5);
        let at = |ms: u64| {
            Some(Departure {
                at: (t0 + Duration::from_millis(ms)).into_std(),
                spacing,
                cap: 100,
                period: Duration::from_secs(1),
            })
        };
        // On time: it leaves on its slot.
        d.wait(at(20)).await;
        assert_eq!(Instant::now(), t0 + Duration::from_millis(20));
        // The process stalls past the next three slots: they leave spaced, not at once (the
        // first one's due time counted the timer slack back, as a late timer would fire).
        tokio::time::advance(Duration::from_millis(200)).await;
        let resumed = Instant::now();
        d.wait(at(30)).await;
        assert_eq!(Instant::now(), resumed);
        for k in 1..3u32 {
            d.wait(at(30 + 10 * k as u64)).await;
            assert_eq!(Instant::now(), resumed - TIMER_SLACK + spacing * k);
        }
        // Without a departure: at once.
        let before = Instant::now();
        d.wait(None).await;
        assert_eq!(Instant::now(), before);
    }

    #[test]
    fn a_thousand_a_second_leave_on_their_slots_though_timers_fire_late() {
        // A HIGH-tier number: slots about 1.04 ms apart, catch-up spacing half that. Each
        // send's timer fires on the next whole millisecond, and the busy machine wakes the
        // task 0.7 ms after that.
        let mut left = super::Left::default();
        let t0 = std::time::Instant::now();
        let interval = Duration::from_micros(1_042);
        let fired = |due: std::time::Instant| {
            let micros = (due - t0).as_micros() as u64;
            t0 + Duration::from_millis(micros.div_ceil(1_000)) + Duration::from_micros(700)
        };
        for k in 0..2_000u32 {
            let d = Departure {
                at: t0 + interval * k,
                spacing: interval / 2,
                cap: 970,
                period: Duration::from_secs(1),
            };
            let due = left.due(&d);
            let now = fired(due);
            left.leave(&d, due, now);
            let late = now - d.at;
            assert!(
                late <= Duration::from_millis(2),
                "send {k} left {late:?} after its slot"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_period_holds_more_than_the_cap_however_late_sends_come() {
        let d = Departures::default();
        let t0 = Instant::now();
        // Thirty sends whose slots (1 ms apart) all passed, at a cap of 10 per second: ten
        // leave spaced, the eleventh a second after the first, and so on.
        tokio::time::advance(Duration::from_millis(100)).await;
        let mut left = Vec::new();
        for k in 0..30u64 {
            d.wait(Some(Departure {
                at: (t0 + Duration::from_millis(k)).into_std(),
                spacing: Duration::from_millis(2),
                cap: 10,
                period: Duration::from_secs(1),
            }))
            .await;
            left.push(Instant::now());
        }
        for (i, t) in left.iter().enumerate() {
            let in_period = left[i..]
                .iter()
                .filter(|x| **x < *t + Duration::from_secs(1))
                .count();
            assert!(
                in_period <= 10,
                "{in_period} leave within a second of send {i}"
            );
        }
        assert_eq!(left[10], left[0] + Duration::from_secs(1));
        // Spaced from the first one's due time, counted the timer slack back: the slack's
        // worth leave with it, then one every 2 ms.
        assert_eq!(TIMER_SLACK, Duration::from_millis(4));
        assert_eq!(left[1], left[0]);
        assert_eq!(left[2], left[0]);
        assert_eq!(left[3], left[0] + Duration::from_millis(2));
    }
}
