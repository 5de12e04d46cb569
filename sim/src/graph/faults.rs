//! Fault injection on the messages endpoint (`POST /sim/faults`, `DELETE /sim/faults`): the
//! next `count` calls (or a `ratio` share of calls) for one number or all fail with a Meta code
//! in Meta's shape, answer a bare status with no body, arrive late (`latency_ms`), never answer
//! (`timeout`), or succeed and then fail asynchronously through a `failed` status webhook
//! (`async`).

use rand::RngExt;

use super::errors::GraphError;
use super::state::State;

/// What a call must do because of a fault.
#[derive(Debug, Clone, Default)]
pub struct FaultEffect {
    pub latency_ms: u64,
    pub hang: bool,
    pub fail: Option<GraphError>,
    /// Code to fail with asynchronously after a successful send.
    pub async_code: Option<i64>,
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
