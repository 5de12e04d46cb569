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
use governor::RateLimiter as Governor;
use governor::clock::{Clock, DefaultClock};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use uuid::Uuid;

pub mod handle;
pub use handle::{RateLimiterError, RateLimiterHandle};

mod slots;
mod state;

use slots::quota;
pub use slots::{Backoff, CATCH_UP, HORIZON, interval, window_cap};
pub use state::RateLimiterState;
use state::per_minute;

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
pub struct RateLimiter;

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
    use super::slots::{BACKOFF_MAX, BACKOFF_RECOVERY, BACKOFF_STEP};
    use super::*;
    use governor::DefaultKeyedRateLimiter;
    use std::time::Instant;

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
