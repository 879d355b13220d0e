//! The `/sync` response body, typed so it serialises straight to bytes.
//!
//! Timeline and state events are already-serialised JSON ([`RawValue`]): an event's client
//! form is made once and spliced into every reader's response (see `rooms/serve.rs`), instead
//! of a `serde_json::Value` tree built and dropped per reader. The small, rare parts (account
//! data, presence, to-device, ephemeral events, summaries) stay `Value`s.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::shared_timeline::SharedRaw;
use crate::http::websocket;

/// What a sync answers: a response made for its reader, or one made once and shared by every
/// reader it is the same for (`sync/v2/shared_reply.rs`).
pub enum SyncReply {
    Made(Box<SyncResponse>),
    Shared(Arc<SharedReply>),
}

impl SyncReply {
    pub fn next_batch(&self) -> &str {
        match self {
            Self::Made(body) => &body.next_batch,
            Self::Shared(shared) => &shared.next_batch,
        }
    }

    /// The body's JSON.
    pub fn to_json(&self) -> serde_json::Result<Bytes> {
        match self {
            Self::Made(body) => serde_json::to_vec(body).map(Bytes::from),
            Self::Shared(shared) => Ok(shared.body.clone()),
        }
    }

    /// The WebSocket transport's message carrying the body (docs/websocket.md), as a whole
    /// text frame.
    pub fn to_ws_frame(&self) -> serde_json::Result<Bytes> {
        match self {
            Self::Made(body) => ws_frame(body).map(|(frame, _)| frame),
            Self::Shared(shared) => Ok(shared.ws_frame.clone()),
        }
    }
}

/// A response serialised once for all the readers it is the same for, in both the forms the
/// transports send.
pub struct SharedReply {
    /// The stream position the response ends at (its `next_batch`).
    pub pos: u64,
    pub next_batch: String,
    /// The body's JSON: the middle of `ws_frame`, sharing its bytes.
    pub body: Bytes,
    /// [`ws_frame`] of the body: the same bytes for every connection (a server's frames are
    /// not masked), written as they are.
    pub ws_frame: Bytes,
}

impl SharedReply {
    pub fn new(pos: u64, response: &SyncResponse) -> serde_json::Result<Self> {
        let (ws_frame, header) = ws_frame(response)?;
        Ok(Self {
            pos,
            next_batch: response.next_batch.clone(),
            body: ws_frame.slice(header + WS_HEAD.len()..ws_frame.len() - WS_TAIL.len()),
            ws_frame,
        })
    }
}

/// What the WebSocket transport puts around a body: `{"type": "sync", "body": …}`.
const WS_HEAD: &[u8] = br#"{"type":"sync","body":"#;
const WS_TAIL: &[u8] = b"}";

/// A response as the WebSocket transport sends it, serialised straight into its envelope
/// inside a text frame; also the length of the frame's header.
fn ws_frame(response: &SyncResponse) -> serde_json::Result<(Bytes, usize)> {
    let mut message = websocket::start_text_frame(1024);
    message.extend_from_slice(WS_HEAD);
    serde_json::to_writer(&mut message, response)?;
    message.extend_from_slice(WS_TAIL);
    Ok(websocket::finish_text_frame(message))
}

#[derive(Serialize)]
pub struct SyncResponse {
    pub next_batch: String,
    pub rooms: RoomsSection,
    pub account_data: Events<Value>,
    pub presence: Events<Value>,
    pub to_device: Events<Value>,
    /// Filled by the end-to-end encryption endpoints; empty until then.
    pub device_lists: DeviceLists,
    /// The device's own, in every response: once filled, shared replies must carry them
    /// (`sync/v2/shared_reply.rs`).
    pub device_one_time_keys_count: BTreeMap<String, u64>,
    pub device_unused_fallback_key_types: Vec<String>,
}

impl SyncResponse {
    /// A response with this `next_batch` and nothing in it yet.
    pub fn empty(next_batch: String) -> Self {
        Self {
            next_batch,
            rooms: RoomsSection::default(),
            account_data: Vec::new().into(),
            presence: Vec::new().into(),
            to_device: Vec::new().into(),
            device_lists: DeviceLists::default(),
            device_one_time_keys_count: BTreeMap::new(),
            device_unused_fallback_key_types: Vec::new(),
        }
    }
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
