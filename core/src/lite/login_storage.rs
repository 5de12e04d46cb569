//! The page's login storage, kept from the moment the session reaches WORKING.
//!
//! Chromium writes local storage to the profile in batches (seconds apart), so a browser killed
//! right after a login can come back with a profile that has no login, and the page shows a QR
//! again. At WORKING (and at every profile snapshot) the session reads the page origin's
//! localStorage through CDP and keeps it sealed in the session row; on every start a script that
//! runs before the page's own puts it back when the profile lost it.
//!
//! Whether the profile lost it is told by a generation mark the capture writes into the page's
//! storage together with everything else: Chromium commits local storage in order, so a profile
//! whose mark is older than the kept one lost writes made before the capture (put everything
//! back), and one with the same mark has all of them and maybe newer ones (left alone).

use super::LiteError;
use super::bridge;
use crate::seal::{Purpose, Sealer};
use crate::store::StoreError;
use chromiumoxide::Page;
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// The key of the generation mark in the page's localStorage.
const MARK: &str = "__sincro_login_gen";

/// The page origin's localStorage at one moment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoginStorage {
    pub origin: String,
    pub generation: i64,
    pub items: BTreeMap<String, String>,
}

/// Reads the page's localStorage (after writing a new generation mark into it).
pub async fn capture(page: &Page) -> Result<LoginStorage, LiteError> {
    let generation = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000;
    let expr = format!(
        "(() => {{ localStorage.setItem({mark}, {generation:?}); const items = {{}}; \
         for (let i = 0; i < localStorage.length; i++) {{ const k = localStorage.key(i); \
         items[k] = localStorage.getItem(k); }} \
         return {{ origin: location.origin, generation: {generation}, items }}; }})()",
        mark = serde_json::to_string(MARK).expect("a string"),
        generation = generation.to_string(),
    );
    let value = bridge::eval(page, &expr, Duration::from_secs(10)).await?;
    serde_json::from_value(value).map_err(|e| LiteError::Page(format!("login storage: {e}")))
}

/// A script for every new document: on the kept origin, puts the storage back when the
/// profile's mark is older than the kept one.
pub fn restore_script(kept: &LoginStorage) -> String {
    let json = serde_json::to_string(kept).expect("serializes");
    format!(
        "(function () {{ try {{ var kept = {json}; \
         if (location.origin !== kept.origin) return; \
         var mark = Number(localStorage.getItem({mark}) || 0); \
         if (mark >= kept.generation) return; \
         Object.keys(kept.items).forEach(function (k) {{ localStorage.setItem(k, kept.items[k]); }}); \
         }} catch (e) {{ /* no storage */ }} }})();",
        mark = serde_json::to_string(MARK).expect("a string"),
    )
}

pub async fn save(
    pool: &Pool,
    sealer: &Sealer,
    id: Uuid,
    kept: &LoginStorage,
) -> Result<(), StoreError> {
    let sealed = sealer.seal(
        Purpose::ProfileSnapshot,
        &serde_json::to_vec(kept).expect("serializes"),
    );
    pool.get()
        .await?
        .execute(
            "UPDATE whatsapp_lite_sessions SET login_storage = $2, login_storage_at = now() WHERE id = $1",
            &[&id, &sealed],
        )
        .await?;
    Ok(())
}

pub async fn load(
    pool: &Pool,
    sealer: &Sealer,
    id: Uuid,
) -> Result<Option<LoginStorage>, StoreError> {
    let sealed: Option<String> = pool
        .get()
        .await?
        .query_opt(
            "SELECT login_storage FROM whatsapp_lite_sessions WHERE id = $1",
            &[&id],
        )
        .await?
        .and_then(|r| r.get(0));
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let opened = sealer
        .open(Purpose::ProfileSnapshot, &sealed)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
    match opened {
        Ok(kept) => Ok(Some(kept)),
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "login storage cannot be opened; ignored");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_script_names_origin_mark_and_items() {
        let kept = LoginStorage {
            origin: "http://127.0.0.1:1".into(),
            generation: 42,
            items: BTreeMap::from([("k".to_string(), "{\"a\":\"</script>\"}".to_string())]),
        };
        let s = restore_script(&kept);
        assert!(s.contains("\"generation\":42"));
        assert!(s.contains(MARK));
        assert!(s.contains("http://127.0.0.1:1"));
    }
}
