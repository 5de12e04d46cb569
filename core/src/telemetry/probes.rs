//! Measurements one daemon takes as things happen and its sampler reads: kept per daemon (in
//! `Shared`), not per process, so daemons sharing a process (the tests) never see each
//! other's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Probes {
    /// The slowest event → live stream client delay (milliseconds) since the last sample.
    stream_latency_max_ms: AtomicU64,
}

impl Probes {
    /// Records how long after it was written an event reached a live stream client.
    pub fn stream_latency(&self, latency: Duration) {
        metrics::histogram!("sincro_stream_event_latency_seconds").record(latency.as_secs_f64());
        self.stream_latency_max_ms
            .fetch_max(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// The slowest delay since the last call, and a fresh start.
    pub fn take_stream_latency(&self) -> Duration {
        Duration::from_millis(self.stream_latency_max_ms.swap(0, Ordering::Relaxed))
    }
}
