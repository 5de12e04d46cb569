//! Deploying for real: a stable node name kept in DATA_DIR and one daemon per DATA_DIR; TLS
//! to PostgreSQL.

mod business;
mod doctor;
mod identity;
mod install;
mod tls;
