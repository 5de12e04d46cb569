//! Refusing unauthenticated floods cheaply. Every client IP has a small bucket of failed
//! authentications (a bad or missing API key, a webhook whose signature does not match): each
//! failure takes a token, tokens come back at `per_minute` a minute, and while the bucket is
//! empty the IP is answered 429 with `Retry-After` before anything is looked up, so a flood of
//! guessed keys costs no database query. Good requests take nothing from it.
//!
//! Any route that authenticates its caller some other way (the webhook's signature) plugs in
//! with `auth::preauth_guard` before reading the body and [`PreAuthLimiter::failed`] when the
//! check fails. The limiter knows nothing of the HTTP context, so the context can hold it.

use super::error::ApiError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most; past it, full (idle) buckets are forgotten first.
const MAX_TRACKED: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct PreAuthLimiter {
    /// Failures allowed in a burst, and per minute thereafter.
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl PreAuthLimiter {
    pub fn new(per_minute: u32) -> Self {
        PreAuthLimiter {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn rate(&self) -> f64 {
        self.per_minute as f64 / 60.0
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let gained = now.duration_since(b.at).as_secs_f64() * self.rate();
        b.tokens = (b.tokens + gained).min(self.per_minute as f64);
        b.at = now;
    }

    /// How long `ip` must wait when its failures used up its bucket; None when it may try.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("pre-auth buckets");
        let b = buckets.get_mut(&ip)?;
        self.refill(b, now);
        (b.tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - b.tokens) / self.rate()))
    }

    /// Records one failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("pre-auth buckets");
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let full = self.per_minute as f64;
            let rate = self.rate();
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < full);
            if buckets.len() >= MAX_TRACKED {
                // Every tracked IP is failing right now: forget an arbitrary one.
                if let Some(k) = buckets.keys().next().copied() {
                    buckets.remove(&k);
                }
            }
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.per_minute as f64,
            at: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(-1.0);
    }

    /// Refuses `ip` with 429 while its bucket is empty.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        match ip.and_then(|ip| self.blocked(ip)) {
            Some(retry_after) => Err(ApiError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_empty_the_bucket_then_it_refills() {
        let l = PreAuthLimiter::new(3);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let other: IpAddr = "203.0.113.10".parse().unwrap();
        assert!(l.blocked(ip).is_none());
        for _ in 0..3 {
            assert!(l.blocked(ip).is_none());
            l.failed(ip);
        }
        let wait = l.blocked(ip).expect("blocked after 3 failures");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(l.blocked(other).is_none(), "another IP is not affected");
    }
}
