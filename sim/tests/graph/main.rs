//! Integration tests of the Meta Graph simulator over real HTTP on 127.0.0.1: a small warp
//! server in the test plays the daemon's webhook endpoint (handshake + signed POSTs).

mod accounts;
mod faults;
mod fixture;
mod media;
mod messages;
mod templates;
mod throughput;
