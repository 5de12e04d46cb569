//! The one integration test binary: real PostgreSQL, real HTTP and WebSocket on loopback.

mod auth;
mod business;
mod cli;
mod config;
mod deploy;
mod embedded_pg;
mod errors;
mod helpers;
mod identity;
mod inbound;
mod ingest;
mod lite;
mod lite_durable;
mod lite_isolation;
mod lite_nodes;
mod migrations;
mod ownership;
mod process;
mod queue;
mod rebalance;
mod sealing;
mod security;
mod shutdown;
mod stream;
mod supervision;
