//! Meta's sending limits as exact, deterministic checks: throughput per number (code 130429) as
//! a sliding one-second log, and pair rate per recipient (code 131056) as a GCRA token bucket
//! (burst allowance that is earned back at one message per interval). Both take `now` as an
//! argument so they are testable without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Sliding-window log: at most `limit` events in any interval of one second.
#[derive(Debug, Default)]
pub struct Throughput {
    events: VecDeque<Instant>,
}

impl Throughput {
    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.events.front() {
            if now.saturating_duration_since(t) >= Duration::from_secs(1) {
                self.events.pop_front();
            } else {
                break;
            }
        }
    }

    /// Whether one more event fits now; does not record it.
    pub fn allows(&mut self, now: Instant, limit: u32) -> bool {
        self.prune(now);
        self.events.len() < limit as usize
    }

    /// Records an event (accepted send, or inbound when configured to count).
    pub fn record(&mut self, now: Instant) {
        self.prune(now);
        self.events.push_back(now);
    }
}

/// GCRA: `tat` is the theoretical arrival time of the next message at the sustained rate. A
/// message is allowed while `tat` is at most `(burst - 1) * interval` ahead of now.
#[derive(Debug, Default)]
pub struct PairRate {
    tat: Option<Instant>,
}

impl PairRate {
    /// Whether a message to this recipient is allowed now; does not consume.
    pub fn allows(&self, now: Instant, burst: u32, interval: Duration) -> bool {
        if burst == 0 {
            return true;
        }
        let tolerance = interval * (burst - 1);
        match self.tat {
            None => true,
            Some(tat) => tat.saturating_duration_since(now) <= tolerance,
        }
    }

    /// Consumes one message of allowance.
    pub fn record(&mut self, now: Instant, interval: Duration) {
        let base = match self.tat {
            Some(tat) if tat > now => tat,
            _ => now,
        };
        self.tat = Some(base + interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_never_exceeds_limit_in_any_second() {
        let start = Instant::now();
        let mut t = Throughput::default();
        let mut accepted = Vec::new();
        // Attempts every 3 ms for 3 s.
        for i in 0..1000u64 {
            let now = start + Duration::from_millis(i * 3);
            if t.allows(now, 80) {
                t.record(now);
                accepted.push(now);
            }
        }
        for (i, &a) in accepted.iter().enumerate() {
            let in_window = accepted[i..]
                .iter()
                .take_while(|&&b| b.duration_since(a) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 80);
        }
        assert!(accepted.len() >= 240);
    }

    #[test]
    fn pair_rate_bursts_then_earns_back() {
        let start = Instant::now();
        let interval = Duration::from_secs(6);
        let mut p = PairRate::default();
        for _ in 0..45 {
            assert!(p.allows(start, 45, interval));
            p.record(start, interval);
        }
        assert!(!p.allows(start, 45, interval));
        assert!(!p.allows(start + Duration::from_secs(5), 45, interval));
        assert!(p.allows(start + Duration::from_secs(6), 45, interval));
    }
}
