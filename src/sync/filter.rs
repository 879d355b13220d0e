//! Sync filters (client-server API §Filtering): which rooms and events a sync carries.

use std::sync::{Arc, OnceLock};

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

/// A filter spelled out, with its hash worked out once: it is part of the key every reader's
/// shared timeline window is looked up by, and a filter's spelling runs to a few hundred bytes.
#[derive(Clone, Debug)]
pub struct FilterKey {
    text: Arc<str>,
    hash: u64,
}

impl FilterKey {
    pub fn new(text: String) -> Self {
        let hash = {
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&text, &mut hasher);
            std::hash::Hasher::finish(&hasher)
        };
        Self {
            text: text.into(),
            hash,
        }
    }
}

impl PartialEq for FilterKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.text, &other.text) || (self.hash == other.hash && self.text == other.text)
    }
}

impl Eq for FilterKey {}

impl std::hash::Hash for FilterKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl SyncFilter {
    /// The room timeline filter spelled out: readers whose filters spell the same share
    /// timeline windows (`shared_timeline.rs`), whoever uploaded them.
    pub fn timeline_key(&self) -> FilterKey {
        self.timeline_key
            .get_or_init(|| FilterKey::new(format!("{:?}", self.room.timeline)))
            .clone()
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
        let a = FilterKey::new("EventFilter { limit: Some(5) }".into());
        let b = FilterKey::new("EventFilter { limit: Some(5) }".into());
        let c = FilterKey::new("EventFilter { limit: Some(6) }".into());
        let hashes = RandomState::new();
        assert_eq!(a, b, "separately parsed, same spelling");
        assert_eq!(hashes.hash_one(&a), hashes.hash_one(&b));
        assert_ne!(a, c);
        assert_eq!(a, a.clone());
    }
}
