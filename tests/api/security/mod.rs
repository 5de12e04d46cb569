//! Security hardening: keys with scopes, expiry and revocation across nodes; floods refused
//! before any lookup and bodies capped while they stream; served media that cannot run in a
//! browser and signed media links; the SSRF guard on media links; the audit log; property
//! tests of the parsers.

mod audit;
mod fuzz;
mod keys;
mod limits;
mod media;
mod ssrf;

use crate::helpers::TestApp;
use serde_json::{Value, json};

/// Makes a key through `POST /v1/keys` with `key`; returns (id, secret).
pub async fn make_key(app: &TestApp, key: &str, body: Value) -> (String, String) {
    let resp = app.post("/v1/keys", key).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

pub fn scoped(name: &str, scopes: &[&str]) -> Value {
    json!({"name": name, "scopes": scopes})
}
