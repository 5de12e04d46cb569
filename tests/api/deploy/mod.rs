//! Deploying for real: a stable node name kept in DATA_DIR and one daemon per DATA_DIR, TLS to
//! PostgreSQL, `doctor` and the Chromium check, installing on an existing CRM database,
//! single-number installs and webhooks wired with PUBLIC_URL, the container and service files.

mod business;
mod container;
mod doctor;
mod identity;
mod install;
mod tls;
