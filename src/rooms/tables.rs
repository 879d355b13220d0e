//! Tables owned by the rooms module, with their key and value layouts.
//!
//! `‖` ends a string component; `u64` is big-endian (see [`crate::storage::keys`]). Rooms,
//! events and `(type, state_key)` pairs have compact `u64` short ids so that state snapshots and
//! timeline keys stay small. Every event is written in one batch: PDU, short id, timeline
//! position, state snapshot, current state, membership indexes, forward extremities.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::storage::Table;

/// `room_id‖ → RoomRecord`.
pub const ROOMS: Table<RoomRecord> = Table::new("rooms");
/// `event_id‖ → event_short u64`.
pub const EVENT_SHORTS: Table<u64> = Table::new("event_shorts");
/// `event_short u64 → PduRecord` (the signed PDU and where it sits).
pub const PDUS: Table<PduRecord> = Table::new("pdus");
/// `type‖ state_key‖ → state_key_short u64`.
pub const STATE_KEY_SHORTS: Table<u64> = Table::new("state_key_shorts");
/// `state_key_short u64 → [type, state_key]`.
pub const STATE_KEYS: Table<(String, String)> = Table::new("state_keys");
/// `room_short u64 ‖ stream_pos u64 → event_short u64`: the timeline, in stream order.
pub const TIMELINE: Table<u64> = Table::new("timeline");
/// `snapshot_id u64 → Snapshot`: state sets as deltas with a periodic full layer.
pub const SNAPSHOTS: Table<Snapshot> = Table::new("state_snapshots");
/// `room_short u64 ‖ state_key_short u64 → event_short u64`: the current state.
pub const ROOM_STATE: Table<u64> = Table::new("room_state");
/// `room_short u64 → [(event_short, event_id)]`: the room's forward extremities, one row per
/// room. A row per extremity (the layout of [`LEGACY_EXTREMITIES`]) left a tombstone per
/// appended event that every later append's prefix scan had to step over: sends into one room
/// slowed down as the room grew.
pub const ROOM_EXTREMITIES: Table<Vec<(u64, String)>> = Table::new("room_extremities");
/// `room_short u64 ‖ event_short u64 → event_id`: forward extremities as databases before
/// [`ROOM_EXTREMITIES`] stored them; read when a room has no row there yet, and emptied by the
/// room's next append.
pub const LEGACY_EXTREMITIES: Table<String> = Table::new("forward_extremities");
/// `room_short u64 ‖ user_id‖ → membership` (join, invite, leave, ban, knock).
pub const ROOM_MEMBERS: Table<String> = Table::new("room_members");
/// `user_id‖ room_id‖ → membership`: the rooms a user is in, per membership.
pub const USER_ROOMS: Table<String> = Table::new("user_rooms");
/// `user_id‖ device_id‖ txn_id‖ → event_id`: idempotent sends.
pub const TXN_IDS: Table<String> = Table::new("txn_ids");

/// `redacted event_id‖ → redaction event_id`: which events are redacted, and by what.
pub const REDACTIONS: Table<String> = Table::new("redactions");
/// `target event_id‖ stream_pos u64 → RelationRecord`: events relating to an event
/// (`m.relates_to`), in stream order.
pub const RELATIONS: Table<RelationRecord> = Table::new("relations");
/// `room_short u64 ‖ root event_id‖ → ThreadRecord`: the threads of a room.
pub const THREADS: Table<ThreadRecord> = Table::new("threads");
/// `report_id u64 → ReportRecord`: content and room reports, for the server's admins.
pub const REPORTS: Table<ReportRecord> = Table::new("reports");
/// `event_id‖ → EventTxn`: the device and transaction id an event was sent with, echoed in
/// `unsigned.transaction_id` to that device only.
pub const EVENT_TXNS: Table<EventTxn> = Table::new("event_txns");
/// `alias‖ → AliasRecord`: room aliases of this server.
pub const ALIASES: Table<AliasRecord> = Table::new("aliases");
/// `room_id‖ alias‖ → ()`: the local aliases of a room.
pub const ROOM_ALIASES: Table<()> = Table::new("room_aliases");
/// `room_id‖ → ()`: rooms published in the public room directory.
pub const PUBLIC_ROOMS: Table<()> = Table::new("public_rooms");

pub const ALL: &[&str] = &[
    EVENT_TXNS.name,
    REPORTS.name,
    RELATIONS.name,
    THREADS.name,
    REDACTIONS.name,
    ALIASES.name,
    ROOM_ALIASES.name,
    PUBLIC_ROOMS.name,
    ROOMS.name,
    EVENT_SHORTS.name,
    PDUS.name,
    STATE_KEY_SHORTS.name,
    STATE_KEYS.name,
    TIMELINE.name,
    SNAPSHOTS.name,
    ROOM_STATE.name,
    ROOM_EXTREMITIES.name,
    LEGACY_EXTREMITIES.name,
    ROOM_MEMBERS.name,
    USER_ROOMS.name,
    TXN_IDS.name,
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRecord {
    pub short: u64,
    pub version: String,
    /// Snapshot id of the current state.
    pub current_snapshot: u64,
    /// Number of delta layers since the last full layer under `current_snapshot`.
    pub layers_since_full: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PduRecord {
    /// Stored because v3+ event ids are reference hashes, not part of the PDU.
    pub event_id: String,
    pub room_id: String,
    pub stream_pos: u64,
    /// Snapshot of the state after this event (equal to the state before it for messages).
    pub state_after: u64,
    /// Snapshot of the state before this event.
    pub state_before: u64,
    #[serde(default)]
    pub soft_failed: bool,
    /// The PDU as stored. Records handed out by the read path ([`crate::rooms::Rooms::pdu_by_short`])
    /// carry `Null` here: the decoded [`crate::events::Pdu`] next to them holds the JSON, and
    /// a record is cloned on every read.
    pub json: Value,
}

/// A state set: either complete (`full`) or the entries that changed on top of `parent`.
/// Entries are `(state_key_short, event_short)`; Matrix state never loses keys, so a delta only
/// adds or replaces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub parent: Option<u64>,
    pub full: bool,
    pub entries: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasRecord {
    pub room_id: String,
    /// Who created the alias (they, or a user with power, may delete it).
    pub creator: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelationRecord {
    pub event_id: String,
    pub rel_type: String,
    pub event_type: String,
    pub sender: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub latest_event_id: String,
    pub latest_pos: u64,
    pub count: u64,
    /// Who sent events in the thread (the root's sender included).
    pub participants: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportRecord {
    pub room_id: String,
    /// None for a report about the whole room.
    pub event_id: Option<String>,
    pub reporter: String,
    pub reason: Option<String>,
    pub score: Option<i64>,
    pub received_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventTxn {
    pub device_id: String,
    pub txn_id: String,
}
