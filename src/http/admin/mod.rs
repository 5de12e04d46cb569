//! `/admin`: the admin panel, a single-page app embedded in the binary (plain JavaScript
//! modules and one stylesheet under `assets/`, no build step, nothing fetched from elsewhere).
//! It works on the public API and the event stream alone, with the API key the person typed
//! kept in `sessionStorage` and sent in `Authorization` headers (and as a WebSocket
//! subprotocol to the stream), never in a URL.
//!
//! Every file is served with a strict Content-Security-Policy: scripts, styles, images and
//! connections only from this origin (images also from `blob:`, where the QR codes fetched
//! with the key are shown), no inline script or style, no frames, no plugins, no forms posted
//! elsewhere. The page renders every string it gets from the API as text (`textContent`),
//! never as HTML, so a contact naming themselves `<img onerror=…>` stays text.

use warp::Filter;
use warp::filters::path::FullPath;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

/// The policy every panel file is served with.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The embedded files: name under `/admin/`, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
    ("app.js", JS, include_bytes!("assets/app.js")),
    ("api.js", JS, include_bytes!("assets/api.js")),
    ("dom.js", JS, include_bytes!("assets/dom.js")),
    ("i18n.js", JS, include_bytes!("assets/i18n.js")),
    ("tree.js", JS, include_bytes!("assets/tree.js")),
    ("lite.js", JS, include_bytes!("assets/lite.js")),
    ("business.js", JS, include_bytes!("assets/business.js")),
    ("queue.js", JS, include_bytes!("assets/queue.js")),
    ("alerts.js", JS, include_bytes!("assets/alerts.js")),
    ("events.js", JS, include_bytes!("assets/events.js")),
    ("users.js", JS, include_bytes!("assets/users.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

pub fn routes() -> warp::filters::BoxedFilter<(Response,)> {
    // `/admin` and `/admin/` alike (warp's path filters tell them apart).
    let index = warp::path::full()
        .and(warp::get())
        .and_then(|path: FullPath| async move {
            match path.as_str() {
                "/admin" | "/admin/" => Ok(asset("index.html")),
                _ => Err(warp::reject::not_found()),
            }
        });
    let file = warp::path!("admin" / String)
        .and(warp::get())
        .map(|name: String| asset(&name));
    index.or(file).unify().boxed()
}

/// One embedded file with the panel's headers, or a JSON 404.
fn asset(name: &str) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return super::error::ApiError::NotFound("file").into_response();
    };
    let mut resp = Response::new((*body).into());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    for (k, v) in [
        ("content-type", *kind),
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cache-control", "no-cache"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}
