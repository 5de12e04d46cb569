//! RateLimiter: governor token buckets. The HTTP API's limits per user and per client IP
//! (429 with Retry-After), and the outbound limits the Dispatcher takes a permit from before
//! every send: per Lite session (100/min by default, per connection configurable), per Business
//! number (80/s by default, or its throughput level), and per (number, recipient) the pair rate.
//! A limit reached answers with how long to wait: the message waits, it is never dropped.
//!
//! Per connection the permit is a send *time*: slots exactly one interval apart, handed out up
//! to [`HORIZON`] ahead, so the Dispatcher can mark a message in flight and then send it on its
//! slot. A token bucket (governor's GCRA) answers only "now or not", and any burst it allows
//! shows up at the provider as a busier second; evenly spaced slots keep every window of one
//! period under the limit while the lane's own scheduling lateness costs no throughput. Slots
//! run at the limit less a margin for the jitter between a send leaving here and reaching the
//! provider ([`interval`]); the connection actor lets no more than [`window_cap`] leave in any
//! period, counted when they actually leave ([`crate::connection::Departures`]); when the
//! provider refuses a send for throughput all the same, the connection's slots slow down for
//! a while ([`Backoff`]). The pair rate (bursts are Meta's rule there) and the API limits are
//! governor buckets.

use crate::connection::ConnectionKind;
use crate::settings::ActorSettings;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub mod handle;
pub use handle::{RateLimiterError, RateLimiterHandle};

pub enum RateLimiterMessage {
    /// Take one API request permit for the user and for the client IP; replies with how long
    /// to wait when either bucket is empty.
    CheckApi {
        user: Option<Uuid>,
        ip: Option<IpAddr>,
        reply: RpcReplyPort<Result<(), Duration>>,
    },
    /// Take send permits for messages of one connection to `recipients`, in order; replies
    /// with one [`Permit`] per recipient. Once the connection's own bucket is empty every later
    /// recipient waits too; a recipient over its pair rate waits alone.
    AcquireSend {
        connection: Uuid,
        limit: SendLimit,
        recipients: Vec<String>,
        reply: RpcReplyPort<Vec<Permit>>,
    },
    /// Messages a Business number just received: Meta counts inbound messages in the number's
    /// throughput, so each takes one of the connection's next send slots.
    Inbound { connection: Uuid, count: u32 },
    /// The provider refused a send of the connection for throughput (Meta's 130429): its
    /// slots slow down for a while ([`Backoff`]).
    Refused { connection: Uuid },
    /// Forget idle keys; sent to itself every minute.
    Sweep,
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(RateLimiterMessage);

/// A connection's sending limit, as the Dispatcher read it from the connection's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimit {
    pub kind: ConnectionKind,
    /// At most this many messages per `period`.
    pub per_period: u32,
    pub period: Duration,
    /// Whether the per-recipient pair rate applies.
    pub pair_rate: bool,
}

/// Which limit made a message wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    LiteSession,
    BusinessNumber,
    Recipient,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::LiteSession => "lite_session",
            LimitScope::BusinessNumber => "business_number",
            LimitScope::Recipient => "recipient",
        }
    }
}

/// The answer for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Send at this instant (now or up to [`HORIZON`] ahead).
    Granted {
        at: std::time::Instant,
    },
    Wait {
        after: Duration,
        scope: LimitScope,
    },
}

/// What `per_period` sends per `period` amount to in `window` (rounded up).
fn sends_in(per_period: u32, period: Duration, window: Duration) -> u32 {
    ((per_period as f64) * window.as_secs_f64() / period.as_secs_f64()).ceil() as u32
}

/// The part of a limit the send slots leave unused: 3 %, and at least what 40 ms of sending
/// amounts to, for the jitter between a send leaving the lane and reaching the provider (a
/// busy machine delays some sends by tens of milliseconds, which packs a later one-second
/// window). Limits under 10 per period are kept exactly, one at a time.
fn margin(per_period: u32, period: Duration) -> u32 {
    if per_period < 10 {
        0
    } else {
        (per_period * 3)
            .div_ceil(100)
            .max(sends_in(per_period, period, Duration::from_millis(40)))
            .max(1)
    }
}

/// Most sends a connection may let leave in any one period: the limit less 2 %, and at least
/// what 30 ms of sending amounts to: a little above the slots' own rate, so the cap only acts
/// when sends that fell behind catch up (were it as tight as the slots, every send the
/// machine delays would push all later ones back and the lateness would add up).
pub fn window_cap(per_period: u32, period: Duration) -> usize {
    let l = per_period.max(1);
    if l < 10 {
        return l as usize;
    }
    let m = (l * 2)
        .div_ceil(100)
        .max(sends_in(l, period, Duration::from_millis(30)))
        .max(1);
    (l - m).max(l - margin(l, period)) as usize
}

/// How far ahead send slots are handed out: room to mark a send in flight and for its
/// connection actor to prepare it (the store's checks) before it leaves on its slot. Kept
/// short: a `kill -9` leaves the sends marked within it `uncertain` though they never left
/// (at 80/s, at most 5). A send prepared late still leaves within the window cap.
pub const HORIZON: Duration = Duration::from_millis(50);

/// How far behind a connection's slots may fall and still be handed out: a lane that asked
/// late (a slow claim or mark on a busy machine) gets the slots it missed, sent as soon as
/// the catch-up spacing allows, so the lateness costs no throughput. The window cap
/// ([`window_cap`] departures in one period) keeps such a catch-up under the limit.
pub const CATCH_UP: Duration = Duration::from_millis(250);

/// The spacing of send slots for `per_period` messages per `period`: the window cap's rate.
/// Slots `T` apart put at most `W/T + 1` starts in a closed window `W`; the window cap holds
/// every window to [`window_cap`] however late sends leave.
pub fn interval(per_period: u32, period: Duration) -> Duration {
    let l = per_period.max(1);
    if l < 10 {
        // One at a time, a hair slower than period / l so even a closed window holds l.
        return period / l + Duration::from_millis(1);
    }
    period / (l - margin(l, period))
}

fn quota(burst: u32, interval: Duration) -> Quota {
    Quota::with_period(interval.max(Duration::from_nanos(1)))
        .expect("non-zero interval")
        .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst >= 1"))
}

/// Most a connection's rate is lowered after refusals for throughput.
const BACKOFF_MAX: f64 = 0.20;
/// What one refusal takes off the rate (at most once per period).
const BACKOFF_STEP: f64 = 0.04;
/// What every period without a refusal gives back.
const BACKOFF_RECOVERY: f64 = 0.01;

/// How much slower than its slots a connection sends after the provider refused some of its
/// sends for throughput. The provider counts its windows at its end, after a jitter between
/// here and there that the margin only covers on average (a busy machine, a slow network);
/// its refusals say the margin is too thin right now. Each refusal takes [`BACKOFF_STEP`] off
/// the rate, but only once per period (a packed window yields several at once), up to
/// [`BACKOFF_MAX`]; each period without one gives [`BACKOFF_RECOVERY`] back. Refused sends
/// are retried, so this costs a little throughput and saves the retries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backoff {
    level: f64,
    /// The last refusal that raised the level.
    raised: Option<Instant>,
}

impl Backoff {
    /// The share of the rate taken off at `now`.
    fn level(&self, period: Duration, now: Instant) -> f64 {
        match self.raised {
            None => 0.0,
            Some(at) => {
                let periods = now.saturating_duration_since(at).as_secs_f64()
                    / period.as_secs_f64().max(1e-3);
                (self.level - BACKOFF_RECOVERY * periods.floor()).max(0.0)
            }
        }
    }

    /// A refusal at `now`.
    fn refused(&mut self, period: Duration, now: Instant) {
        if self
            .raised
            .is_some_and(|at| now.saturating_duration_since(at) < period)
        {
            return;
        }
        self.level = (self.level(period, now) + BACKOFF_STEP).min(BACKOFF_MAX);
        self.raised = Some(now);
    }

    /// `interval` stretched by the level.
    fn stretch(&self, interval: Duration, period: Duration, now: Instant) -> Duration {
        interval.div_f64(1.0 - self.level(period, now))
    }
}

pub struct RateLimiter;

struct ConnectionSlots {
    limit: (u32, Duration),
    interval: Duration,
    /// The next free slot.
    next: Instant,
    used: Instant,
    backoff: Backoff,
}

pub struct RateLimiterState {
    per_user: DefaultKeyedRateLimiter<Uuid>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_connection: HashMap<Uuid, ConnectionSlots>,
    /// Messages received by connections with no slots yet, and when (see `inbound`).
    pending_inbound: HashMap<Uuid, (u32, Instant)>,
    /// Pair rate per (connection, recipient); None when disabled.
    per_recipient: Option<DefaultKeyedRateLimiter<(Uuid, String)>>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("n >= 1"))
}

impl RateLimiterState {
    /// Moves the connection's next send slot later by `count` slots (counted from now at
    /// the earliest): the received messages fill the window the sends would have used. For a
    /// connection with no slots yet, kept for a second for its first sends.
    fn inbound(&mut self, connection: Uuid, count: u32) {
        let now = Instant::now();
        match self.per_connection.get_mut(&connection) {
            Some(entry) => entry.next = entry.next.max(now) + entry.interval * count,
            None => {
                let pending = self.pending_inbound.entry(connection).or_insert((0, now));
                *pending = (pending.0 + count, now);
            }
        }
    }

    /// A send of `connection` refused by the provider for throughput.
    fn refused(&mut self, connection: Uuid) {
        if let Some(entry) = self.per_connection.get_mut(&connection) {
            entry.backoff.refused(entry.limit.1, Instant::now());
            metrics::counter!("sincro_throughput_refusals_total").increment(1);
        }
    }

    fn acquire_send(
        &mut self,
        connection: Uuid,
        limit: SendLimit,
        recipients: Vec<String>,
    ) -> Vec<Permit> {
        let clock_now = self.clock.now();
        let now = Instant::now();
        let key = (limit.per_period, limit.period);
        let entry = self.per_connection.entry(connection).or_insert_with(|| {
            let interval = interval(key.0, key.1);
            let received = match self.pending_inbound.remove(&connection) {
                Some((n, at)) if at.elapsed() < Duration::from_secs(1) => n,
                _ => 0,
            };
            ConnectionSlots {
                limit: key,
                interval,
                next: now + interval * received,
                used: now,
                backoff: Backoff::default(),
            }
        });
        if entry.limit != key {
            entry.limit = key;
            entry.interval = interval(key.0, key.1);
        }
        entry.used = now;
        let spacing = entry.backoff.stretch(entry.interval, key.1, now);
        let scope = match limit.kind {
            ConnectionKind::Lite => LimitScope::LiteSession,
            ConnectionKind::Business => LimitScope::BusinessNumber,
        };
        let mut out = Vec::with_capacity(recipients.len());
        let mut blocked: Option<Duration> = None;
        for to in recipients {
            if let Some(after) = blocked {
                out.push(Permit::Wait { after, scope });
                continue;
            }
            let slot = entry.next.max(now.checked_sub(CATCH_UP).unwrap_or(now));
            if slot > now + HORIZON {
                // Come back when half the horizon's slots are free again: a few sends per
                // round instead of a round per send.
                let after = (slot - HORIZON / 2 - now).max(Duration::from_micros(100));
                metrics::counter!("sincro_rate_limited_total", "scope" => scope.as_str())
                    .increment(1);
                blocked = Some(after);
                out.push(Permit::Wait { after, scope });
                continue;
            }
            // The pair rate before taking the slot: a recipient over it must not waste one.
            if limit.pair_rate
                && let Some(pairs) = &self.per_recipient
                && let Err(not_until) = pairs.check_key(&(connection, to))
            {
                metrics::counter!("sincro_rate_limited_total", "scope" => LimitScope::Recipient.as_str()).increment(1);
                out.push(Permit::Wait {
                    after: not_until.wait_time_from(clock_now),
                    scope: LimitScope::Recipient,
                });
                continue;
            }
            entry.next = slot + spacing;
            out.push(Permit::Granted { at: slot });
        }
        out
    }
}

impl Actor for RateLimiter {
    type Msg = RateLimiterMessage;
    type State = RateLimiterState;
    type Arguments = ActorSettings;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        settings: ActorSettings,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(Duration::from_secs(60), || RateLimiterMessage::Sweep);
        let outbound = &settings.outbound;
        let per_recipient = (outbound.pair_burst > 0)
            .then(|| Governor::keyed(quota(outbound.pair_burst, outbound.pair_interval)));
        Ok(RateLimiterState {
            per_user: Governor::keyed(per_minute(settings.api_per_user_per_minute)),
            per_ip: Governor::keyed(per_minute(settings.api_per_ip_per_minute)),
            per_connection: HashMap::new(),
            pending_inbound: HashMap::new(),
            per_recipient,
            clock: DefaultClock::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RateLimiterMessage::CheckApi { user, ip, reply } => {
                let now = state.clock.now();
                let mut verdict = Ok(());
                if let Some(ip) = ip
                    && let Err(not_until) = state.per_ip.check_key(&ip)
                {
                    verdict = Err(not_until.wait_time_from(now));
                }
                if verdict.is_ok()
                    && let Some(user) = user
                    && let Err(not_until) = state.per_user.check_key(&user)
                {
                    verdict = Err(not_until.wait_time_from(now));
                }
                if verdict.is_err() {
                    metrics::counter!("sincro_rate_limited_total", "scope" => "api").increment(1);
                }
                let _ = reply.send(verdict);
            }
            RateLimiterMessage::AcquireSend {
                connection,
                limit,
                recipients,
                reply,
            } => {
                let permits = state.acquire_send(connection, limit, recipients);
                let _ = reply.send(permits);
            }
            RateLimiterMessage::Inbound { connection, count } => {
                state.inbound(connection, count);
            }
            RateLimiterMessage::Refused { connection } => state.refused(connection),
            RateLimiterMessage::Sweep => {
                state.per_user.retain_recent();
                state.per_ip.retain_recent();
                if let Some(pairs) = &state.per_recipient {
                    pairs.retain_recent();
                }
                state
                    .per_connection
                    .retain(|_, b| b.used.elapsed() < Duration::from_secs(600));
                state
                    .pending_inbound
                    .retain(|_, (_, at)| at.elapsed() < Duration::from_secs(1));
            }
            RateLimiterMessage::Panic => panic!("fault injection in rate_limiter"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(per_recipient: Option<DefaultKeyedRateLimiter<(Uuid, String)>>) -> RateLimiterState {
        RateLimiterState {
            per_user: Governor::keyed(per_minute(10)),
            per_ip: Governor::keyed(per_minute(10)),
            per_connection: HashMap::new(),
            pending_inbound: HashMap::new(),
            per_recipient,
            clock: DefaultClock::default(),
        }
    }

    fn per_second(per_period: u32, pair_rate: bool) -> SendLimit {
        SendLimit {
            kind: ConnectionKind::Business,
            per_period,
            period: Duration::from_secs(1),
            pair_rate,
        }
    }

    #[test]
    fn slots_stay_under_the_limit() {
        for (l, p) in [
            (80, 1),
            (100, 60),
            (1000, 1),
            (20, 1),
            (10, 1),
            (5, 1),
            (120, 1),
        ] {
            let period = Duration::from_secs(p);
            let t = interval(l, period);
            let max_in_window = (period.as_nanos() / t.as_nanos()) as u64 + 1;
            assert!(max_in_window <= l as u64, "{l}/{p}s: {max_in_window}");
            assert!(
                window_cap(l, period) < l as usize || l < 10,
                "{l}: no margin"
            );
            assert!(
                window_cap(l, period) as u64 + 1 >= max_in_window,
                "{l}: the cap holds back evenly spaced slots"
            );
            if l >= 80 {
                assert!(
                    window_cap(l, period) as f64 >= 0.96 * l as f64,
                    "{l}: {}",
                    window_cap(l, period)
                );
            }
        }
    }

    #[test]
    fn a_late_lane_gets_the_slots_it_missed_but_no_more() {
        let mut st = state(None);
        let limit = per_second(100, false);
        let c = Uuid::new_v4();
        let t = interval(100, Duration::from_secs(1));
        let first = st.acquire_send(c, limit, vec!["+1".into()]);
        let Permit::Granted { at: t0 } = first[0] else {
            panic!("{first:?}")
        };
        // Late by 100 ms: the next slot is the one right after the first, in the past.
        st.per_connection.get_mut(&c).unwrap().next -= Duration::from_millis(100);
        let late = st.acquire_send(c, limit, vec!["+2".into()]);
        let Permit::Granted { at } = late[0] else {
            panic!("{late:?}")
        };
        assert_eq!(at, t0 + t - Duration::from_millis(100));
        // Late by far more: at most CATCH_UP behind.
        st.per_connection.get_mut(&c).unwrap().next -= Duration::from_secs(5);
        let before = Instant::now();
        let later = st.acquire_send(c, limit, vec!["+3".into()]);
        let Permit::Granted { at } = later[0] else {
            panic!("{later:?}")
        };
        assert!(at + CATCH_UP >= before && at <= Instant::now());
    }

    #[test]
    fn received_messages_take_send_slots() {
        let mut st = state(None);
        let limit = per_second(80, false);
        let t = interval(80, Duration::from_secs(1));
        // Before any send: the first slot comes after the received ones.
        let c = Uuid::new_v4();
        st.inbound(c, 20);
        let before = Instant::now();
        let p = st.acquire_send(c, limit, vec!["+1".into()]);
        assert!(
            matches!(p[0], Permit::Wait { scope: LimitScope::BusinessNumber, after } if after + HORIZON + Duration::from_millis(5) >= t * 20),
            "{p:?}"
        );
        assert!(st.per_connection[&c].next >= before + t * 20);
        // While sending: the train moves on by as many slots.
        let d = Uuid::new_v4();
        let _ = st.acquire_send(d, limit, vec!["+1".into()]);
        let next = st.per_connection[&d].next;
        st.inbound(d, 5);
        let moved = st.per_connection[&d].next;
        assert!(moved >= next + t * 5 && moved <= next.max(Instant::now()) + t * 5);
    }

    #[test]
    fn refusals_slow_the_slots_down_then_recover() {
        let period = Duration::from_secs(1);
        let t = interval(80, period);
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.stretch(t, period, t0), t);
        // A packed window yields several refusals: they count once.
        b.refused(period, t0);
        b.refused(period, t0 + Duration::from_millis(300));
        assert!((b.level(period, t0) - BACKOFF_STEP).abs() < 1e-9);
        assert!(b.stretch(t, period, t0) > t.mul_f64(1.0 + BACKOFF_STEP));
        // Refusals in later periods add up, to at most BACKOFF_MAX.
        for k in 1..20 {
            b.refused(period, t0 + period * k);
        }
        let end = t0 + period * 19;
        assert!((b.level(period, end) - BACKOFF_MAX).abs() < 1e-9);
        // Every quiet period gives some back, until the slots are as before.
        assert!(
            (b.level(period, end + period * 5) - (BACKOFF_MAX - 5.0 * BACKOFF_RECOVERY)).abs()
                < 1e-9
        );
        assert_eq!(b.stretch(t, period, end + period * 30), t);
    }

    #[test]
    fn a_refused_connection_gets_slots_further_apart() {
        let mut st = state(None);
        let limit = per_second(80, false);
        let c = Uuid::new_v4();
        let slot =
            |st: &mut RateLimiterState, to: &str| match st.acquire_send(c, limit, vec![to.into()])
                [0]
            {
                Permit::Granted { at } => at,
                p => panic!("{p:?}"),
            };
        let a = slot(&mut st, "+1");
        let b = slot(&mut st, "+2");
        assert_eq!(b - a, interval(80, Duration::from_secs(1)));
        st.refused(c);
        let c2 = slot(&mut st, "+3");
        let d = slot(&mut st, "+4");
        assert!(
            d - c2 > interval(80, Duration::from_secs(1)),
            "{:?}",
            d - c2
        );
        // A refusal for a connection with no slots is ignored.
        st.refused(Uuid::new_v4());
        assert_eq!(st.per_connection.len(), 1);
    }

    #[test]
    fn slots_are_spaced_and_pairs_wait_alone() {
        let mut st = state(Some(Governor::keyed(quota(1, Duration::from_secs(6)))));
        let limit = per_second(80, true);
        let c = Uuid::new_v4();
        let t = interval(80, Duration::from_secs(1));
        // Slots up to HORIZON ahead: this many, then the number's limit.
        let ahead = (HORIZON.as_nanos() / t.as_nanos()) as usize + 1;
        let mut recipients: Vec<String> = vec!["+1".into(), "+1".into()];
        recipients.extend((2..ahead + 4).map(|k| format!("+{k}")));
        let permits = st.acquire_send(c, limit, recipients);
        let Permit::Granted { at: first } = permits[0] else {
            panic!("{permits:?}")
        };
        assert!(matches!(
            permits[1],
            Permit::Wait {
                scope: LimitScope::Recipient,
                ..
            }
        ));
        let Permit::Granted { at: second } = permits[2] else {
            panic!("{permits:?}")
        };
        assert_eq!(second - first, t);
        let granted = permits
            .iter()
            .filter(|p| matches!(p, Permit::Granted { .. }))
            .count();
        assert_eq!(granted, ahead, "{permits:?}");
        assert!(permits[ahead + 1..].iter().all(|p| matches!(
            p,
            Permit::Wait {
                scope: LimitScope::BusinessNumber,
                ..
            }
        )));
    }
}
