//! The `/sync` response body, typed so it serialises straight to bytes.
//!
//! Timeline and state events are already-serialised JSON ([`RawValue`]): an event's client
//! form is made once and spliced into every reader's response (see `rooms/serve.rs`), instead
//! of a `serde_json::Value` tree built and dropped per reader. The small, rare parts (account
//! data, presence, to-device, ephemeral events, summaries) stay `Value`s.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::shared_timeline::SharedRaw;

#[derive(Serialize)]
pub struct SyncResponse {
    pub next_batch: String,
    pub rooms: RoomsSection,
    pub account_data: Events<Value>,
    pub presence: Events<Value>,
    pub to_device: Events<Value>,
    /// Filled by the end-to-end encryption endpoints; empty until then.
    pub device_lists: DeviceLists,
    pub device_one_time_keys_count: BTreeMap<String, u64>,
    pub device_unused_fallback_key_types: Vec<String>,
}

#[derive(Serialize, Default)]
pub struct RoomsSection {
    pub join: BTreeMap<String, RoomSection>,
    pub invite: BTreeMap<String, Value>,
    pub leave: BTreeMap<String, RoomSection>,
    pub knock: BTreeMap<String, Value>,
}

#[derive(Serialize, Default)]
pub struct DeviceLists {
    pub changed: Vec<String>,
    pub left: Vec<String>,
}

/// `{"events": [...]}`, the shape of every event list in a sync response.
#[derive(Serialize)]
pub struct Events<T> {
    pub events: Vec<T>,
}

impl<T> From<Vec<T>> for Events<T> {
    fn from(events: Vec<T>) -> Self {
        Self { events }
    }
}

/// A joined or left room.
#[derive(Serialize)]
pub struct RoomSection {
    /// A [`Timeline`], serialised (and often shared by many readers: `shared_timeline.rs`).
    pub timeline: SharedRaw,
    /// The state before the timeline; absent when the client asked for `state_after`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<Events<Box<RawValue>>>,
    /// `use_state_after`: the state at the end of the timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_after: Option<Events<Box<RawValue>>>,
    pub account_data: Events<Value>,
    /// Joined rooms only, as the three below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<Events<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_notifications: Option<UnreadNotifications>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
}

#[derive(Serialize)]
pub struct Timeline {
    pub events: Vec<Box<RawValue>>,
    pub limited: bool,
    pub prev_batch: String,
}

/// Push rules fill the counts in later; zero until then.
#[derive(Serialize, Default)]
pub struct UnreadNotifications {
    pub notification_count: u64,
    pub highlight_count: u64,
}
