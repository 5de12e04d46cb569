//! Throughput levels per number, as Meta grants them: `STANDARD` (the simulator's
//! `throughput_per_sec`, 80 by default) until a number is upgraded to `HIGH` (1,000 messages
//! per second), which Meta does on its own for eligible numbers and announces with a
//! `phone_number_quality_update` webhook (event `THROUGHPUT_UPGRADE`) naming the number only by
//! its display number. `POST /sim/throughput {"phone_number_id", "level"}` (`control.rs`) sets
//! a number's level: `GET /{phone_number_id}?fields=throughput` reports it, sends are limited by
//! it, and a rise to `HIGH` sends that webhook.

use serde_json::{Value, json};

use super::state::{Account, Sim, State, unix_now};

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

/// The messages per second of a level a control request names, if it is one.
pub fn per_sec(level: &str) -> Option<u32> {
    match level {
        "HIGH" => Some(HIGH_PER_SEC),
        "STANDARD" => Some(STANDARD_PER_SEC),
        _ => None,
    }
}

/// The webhook entry Meta sends when it upgrades `account`'s number, as documented since
/// `current_limit` was retired: no metadata, no phone number id, only the display number.
pub fn upgrade_entry(account: &Account) -> Value {
    json!({
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
    })
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
