//! Business numbers: `POST /v1/business/numbers` (credentials validated against the Graph
//! API before anything is stored, then sealed and the number's actor started), `GET` (list
//! and one), `PATCH /v1/business/numbers/{id}` (new credentials, validated again; the actor is
//! replaced) and `DELETE` (actor stopped, secrets dropped, history kept). Another user's
//! number is a 404. Also the helpers the template and media routes share: reaching a number's
//! actor and resolving the connection a route acts on.

use super::audit;
use super::auth::{self, Need};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::json;
use sincro_core::business::GraphSettings;
use sincro_core::business::connect::{self, Target};
use sincro_core::business::error::BusinessSupervisorError;
use sincro_core::business::handle::BusinessNumberHandle;
use sincro_core::business::store::{self, Credentials};
use sincro_core::business::subscription;
use sincro_core::secret::Secret;
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNumber {
    phone_number_id: String,
    waba_id: String,
    access_token: Secret,
    app_secret: Secret,
    verify_token: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberPatch {
    access_token: Secret,
    app_secret: Option<Secret>,
    verify_token: Option<Secret>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    let create = warp::path!("v1" / "business" / "numbers")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(json_body::<NewNumber>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "business.number.connect",
                None,
                create(p, body, ctx),
            )
        });
    let list = warp::path!("v1" / "business" / "numbers")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::ReadOrSessions))
        .and(with_ctx(ctx.clone()))
        .then(|p, ctx| respond(list(p, ctx)));
    let one = warp::path!("v1" / "business" / "numbers" / Uuid)
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::ReadOrSessions))
        .and(with_ctx(ctx.clone()))
        .then(|id, p, ctx| respond(get(id, p, ctx)));
    let patch = warp::path!("v1" / "business" / "numbers" / Uuid)
        .and(warp::patch())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(json_body::<NumberPatch>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|id: Uuid, p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "business.number.credentials",
                Some(id.to_string()),
                patch(id, p, body, ctx),
            )
        });
    let delete = warp::path!("v1" / "business" / "numbers" / Uuid)
        .and(warp::delete())
        .and(auth::principal(ctx.clone(), Need::Sessions))
        .and(with_ctx(ctx))
        .then(|id: Uuid, p: Principal, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "business.number.remove",
                Some(id.to_string()),
                remove(id, p, ctx),
            )
        });
    create
        .or(list)
        .unify()
        .or(one)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .boxed()
}

fn graph_settings(ctx: &AppContext) -> GraphSettings {
    GraphSettings {
        base: ctx.config.graph_api_base.clone(),
        version: ctx.config.graph_api_version.clone(),
    }
}

/// The running actor of the user's number `connection_id` (404 for another user's).
pub async fn number_actor(
    ctx: &AppContext,
    p: &Principal,
    connection_id: Uuid,
) -> Result<BusinessNumberHandle, ApiError> {
    let client = ctx.pool.get().await?;
    store::get_for_user(&client, p.usuario_id, connection_id)
        .await?
        .ok_or(ApiError::NotFound("business number"))?;
    Ok(ctx
        .actors
        .children
        .business_handle()
        .number(connection_id)
        .await?)
}

/// The connection a route acts on: the one given, else the user's only number.
pub async fn resolve_connection(
    ctx: &AppContext,
    p: &Principal,
    given: Option<Uuid>,
) -> Result<Uuid, ApiError> {
    if let Some(id) = given {
        return Ok(id);
    }
    let client = ctx.pool.get().await?;
    store::only_number(&client, p.usuario_id)
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable(
                "connection_id_required",
                "give connection_id: the user has no Business number or more than one",
            )
        })
}

async fn create(p: Principal, body: NewNumber, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let creds = Credentials {
        phone_number_id: body.phone_number_id,
        waba_id: body.waba_id,
        access_token: body.access_token,
        app_secret: body.app_secret,
        verify_token: body.verify_token,
    };
    let done = connect::connect(
        &ctx.shared,
        &ctx.actors.children.business,
        p.usuario_id,
        &creds,
        Target::New,
    )
    .await?;
    let id = done.connection_id;
    let client = ctx.pool.get().await?;
    let mut number = store::get_for_user(&client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("business number"))?;
    let details = json!({"phone_number_id": creds.phone_number_id, "waba_id": creds.waba_id, "webhooks": done.webhooks});
    if let Some(w) = done.webhooks {
        number["webhooks"] = w;
    }
    Ok(audit::note(
        json_reply(StatusCode::CREATED, &number),
        id,
        details,
    ))
}

async fn list(p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let items = store::list_for_user(&client, p.usuario_id).await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": null}),
    ))
}

async fn get(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let mut number = store::get_for_user(&client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("business number"))?;
    // What Meta reports about the account's webhooks, asked with the number's token.
    if let Some(record) = store::load(&client, &ctx.sealer, id).await? {
        let expected = ctx.config.public_url.as_deref().map(connect::callback_uri);
        number["webhook_configuration"] = connect::webhook_configuration(
            &graph_settings(&ctx),
            record.access_token.expose(),
            &record.waba_id,
            expected.as_deref(),
        )
        .await;
    }
    Ok(json_reply(StatusCode::OK, &number))
}

async fn patch(
    id: Uuid,
    p: Principal,
    body: NumberPatch,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let mut creds = store::credentials(&client, &ctx.sealer, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("business number"))?;
    creds.access_token = body.access_token;
    if let Some(s) = body.app_secret {
        creds.app_secret = s;
    }
    if let Some(s) = body.verify_token {
        creds.verify_token = s;
    }
    drop(client);
    connect::connect(
        &ctx.shared,
        &ctx.actors.children.business,
        p.usuario_id,
        &creds,
        Target::Existing(id),
    )
    .await?;
    get(id, p, ctx).await
}

async fn remove(id: Uuid, p: Principal, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    store::get_for_user(&client, p.usuario_id, id)
        .await?
        .ok_or(ApiError::NotFound("business number"))?;
    // Loaded before the secrets are dropped: the token unsubscribes the app afterwards.
    let record = store::load(&client, &ctx.sealer, id)
        .await?
        .ok_or(ApiError::NotFound("business number"))?;
    // A number whose actor did not confirm its stop is removed all the same (its actor reads
    // the row anew on restart); only a supervisor that is restarting is worth a retry.
    if let Err(e @ BusinessSupervisorError::NotRunning) =
        ctx.actors.children.business_handle().disconnect(id).await
    {
        return Err(e.into());
    }
    if !store::deactivate(&client, p.usuario_id, id).await? {
        return Err(ApiError::NotFound("business number"));
    }
    connect::reload_elsewhere(&ctx.shared, id).await;
    let webhooks = subscription::release(&client, &graph_settings(&ctx), &record).await?;
    Ok(audit::note(
        json_reply(
            StatusCode::OK,
            &json!({"id": id, "removed": true, "webhooks": webhooks}),
        ),
        id,
        json!({"webhooks": webhooks}),
    ))
}
