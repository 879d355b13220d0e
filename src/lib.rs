//! Roost: a federated Matrix homeserver.
//!
//! Data flows one way: HTTP ([`http`], [`api`]) → services ([`users`], later rooms, sync,
//! federation) → [`storage`]. `docs/architecture.md` is the map.

pub mod api;
pub mod config;
pub mod error;
pub mod events;
pub mod http;
pub mod rooms;
pub mod server;
pub mod services;
pub mod startup_memory;
pub mod storage;
pub mod sync;
pub mod users;
pub mod util;
