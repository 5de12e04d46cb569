//! The sincro-whatsapp daemon as a library: configuration, the embedded PostgreSQL default, the
//! HTTP front and the start-up and shutdown of the supervision tree. `main.rs` only parses the
//! command line; tests build an [`app::Application`] on port 0.

/// mimalloc instead of the system's malloc, for the daemon and for every harness and test that
/// links this library (so benchmarks measure what runs): profiled under event-webhook load,
/// glibc's malloc and free took about 9 % of the machine's CPU (many small, short-lived
/// buffers per request, freed on other worker threads than they were made on).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod chromium;
pub mod cli;
pub mod config;
pub mod context;
pub mod data_dir;
pub mod database;
pub mod demo;
pub mod doctor;
pub mod embedded_pg;
pub mod env_number;
pub mod http;
pub mod logging;
pub mod node_identity;
