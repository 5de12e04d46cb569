//! The arithmetic of a connection's send slots: their spacing under a limit less a margin
//! for jitter ([`interval`]), the most that may leave in one period ([`window_cap`]), how
//! far ahead they are handed out, and the [`Backoff`] after refusals for throughput.

use governor::Quota;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// What `per_period` sends per `period` amount to in `window` (rounded up).
pub(super) fn sends_in(per_period: u32, period: Duration, window: Duration) -> u32 {
    ((per_period as f64) * window.as_secs_f64() / period.as_secs_f64()).ceil() as u32
}

/// The part of a limit the send slots leave unused: 3 %, and at least what 40 ms of sending
/// amounts to, for the jitter between a send leaving the lane and reaching the provider (a
/// busy machine delays some sends by tens of milliseconds, which packs a later one-second
/// window). Limits under 10 per period are kept exactly, one at a time.
pub(super) fn margin(per_period: u32, period: Duration) -> u32 {
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

pub(super) fn quota(burst: u32, interval: Duration) -> Quota {
    Quota::with_period(interval.max(Duration::from_nanos(1)))
        .expect("non-zero interval")
        .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst >= 1"))
}

/// Most a connection's rate is lowered after refusals for throughput.
pub(super) const BACKOFF_MAX: f64 = 0.20;
/// What one refusal takes off the rate (at most once per period).
pub(super) const BACKOFF_STEP: f64 = 0.04;
/// What every period without a refusal gives back.
pub(super) const BACKOFF_RECOVERY: f64 = 0.01;

/// How much slower than its slots a connection sends after the provider refused some of its
/// sends for throughput. The provider counts its windows at its end, after a jitter between
/// here and there that the margin only covers on average (a busy machine, a slow network);
/// its refusals say the margin is too thin right now. Each refusal takes [`BACKOFF_STEP`] off
/// the rate, but only once per period (a packed window yields several at once), up to
/// [`BACKOFF_MAX`]; each period without one gives [`BACKOFF_RECOVERY`] back. Refused sends
/// are retried, so this costs a little throughput and saves the retries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backoff {
    pub(super) level: f64,
    /// The last refusal that raised the level.
    pub(super) raised: Option<Instant>,
}

impl Backoff {
    /// The share of the rate taken off at `now`.
    pub(super) fn level(&self, period: Duration, now: Instant) -> f64 {
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
    pub(super) fn refused(&mut self, period: Duration, now: Instant) {
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
    pub(super) fn stretch(&self, interval: Duration, period: Duration, now: Instant) -> Duration {
        interval.div_f64(1.0 - self.level(period, now))
    }
}
