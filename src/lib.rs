//! admind: an account-administration daemon. See ARCHITECTURE.md for the map.

pub mod config;
pub mod domain;
pub mod hooks;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod policy_cli;
pub mod ratelimit;
pub mod secret;
pub mod server;
pub mod store;
pub mod webhooks;
