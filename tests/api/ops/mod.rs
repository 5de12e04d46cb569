//! Operations: alerts and their delivery, the OpenAPI document against the router, metrics
//! and the example Prometheus rules, request ids, and logs that never carry content or
//! secrets.

mod alerts;
mod lite_alerts;
mod logs;
mod metrics;
mod openapi;
mod schema;

pub use logs::SERVICES;
