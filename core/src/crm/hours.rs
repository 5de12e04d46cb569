//! Business hours for automatic answers: a time zone (an IANA name, which PostgreSQL turns
//! into local time: the daemon carries no time zone table of its own), weekly opening hours
//! and holidays. [`BusinessHours::is_open`] is pure: it takes the local date and time.
//!
//! ```json
//! {"time_zone": "America/Sao_Paulo",
//!  "weekly": {"mon": [["09:00", "18:00"]], "sat": [["09:00", "13:00"]]},
//!  "holidays": ["2026-12-25"]}
//! ```
//!
//! A day missing from `weekly` is closed; a holiday is closed all day.

use serde_json::Value;
use time::{Date, PrimitiveDateTime, Time, Weekday};

#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    pub time_zone: String,
    /// Opening intervals per weekday, Monday first: `[start, end)`.
    pub weekly: [Vec<(Time, Time)>; 7],
    pub holidays: Vec<Date>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn clock(v: &Value) -> Option<Time> {
    let (h, m) = v.as_str()?.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    if h == 24 && m == 0 {
        return Some(Time::MAX);
    }
    Time::from_hms(h, m, 0).ok()
}

fn date(v: &Value) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(v.as_str()?, &format).ok()
}

impl BusinessHours {
    /// Reads the JSON shape above; None when it has no valid time zone name.
    pub fn parse(v: &Value) -> Option<BusinessHours> {
        let time_zone = v.get("time_zone").and_then(Value::as_str)?.trim();
        if time_zone.is_empty() {
            return None;
        }
        let mut weekly: [Vec<(Time, Time)>; 7] = Default::default();
        for (i, day) in DAYS.iter().enumerate() {
            for slot in v
                .pointer(&format!("/weekly/{day}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(a), Some(b)) = (clock(&slot[0]), clock(&slot[1]))
                    && a < b
                {
                    weekly[i].push((a, b));
                }
            }
        }
        let holidays = v
            .get("holidays")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(date)
            .collect();
        Some(BusinessHours {
            time_zone: time_zone.to_string(),
            weekly,
            holidays,
        })
    }

    /// Whether the business is open at `local` (a date and time in [`Self::time_zone`]).
    pub fn is_open(&self, local: PrimitiveDateTime) -> bool {
        if self.holidays.contains(&local.date()) {
            return false;
        }
        let day = match local.weekday() {
            Weekday::Monday => 0,
            Weekday::Tuesday => 1,
            Weekday::Wednesday => 2,
            Weekday::Thursday => 3,
            Weekday::Friday => 4,
            Weekday::Saturday => 5,
            Weekday::Sunday => 6,
        };
        let t = local.time();
        self.weekly[day].iter().any(|(a, b)| *a <= t && t < *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn hours() -> BusinessHours {
        BusinessHours::parse(&json!({"time_zone": "America/Sao_Paulo",
            "weekly": {"mon": [["09:00", "12:00"], ["13:00", "18:00"]], "sat": [["09:00", "24:00"]]},
            "holidays": ["2026-12-28"]}))
        .unwrap()
    }

    #[test]
    fn open_within_intervals_only() {
        let h = hours();
        assert!(h.is_open(datetime!(2026-12-07 09:00)));
        assert!(!h.is_open(datetime!(2026-12-07 12:30)));
        assert!(!h.is_open(datetime!(2026-12-07 18:00)));
        assert!(h.is_open(datetime!(2026-12-12 23:59)));
        assert!(
            !h.is_open(datetime!(2026-12-08 10:00)),
            "a day not listed is closed"
        );
    }

    #[test]
    fn holidays_are_closed() {
        assert!(!hours().is_open(datetime!(2026-12-28 10:00)));
    }

    #[test]
    fn needs_a_time_zone() {
        assert!(BusinessHours::parse(&json!({"weekly": {}})).is_none());
    }
}
