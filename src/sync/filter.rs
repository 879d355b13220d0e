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
    timeline_key: OnceLock<Arc<str>>,
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

impl SyncFilter {
    /// The room timeline filter spelled out: readers whose filters spell the same share
    /// timeline windows (`shared_timeline.rs`), whoever uploaded them.
    pub fn timeline_key(&self) -> Arc<str> {
        Arc::clone(
            self.timeline_key
                .get_or_init(|| format!("{:?}", self.room.timeline).into()),
        )
    }

    /// Parse an inline filter (`{…}`); stored filters are looked up by the caller.
    pub fn parse(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::bad_json(format!("Invalid filter: {e}")))
    }

    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        serde_json::from_value(value).map_err(|e| Error::bad_json(format!("Invalid filter: {e}")))
    }
}
