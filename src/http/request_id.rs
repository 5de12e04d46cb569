//! Request ids and per-route metrics. Every request runs in a `request` span carrying its
//! `request_id` (the client's `X-Request-Id` when it is a sane token, else a new UUID) and its
//! route template, so every log line written while serving it carries both; the id is echoed
//! in the response's `X-Request-Id`. Each response counts in `sincro_http_requests_total` and
//! `sincro_http_request_duration_seconds` under its route template (`/v1/messages/{id}`, never
//! the path itself: paths may hold phone numbers), its method and status.

use super::route_table;
use std::convert::Infallible;
use tracing::field::Empty;
use warp::Filter;
use warp::http::HeaderValue;
use warp::reply::Response;

pub const HEADER: &str = "x-request-id";

/// The request's id, once accepted or generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A client's id is kept when it is 1 to 128 characters of `A-Z a-z 0-9 - _ . : /`; anything
/// else (too long, spaces, control characters) is replaced so logs stay one clean line.
fn accept(given: Option<&str>) -> String {
    match given {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b)) =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// The span every request runs in (its `request_id` is recorded by [`request_id`]).
pub fn span(info: warp::trace::Info<'_>) -> tracing::Span {
    let route = route_table::template(info.method().as_str(), info.path());
    tracing::info_span!("request", request_id = Empty, method = %info.method(), route = %route)
}

/// The request's id, recorded in the current `request` span.
pub fn request_id() -> impl Filter<Extract = (RequestId,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: warp::http::HeaderMap| {
        let id = accept(headers.get(HEADER).and_then(|v| v.to_str().ok()));
        tracing::Span::current().record("request_id", id.as_str());
        RequestId(id)
    })
}

/// Echoes the id on the response.
pub fn echo(id: RequestId, mut resp: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert(HEADER, value);
    }
    resp
}

/// Counts one answered request under its `route` template (the access log's hook).
pub fn observe(info: &warp::log::Info<'_>, route: &'static str) {
    let method = info.method().as_str().to_string();
    metrics::counter!(
        "sincro_http_requests_total",
        "route" => route,
        "method" => method.clone(),
        "status" => info.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!(
        "sincro_http_request_duration_seconds",
        "route" => route,
        "method" => method
    )
    .record(info.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::accept;

    #[test]
    fn sane_ids_are_kept_others_replaced() {
        assert_eq!(accept(Some("req-1.a:b/c_d")), "req-1.a:b/c_d");
        for bad in ["", "with space", "new\nline", &"x".repeat(129)] {
            let id = accept(Some(bad));
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok());
        }
        assert!(uuid::Uuid::parse_str(&accept(None)).is_ok());
    }
}
