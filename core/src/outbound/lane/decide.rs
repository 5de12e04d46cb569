//! A lane's decisions, without I/O: how long to wait and on what ([`Step`]), how many rows to
//! claim, how many to ask permits for, which rows go now (one per recipient, none already in
//! flight), and what each RateLimiter answer does to its row. [`super::Lane::step`] does the
//! I/O between them.

use super::Step;
use crate::rate_limiter::{self, LimitScope, Permit};
use std::collections::HashSet;
use std::time::{Duration, Instant};

impl Step {
    /// Sleep at most `at_most`, woken by nothing else.
    pub fn sleep(at_most: Duration) -> Step {
        Step::Wait {
            at_most,
            on_new: false,
            on_done: false,
        }
    }

    /// Sleep at most `at_most`, or until one of the lane's sends finishes.
    pub fn until_done(at_most: Duration) -> Step {
        Step::Wait {
            at_most,
            on_new: false,
            on_done: true,
        }
    }

    /// Sleep at most `at_most`, or until new rows are announced.
    pub fn until_new(at_most: Duration) -> Step {
        Step::Wait {
            at_most,
            on_new: true,
            on_done: false,
        }
    }
}

/// After a store or actor call failed: try again shortly.
pub(super) const RETRY_SOON: Duration = Duration::from_millis(500);

/// With the daily cap reached (`sent` of `cap` in the last 24 h), how long the lane waits
/// before counting again: until the window moves (`until`), between 1 s and 1 min.
pub(super) fn daily_cap_wait(cap: u32, sent: u32, until: Option<Duration>) -> Option<Duration> {
    (sent >= cap).then(|| {
        until
            .unwrap_or(Duration::from_secs(60))
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    })
}

/// Rows a lane holds at most: about a second of sending (`buffer_target`), but no more than
/// a few rounds of its concurrent sends (what a lane holds, other nodes cannot take).
pub(super) fn hold_target(buffer_target: usize, concurrency: usize) -> usize {
    buffer_target.min(4 * concurrency)
}

/// A lane refills once its buffer is down to half its target.
pub(super) fn wants_refill(target: usize, buffered: usize) -> bool {
    buffered < target.div_ceil(2)
}

/// With nothing buffered: sleep until the next poll, the first parked row's turn or the next
/// row due in the queue, whichever comes first (a row already due waits 5 ms, not 0).
pub(super) fn idle_wait(
    poll: Duration,
    now: Instant,
    first_parked: Option<Instant>,
    next_due: Option<Duration>,
) -> Duration {
    let mut at_most = poll;
    if let Some(t) = first_parked {
        at_most = at_most.min(t.saturating_duration_since(now));
    }
    if let Some(due) = next_due {
        at_most = at_most.min(due.max(Duration::from_millis(5)));
    }
    at_most
}

/// What bounds one round's batch of sends.
#[derive(Debug, Clone, Copy)]
pub(super) struct Capacity {
    pub now: Instant,
    /// The Lite pacing gap ends then.
    pub next_send: Option<Instant>,
    /// Free send slots (the lane's concurrency).
    pub free: usize,
    /// The connection's interval between sends.
    pub spacing: Duration,
    /// Sends marked or being marked that have not reached their start yet.
    pub waiting: usize,
    /// A pacing gap applies (Lite): one send per round.
    pub paced: bool,
    /// Most messages asked permits for in one call.
    pub batch: usize,
}

/// How many rows to ask permits for now, or what to wait for first.
pub(super) fn batch_size(c: Capacity) -> Result<usize, Step> {
    if let Some(t) = c.next_send
        && t > c.now
    {
        return Err(Step::sleep(t - c.now));
    }
    if c.free == 0 {
        return Err(Step::until_done(Duration::from_millis(200)));
    }
    // Room for the slots ahead plus the time marking takes on a busy store (up to 400 ms),
    // so a slow mark does not stop the lane asking for its slots on time. Rows wait marked
    // only for their slot (at most HORIZON ahead): a crash leaves few uncertain rows.
    let pipeline = rate_limiter::HORIZON + Duration::from_millis(400);
    let ahead = (pipeline.as_nanos() / c.spacing.as_nanos().max(1)) as usize + 2;
    let room = ahead.saturating_sub(c.waiting);
    if room == 0 {
        return Err(Step::sleep(
            c.spacing
                .clamp(Duration::from_millis(1), Duration::from_millis(50)),
        ));
    }
    Ok(c.free
        .min(room)
        .min(c.batch)
        .min(if c.paced { 1 } else { usize::MAX }))
}

/// Positions of the rows to send now, in queue order: at most `max`, one per recipient, none
/// to a recipient with a send in flight (`busy`).
pub(super) fn pick<'a>(
    recipients: impl IntoIterator<Item = &'a str>,
    busy: &HashSet<String>,
    max: usize,
) -> Vec<usize> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut taken = Vec::new();
    for (i, recipient) in recipients.into_iter().enumerate() {
        if taken.len() >= max {
            break;
        }
        if busy.contains(recipient) || !seen.insert(recipient) {
            continue;
        }
        taken.push(i);
    }
    taken
}

/// What one RateLimiter answer does to its row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fate {
    /// Send on this slot.
    Send(Instant),
    /// Its recipient is over its pair rate for a short while: wait in memory until then.
    Park(Instant),
    /// Its recipient is over its pair rate for long: back to the queue, due after this.
    Release(Duration),
    /// A connection-wide limit: back into the buffer.
    Back,
}

/// The fate of each row by its permit, and the first connection-wide limit met (the lane
/// waits that long and raises an alert).
pub(super) fn sort_permits(
    permits: &[Permit],
    now: Instant,
    park_max: Duration,
) -> (Vec<Fate>, Option<(Duration, LimitScope)>) {
    let mut throttled = None;
    let fates = permits
        .iter()
        .map(|permit| match *permit {
            Permit::Granted { at } => Fate::Send(at),
            Permit::Wait {
                after,
                scope: LimitScope::Recipient,
            } if after > park_max => Fate::Release(after),
            Permit::Wait {
                after,
                scope: LimitScope::Recipient,
            } => Fate::Park(now + after),
            Permit::Wait { after, scope } => {
                throttled.get_or_insert((after, scope));
                Fate::Back
            }
        })
        .collect();
    (fates, throttled)
}

/// The least a lane waits once a connection-wide limit met it. Slots are handed out up to
/// [`rate_limiter::HORIZON`] ahead, so a lane woken as soon as the next slot comes into reach
/// (1 ms apart at 1,000/s) would mark and hand over one or two messages a round: a statement
/// and a commit each, most of the store's work while a number sends at its limit. A quarter
/// of the horizon gathers about twelve slots a round at 1,000/s, and the slots already granted
/// (the other three quarters) keep sends leaving on time meanwhile.
pub(super) const MIN_ROUND: Duration =
    Duration::from_nanos(rate_limiter::HORIZON.as_nanos() as u64 / 4);

/// The end of a round that got its permits: at once again, or after a connection-wide limit
/// (at least [`MIN_ROUND`]).
pub(super) fn after_permits(throttled: Option<(Duration, LimitScope)>) -> Step {
    match throttled {
        Some((after, _)) => Step::sleep(after.max(MIN_ROUND)),
        None => Step::Again,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn daily_cap_table() {
        let cases = [
            (10, 9, None, None),
            (10, 10, None, Some(60 * S)),
            (10, 11, Some(5 * S), Some(5 * S)),
            (10, 10, Some(Duration::from_millis(10)), Some(S)),
            (10, 10, Some(3600 * S), Some(60 * S)),
            (0, 0, None, Some(60 * S)),
        ];
        for (cap, sent, until, want) in cases {
            assert_eq!(
                daily_cap_wait(cap, sent, until),
                want,
                "{cap} {sent} {until:?}"
            );
        }
    }

    #[test]
    fn refill_table() {
        let cases = [
            // (buffer_target, concurrency, buffered, target, refill)
            (100, 64, 0, 100, true),
            (100, 64, 49, 100, true),
            (100, 64, 50, 100, false),
            (100, 1, 1, 4, true),
            (100, 1, 2, 4, false),
            (3, 64, 1, 3, true),
            (3, 64, 2, 3, false),
        ];
        for (buffer_target, concurrency, buffered, target, refill) in cases {
            let t = hold_target(buffer_target, concurrency);
            assert_eq!(t, target, "{buffer_target} {concurrency}");
            assert_eq!(wants_refill(t, buffered), refill, "{t} {buffered}");
        }
    }

    #[test]
    fn idle_wait_table() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let cases = [
            (None, None, 5 * S),
            (Some(now + S), None, S),
            (Some(now - S), None, Duration::ZERO),
            (None, Some(2 * S), 2 * S),
            (None, Some(Duration::ZERO), ms(5)),
            (Some(now + 3 * S), Some(S), S),
            (None, Some(10 * S), 5 * S),
        ];
        for (parked, due, want) in cases {
            assert_eq!(
                idle_wait(5 * S, now, parked, due),
                want,
                "{parked:?} {due:?}"
            );
        }
    }

    #[test]
    fn batch_size_table() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let base = Capacity {
            now,
            next_send: None,
            free: 64,
            spacing: ms(10),
            waiting: 0,
            paced: false,
            batch: 64,
        };
        let ahead = ((rate_limiter::HORIZON + ms(400)).as_nanos() / ms(10).as_nanos()) as usize + 2;
        let cases = [
            (base, Ok(ahead.min(64))),
            (
                Capacity {
                    next_send: Some(now + ms(300)),
                    ..base
                },
                Err(Step::sleep(ms(300))),
            ),
            (
                Capacity {
                    next_send: Some(now),
                    paced: true,
                    ..base
                },
                Ok(1),
            ),
            (Capacity { free: 0, ..base }, Err(Step::until_done(ms(200)))),
            (Capacity { free: 3, ..base }, Ok(3.min(ahead))),
            (
                Capacity {
                    waiting: ahead,
                    ..base
                },
                Err(Step::sleep(ms(10))),
            ),
            (
                Capacity {
                    waiting: ahead,
                    spacing: 10 * S,
                    ..base
                },
                Err(Step::sleep(ms(50))),
            ),
            (
                Capacity {
                    waiting: ahead - 1,
                    ..base
                },
                Ok(1),
            ),
            (
                Capacity {
                    spacing: Duration::ZERO,
                    batch: 64,
                    free: 1000,
                    ..base
                },
                Ok(64),
            ),
        ];
        for (i, (c, want)) in cases.into_iter().enumerate() {
            assert_eq!(batch_size(c), want, "case {i}");
        }
    }

    #[test]
    fn pick_table() {
        let busy: HashSet<String> = ["b".to_string()].into();
        let cases: [(&[&str], usize, &[usize]); 5] = [
            (&["a", "b", "c"], 10, &[0, 2]),
            (&["a", "a", "c", "a"], 10, &[0, 2]),
            (&["a", "c", "d"], 2, &[0, 1]),
            (&["b", "b"], 10, &[]),
            (&["a", "c"], 0, &[]),
        ];
        for (rows, max, want) in cases {
            assert_eq!(
                pick(rows.iter().copied(), &busy, max),
                want,
                "{rows:?} {max}"
            );
        }
    }

    #[test]
    fn sort_permits_table() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let permits = [
            Permit::Granted { at: now + ms(10) },
            Permit::Wait {
                after: ms(500),
                scope: LimitScope::Recipient,
            },
            Permit::Wait {
                after: 3 * S,
                scope: LimitScope::Recipient,
            },
            Permit::Wait {
                after: ms(700),
                scope: LimitScope::BusinessNumber,
            },
            Permit::Wait {
                after: ms(900),
                scope: LimitScope::BusinessNumber,
            },
        ];
        let (fates, throttled) = sort_permits(&permits, now, 2 * S);
        assert_eq!(
            fates,
            vec![
                Fate::Send(now + ms(10)),
                Fate::Park(now + ms(500)),
                Fate::Release(3 * S),
                Fate::Back,
                Fate::Back,
            ]
        );
        assert_eq!(throttled, Some((ms(700), LimitScope::BusinessNumber)));
        assert_eq!(after_permits(throttled), Step::sleep(ms(700)));
        // The next slot a millisecond away: the lane still waits a round's worth of slots.
        assert_eq!(
            after_permits(Some((ms(1), LimitScope::BusinessNumber))),
            Step::sleep(MIN_ROUND)
        );
        assert!(MIN_ROUND >= ms(10) && MIN_ROUND * 2 <= rate_limiter::HORIZON);
        let (fates, throttled) = sort_permits(&permits[..1], now, 2 * S);
        assert_eq!(fates, vec![Fate::Send(now + ms(10))]);
        assert_eq!(after_permits(throttled), Step::Again);
    }
}
