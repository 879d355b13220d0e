//! Sync filters (client-server API §Filtering): which rooms and events a sync carries.

use std::sync::OnceLock;

use ruma::RoomId;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::rooms::filter::EventFilter;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SyncFilter {
    pub room: RoomFilter,
    pub account_data: EventFilter,
    pub presence: EventFilter,
    #[serde(skip)]
    timeline_key: OnceLock<FilterKey>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoomFilter {
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub include_leave: bool,
    pub timeline: EventFilter,
    pub state: EventFilter,
    pub ephemeral: EventFilter,
    pub account_data: EventFilter,
}

impl RoomFilter {
    pub fn allows_room(&self, room_id: &RoomId) -> bool {
        let id = room_id.as_str();
        !self.not_rooms.iter().any(|r| r == id)
            && self
                .rooms
                .as_ref()
                .is_none_or(|rooms| rooms.iter().any(|r| r == id))
    }
}

/// A filter spelled out, reduced to the SHA-256 digest of its spelling once per filter: it is
/// part of the key every reader's shared timeline window is looked up by. Comparing the few
/// hundred bytes of two spellings (readers' filters are parsed apart, so they are never the
/// same allocation) was a visible part of the server's CPU when a message reached thousands
/// of readers; two digests compare in four words. Equal digests are taken as equal spellings:
/// finding two spellings with one SHA-256 digest is beyond anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterKey([u64; 4]);

impl FilterKey {
    pub fn new(text: &str) -> Self {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::digest(text.as_bytes());
        Self(std::array::from_fn(|i| {
            u64::from_le_bytes(digest[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        }))
    }
}

impl std::hash::Hash for FilterKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Already a hash: one word of it is enough.
        state.write_u64(self.0[0]);
    }
}

impl SyncFilter {
    /// The room timeline filter spelled out: readers whose filters spell the same share
    /// timeline windows (`shared_timeline.rs`), whoever uploaded them.
    pub fn timeline_key(&self) -> FilterKey {
        *self
            .timeline_key
            .get_or_init(|| FilterKey::new(&format!("{:?}", self.room.timeline)))
    }

    /// Parse an inline filter (`{…}`); stored filters are looked up by the caller.
    pub fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::bad_json(format!("Invalid filter: {e}")))
    }

    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        serde_json::from_value(value).map_err(|e| Error::bad_json(format!("Invalid filter: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, RandomState};

    use super::FilterKey;

    #[test]
    fn filter_keys_are_equal_when_their_spellings_are() {
        let a = FilterKey::new("EventFilter { limit: Some(5) }");
        let b = FilterKey::new("EventFilter { limit: Some(5) }");
        let c = FilterKey::new("EventFilter { limit: Some(6) }");
        let hashes = RandomState::new();
        assert_eq!(a, b, "separately parsed, same spelling");
        assert_eq!(hashes.hash_one(a), hashes.hash_one(b));
        assert_ne!(a, c);
        assert_ne!(hashes.hash_one(a), hashes.hash_one(c));
    }
}
