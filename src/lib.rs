//! sealed-redis-session: an express-session store over Redis whose values are sealed with
//! AES-256-GCM, as a Node.js native addon.
//!
//! The core modules take and return plain Rust types, so `cargo test` covers them without
//! Node; only [`binding`] knows about Node-API.

#![deny(missing_docs)]

pub mod backend;
#[cfg(feature = "node")]
pub mod batch_call;
pub mod batch_queue;
pub mod batch_wire;
#[cfg(feature = "node")]
pub mod binding;
pub mod busy_poll;
pub mod config;
pub mod connection;
pub mod cookie_header;
pub mod counters;
pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod inspect;
pub mod json_join;
pub mod json_split;
pub mod keys;
pub mod limits;
pub mod migration;
pub mod nonce;
pub mod resp;
pub mod resp_connection;
pub mod rotation;
pub mod session_events;
pub mod shape_registry;
pub mod signature;
pub mod store;
pub mod subscription_readiness;
pub mod target;
#[cfg(test)]
mod test_redis;
pub mod ttl;
pub mod user_index;
pub mod user_sessions;

pub use error::{Result, StoreError};
