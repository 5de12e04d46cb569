//! What a failed Graph send means for the message and the number: Meta's error code table
//! as one pure function, so every row is unit-tested. Classified by Meta's `code`, never by
//! the HTTP status (190 sometimes comes over 400).

use super::graph::GraphError;
use crate::connection::SendOutcome;
use std::time::Duration;

/// What the number itself must do besides answering the Dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    None,
    /// 0/190: the token is dead; stop sending, alert, wait for new credentials.
    NeedsCredentials,
    /// 368/131031: the account is blocked or locked; stop sending and alert.
    Restricted,
    /// 131056: this recipient is over the pair rate; count a strike for it.
    PairRate,
    /// 130429: the number's throughput was exceeded as Meta counts it; its sends slow down.
    Throughput,
}

/// The inputs besides the error: how many times this message was tried (1 = first), how many
/// 131056 strikes its recipient has in a row (X in Meta's 4^X), and a jitter sample in [0, 1).
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub attempt: u32,
    pub pair_strikes: u32,
    pub jitter: f64,
}

/// Retries of the generic 131000 before the message fails.
pub const GENERIC_ERROR_RETRIES: u32 = 3;

/// `base · 2^(attempt-1)`, capped, then scaled into [50 %, 100 %) by the jitter ("equal
/// jitter": never retry at once, never all together).
pub fn jittered(base: Duration, cap: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = 2f64.powi(attempt.saturating_sub(1).min(20) as i32);
    let full = (base.as_secs_f64() * exp).min(cap.as_secs_f64());
    Duration::from_secs_f64(full * (0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
}

/// Meta's pair-rate advice: retry after 4^X seconds (X = strikes so far, capped at 4^6).
pub fn pair_rate_wait(strikes: u32) -> Duration {
    Duration::from_secs(4u64.pow(strikes.min(6)))
}

fn retry(code: Option<i64>, error: String, after: Duration) -> SendOutcome {
    SendOutcome::Retry {
        code,
        error,
        after: Some(after),
    }
}

/// The outcome of a send that failed with `err`.
pub fn classify(err: &GraphError, a: Attempt) -> (SendOutcome, Reaction) {
    let fast = |code, error| {
        retry(
            code,
            error,
            jittered(
                Duration::from_secs(2),
                Duration::from_secs(300),
                a.attempt,
                a.jitter,
            ),
        )
    };
    let e = match err {
        GraphError::NotSent(m) => return (fast(None, m.clone()), Reaction::None),
        GraphError::Lost(m) => {
            return (SendOutcome::Uncertain { error: m.clone() }, Reaction::None);
        }
        GraphError::Status { status } if *status >= 500 || *status == 429 => {
            return (fast(None, err.to_string()), Reaction::None);
        }
        GraphError::Status { .. } | GraphError::TooLarge(_) => {
            return (
                SendOutcome::Failed {
                    code: None,
                    error: err.to_string(),
                },
                Reaction::None,
            );
        }
        // A 2xx we cannot read: Meta may well have accepted it.
        GraphError::Unexpected(m) => {
            return (SendOutcome::Uncertain { error: m.clone() }, Reaction::None);
        }
        GraphError::Api(e) => e,
    };
    let code = Some(e.code);
    let error = e.describe();
    let failed = || SendOutcome::Failed {
        code,
        error: error.clone(),
    };
    match e.code {
        0 | 190 => (
            SendOutcome::Unavailable {
                reason: format!("the number needs new credentials: {error}"),
            },
            Reaction::NeedsCredentials,
        ),
        368 | 131031 => (
            SendOutcome::Unavailable {
                reason: format!("the WhatsApp Business account is restricted: {error}"),
            },
            Reaction::Restricted,
        ),
        // App or WABA request limits: slow down for minutes, or as long as Meta says.
        4 | 80007 => {
            let after = e.regain_after.unwrap_or_else(|| {
                jittered(
                    Duration::from_secs(60),
                    Duration::from_secs(3600),
                    a.attempt,
                    a.jitter,
                )
            });
            (retry(code, error, after), Reaction::None)
        }
        130429 => (fast(code, error), Reaction::Throughput),
        131056 => (
            retry(code, error, pair_rate_wait(a.pair_strikes)),
            Reaction::PairRate,
        ),
        // Meta chose not to deliver now: only much later, at growing intervals.
        131049 => (
            retry(
                code,
                error,
                jittered(
                    Duration::from_secs(3600),
                    Duration::from_secs(86400),
                    a.attempt,
                    a.jitter,
                ),
            ),
            Reaction::None,
        ),
        131057 => (retry(code, error, Duration::from_secs(60)), Reaction::None),
        131000 if a.attempt < GENERIC_ERROR_RETRIES => (fast(code, error), Reaction::None),
        131000 => (failed(), Reaction::None),
        1 | 2 | 131016 | 133004 => (fast(code, error), Reaction::None),
        // Everything else in the table is permanent as sent: 3, 10, 200-299 (permissions),
        // 100, 131008, 131009 (bad request), 131026, 131047, 131048, 131050, 130472, 131051,
        // 131052, 131053, 132000, 132001, 132005, 132007, 132012, 132015, 132016, 133010.
        _ if e.http_status >= 500 && !matches!(e.code, 3) => (fast(code, error), Reaction::None),
        _ => (failed(), Reaction::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::business::graph::MetaError;

    fn api(code: i64, http: u16) -> GraphError {
        GraphError::Api(MetaError {
            http_status: http,
            code,
            subcode: None,
            message: format!("(#{code}) title"),
            details: Some("details".into()),
            fbtrace_id: None,
            regain_after: None,
        })
    }

    fn first() -> Attempt {
        Attempt {
            attempt: 1,
            pair_strikes: 0,
            jitter: 0.0,
        }
    }

    fn after(o: &SendOutcome) -> Duration {
        match o {
            SendOutcome::Retry { after: Some(a), .. } => *a,
            other => panic!("not a retry: {other:?}"),
        }
    }

    #[test]
    fn auth_codes_need_credentials_whatever_the_status() {
        for (code, http) in [(0, 401), (190, 401), (190, 400)] {
            let (o, r) = classify(&api(code, http), first());
            assert!(matches!(o, SendOutcome::Unavailable { .. }), "{code}");
            assert_eq!(r, Reaction::NeedsCredentials);
        }
    }

    #[test]
    fn restricted_accounts_stop() {
        for code in [368, 131031] {
            let (o, r) = classify(&api(code, 403), first());
            assert!(matches!(o, SendOutcome::Unavailable { .. }));
            assert_eq!(r, Reaction::Restricted);
        }
    }

    #[test]
    fn permanent_codes_fail_with_meta_code_and_details() {
        for code in [
            3, 10, 200, 299, 100, 131008, 131009, 131026, 131047, 131048, 131050, 130472, 131051,
            131052, 131053, 132000, 132001, 132005, 132007, 132012, 132015, 132016, 133010,
        ] {
            let http = if code == 3 { 500 } else { 400 };
            let (o, r) = classify(&api(code, http), first());
            assert_eq!(r, Reaction::None);
            match o {
                SendOutcome::Failed { code: c, error } => {
                    assert_eq!(c, Some(code));
                    assert!(error.contains("details"), "{error}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn pair_rate_waits_four_to_the_x() {
        for (strikes, secs) in [(0, 1), (1, 4), (2, 16), (3, 64), (9, 4096)] {
            let (o, r) = classify(
                &api(131056, 400),
                Attempt {
                    attempt: 5,
                    pair_strikes: strikes,
                    jitter: 0.7,
                },
            );
            assert_eq!(after(&o), Duration::from_secs(secs));
            assert_eq!(r, Reaction::PairRate);
        }
    }

    #[test]
    fn throughput_backs_off_exponentially_with_jitter() {
        let at = |attempt, jitter| {
            after(
                &classify(
                    &api(130429, 400),
                    Attempt {
                        attempt,
                        pair_strikes: 0,
                        jitter,
                    },
                )
                .0,
            )
        };
        assert_eq!(at(1, 0.0), Duration::from_secs(1));
        assert_eq!(at(1, 1.0), Duration::from_secs(2));
        assert_eq!(at(3, 1.0), Duration::from_secs(8));
        assert!(at(3, 0.3) < at(3, 0.9));
        assert_eq!(at(30, 1.0), Duration::from_secs(300));
        let first = Attempt {
            attempt: 1,
            pair_strikes: 0,
            jitter: 0.5,
        };
        assert_eq!(
            classify(&api(130429, 400), first).1,
            Reaction::Throughput,
            "a refusal for throughput slows the number down"
        );
    }

    #[test]
    fn generic_error_is_retried_a_bounded_number_of_times() {
        let at = |attempt| {
            classify(
                &api(131000, 500),
                Attempt {
                    attempt,
                    pair_strikes: 0,
                    jitter: 0.5,
                },
            )
            .0
        };
        assert!(matches!(at(1), SendOutcome::Retry { .. }));
        assert!(matches!(at(2), SendOutcome::Retry { .. }));
        assert!(matches!(
            at(3),
            SendOutcome::Failed {
                code: Some(131000),
                ..
            }
        ));
    }

    #[test]
    fn transient_and_slow_codes_retry() {
        for code in [1, 2, 131016, 133004, 4, 80007, 131049, 131057] {
            let (o, _) = classify(&api(code, 503), first());
            assert!(
                matches!(o, SendOutcome::Retry { code: Some(c), .. } if c == code),
                "{code}"
            );
        }
        assert_eq!(
            after(&classify(&api(131057, 500), first()).0),
            Duration::from_secs(60)
        );
        assert!(after(&classify(&api(131049, 400), first()).0) >= Duration::from_secs(1800));
        let mut slow = api(4, 400);
        if let GraphError::Api(e) = &mut slow {
            e.regain_after = Some(Duration::from_secs(300));
        }
        assert_eq!(after(&classify(&slow, first()).0), Duration::from_secs(300));
    }

    #[test]
    fn transport_failures() {
        let (o, _) = classify(&GraphError::NotSent("refused".into()), first());
        assert!(matches!(o, SendOutcome::Retry { code: None, .. }));
        let (o, _) = classify(&GraphError::Lost("timeout".into()), first());
        assert!(matches!(o, SendOutcome::Uncertain { .. }));
        let (o, _) = classify(&GraphError::Status { status: 502 }, first());
        assert!(matches!(o, SendOutcome::Retry { .. }));
        let (o, _) = classify(&GraphError::Status { status: 404 }, first());
        assert!(matches!(o, SendOutcome::Failed { .. }));
        let (o, _) = classify(&api(999_999, 503), first());
        assert!(matches!(o, SendOutcome::Retry { .. }));
        let (o, _) = classify(&api(999_999, 400), first());
        assert!(matches!(o, SendOutcome::Failed { .. }));
    }
}
