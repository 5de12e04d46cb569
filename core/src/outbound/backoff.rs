//! Retry delays: exponential in the attempt number with "equal jitter" (half fixed, half
//! random), so many messages failing together (a provider outage) do not come back together.
//! A wait the provider or the connection actor dictates (`after`, e.g. Meta's 4^X for the pair
//! rate) is honoured, with a little jitter on top.

use rand::RngExt;
use std::time::Duration;

/// The delay before the next try of a message whose `attempt`-th try (1-based) failed.
pub fn retry_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    after: Option<Duration>,
    rng: &mut impl rand::Rng,
) -> Duration {
    if let Some(after) = after {
        let extra = after.mul_f64(rng.random_range(0.0..0.2));
        return (after + extra).min(max.max(after));
    }
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp.min(20)).min(max);
    let half = full / 2;
    half + half.mul_f64(rng.random_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_caps() {
        let mut rng = rand::rng();
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        for attempt in 1..12 {
            let full = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                let d = retry_delay(attempt, base, max, None, &mut rng);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} vs {full:?}"
                );
            }
        }
    }

    #[test]
    fn provider_wait_is_honoured() {
        let mut rng = rand::rng();
        let d = retry_delay(
            1,
            Duration::from_secs(2),
            Duration::from_secs(900),
            Some(Duration::from_secs(16)),
            &mut rng,
        );
        assert!(d >= Duration::from_secs(16) && d <= Duration::from_millis(19_200));
    }
}
