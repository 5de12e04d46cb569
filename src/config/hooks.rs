//! The `WEBHOOK_*` variables: how event webhooks are delivered (URL exceptions, retries,
//! disabling, timeouts, leases, rotation overlap), read into [`HooksSettings`].

use super::Reader;
use sincro_core::hooks::HooksSettings;
use sincro_core::net_guard::AllowList;
use std::time::Duration;

pub(super) fn read(r: &mut Reader) -> HooksSettings {
    let d = HooksSettings::default();
    let allow = match AllowList::parse(&r.get("WEBHOOK_URL_ALLOW").unwrap_or_default()) {
        Ok(list) => list,
        Err(e) => {
            r.errors.push(format!("WEBHOOK_URL_ALLOW: {e}"));
            Default::default()
        }
    };
    let millis = |r: &mut Reader, name: &str, default: Duration| {
        Duration::from_millis(r.positive(
            name,
            default.as_millis() as u64,
            "a number of milliseconds",
        ))
    };
    let secs = |r: &mut Reader, name: &str, default: Duration| {
        Duration::from_secs(r.positive(name, default.as_secs(), "a number of seconds"))
    };
    let settings = HooksSettings {
        allow,
        retry_base: millis(r, "WEBHOOK_RETRY_BASE_MS", d.retry_base),
        retry_max: millis(r, "WEBHOOK_RETRY_MAX_MS", d.retry_max),
        disable_after: secs(r, "WEBHOOK_DISABLE_AFTER_SECS", d.disable_after),
        timeout: millis(r, "WEBHOOK_TIMEOUT_MS", d.timeout),
        lease: secs(r, "WEBHOOK_LEASE_SECS", d.lease),
        poll: millis(r, "WEBHOOK_POLL_MS", d.poll),
        rotation_overlap: secs(r, "WEBHOOK_SECRET_OVERLAP_SECS", d.rotation_overlap),
    };
    if settings.timeout * 2 > settings.lease {
        r.errors.push(format!(
            "WEBHOOK_LEASE_SECS ({}) must be at least twice WEBHOOK_TIMEOUT_MS ({} ms)",
            settings.lease.as_secs(),
            settings.timeout.as_millis()
        ));
    }
    settings
}
