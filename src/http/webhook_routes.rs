//! The numbers (and their app secrets) a webhook body names, cached for a few seconds per
//! phone number id and WABA id, so a flood of posts naming the same numbers costs one store
//! lookup per number and window however many arrive; unknown ids are cached too, so a flood
//! naming numbers that are not here costs no more. The price: a number connected, or given a
//! new app secret, less than [`TTL`] ago may have one of its webhooks refused with 401, which
//! Meta retries.

use deadpool_postgres::Pool;
use sincro_core::business::BusinessError;
use sincro_core::business::store::{self, Route};
use sincro_core::seal::Sealer;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a lookup is reused.
pub const TTL: Duration = Duration::from_secs(5);
/// Entries kept at most (a flood of random ids cannot grow the cache without bound).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct RouteCache {
    /// `p:<phone_number_id>` or `w:<waba_id>` → when looked up, and the routes it names.
    entries: Mutex<HashMap<String, (Instant, Vec<Route>)>>,
    /// Store lookups made since start.
    pub lookups: AtomicU64,
}

impl RouteCache {
    /// The routes (with their app secrets) of the named ids: cached ones, and one store lookup
    /// for the others. A pooled connection is taken only for that lookup: under a flood every
    /// post is a cache hit, and waiting for a connection the group commit and the drain are
    /// using would only add to its latency.
    pub async fn routes(
        &self,
        pool: &Pool,
        sealer: &Sealer,
        phone_ids: &[String],
        waba_ids: &[String],
    ) -> Result<Vec<Route>, BusinessError> {
        let keys = |prefix: &str, ids: &[String]| -> Vec<String> {
            ids.iter().map(|i| format!("{prefix}:{i}")).collect()
        };
        let wanted: Vec<String> = keys("p", phone_ids)
            .into_iter()
            .chain(keys("w", waba_ids))
            .collect();
        let mut found: Vec<Route> = Vec::new();
        let (mut missing_p, mut missing_w) = (Vec::new(), Vec::new());
        {
            let entries = self.entries.lock().expect("route cache");
            for key in &wanted {
                match entries.get(key) {
                    Some((at, routes)) if at.elapsed() < TTL => {
                        found.extend(routes.iter().cloned())
                    }
                    _ if key.starts_with("p:") => missing_p.push(key[2..].to_string()),
                    _ => missing_w.push(key[2..].to_string()),
                }
            }
        }
        if !missing_p.is_empty() || !missing_w.is_empty() {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            let client = pool
                .get()
                .await
                .map_err(sincro_core::store::StoreError::from)?;
            let fresh = store::routes(&client, sealer, &missing_p, &missing_w, true).await?;
            drop(client);
            let now = Instant::now();
            let mut entries = self.entries.lock().expect("route cache");
            if entries.len() + missing_p.len() + missing_w.len() > MAX_ENTRIES {
                entries.retain(|_, (at, _)| at.elapsed() < TTL);
                if entries.len() > MAX_ENTRIES / 2 {
                    entries.clear();
                }
            }
            for id in &missing_p {
                let of: Vec<Route> = fresh
                    .iter()
                    .filter(|r| &r.phone_number_id == id)
                    .cloned()
                    .collect();
                entries.insert(format!("p:{id}"), (now, of));
            }
            for id in &missing_w {
                let of: Vec<Route> = fresh.iter().filter(|r| &r.waba_id == id).cloned().collect();
                entries.insert(format!("w:{id}"), (now, of));
            }
            found.extend(fresh);
        }
        // One route per connection.
        found.sort_by_key(|r| r.connection_id);
        found.dedup_by_key(|r| r.connection_id);
        Ok(found)
    }
}
