//! The last memory reading of each Lite session running on this node: the PSS of its
//! Chromium tree, measured by the session's health check (every `LITE_HEALTH_INTERVAL_MS`),
//! for the API to show next to the session (`memory_bytes`). Kept in memory only: a reading is
//! stale within one interval, and a session running on another node is measured there.

use std::collections::HashMap;
use std::sync::Mutex;
use time::OffsetDateTime;
use uuid::Uuid;

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub pss_bytes: u64,
    pub at: OffsetDateTime,
}

/// Readings by session id.
#[derive(Debug, Default)]
pub struct SessionMemory(Mutex<HashMap<Uuid, Reading>>);

impl SessionMemory {
    pub fn record(&self, session: Uuid, pss_bytes: u64) {
        let reading = Reading {
            pss_bytes,
            at: OffsetDateTime::now_utc(),
        };
        self.lock().insert(session, reading);
    }

    /// Drops the session's reading (its browser is gone).
    pub fn forget(&self, session: Uuid) {
        self.lock().remove(&session);
    }

    pub fn get(&self, session: Uuid) -> Option<Reading> {
        self.lock().get(&session).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Reading>> {
        // A panic while holding it cannot leave the map half-written: use it anyway.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_kept_per_session_until_forgotten() {
        let m = SessionMemory::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        m.record(a, 100);
        m.record(a, 200);
        assert_eq!(m.get(a).map(|r| r.pss_bytes), Some(200));
        assert_eq!(m.get(b), None);
        m.forget(a);
        assert_eq!(m.get(a), None);
    }
}
