//! The limiter's state: governor buckets for the API limits and the pair rate, and each
//! connection's next send slot, advanced by sends and by received messages.

use super::slots::{Backoff, CATCH_UP, HORIZON, interval};
use super::{LimitScope, Permit, SendLimit};
use crate::connection::ConnectionKind;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub(super) struct ConnectionSlots {
    pub(super) limit: (u32, Duration),
    pub(super) interval: Duration,
    /// The next free slot.
    pub(super) next: Instant,
    pub(super) used: Instant,
    pub(super) backoff: Backoff,
}

pub struct RateLimiterState {
    pub(super) per_user: DefaultKeyedRateLimiter<Uuid>,
    pub(super) per_ip: DefaultKeyedRateLimiter<IpAddr>,
    pub(super) per_connection: HashMap<Uuid, ConnectionSlots>,
    /// Messages received by connections with no slots yet, and when (see `inbound`).
    pub(super) pending_inbound: HashMap<Uuid, (u32, Instant)>,
    /// Pair rate per (connection, recipient); None when disabled.
    pub(super) per_recipient: Option<DefaultKeyedRateLimiter<(Uuid, String)>>,
    pub(super) clock: DefaultClock,
}

pub(super) fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("n >= 1"))
}

impl RateLimiterState {
    /// Moves the connection's next send slot later by `count` slots (counted from now at
    /// the earliest): the received messages fill the window the sends would have used. For a
    /// connection with no slots yet, kept for a second for its first sends.
    pub(super) fn inbound(&mut self, connection: Uuid, count: u32) {
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
    pub(super) fn refused(&mut self, connection: Uuid) {
        if let Some(entry) = self.per_connection.get_mut(&connection) {
            entry.backoff.refused(entry.limit.1, Instant::now());
            metrics::counter!("sincro_throughput_refusals_total").increment(1);
        }
    }

    pub(super) fn acquire_send(
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
