//! A Business number's throughput level, which paces its sends: the Dispatcher re-reads
//! `business_config.throughput.level` (`STANDARD` 80 messages per second, `HIGH` 1,000) every
//! few seconds. Meta sets the level, not the user: it is read with the number when it is
//! connected or given new credentials, read again by the number's actor each time it starts
//! (numbers connected before the daemon kept it, and downgrades), and raised at once when
//! Meta's `phone_number_quality_update` webhook says `THROUGHPUT_UPGRADE` (Meta upgrades
//! eligible numbers on its own; that webhook names the number only by its display number).
//! A change is stored with a `business.throughput` event in the same transaction; storing the
//! level a number already has changes nothing and emits nothing.
//!
//! Each stored level keeps when Meta said it (`throughput.at`, unix seconds: the webhook
//! entry's `time`, or when the Graph read was sent), and an older word never replaces a newer
//! one: a read sent at start just before an upgrade, answered after the upgrade's webhook was
//! applied, does not undo it. At the same second a webhook wins over a read, and a later read
//! over an earlier one.

use super::{ACTIVE, BusinessError};
use crate::seal::Sealer;
use crate::store::StoreError;
use crate::store::events;
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// Where a level was learnt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// Read from Meta (`GET /{phone_number_id}?fields=throughput`).
    Graph,
    /// Meta's `phone_number_quality_update` webhook.
    Webhook,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Graph => "graph",
            Source::Webhook => "webhook",
        }
    }
}

/// The stored form of a level Meta gave at `at`.
pub fn stored(level: &str, at: OffsetDateTime, source: Source) -> Value {
    json!({ "level": level, "at": at.unix_timestamp(), "source": source.as_str() })
}

/// Meta's higher throughput level (1,000 messages per second).
pub const HIGH: &str = "HIGH";

/// The `throughput.level` of a Graph phone number object (`GET /{phone_number_id}`).
pub fn level_of(number: &Value) -> Option<String> {
    number
        .pointer("/throughput/level")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_ascii_uppercase)
}

/// The level a `phone_number_quality_update` event moves the number to, if it says one.
/// Only `THROUGHPUT_UPGRADE` does (to `HIGH`); `ONBOARDING` and messaging-limit events leave
/// the throughput as it is.
pub fn level_after(event: &str) -> Option<&'static str> {
    event
        .eq_ignore_ascii_case("THROUGHPUT_UPGRADE")
        .then_some(HIGH)
}

/// Stores `level`, which Meta gave at `at`, for the active number `connection_id`, and appends
/// a `business.throughput` event, when it differs from the stored level and is not older
/// than it (see the module's header). Returns whether it changed. Run it inside the caller's
/// transaction.
pub async fn store_level(
    tx: &impl GenericClient,
    sealer: &Sealer,
    connection_id: Uuid,
    level: &str,
    at: OffsetDateTime,
    source: Source,
) -> Result<bool, BusinessError> {
    let row = tx
        .query_opt(
            &format!(
                "UPDATE configuracion_mensajeria_usuario c
                 SET configuracion = jsonb_set(c.configuracion, '{{business_config,throughput}}', $3::jsonb),
                     updated_at = now()
                 FROM (SELECT id, configuracion->'business_config'->'throughput'->>'level' AS prev,
                              (configuracion->'business_config'->'throughput'->>'at')::bigint AS prev_at,
                              configuracion->'business_config'->'throughput'->>'source' AS prev_source
                       FROM configuracion_mensajeria_usuario WHERE id = $1 FOR UPDATE) o
                 WHERE c.id = o.id AND {ACTIVE} AND o.prev IS DISTINCT FROM $2
                   AND (o.prev_at IS NULL OR o.prev_at < $4
                        OR (o.prev_at = $4 AND ($5 OR o.prev_source IS DISTINCT FROM 'webhook')))
                 RETURNING c.usuario_id, c.configuracion->'business_config'->>'phone_number_id', o.prev"
            ),
            &[
                &connection_id,
                &level,
                &stored(level, at, source),
                &at.unix_timestamp(),
                &(source == Source::Webhook),
            ],
        )
        .await
        .map_err(StoreError::from)?;
    let Some(row) = row else { return Ok(false) };
    let usuario_id: Uuid = row.get(0);
    let phone_number_id: Option<String> = row.get(1);
    let previous: Option<String> = row.get(2);
    events::append(
        tx,
        sealer,
        usuario_id,
        "business.throughput",
        &json!({
            "connection_id": connection_id,
            "phone_number_id": phone_number_id,
            "level": level,
            "previous_level": previous,
            "source": source.as_str(),
        }),
    )
    .await?;
    tracing::info!(connection = %connection_id, level, previous = ?previous, source = source.as_str(), "business number throughput level changed");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_is_read_from_the_phone_number_object() {
        assert_eq!(
            level_of(&json!({"id": "1", "throughput": {"level": "HIGH"}})).as_deref(),
            Some("HIGH")
        );
        assert_eq!(
            level_of(&json!({"throughput": {"level": "standard"}})).as_deref(),
            Some("STANDARD")
        );
        for absent in [
            json!({"id": "1"}),
            json!({"throughput": {}}),
            json!({"throughput": {"level": ""}}),
            json!({"throughput": {"level": 80}}),
        ] {
            assert_eq!(level_of(&absent), None, "{absent}");
        }
    }

    #[test]
    fn only_a_throughput_upgrade_moves_the_level() {
        assert_eq!(level_after("THROUGHPUT_UPGRADE"), Some(HIGH));
        for other in ["ONBOARDING", "UPGRADE", "DOWNGRADE", "FLAGGED", ""] {
            assert_eq!(level_after(other), None, "{other}");
        }
    }
}
