//! Black-box integration tests: every test starts a real `roost` binary on a free port with a
//! temporary data dir and talks HTTP to it. One binary, modules per area, so it links once.
//! Spec conformance lives in `complement-tests/` (also run against Synapse); these tests cover
//! what is Roost's own: config, storage durability, limits, the admin CLI.

mod harness;

mod accounts;
mod auth_rules;
mod bad_input;
mod config;
mod restart;
mod rooms;
mod sync;
mod tls;
mod websocket;
