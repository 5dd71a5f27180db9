//! sunset: knows which systems use which AI models, and retires models safely.
//! See ARCHITECTURE.md for the map of this crate.

#![forbid(unsafe_code)]

pub mod app;
pub mod attest;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod export;
pub mod failpoints;
pub mod graph;
pub mod graphql;
pub mod http;
pub mod ingest;
pub mod key_file;
pub mod memory;
pub mod prometheus;
pub mod rfc3339;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod supervisor;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod vault;
