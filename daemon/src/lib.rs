//! Tidemark: a workflow scheduler whose tasks are sandboxed WebAssembly
//! components.
//!
//! - [`executor`] runs one task attempt under hard limits.
//! - [`store`] is the only module that knows the storage engine.
//! - [`harness`] runs a plugin locally without a daemon (`tidemark task run`).
//! - [`cli`] is the command line; `main.rs` only calls it.

pub mod api;
pub mod backfill;
pub mod blob;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod egress;
pub mod engine;
pub mod executor;
pub mod gap;
pub mod harness;
pub mod metrics;
pub mod notify;
pub mod planner;
pub mod quota;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tenancy;
pub mod workflow;
