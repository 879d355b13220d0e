//! Thin HTTP handlers: parse (ruma types or [`crate::http::json::JsonBody`]), call a service,
//! answer. One file per spec module.

pub mod admin;
pub mod client;
pub mod federation;
