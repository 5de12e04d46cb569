//! HTTP routing. One catch-all warp filter hands method, path, query, headers and body to
//! `dispatch`, which routes by hand: the Graph API lives under a version prefix
//! (`/v23.0/...`), so objects of every kind share `/{version}/{id}` and only a lookup tells a
//! phone number from a WABA, a media object or a template; routing by hand also lets every
//! failure come back in Meta's error shape instead of warp's rejections.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use super::control;
use super::errors::{GraphError, json_response};
use super::media;
use super::phone;
use super::send;
use super::state::Sim;
use super::templates;

/// The whole simulator as one warp filter.
pub fn routes(
    sim: Arc<Sim>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::any()
        .map(move || Arc::clone(&sim))
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .and_then(
            |sim: Arc<Sim>,
             method: Method,
             path: warp::path::FullPath,
             query: String,
             headers: HeaderMap,
             body: Bytes| async move {
                Ok::<Response, Infallible>(
                    dispatch(sim, method, path.as_str(), &query, &headers, body).await,
                )
            },
        )
}

/// `v<major>.<minor>`.
fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let Some((a, b)) = rest.split_once('.') else {
        return false;
    };
    !a.is_empty()
        && !b.is_empty()
        && a.chars().all(|c| c.is_ascii_digit())
        && b.chars().all(|c| c.is_ascii_digit())
}

fn parse_query(raw: &str) -> Vec<(String, String)> {
    if raw.is_empty() {
        return Vec::new();
    }
    reqwest::Url::parse(&format!("http://x/?{raw}"))
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

async fn dispatch(
    sim: Arc<Sim>,
    method: Method,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let query = parse_query(raw_query);
    match segments.as_slice() {
        ["sim", rest @ ..] => control::handle(&sim, &method, rest, &query, &body).await,
        ["whatsapp_business", "attachments"] if method == Method::GET => {
            media::download(&sim, &query, bearer(headers).as_deref())
        }
        [version, rest @ ..] if is_version(version) => {
            let token = bearer(headers).or_else(|| {
                query
                    .iter()
                    .find(|(k, _)| k == "access_token")
                    .map(|(_, v)| v.clone())
            });
            let mut res = if body.len() > sim.config.max_body_bytes {
                let mut e = GraphError::param("The request body is too large.");
                e.http_status = 413;
                e.into_response()
            } else {
                graph(
                    &sim,
                    &method,
                    version,
                    rest,
                    &query,
                    token.as_deref(),
                    headers,
                    &body,
                )
                .await
                .unwrap_or_else(GraphError::into_response)
            };
            if let Ok(v) = HeaderValue::from_str(version) {
                res.headers_mut().insert("facebook-api-version", v);
            }
            if let Ok(v) = HeaderValue::from_str(&super::ids::fbtrace_id()) {
                res.headers_mut().insert("x-fb-trace-id", v);
            }
            res
        }
        _ => GraphError::new(2500, format!("Unknown path components: {path}")).into_response(),
    }
}

fn ok(v: Value) -> Result<Response, GraphError> {
    Ok(json_response(StatusCode::OK, &v))
}

/// Routes one Graph call (after the version prefix).
#[allow(clippy::too_many_arguments)]
async fn graph(
    sim: &Arc<Sim>,
    method: &Method,
    version: &str,
    rest: &[&str],
    query: &[(String, String)],
    token: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, GraphError> {
    let token = sim.lock().check_token(token)?;
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let m = method.as_str().to_ascii_lowercase();
    match rest {
        ["debug_token"] if method == Method::GET => {
            let st = sim.lock();
            ok(phone::debug_token(sim, &st, q("input_token").as_deref())?)
        }
        [id] => object(sim, method, id, &token, query),
        [id, "messages"] => {
            let account = sim
                .lock()
                .number_for(&token, id)
                .cloned()
                .ok_or_else(|| GraphError::unknown_object(&m, id))?;
            if method != Method::POST {
                return Err(GraphError::unknown_object(&m, id));
            }
            Ok(send::handle(sim, &account, body).await)
        }
        [id, "media"] => {
            let owned = sim.lock().number_for(&token, id).is_some();
            if !owned || method != Method::POST {
                return Err(GraphError::unknown_object(&m, id));
            }
            let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
            ok(media::upload(sim, id, ct, body)?)
        }
        [id, "register"] | [id, "deregister"] => {
            let owned = sim.lock().number_for(&token, id).is_some();
            if !owned || method != Method::POST {
                return Err(GraphError::unknown_object(&m, id));
            }
            ok(json!({"success": true}))
        }
        [
            id,
            edge @ ("message_templates" | "phone_numbers" | "subscribed_apps"),
        ] => {
            let accounts: Vec<_> = sim
                .lock()
                .waba_for(&token, id)
                .into_iter()
                .cloned()
                .collect();
            if accounts.is_empty() {
                return Err(GraphError::unknown_object(&m, id));
            }
            let refs: Vec<_> = accounts.iter().collect();
            match (*edge, method.as_str()) {
                ("message_templates", "GET") => {
                    let self_url = format!("{}/{version}/{id}/message_templates", sim.base_url);
                    ok(templates::list(sim, id, query, &self_url)?)
                }
                ("message_templates", "POST") => {
                    let v: Value = serde_json::from_slice(body).map_err(|e| {
                        GraphError::param(format!("The request body is not valid JSON: {e}"))
                    })?;
                    ok(templates::create(sim, id, &v)?)
                }
                ("message_templates", "DELETE") => ok(templates::delete(sim, id, query)?),
                ("phone_numbers", "GET") => ok(phone::phone_numbers(sim, &refs)),
                ("subscribed_apps", "GET") => ok(phone::subscriptions(sim, &refs)),
                ("subscribed_apps", "POST") => ok(phone::subscribe(sim, id, body).await?),
                ("subscribed_apps", "DELETE") => ok(phone::unsubscribe(sim, id)),
                _ => Err(GraphError::unknown_object(&m, id)),
            }
        }
        [id, edge, ..] => {
            let known = {
                let st = sim.lock();
                st.accounts
                    .values()
                    .any(|a| a.phone_number_id == *id || a.waba_id == *id)
            };
            if known {
                Err(GraphError::new(
                    2500,
                    format!("Unknown path components: /{edge}"),
                ))
            } else {
                Err(GraphError::unknown_object(&m, id))
            }
        }
        [] => Err(GraphError::new(2500, "Unknown path components: /")),
    }
}

/// `GET|DELETE /{id}` for a phone number, WABA, media object or template.
fn object(
    sim: &Arc<Sim>,
    method: &Method,
    id: &str,
    token: &str,
    query: &[(String, String)],
) -> Result<Response, GraphError> {
    let m = method.as_str().to_ascii_lowercase();
    let fields = query
        .iter()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.clone());
    enum Found {
        Number(super::state::Account),
        Waba,
        Media,
        Template(Value),
        Nothing,
    }
    let found = {
        let st = sim.lock();
        if let Some(a) = st.number_for(token, id) {
            Found::Number(a.clone())
        } else if !st.waba_for(token, id).is_empty() {
            Found::Waba
        } else if let Some(md) = st.media.get(id) {
            let scope = query
                .iter()
                .find(|(k, _)| k == "phone_number_id")
                .map(|(_, v)| v.as_str());
            if st.number_for(token, &md.owner).is_some() && scope.is_none_or(|p| p == md.owner) {
                Found::Media
            } else {
                Found::Nothing
            }
        } else if let Some(t) = st
            .templates
            .iter()
            .find(|t| t.id.to_string() == id && !st.waba_for(token, &t.waba_id).is_empty())
        {
            Found::Template(t.to_json())
        } else {
            Found::Nothing
        }
    };
    match (found, method.as_str()) {
        (Found::Number(a), "GET") => ok(phone::number_info(sim, &a, fields.as_deref())?),
        (Found::Waba, "GET") => ok(phone::waba_info(sim, id)),
        (Found::Media, "GET") => ok(media::info(sim, id)),
        (Found::Media, "DELETE") => {
            let mut st = sim.lock();
            st.media.remove(id);
            st.media_urls.retain(|_, (mid, _)| mid != id);
            ok(json!({"success": true}))
        }
        (Found::Template(t), "GET") => {
            let Some(f) = fields.filter(|f| !f.trim().is_empty()) else {
                return ok(t);
            };
            let mut out = serde_json::Map::new();
            out.insert("id".into(), t["id"].clone());
            for name in f.split(',').map(str::trim) {
                if let Some(v) = t.get(name) {
                    out.insert(name.to_string(), v.clone());
                }
            }
            ok(Value::Object(out))
        }
        _ => Err(GraphError::unknown_object(&m, id)),
    }
}
