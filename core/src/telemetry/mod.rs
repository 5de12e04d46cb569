//! Gauges the daemon cannot count as things happen, read every `sample_interval` by one
//! sampler step ([`sample`]): the outbound queue's depth and oldest age per priority, the
//! inbound inbox's lag and open dead letters, connections by kind and status, open alerts,
//! the PostgreSQL pool, and the process ([`process`]). Counters and histograms are recorded
//! where their events happen; their names are listed in the README's metrics table.
//!
//! Queue, inbox, connection and alert gauges are read from the store, so every node reports
//! the whole cluster's value (aggregate them with `max`, not `sum`).

pub mod catalog;
pub mod probes;
pub mod process;

use crate::shared::Shared;
use crate::store::StoreError;
use std::time::Duration;
use uuid::Uuid;

/// Priorities as the queue stores them (`outbox.priority`) and as labels name them.
pub const PRIORITIES: [(i16, &str); 3] = [(0, "high"), (1, "normal"), (2, "bulk")];

/// What one sample read (the performance monitor checks it against its thresholds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Per priority label: queued rows, and the age of the oldest one that is due.
    pub queue: Vec<(&'static str, i64, Duration)>,
    /// Inbound inbox rows not drained yet, and the age of the oldest.
    pub inbox_pending: i64,
    pub inbox_lag: Duration,
    /// The slowest event delivered to a stream client since the last sample.
    pub stream_latency: Duration,
}

/// A Lite session's Chromium: its memory (PSS) and how many processes it runs.
pub fn chromium_gauges(session: Uuid, pss_bytes: u64, processes: usize) {
    let session = session.to_string();
    metrics::gauge!("sincro_lite_chromium_session_pss_bytes", "session" => session.clone())
        .set(pss_bytes as f64);
    metrics::gauge!("sincro_lite_chromium_processes", "session" => session).set(processes as f64);
}

/// Reads the gauges once and sets them.
pub async fn sample(shared: &Shared) -> Result<Sample, StoreError> {
    let pool = shared.pool.status();
    metrics::gauge!("sincro_db_pool_connections", "state" => "in_use")
        .set(pool.size.saturating_sub(pool.available) as f64);
    metrics::gauge!("sincro_db_pool_connections", "state" => "idle").set(pool.available as f64);
    metrics::gauge!("sincro_db_pool_waiting").set(pool.waiting as f64);
    metrics::gauge!("sincro_db_pool_max").set(pool.max_size as f64);
    process::sample();

    let client = shared.pool.get().await?;
    let mut s = Sample::default();
    let rows = client
        .query(
            "SELECT priority, count(*),
                    coalesce(extract(epoch FROM now() - min(due_at) FILTER (WHERE due_at <= now())), 0)::float8
             FROM outbox WHERE state IN ('pending', 'sending') GROUP BY priority",
            &[],
        )
        .await?;
    for (priority, label) in PRIORITIES {
        let row = rows.iter().find(|r| r.get::<_, i16>(0) == priority);
        let depth: i64 = row.map_or(0, |r| r.get(1));
        let age = Duration::from_secs_f64(row.map_or(0.0, |r| r.get::<_, f64>(2)).max(0.0));
        metrics::gauge!("sincro_queue_depth", "priority" => label).set(depth as f64);
        metrics::gauge!("sincro_queue_oldest_age_seconds", "priority" => label)
            .set(age.as_secs_f64());
        s.queue.push((label, depth, age));
    }

    let row = client
        .query_one(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(received_at)), 0)::float8
             FROM webhook_inbox WHERE processed_at IS NULL",
            &[],
        )
        .await?;
    s.inbox_pending = row.get(0);
    s.inbox_lag = Duration::from_secs_f64(row.get::<_, f64>(1).max(0.0));
    metrics::gauge!("sincro_inbox_pending").set(s.inbox_pending as f64);
    metrics::gauge!("sincro_inbox_lag_seconds").set(s.inbox_lag.as_secs_f64());
    let letters: i64 = client
        .query_one(
            "SELECT count(*) FROM inbound_dead_letters WHERE replayed_at IS NULL",
            &[],
        )
        .await?
        .get(0);
    metrics::gauge!("sincro_inbound_dead_letters_open").set(letters as f64);

    connections(&client).await?;
    open_alerts(crate::alerts::lifecycle::open_counts(&client).await?);
    s.stream_latency = shared.probes.take_stream_latency();
    Ok(s)
}

/// `sincro_alerts_open` per severity, every severity present (0 when none is open).
fn open_alerts(counts: Vec<(String, String, i64)>) {
    for severity in ["info", "warning", "critical"] {
        let n: i64 = counts
            .iter()
            .filter(|(_, s, _)| s == severity)
            .map(|(_, _, n)| n)
            .sum();
        metrics::gauge!("sincro_alerts_open", "severity" => severity).set(n as f64);
    }
}

/// Lite sessions by status and Business numbers by status, every known status present
/// (zero when none), so a status that empties drops to 0 instead of keeping its last value.
async fn connections(client: &deadpool_postgres::Client) -> Result<(), StoreError> {
    const LITE: [&str; 5] = ["STARTING", "SCAN_QR_CODE", "WORKING", "FAILED", "STOPPED"];
    const BUSINESS: [&str; 4] = [
        "connected",
        "needs_credentials",
        "restricted",
        "disconnected",
    ];
    let rows = client
        .query(
            "SELECT 'lite', s.status, count(*) FROM whatsapp_lite_sessions s
               JOIN configuracion_mensajeria_usuario c ON c.id = s.id AND c.activo
               GROUP BY s.status
             UNION ALL
             SELECT 'business', coalesce(configuracion->>'connection_status', 'connected'), count(*)
               FROM configuracion_mensajeria_usuario
               WHERE activo AND configuracion->>'tipo_conexion' = 'business' GROUP BY 2",
            &[],
        )
        .await?;
    let count = |kind: &str, status: &str| -> i64 {
        rows.iter()
            .filter(|r| r.get::<_, &str>(0) == kind && r.get::<_, &str>(1) == status)
            .map(|r| r.get::<_, i64>(2))
            .sum()
    };
    for (kind, statuses) in [("lite", &LITE[..]), ("business", &BUSINESS[..])] {
        for status in statuses {
            metrics::gauge!("sincro_connections", "kind" => kind, "status" => *status)
                .set(count(kind, status) as f64);
        }
    }
    Ok(())
}
