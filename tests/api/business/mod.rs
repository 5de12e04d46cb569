//! Business numbers on Meta's Cloud API, against the in-process Graph simulator over real
//! HTTP: connecting (credential validation), webhooks (every fixture case, signatures,
//! duplicates, reordering), sending (each error class of the reference table), templates,
//! media and throughput levels.

mod media;
mod numbers;
mod sending;
mod templates;
mod throughput;
mod webhooks;
