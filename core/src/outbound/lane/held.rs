//! What the lanes of one Dispatcher incarnation share: the rows held per connection (fair
//! shares of the node's budget), the recorder and marker, and the debounced rate-limit alerts.

use crate::outbound::inflight::Marker;
use crate::outbound::record::Recorder;
use crate::shared::Shared;
use crate::store::alerts::{NewAlert, Severity};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often a rate-limit alert may be raised per connection.
const ALERT_EVERY: Duration = Duration::from_secs(600);

/// Rows claimed by this node and not yet recorded, by connection: the fair-share bookkeeping.
#[derive(Default)]
pub struct Held {
    inner: Mutex<HeldInner>,
}

#[derive(Default)]
struct HeldInner {
    rows: HashMap<Uuid, Uuid>,
    per_connection: HashMap<Uuid, usize>,
}

impl Held {
    pub fn add(&self, connection: Uuid, ids: impl IntoIterator<Item = Uuid>) {
        let mut h = self.inner.lock().expect("held lock");
        for id in ids {
            if h.rows.insert(id, connection).is_none() {
                *h.per_connection.entry(connection).or_default() += 1;
            }
        }
    }

    pub fn remove(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut h = self.inner.lock().expect("held lock");
        for id in ids {
            if let Some(c) = h.rows.remove(&id)
                && let Some(n) = h.per_connection.get_mut(&c)
            {
                *n -= 1;
                if *n == 0 {
                    h.per_connection.remove(&c);
                }
            }
        }
    }

    pub fn of(&self, connection: Uuid) -> usize {
        self.inner
            .lock()
            .expect("held lock")
            .per_connection
            .get(&connection)
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.inner.lock().expect("held lock").rows.len()
    }
}

/// What every lane of one Dispatcher incarnation shares.
pub struct LaneCtx {
    pub shared: Arc<Shared>,
    /// This incarnation's lease owner name.
    pub owner: String,
    pub held: Arc<Held>,
    pub marker: Marker,
    pub recorder: Recorder,
    /// Lanes running (for fair shares).
    pub lanes: AtomicUsize,
    /// Sends started and not yet answered, over all lanes (shutdown waits for them).
    pub sending: Arc<AtomicUsize>,
    /// Rate-limit alerts raised, per connection (debounce).
    pub alerted: Mutex<HashMap<(Uuid, &'static str), Instant>>,
}

impl LaneCtx {
    /// Raises an alert at most every [`ALERT_EVERY`] per connection and kind.
    pub fn alert_once(
        &self,
        connection: Uuid,
        usuario_id: Option<Uuid>,
        kind: &'static str,
        message: String,
    ) {
        let mut alerted = self.alerted.lock().expect("alert lock");
        let due = alerted
            .get(&(connection, kind))
            .is_none_or(|t| t.elapsed() > ALERT_EVERY);
        if due {
            alerted.insert((connection, kind), Instant::now());
            self.shared.raise_alert(NewAlert {
                usuario_id,
                kind: kind.into(),
                severity: Severity::Info,
                source: "dispatcher".into(),
                message,
                details: json!({"connection_id": connection}),
            });
        }
    }
}
