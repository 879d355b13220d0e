//! Sync: the notifier that wakes waiting clients, and (next) `/sync` itself.

pub mod filter;
pub mod lazy_members;
pub mod notifier;
pub mod presence;
pub mod receipts;
pub mod response;
pub mod shared_timeline;
pub mod tables;
pub mod tellers;
pub mod to_device;
pub mod typing;
pub mod v2;
pub mod wake_pacer;

pub use notifier::Notifier;
pub use v2::SyncService;
