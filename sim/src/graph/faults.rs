//! Fault injection on the messages endpoint (`POST /sim/faults`, `DELETE /sim/faults`): the
//! next `count` calls (or a `ratio` share of calls) for one number or all fail with a Meta code
//! in Meta's shape, answer a bare status with no body, arrive late (`latency_ms`), never answer
//! (`timeout`), or succeed and then fail asynchronously through a `failed` status webhook
//! (`async`).

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::errors::{ControlError, GraphError};
use super::state::State;

/// The body of `POST /sim/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Only calls for this number; all numbers when absent.
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// Meta error code to answer with.
    #[serde(default)]
    pub code: Option<i64>,
    /// HTTP status; defaults to the code's status in Meta's table.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// How many calls it hits (default 1, unless `ratio` is given: then unlimited).
    #[serde(default)]
    pub count: Option<u32>,
    /// Share of calls (0 < ratio <= 1) it hits.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// Delay before answering (the call then fails or proceeds).
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Never answer.
    #[serde(default)]
    pub timeout: bool,
    /// Answer the status with an empty body (implied when `http_status` has no `code`).
    #[serde(default)]
    pub empty_body: bool,
    /// Accept the send, then emit `sent` and `failed` (with `code`) status webhooks.
    #[serde(default, rename = "async")]
    pub asynchronous: bool,
    /// `error_data.details` of the error.
    #[serde(default)]
    pub details: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub spec: FaultSpec,
    pub remaining: Option<u32>,
}

/// What a call must do because of a fault.
#[derive(Debug, Clone, Default)]
pub struct FaultEffect {
    pub latency_ms: u64,
    pub hang: bool,
    pub fail: Option<GraphError>,
    /// Code to fail with asynchronously after a successful send.
    pub async_code: Option<i64>,
}

impl FaultSpec {
    pub fn validate(&self) -> Result<(), ControlError> {
        if self.code.is_none()
            && self.http_status.is_none()
            && self.latency_ms.is_none()
            && !self.timeout
        {
            return Err(ControlError::bad_request(
                "a fault needs at least one of code, http_status, latency_ms or timeout",
            ));
        }
        if let Some(r) = self.ratio
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(ControlError::bad_request("ratio must be in (0, 1]"));
        }
        if let Some(s) = self.http_status
            && !(100..=599).contains(&s)
        {
            return Err(ControlError::bad_request(
                "http_status must be in 100..=599",
            ));
        }
        if self.count == Some(0) {
            return Err(ControlError::bad_request("count must be at least 1"));
        }
        if self.asynchronous && self.code.is_none() {
            return Err(ControlError::bad_request("an async fault needs a code"));
        }
        Ok(())
    }

    pub fn into_fault(self) -> Fault {
        let remaining = match (self.count, self.ratio) {
            (Some(c), _) => Some(c),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        Fault {
            spec: self,
            remaining,
        }
    }
}

/// Consumes the first fault that hits this call of `phone_number_id`, if any.
pub fn take(st: &mut State, phone_number_id: &str) -> FaultEffect {
    let mut rng = rand::rng();
    let mut hit = None;
    for (i, f) in st.faults.iter_mut().enumerate() {
        if f.spec
            .phone_number_id
            .as_deref()
            .is_some_and(|p| p != phone_number_id)
        {
            continue;
        }
        if let Some(r) = f.spec.ratio
            && !rng.random_bool(r)
        {
            continue;
        }
        if let Some(n) = f.remaining.as_mut() {
            *n -= 1;
        }
        hit = Some((i, f.spec.clone(), f.remaining == Some(0)));
        break;
    }
    let Some((i, spec, exhausted)) = hit else {
        return FaultEffect::default();
    };
    if exhausted {
        st.faults.remove(i);
    }
    let mut effect = FaultEffect {
        latency_ms: spec.latency_ms.unwrap_or(0),
        hang: spec.timeout,
        ..Default::default()
    };
    if spec.asynchronous {
        effect.async_code = spec.code;
        return effect;
    }
    match (spec.code, spec.http_status) {
        (Some(code), status) => {
            let mut e = GraphError::new(
                code,
                spec.details
                    .clone()
                    .unwrap_or_else(|| "Injected by the simulator (POST /sim/faults).".into()),
            );
            if let Some(s) = status {
                e.http_status = s;
            }
            e.empty_body = spec.empty_body;
            effect.fail = Some(e);
        }
        (None, Some(status)) => {
            let mut e = GraphError::new(131000, "");
            e.http_status = status;
            e.empty_body = true;
            effect.fail = Some(e);
        }
        (None, None) => {}
    }
    effect
}
