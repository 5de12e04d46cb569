//! Planner statistics of the tables the inbound path looks a batch's contacts up in, kept fresh
//! by the daemon when the server does not.
//!
//! The drain joins each batch's keys (arrays sent as `unnest`) to conversations and leads.
//! PostgreSQL plans those joins from the tables' statistics, which only `ANALYZE` updates. With
//! none, or ones taken while a table was small, it believes the partial key of conversations
//! matches a few dozen rows and reads the whole table for every batch instead of looking each
//! key up: 5.6 ms against 1.0 ms to update 30 conversations out of 5,000 (about 0.15 ms of
//! PostgreSQL's time a message in a single-message flood), growing with the table. That is the
//! state of a server whose autovacuum is off (autovacuum also analyzes) and of a new install
//! whose first campaign outruns it.
//!
//! [`refresh_stale`] analyzes each of [`TABLES`] once at least [`MIN_CHANGES`] rows and
//! [`SHARE`] of it changed since its last analysis. Autovacuum analyzes a table after a tenth of
//! it changed, so where it runs it gets there first and this step does nothing. `ANALYZE` reads
//! a bounded sample (not the whole table) and takes a lock that writes do not wait for; only
//! tables the daemon's role may analyze (their owner's members, or a superuser) are tried.
//! Every node runs the step; two analyzing one table at once cost one more sample, no more.

use super::StoreError;
use deadpool_postgres::Pool;
use std::time::Duration;

/// The tables whose statistics the inbound path's plans depend on. Messages and events are only
/// inserted and looked up by keys whose partial indexes need no statistics to be chosen, and
/// analyzing them is not free (0.6 s for 40,000 messages here), so they are left to autovacuum.
pub const TABLES: &[&str] = &["conversaciones", "leads"];
/// Rows changed since a table's last analysis before it is analyzed again, at least.
pub const MIN_CHANGES: i64 = 1_000;
/// Share of a table's rows changed since its last analysis before it is analyzed again.
pub const SHARE: f64 = 0.2;
/// How often [`run`] looks.
pub const EVERY: Duration = Duration::from_secs(10);

/// One step: analyzes the tables of [`TABLES`] whose statistics are stale; returns their names.
pub async fn refresh_stale(pool: &Pool) -> Result<Vec<&'static str>, StoreError> {
    let client = pool.get().await?;
    let stale = client
        .query(
            "SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE s.schemaname = current_schema() AND s.relname = ANY($1)
               AND s.n_mod_since_analyze >= $2::bigint + $3::float8 * s.n_live_tup
               AND pg_has_role(c.relowner, 'MEMBER')",
            &[&TABLES, &MIN_CHANGES, &SHARE],
        )
        .await?;
    let mut analyzed = Vec::new();
    for row in stale {
        let name: &str = row.get(0);
        // The statement names a table of the fixed list, never text read from the server.
        if let Some(table) = TABLES.iter().find(|t| **t == name) {
            client.batch_execute(&format!("ANALYZE {table}")).await?;
            analyzed.push(*table);
        }
    }
    Ok(analyzed)
}

/// Runs [`refresh_stale`] every [`EVERY`] until dropped.
pub async fn run(pool: Pool) {
    loop {
        tokio::time::sleep(EVERY).await;
        match refresh_stale(&pool).await {
            Ok(tables) if !tables.is_empty() => {
                tracing::info!(?tables, "planner statistics refreshed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "planner statistics: store unavailable"),
        }
    }
}
