//! `POST /v1/phone-numbers/validate`: `{"phone", "region"?}` → whether it is a valid number,
//! its E.164 form and country. An invalid number is a normal answer (`valid: false`); a
//! malformed request or an unknown region is a 4xx.

use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::json;
use sincro_core::phone::PhoneError;
use sincro_core::store::api_keys::Principal;
use sincro_core::store::users::{self, UserError};
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
    let client = ctx.pool.get().await?;
    match users::read_phone(
        &client,
        p.usuario_id,
        &body.phone,
        body.region,
        ctx.shared.settings.default_region.as_deref(),
    )
    .await
    {
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
        // An unknown region is the request's fault; a number that does not read is an answer.
        Err(UserError::InvalidPhone(e @ PhoneError::UnknownRegion(_))) => {
            Err(UserError::InvalidRegion(e).into())
        }
        Err(UserError::InvalidPhone(e)) => Ok(json_reply(
            StatusCode::OK,
            &json!({"valid": false, "reason": e.to_string()}),
        )),
        Err(e) => Err(e.into()),
    }
}
