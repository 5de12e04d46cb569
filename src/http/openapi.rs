//! The OpenAPI 3.1 document, served at `GET /openapi.json`. It is kept in the repository as
//! one fragment per group of routes (`docs/openapi/<group>.json`, each with its `paths` and
//! the `components.schemas` only it uses) on top of `docs/openapi/base.json` (info, security,
//! shared schemas such as `Error`). Documenting a new group is a new fragment plus one line in
//! [`FRAGMENTS`]; a test fails on any route served but not documented, or documented but not
//! served, and checks sample responses against their schemas.

use serde_json::{Map, Value};
use std::sync::OnceLock;
use warp::Filter;
use warp::reply::Response;

const BASE: &str = include_str!("../../docs/openapi/base.json");

/// `(group, fragment)`: one per file of `src/http/` that declares routes.
const FRAGMENTS: &[(&str, &str)] = &[
    ("health", include_str!("../../docs/openapi/health.json")),
    ("status", include_str!("../../docs/openapi/status.json")),
    ("keys", include_str!("../../docs/openapi/keys.json")),
    ("me", include_str!("../../docs/openapi/me.json")),
    ("leads", include_str!("../../docs/openapi/leads.json")),
    (
        "conversations",
        include_str!("../../docs/openapi/conversations.json"),
    ),
    ("phone", include_str!("../../docs/openapi/phone.json")),
    ("stream", include_str!("../../docs/openapi/stream.json")),
    ("lite", include_str!("../../docs/openapi/lite.json")),
    ("messages", include_str!("../../docs/openapi/messages.json")),
    ("business", include_str!("../../docs/openapi/business.json")),
    ("webhooks", include_str!("../../docs/openapi/webhooks.json")),
    ("inbound", include_str!("../../docs/openapi/inbound.json")),
    (
        "templates",
        include_str!("../../docs/openapi/templates.json"),
    ),
    ("media", include_str!("../../docs/openapi/media.json")),
    ("alerts", include_str!("../../docs/openapi/alerts.json")),
    (
        "messages_batch",
        include_str!("../../docs/openapi/messages_batch.json"),
    ),
    ("contacts", include_str!("../../docs/openapi/contacts.json")),
    ("users", include_str!("../../docs/openapi/users.json")),
    ("queue", include_str!("../../docs/openapi/queue.json")),
    ("admin", include_str!("../../docs/openapi/admin.json")),
    ("hooks", include_str!("../../docs/openapi/hooks.json")),
];

/// Every HTTP method an OpenAPI path item may hold.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The assembled document. A fragment that is not JSON or defines a path or schema twice is a
/// build mistake: it panics (the route test runs this).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc: Value = serde_json::from_str(BASE).expect("docs/openapi/base.json is JSON");
        for (group, text) in FRAGMENTS {
            let fragment: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("docs/openapi/{group}.json is not JSON: {e}"));
            merge(&mut doc, "paths", &fragment["paths"], group);
            let schemas = &fragment["components"]["schemas"];
            let components = doc["components"]
                .as_object_mut()
                .expect("base.json has components");
            let mut holder = Value::Object(std::mem::take(components));
            merge(&mut holder, "schemas", schemas, group);
            *components = holder.as_object().cloned().unwrap_or_default();
        }
        doc
    })
}

fn merge(doc: &mut Value, key: &str, add: &Value, group: &str) {
    let Some(add) = add.as_object() else {
        return;
    };
    let target = doc
        .as_object_mut()
        .expect("an object")
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .expect("an object");
    for (name, value) in add {
        if target.insert(name.clone(), value.clone()).is_some() {
            panic!("docs/openapi/{group}.json: {key} {name} is defined twice");
        }
    }
}

/// Every documented `(METHOD, path template)`.
pub fn operations() -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = document()["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if item.get(method).is_some() {
                    out.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    out
}

/// `GET /openapi.json`.
pub fn routes() -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("openapi.json")
        .and(warp::get())
        .map(|| super::json_reply(warp::http::StatusCode::OK, document()))
        .boxed()
}
