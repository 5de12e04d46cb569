//! When to restart a failed child and when to give up: exponential backoff with jitter, and a
//! failure window (more than `max_failures` within `window` marks the child FAILED). Pure logic
//! over explicit instants, so it is tested without clocks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Backoff before the first restart; doubled for each further failure in the window.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Failures tolerated within `window`; one more marks the child FAILED.
    pub max_failures: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_failures: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// What to do after a child failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    RestartAfter(Duration),
    GiveUp,
}

/// The recent failures of one child.
#[derive(Debug, Default, Clone)]
pub struct FailureWindow {
    failures: VecDeque<Instant>,
}

impl FailureWindow {
    /// Records a failure at `now` and decides. `jitter` in [0, 1) spreads restarts of many
    /// children that failed together (a quarter of the backoff at most).
    pub fn record(&mut self, policy: &RestartPolicy, now: Instant, jitter: f64) -> Verdict {
        while let Some(first) = self.failures.front() {
            if now.duration_since(*first) > policy.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        self.failures.push_back(now);
        let n = self.failures.len();
        if n > policy.max_failures {
            return Verdict::GiveUp;
        }
        let exp = (n - 1).min(20) as u32;
        let base = policy
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(policy.max_backoff);
        let extra = base.mul_f64(jitter.clamp(0.0, 0.999) * 0.25);
        Verdict::RestartAfter((base + extra).min(policy.max_backoff))
    }

    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_failures: 3,
            window: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_then_gives_up() {
        let p = policy();
        let t0 = Instant::now();
        let mut w = FailureWindow::default();
        assert_eq!(
            w.record(&p, t0, 0.0),
            Verdict::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(
            w.record(&p, t0, 0.0),
            Verdict::RestartAfter(Duration::from_millis(200))
        );
        assert_eq!(
            w.record(&p, t0, 0.0),
            Verdict::RestartAfter(Duration::from_millis(400))
        );
        assert_eq!(w.record(&p, t0, 0.0), Verdict::GiveUp);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let p = policy();
        let t0 = Instant::now();
        let mut w = FailureWindow::default();
        for _ in 0..3 {
            w.record(&p, t0, 0.0);
        }
        let later = t0 + Duration::from_secs(11);
        assert_eq!(
            w.record(&p, later, 0.0),
            Verdict::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn backoff_is_capped_and_jitter_bounded() {
        let p = RestartPolicy {
            max_failures: 100,
            ..policy()
        };
        let t0 = Instant::now();
        let mut w = FailureWindow::default();
        let mut last = Duration::ZERO;
        for _ in 0..30 {
            if let Verdict::RestartAfter(d) = w.record(&p, t0, 0.99) {
                assert!(d <= p.max_backoff);
                last = d;
            }
        }
        assert_eq!(last, p.max_backoff);
    }
}
