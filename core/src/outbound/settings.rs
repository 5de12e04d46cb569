//! Outbound settings: the daemon-wide defaults (environment) and each connection's own limits
//! and pacing, read from its `configuracion` JSON so an operator can tune one connection
//! without a restart (the Dispatcher re-reads them every [`LIMITS_REFRESH`]).
//!
//! Keys read from `configuracion` (all optional):
//! - `settings.send_rate_per_second` (Business) / `settings.send_rate_per_minute` (Lite):
//!   the connection's limit, overriding the default and Meta's throughput level;
//! - `business_config.throughput.level` or `business_config.throughput_level`: Meta's
//!   throughput level of the number (`STANDARD` 80/s, `HIGH` 1000/s, `COEXISTENCE` 20/s);
//! - `settings.send_gap_min_ms` / `settings.send_gap_max_ms`: a jittered pause between two
//!   sends (Lite pacing; looks less like a bot);
//! - `settings.daily_send_cap`: at most this many sends in any 24 h (Lite pacing).

use crate::connection::ConnectionKind;
use serde_json::Value;
use std::time::Duration;

/// How often a lane re-reads its connection's limits.
pub const LIMITS_REFRESH: Duration = Duration::from_secs(30);

/// Daemon-wide outbound settings (environment variables, see the README).
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Default per Business number (Meta's default throughput), messages per second.
    pub business_per_second: u32,
    /// Default per Lite session, messages per minute (seed design: 100).
    pub lite_per_minute: u32,
    /// Pair rate per (Business number, recipient): a burst of this many (0 disables)...
    pub pair_burst: u32,
    /// ...then one more per this interval (Meta: about one every 6 s).
    pub pair_interval: Duration,
    /// Attempts before a message is failed (dead letter).
    pub max_attempts: i32,
    /// How long a claim holds a row; renewed while the row is held, so only a dead node's
    /// claims expire.
    pub lease: Duration,
    /// Safety-net poll when no NOTIFY arrives.
    pub poll: Duration,
    /// How long the Dispatcher waits for a connection actor's answer.
    pub send_timeout: Duration,
    /// First retry delay; doubles per attempt, with jitter...
    pub retry_base: Duration,
    /// ...up to this.
    pub retry_max: Duration,
    /// Rows all lanes of a node may hold in memory at once (shared fairly between lanes).
    pub held_budget: usize,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        OutboundSettings {
            business_per_second: 80,
            lite_per_minute: 100,
            pair_burst: 45,
            pair_interval: Duration::from_secs(6),
            max_attempts: 8,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(5),
            send_timeout: Duration::from_secs(30),
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(15 * 60),
            held_budget: 20_000,
        }
    }
}

/// One connection's sending limits and pacing.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    pub kind: ConnectionKind,
    /// At most `per_period` messages per `period` (1 s for Business, 60 s for Lite).
    pub per_period: u32,
    pub period: Duration,
    /// Whether the per-recipient pair rate applies (Meta's rule, Business only).
    pub pair_rate: bool,
    /// Jittered pause between two sends, if configured.
    pub gap: Option<(Duration, Duration)>,
    /// At most this many sends in any 24 h, if configured.
    pub daily_cap: Option<u32>,
}

fn positive(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 1.0).map(|f| f as u64))
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n| *n > 0)
}

/// Meta's throughput level → messages per second.
pub fn throughput_level(level: &str) -> Option<u32> {
    match level.to_ascii_uppercase().as_str() {
        "STANDARD" => Some(80),
        "HIGH" => Some(1000),
        "COEXISTENCE" => Some(20),
        _ => None,
    }
}

impl ConnectionLimits {
    /// Limits of a connection of `kind` with `configuracion` `cfg`.
    pub fn from_config(kind: ConnectionKind, cfg: &Value, defaults: &OutboundSettings) -> Self {
        let settings = cfg.get("settings").cloned().unwrap_or(Value::Null);
        let gap_min = positive(settings.get("send_gap_min_ms")).map(Duration::from_millis);
        let gap_max = positive(settings.get("send_gap_max_ms")).map(Duration::from_millis);
        let gap = match (gap_min, gap_max) {
            (Some(a), Some(b)) => Some((a.min(b), a.max(b))),
            (Some(a), None) | (None, Some(a)) => Some((a, a)),
            (None, None) => None,
        };
        let daily_cap =
            positive(settings.get("daily_send_cap")).map(|n| n.min(u32::MAX as u64) as u32);
        match kind {
            ConnectionKind::Business => {
                let business = cfg.get("business_config");
                let level = business
                    .and_then(|b| {
                        b.pointer("/throughput/level")
                            .or_else(|| b.get("throughput_level"))
                    })
                    .and_then(Value::as_str)
                    .and_then(throughput_level);
                let per_second = positive(settings.get("send_rate_per_second"))
                    .map(|n| n.min(100_000) as u32)
                    .or(level)
                    .unwrap_or(defaults.business_per_second);
                ConnectionLimits {
                    kind,
                    per_period: per_second.max(1),
                    period: Duration::from_secs(1),
                    pair_rate: defaults.pair_burst > 0,
                    gap,
                    daily_cap,
                }
            }
            ConnectionKind::Lite => {
                let per_minute = positive(settings.get("send_rate_per_minute"))
                    .map(|n| n.min(1_000_000) as u32)
                    .unwrap_or(defaults.lite_per_minute);
                ConnectionLimits {
                    kind,
                    per_period: per_minute.max(1),
                    period: Duration::from_secs(60),
                    pair_rate: false,
                    gap,
                    daily_cap,
                }
            }
        }
    }

    /// Messages per second this connection may send on average.
    pub fn per_second(&self) -> f64 {
        self.per_period as f64 / self.period.as_secs_f64()
    }

    /// Rows worth holding in memory: about one second of sending (at least one, at most
    /// 1,000), so a high-priority message claimed later still overtakes the backlog quickly.
    pub fn buffer_target(&self) -> usize {
        if self.gap.is_some() {
            return 1;
        }
        (self.per_second().ceil() as usize).clamp(1, 1000)
    }

    /// Sends in flight at once. A Business send holds its place from the moment it is handed
    /// over (up to 50 ms before its slot) until Meta answers (often 100 to 300 ms), so at
    /// 1,000 a second a fixed 64 would cap the number at a few hundred: 0.4 s of sending, at
    /// least 64 and at most 1,000. A Lite session sends one at a time (one page).
    pub fn concurrency(&self) -> usize {
        match self.kind {
            ConnectionKind::Lite => 1,
            ConnectionKind::Business => ((self.per_second() * 0.4).ceil() as usize).clamp(64, 1000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn business_defaults_level_and_override() {
        let d = OutboundSettings::default();
        let l = ConnectionLimits::from_config(ConnectionKind::Business, &json!({}), &d);
        assert_eq!((l.per_period, l.period), (80, Duration::from_secs(1)));
        assert!(l.pair_rate);
        let l = ConnectionLimits::from_config(
            ConnectionKind::Business,
            &json!({"business_config": {"throughput": {"level": "HIGH"}}}),
            &d,
        );
        assert_eq!(l.per_period, 1000);
        let l = ConnectionLimits::from_config(
            ConnectionKind::Business,
            &json!({"business_config": {"throughput_level": "HIGH"}, "settings": {"send_rate_per_second": 5}}),
            &d,
        );
        assert_eq!(l.per_period, 5);
    }

    #[test]
    fn concurrency_follows_the_rate() {
        let d = OutboundSettings::default();
        let at = |level: &str| {
            ConnectionLimits::from_config(
                ConnectionKind::Business,
                &json!({"business_config": {"throughput": {"level": level}}}),
                &d,
            )
            .concurrency()
        };
        assert_eq!(at("STANDARD"), 64);
        assert_eq!(at("HIGH"), 400);
        let lite = ConnectionLimits::from_config(ConnectionKind::Lite, &json!({}), &d);
        assert_eq!(lite.concurrency(), 1);
    }

    #[test]
    fn lite_rate_and_pacing() {
        let d = OutboundSettings::default();
        let l = ConnectionLimits::from_config(
            ConnectionKind::Lite,
            &json!({"tipo_conexion": "lite"}),
            &d,
        );
        assert_eq!((l.per_period, l.period), (100, Duration::from_secs(60)));
        assert!(!l.pair_rate && l.gap.is_none() && l.daily_cap.is_none());
        let l = ConnectionLimits::from_config(
            ConnectionKind::Lite,
            &json!({"settings": {"send_rate_per_minute": "30", "send_gap_min_ms": 3000,
                                 "send_gap_max_ms": 1000, "daily_send_cap": 500}}),
            &d,
        );
        assert_eq!(l.per_period, 30);
        assert_eq!(
            l.gap,
            Some((Duration::from_millis(1000), Duration::from_millis(3000)))
        );
        assert_eq!(l.daily_cap, Some(500));
        assert_eq!(l.buffer_target(), 1);
    }
}
