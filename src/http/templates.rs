//! Business templates: `GET /v1/templates` (stored rows, `?connection_id=&status=`),
//! `POST /v1/templates` (created at Meta through the number's actor, stored PENDING; Meta's
//! review arrives by webhook), `DELETE /v1/templates/{name}` (`?connection_id=&language=`) and
//! `POST /v1/templates/sync` (re-read from Meta). `connection_id` may be left out when the user
//! has exactly one Business number.

use super::audit;
use super::auth::{self, Need};
use super::business::{number_actor, resolve_connection};
use super::error::ApiError;
use super::{json_body, json_reply, respond, with_ctx};
use crate::context::AppContext;
use serde::Deserialize;
use serde_json::{Value, json};
use sincro_core::business::{store, templates};
use sincro_core::store::api_keys::Principal;
use std::sync::Arc;
use uuid::Uuid;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    connection_id: Option<Uuid>,
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    connection_id: Option<Uuid>,
    name: String,
    language: String,
    category: String,
    components: Vec<Value>,
    parameter_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    connection_id: Option<Uuid>,
    language: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    connection_id: Option<Uuid>,
}

pub fn routes(ctx: Arc<AppContext>) -> warp::filters::BoxedFilter<(Response,)> {
    let limit = ctx.config.max_body_bytes;
    let list = warp::path!("v1" / "templates")
        .and(warp::get())
        .and(auth::principal(ctx.clone(), Need::Read))
        .and(warp::query::<ListQuery>())
        .and(with_ctx(ctx.clone()))
        .then(|p, q, ctx| respond(list(p, q, ctx)));
    let create = warp::path!("v1" / "templates")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(json_body::<NewTemplate>(limit))
        .and(with_ctx(ctx.clone()))
        .then(|p: Principal, body, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "template.create",
                None,
                create(p, body, ctx),
            )
        });
    let sync = warp::path!("v1" / "templates" / "sync")
        .and(warp::post())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(super::capped::body(limit))
        .and(with_ctx(ctx.clone()))
        .then(
            move |p: Principal, body: Option<bytes::Bytes>, ctx: Arc<AppContext>| async move {
                match body {
                    None => super::capped::too_large(limit),
                    Some(body) => {
                        audit::respond(
                            ctx.clone(),
                            p.clone(),
                            "template.sync",
                            None,
                            sync(p, body, ctx),
                        )
                        .await
                    }
                }
            },
        );
    let delete = warp::path!("v1" / "templates" / String)
        .and(warp::delete())
        .and(auth::principal(ctx.clone(), Need::Send))
        .and(warp::query::<DeleteQuery>())
        .and(with_ctx(ctx))
        .then(|name: String, p: Principal, q, ctx: Arc<AppContext>| {
            audit::respond(
                ctx.clone(),
                p.clone(),
                "template.delete",
                Some(name.clone()),
                remove(name, p, q, ctx),
            )
        });
    list.or(create)
        .unify()
        .or(sync)
        .unify()
        .or(delete)
        .unify()
        .boxed()
}

async fn list(p: Principal, q: ListQuery, ctx: Arc<AppContext>) -> Result<Response, ApiError> {
    let client = ctx.pool.get().await?;
    let items =
        templates::list(&client, p.usuario_id, q.connection_id, q.status.as_deref()).await?;
    Ok(json_reply(
        StatusCode::OK,
        &json!({"items": items, "next_cursor": null}),
    ))
}

async fn create(
    p: Principal,
    body: NewTemplate,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let meta = templates::create_body(&templates::NewTemplate {
        name: &body.name,
        language: &body.language,
        category: &body.category,
        components: &body.components,
        parameter_format: body.parameter_format.as_deref(),
    })?;
    let connection_id = resolve_connection(&ctx, &p, body.connection_id).await?;
    let actor = number_actor(&ctx, &p, connection_id).await?;
    let name = body.name.clone();
    let created = actor.create_template(meta).await?;
    Ok(audit::note(
        json_reply(StatusCode::CREATED, &created),
        name,
        json!({"connection_id": connection_id}),
    ))
}

async fn remove(
    name: String,
    p: Principal,
    q: DeleteQuery,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    if !templates::valid_name(&name) {
        return Err(ApiError::NotFound("template"));
    }
    let connection_id = resolve_connection(&ctx, &p, q.connection_id).await?;
    let actor = number_actor(&ctx, &p, connection_id).await?;
    let client = ctx.pool.get().await?;
    let known = templates::known(
        &client,
        p.usuario_id,
        connection_id,
        &name,
        q.language.as_deref(),
    )
    .await?;
    drop(client);
    if !known {
        return Err(ApiError::NotFound("template"));
    }
    let language = q.language.clone();
    let n = name.clone();
    actor.delete_template(n, language).await?;
    use warp::Reply;
    Ok(audit::note(
        warp::reply::with_status(warp::reply::reply(), StatusCode::NO_CONTENT).into_response(),
        name,
        json!({"connection_id": connection_id, "language": q.language}),
    ))
}

/// Syncs one number, or every number of the user when none is named.
async fn sync(
    p: Principal,
    body: bytes::Bytes,
    ctx: Arc<AppContext>,
) -> Result<Response, ApiError> {
    let req: SyncRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SyncRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("request body is not valid: {e}"))
        })?
    };
    let ids: Vec<Uuid> = match req.connection_id {
        Some(id) => vec![id],
        None => {
            let client = ctx.pool.get().await?;
            store::list_for_user(&client, p.usuario_id)
                .await?
                .iter()
                .filter_map(|n| n["id"].as_str().and_then(|s| s.parse().ok()))
                .collect()
        }
    };
    let mut results = Vec::new();
    for id in ids {
        let actor = number_actor(&ctx, &p, id).await?;
        let report = actor.sync_templates().await?;
        results.push(json!({"connection_id": id, "report": report}));
    }
    Ok(json_reply(StatusCode::OK, &json!({"items": results})))
}
