//! Storage: typed tables over an ordered key-value engine.
//!
//! * [`engine`] — the narrow interface every engine provides (get, atomic batch, ordered scans).
//!   Only [`rocks`] implements it today; a shared engine for several Roost nodes can stand in
//!   later without touching the services.
//! * [`keys`] — key encoding whose byte order equals logical order (big-endian integers,
//!   `0xFF`-separated strings), so prefix and range scans work.
//! * [`table`] — a typed view of one table (JSON values).
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
pub use rocks::Family;
pub use table::Table;

/// Where every table lives: a column family per area of Roost, named apart from every table
/// (`rocks.rs` says why not one per table). Each area's tables are declared by the module that
/// owns them; the server-wide ones live in RocksDB's default family.
pub fn families() -> Vec<Family> {
    vec![
        Family::default_with(&[META]),
        Family {
            name: "area:users",
            tables: crate::users::tables::ALL,
        },
        Family {
            name: "area:rooms",
            tables: crate::rooms::tables::ALL,
        },
        Family {
            name: "area:sync",
            tables: crate::sync::tables::ALL,
        },
    ]
}

/// Small server-wide values: `name (utf-8) → bytes`, e.g. the stream high-water mark.
pub const META: &str = "meta";
