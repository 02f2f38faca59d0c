//! admind: an account-administration daemon. See ARCHITECTURE.md for the map.

pub mod alloc_budget;
pub mod app;
pub mod audit;
pub mod config;
pub mod console;
pub mod export;
/// The domain core, a crate of its own (`crates/core`) so that the compiler,
/// not a grep, keeps I/O out of it.
pub use admind_core as domain;
pub mod hooks;
pub mod http;
pub mod logsafe;
pub mod mail;
pub mod metrics;
pub mod outbound;
pub mod password_gate;
pub mod policy;
pub mod policy_cli;
pub mod queue;
pub mod ratelimit;
pub mod replicas;
pub mod scim;
pub mod secret;
pub mod server;
pub mod store;
pub mod webhooks;

/// Every binary linking admind counts heap bytes per thread (the script
/// sandbox's memory limit; see `alloc_budget`).
#[global_allocator]
static ALLOCATOR: alloc_budget::CountingAllocator = alloc_budget::CountingAllocator;
