//! Storage: typed tables over an ordered key-value engine.
//!
//! * [`engine`] — the narrow interface every engine provides (get, atomic batch, ordered scans).
//!   Only [`rocks`] implements it today; a shared engine for several Roost nodes can stand in
//!   later without touching the services.
//! * [`keys`] — key encoding whose byte order equals logical order (big-endian integers,
//!   `0xFF`-separated strings), so prefix and range scans work.
//! * [`table`] — a typed view of one column family (JSON values).
//! * [`stream`] — the global stream-position counter with a *retired frontier*: sync tokens only
//!   ever name positions whose writes have all committed.
//!
//! Tables are declared by the module that owns them (for example `users::tables`); this module
//! opens them all.

pub mod engine;
pub mod keys;
pub mod rocks;
pub mod stream;
pub mod stream_marks;
pub mod table;

pub use engine::{Batch, KvEngine, StorageError};
pub use table::Table;

/// Every column family Roost uses, gathered from the modules that own them.
pub fn all_tables() -> Vec<&'static str> {
    let mut names = vec![META];
    names.extend_from_slice(crate::users::tables::ALL);
    names.extend_from_slice(crate::rooms::tables::ALL);
    names.extend_from_slice(crate::sync::tables::ALL);
    names
}

/// Small server-wide values: `name (utf-8) → bytes`, e.g. the stream high-water mark.
pub const META: &str = "meta";
