//! Sync: the notifier that wakes waiting clients, and (next) `/sync` itself.

pub mod notifier;

pub use notifier::Notifier;
