//! RateLimiter: governor token buckets. Today: the HTTP API's limits per user and per client IP
//! (429 with Retry-After). Issue 5 adds the per-session, per-number and per-recipient buckets.

use crate::shared::Shared;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub enum RateLimiterMessage {
    /// Take one API request permit for the user and for the client IP; replies with how long
    /// to wait when either bucket is empty.
    CheckApi {
        user: Option<Uuid>,
        ip: Option<IpAddr>,
        reply: RpcReplyPort<Result<(), Duration>>,
    },
    /// Forget idle keys; sent to itself every minute.
    Sweep,
    /// Fault injection: panic in the handler (supervision tests).
    Panic,
}
crate::supervised_message!(RateLimiterMessage);

pub struct RateLimiter;

pub struct RateLimiterState {
    per_user: DefaultKeyedRateLimiter<Uuid>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("n >= 1"))
}

impl Actor for RateLimiter {
    type Msg = RateLimiterMessage;
    type State = RateLimiterState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(Duration::from_secs(60), || RateLimiterMessage::Sweep);
        Ok(RateLimiterState {
            per_user: Governor::keyed(per_minute(shared.settings.api_per_user_per_minute)),
            per_ip: Governor::keyed(per_minute(shared.settings.api_per_ip_per_minute)),
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
            RateLimiterMessage::Sweep => {
                state.per_user.retain_recent();
                state.per_ip.retain_recent();
            }
            RateLimiterMessage::Panic => panic!("fault injection in rate_limiter"),
        }
        Ok(())
    }
}
