//! A room's timeline window, made once and shared by every reader it looks the same to.
//!
//! Under fan-out one message wakes every member of the room, and each member's incremental
//! sync asks the same question: the room's events in `(since, upto]`. For a reader who was
//! joined through the whole window (its own member event is at or before `since` and it is
//! joined now), every event of the window is visible whatever the history visibility: its
//! membership was `join` before, during and after. If the reader sent none of the events
//! (only the sender's device gets `unsigned.transaction_id`) and no event has relations or a
//! redaction (their aggregations depend on the viewer), the timeline section is the same bytes
//! for all such readers. It is made once per (room, window, timeline filter, annotation
//! epoch) and kept briefly, so each other reader costs a map lookup instead of a timeline walk,
//! visibility checks, event copies and serialisation.
//!
//! `unsigned.age` is worked out when the window is made, so an entry is reused only for
//! [`FRESH_FOR`]. The annotation epoch in the key retires every entry the moment any event
//! gains a redaction or a relation. Like the other in-memory indexes, with several nodes each
//! keeps its own (nothing is shared or invalidated across nodes but the epoch). Anything that
//! makes a timeline depend on its reader in another way (ignored users, say) must keep such
//! readers off the shared path.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;

use super::filter::FilterKey;
use super::response::SharedReply;
use crate::rooms::reads::TimelineEntry;
use crate::util::GenerationalCache;

/// How long a shared window may be handed out (its events' `age` was computed when made).
const FRESH_FOR: Duration = Duration::from_millis(500);
/// Windows remembered (about twice as many at most).
const CAPACITY: usize = 512;

/// A room's timeline in one response: its entries and the `timeline` object, serialised.
pub struct TimelineWindow {
    /// Oldest first.
    pub entries: Vec<TimelineEntry>,
    /// More events than the limit were in the window (the timeline has a gap before it).
    pub limited: bool,
    /// `{"events": [...], "limited": ..., "prev_batch": ...}`.
    pub json: Arc<RawValue>,
    /// The whole response of a reader for whom this window is all the news, made by the first
    /// such reader (`sync/v2/shared_reply.rs`): shared as far as the window is.
    pub reply: OnceLock<Arc<SharedReply>>,
    made: Instant,
}

impl TimelineWindow {
    /// Whether this window, made for everyone, is right for `user_id`: none of its events is
    /// theirs (their device would get `transaction_id`s, which nobody else may see). The one
    /// rule for sharing a window, whether it is looked up (`timeline_window`), stored
    /// (the same) or handed from reader to reader (`shared_reply`'s fan-out scratch).
    pub fn shareable_with(&self, user_id: &ruma::UserId) -> bool {
        !self.entries.iter().any(|e| e.pdu.sender == user_id)
    }

    pub fn new(entries: Vec<TimelineEntry>, limited: bool, json: Box<RawValue>) -> Self {
        Self {
            entries,
            limited,
            json: Arc::from(json),
            reply: OnceLock::new(),
            made: Instant::now(),
        }
    }
}

/// What makes two readers' windows the same.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WindowKey {
    pub room: u64,
    pub since: u64,
    pub upto: u64,
    /// The timeline filter (its limit too), as [`crate::sync::filter::SyncFilter::timeline_key`] spells it.
    pub filter: FilterKey,
    pub annotation_epoch: u64,
}

pub struct SharedTimelines {
    windows: GenerationalCache<WindowKey, Arc<TimelineWindow>>,
}

impl Default for SharedTimelines {
    fn default() -> Self {
        Self {
            windows: GenerationalCache::new(CAPACITY),
        }
    }
}

impl SharedTimelines {
    pub fn get(&self, key: &WindowKey) -> Option<Arc<TimelineWindow>> {
        self.windows
            .get(key)
            .filter(|w| w.made.elapsed() < FRESH_FOR)
    }

    pub fn insert(&self, key: WindowKey, window: Arc<TimelineWindow>) {
        self.windows.insert(key, window);
    }
}

/// Already-serialised JSON shared by several responses.
pub struct SharedRaw(pub Arc<RawValue>);

impl Serialize for SharedRaw {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}
