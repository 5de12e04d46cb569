//! Counters that alert rules read, registered at zero when the daemon starts (a counter only
//! shows in `/metrics` once touched, and a rule on a missing series never fires), and the
//! error classes send outcomes are counted under.

use crate::connection::SendOutcome;

/// Send outcomes as `sincro_sends_total` labels them.
pub const OUTCOMES: [&str; 5] = ["sent", "retry", "failed", "uncertain", "unavailable"];

/// The outcome label and error class of a send: `none` for a sent message; for the others,
/// what kind of trouble the provider's code (or its absence) says it was.
pub fn classify(outcome: &SendOutcome) -> (&'static str, &'static str) {
    match outcome {
        SendOutcome::Sent { .. } | SendOutcome::SentTo { .. } => ("sent", "none"),
        SendOutcome::Retry { code, .. } => ("retry", error_class(*code)),
        SendOutcome::Failed { code, .. } => ("failed", error_class(*code)),
        SendOutcome::Uncertain { .. } => ("uncertain", "lost_answer"),
        SendOutcome::Unavailable { .. } => ("unavailable", "connection"),
    }
}

/// Meta's error codes (and the Lite page's, which carry none) by class.
pub fn error_class(code: Option<i64>) -> &'static str {
    match code {
        None => "transport",
        Some(0 | 10 | 190 | 200..=299) => "auth",
        Some(4 | 80007 | 130429 | 131048 | 131056 | 613) => "rate_limit",
        Some(368 | 131031) => "restricted",
        Some(131047 | 131026 | 131021 | 131030 | 131051 | 131052 | 131053 | 132000..=132999) => {
            "recipient_or_template"
        }
        Some(100 | 131008 | 131009 | 133010) => "invalid_request",
        Some(_) => "provider",
    }
}

/// Touches every counter an example alert rule names, at zero.
pub fn register() {
    for kind in ["business", "lite"] {
        for outcome in OUTCOMES {
            let class = if outcome == "sent" {
                "none"
            } else {
                "transport"
            };
            metrics::counter!("sincro_sends_total", "kind" => kind, "outcome" => outcome, "error_class" => class)
                .increment(0);
        }
    }
    for name in [
        "sincro_outbound_failed_total",
        "sincro_outbound_uncertain_total",
        "sincro_inbound_dead_letters_total",
        "sincro_stream_overflows_total",
        "sincro_throughput_refusals_total",
        "sincro_lite_recycles_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for scope in ["api", "lite_session", "business_number", "recipient"] {
        metrics::counter!("sincro_rate_limited_total", "scope" => scope).increment(0);
    }
    for outcome in ["delivered", "retried", "gave_up"] {
        metrics::counter!("sincro_alert_webhook_total", "outcome" => outcome).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fall_in_their_class() {
        assert_eq!(error_class(Some(190)), "auth");
        assert_eq!(error_class(Some(130429)), "rate_limit");
        assert_eq!(error_class(Some(131047)), "recipient_or_template");
        assert_eq!(error_class(None), "transport");
        assert_eq!(error_class(Some(131000)), "provider");
    }
}
