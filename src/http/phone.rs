//! `POST /v1/phone-numbers/validate`: `{"phone", "region"?}` → whether it is a valid number,
//! its E.164 form and country. An invalid number is a normal answer (`valid: false`); a
//! malformed request or an unknown region is a 4xx.

use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::json;
use sincro_core::phone::{self, PhoneError};
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    phone: String,
    region: Option<String>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    warp::path!("v1" / "phone-numbers" / "validate")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(json_body::<ValidateRequest>(limit))
        .and(with_ctx(ctx))
        .then(|p, body, ctx| respond(validate(p, body, ctx)))
        .boxed()
}

async fn validate(
    p: Principal,
    body: ValidateRequest,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let region = match body.region {
        Some(r) => Some(r),
        None => {
            let client = ctx.pool.get().await?;
            ctx.shared.user_region(&client, p.usuario_id).await?
        }
    };
    match phone::normalize(&body.phone, region.as_deref()) {
        Ok(n) => Ok(json_reply(
            StatusCode::OK,
            &json!({
                "valid": true,
                "e164": n.e164,
                "country": n.country,
                "country_code": n.country_code,
                "national_number": n.national,
                "wa_id": n.e164.trim_start_matches('+'),
            }),
        )),
        Err(PhoneError::UnknownRegion(r)) => Err(ApiError::unprocessable(
            "invalid_region",
            format!("unknown region {r:?}; use an ISO 3166 alpha-2 code such as BR"),
        )),
        Err(e) => Ok(json_reply(
            StatusCode::OK,
            &json!({"valid": false, "reason": e.to_string()}),
        )),
    }
}
