//! Throughput levels per number, as Meta grants them: `STANDARD` (the simulator's
//! `throughput_per_sec`, 80 by default) until a number is upgraded to `HIGH` (1,000 messages
//! per second), which Meta does on its own for eligible numbers and announces with a
//! `phone_number_quality_update` webhook (event `THROUGHPUT_UPGRADE`) naming the number only by
//! its display number. `POST /sim/throughput {"phone_number_id", "level"}` sets a number's
//! level: `GET /{phone_number_id}?fields=throughput` reports it, sends are limited by it, and
//! a rise to `HIGH` sends that webhook.

use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;

use super::errors::{ControlError, json_response};
use super::state::{Sim, State, unix_now};
use super::webhooks;

/// Messages per second of a `HIGH` number.
pub const HIGH_PER_SEC: u32 = 1000;
/// Messages per second of a `STANDARD` number (Meta's default).
pub const STANDARD_PER_SEC: u32 = 80;

/// Messages per second `phone_number_id` may send now.
pub fn limit(sim: &Sim, st: &State, phone_number_id: &str) -> u32 {
    st.levels
        .get(phone_number_id)
        .copied()
        .unwrap_or(sim.config.throughput_per_sec)
}

/// The level Graph reports for a limit.
pub fn name(per_sec: u32) -> &'static str {
    if per_sec > STANDARD_PER_SEC {
        "HIGH"
    } else {
        "STANDARD"
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLevel {
    phone_number_id: String,
    level: String,
}

/// `POST /sim/throughput`.
pub fn set(sim: &Arc<Sim>, body: &[u8]) -> Result<Response, ControlError> {
    let req: SetLevel = serde_json::from_slice(body)
        .map_err(|e| ControlError::bad_request(format!("invalid JSON body: {e}")))?;
    let per_sec = match req.level.as_str() {
        "HIGH" => HIGH_PER_SEC,
        "STANDARD" => STANDARD_PER_SEC,
        other => {
            return Err(ControlError::bad_request(format!(
                "level must be \"STANDARD\" or \"HIGH\", not {other:?}"
            )));
        }
    };
    let (account, before) = {
        let mut st = sim.lock();
        let account = st
            .accounts
            .get(&req.phone_number_id)
            .cloned()
            .ok_or_else(|| {
                ControlError::new(
                    404,
                    "unknown_account",
                    format!("no account with phone_number_id {}", req.phone_number_id),
                )
            })?;
        let before = limit(sim, &st, &req.phone_number_id);
        st.levels.insert(req.phone_number_id.clone(), per_sec);
        (account, before)
    };
    let upgraded = per_sec == HIGH_PER_SEC && before < HIGH_PER_SEC;
    if upgraded {
        // Meta's payload since `current_limit` was retired: no metadata, no phone number id.
        let entry = json!({
            "id": account.waba_id,
            "time": unix_now(),
            "changes": [{
                "field": "phone_number_quality_update",
                "value": {
                    "display_phone_number": account.display_phone_number,
                    "event": "THROUGHPUT_UPGRADE",
                    "max_daily_conversations_per_business": "TIER_UNLIMITED",
                },
            }],
        });
        webhooks::emit(sim, &account, entry);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"phone_number_id": req.phone_number_id, "level": name(per_sec), "webhook": upgraded}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_named_by_their_limit() {
        assert_eq!(name(STANDARD_PER_SEC), "STANDARD");
        assert_eq!(name(20), "STANDARD");
        assert_eq!(name(HIGH_PER_SEC), "HIGH");
    }
}
