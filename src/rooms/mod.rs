//! Rooms: the one event pipeline, state, timeline, membership, room creation.
//!
//! Every room event goes through [`Rooms::append`] (or, for a new room's create event,
//! [`Rooms::create_room_with`]): build the PDU (prev_events = forward extremities, auth events
//! chosen by ruma's `auth_types_for_event`, depth, content hash, signature, event id per room
//! version) → check it (PDU format, then ruma's state-independent and state-dependent auth rules
//! against the room's current state) → persist it in one batch → publish. Events of one room
//! are appended one at a time under the room's lock; rooms proceed in parallel. Federation will
//! feed received PDUs into the same steps after signature and hash checks.

pub mod aliases;
pub mod annotations;
pub mod content;
pub mod create;
pub mod filter;
pub mod pipeline;
pub mod power;
pub mod reads;
pub mod recent;
pub mod redaction;
pub mod relations;
pub mod reports;
pub mod room_positions;
pub mod roster;
pub mod serve;
pub mod state;
pub mod tables;
pub mod upgrade;
pub mod visibility;

use std::collections::HashMap;
use std::sync::Arc;

use ruma::{OwnedRoomId, RoomId, RoomVersionId};

use crate::events::ServerKey;
use crate::storage::KvEngine;
use crate::storage::stream::StreamCounter;
use crate::sync::Notifier;
use state::StateStore;

pub struct Rooms {
    db: Arc<dyn KvEngine>,
    key: Arc<ServerKey>,
    stream: Arc<StreamCounter>,
    /// Short ids for rooms, events and snapshots.
    ids: Arc<StreamCounter>,
    pub state: StateStore,
    notifier: Arc<Notifier>,
    default_version: RoomVersionId,
    /// One lock per room: appends to a room are serialised.
    locks: parking_lot::Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<()>>>>,
    /// Serialises alias check-and-create.
    alias_lock: parking_lot::Mutex<()>,
    /// Recently read events, decoded.
    pdu_cache: crate::util::GenerationalCache<u64, Arc<(crate::events::Pdu, tables::PduRecord)>>,
    /// Stream positions by event short id.
    pos_cache: crate::util::GenerationalCache<u64, u64>,
    /// Which events have no redaction or relation (see `annotations.rs`).
    annotations: annotations::AnnotationEpochs,
    /// Memberships set by member events, by event short id.
    membership_cache: crate::util::GenerationalCache<u64, String>,
    /// Rosters by room short id, tagged with the snapshot they were read at.
    roster_cache: crate::util::GenerationalCache<u64, (u64, Arc<roster::Roster>)>,
    /// Room records by room id, and current state (event short ids) by `(room short, state
    /// key short)`: read for every room of every sync. An entry goes when an event that
    /// changes it is written (see `pipeline.rs`, `committed`).
    /// (An unknown room is cached as `None`: a room's creation writes state events, which
    /// remove the entry.)
    room_records: crate::util::GenerationalCache<ruma::OwnedRoomId, Option<tables::RoomRecord>>,
    current_state: crate::util::GenerationalCache<(u64, u64), Option<u64>>,
    /// `m.room.history_visibility` by state snapshot (snapshots never change).
    visibility_cache: crate::util::GenerationalCache<u64, Arc<str>>,
    /// The newest timeline positions of each room (see `recent.rs`).
    recent: recent::RecentTimelines,
    /// `rooms_of` by user; an entry goes when a member event for the user is written.
    user_rooms: crate::util::GenerationalCache<String, Arc<Vec<(ruma::OwnedRoomId, String)>>>,
    /// The last position at which each user's membership of any room changed: an incremental
    /// sync of a user whose memberships didn't change since its token reads no member events
    /// of its own (see `membership_changed_after`).
    member_marks: crate::storage::stream_marks::StreamMarks,
    /// Which of the newest positions are one room's messages or shared ephemeral events (see
    /// `room_positions.rs`).
    room_positions: room_positions::RoomPositions,
}

impl Rooms {
    pub fn new(
        db: Arc<dyn KvEngine>,
        key: Arc<ServerKey>,
        stream: Arc<StreamCounter>,
        ids: Arc<StreamCounter>,
        notifier: Arc<Notifier>,
        default_version: RoomVersionId,
    ) -> Self {
        let recent = recent::RecentTimelines::new(stream.frontier());
        let member_marks = crate::storage::stream_marks::StreamMarks::new(&stream);
        Self {
            member_marks,
            state: StateStore::new(Arc::clone(&db), Arc::clone(&ids)),
            notifier,
            db,
            key,
            stream,
            ids,
            default_version,
            locks: parking_lot::Mutex::new(HashMap::new()),
            alias_lock: parking_lot::Mutex::new(()),
            pdu_cache: crate::util::GenerationalCache::new(4096),
            roster_cache: crate::util::GenerationalCache::new(1024),
            pos_cache: crate::util::GenerationalCache::new(64 * 1024),
            membership_cache: crate::util::GenerationalCache::new(64 * 1024),
            annotations: annotations::AnnotationEpochs::new(16 * 1024),
            recent,
            visibility_cache: crate::util::GenerationalCache::new(16 * 1024),
            room_records: crate::util::GenerationalCache::new(16 * 1024),
            current_state: crate::util::GenerationalCache::new(64 * 1024),
            user_rooms: crate::util::GenerationalCache::new(16 * 1024),
            room_positions: Default::default(),
        }
    }

    /// Whether `user_id`'s membership of some room may have changed after stream position
    /// `since` (false: every member event of theirs is at or before `since`).
    pub fn membership_changed_after(&self, user_id: &str, since: u64) -> bool {
        self.member_marks.changed_after(user_id, since)
    }

    /// The room whose messages and shared ephemeral events are all of `(since, upto]`, if
    /// known: then nothing else was written in that window, for anyone (`room_positions.rs`).
    pub fn single_room_window(&self, since: u64, upto: u64) -> Option<room_positions::RoomWindow> {
        self.room_positions.single_room(since, upto)
    }

    /// A typing change or public read receipt of the room is written at `pos`: call before
    /// `pos` retires.
    pub fn note_ephemeral(&self, pos: u64, room_id: &RoomId) -> crate::error::Result<()> {
        if let Some(room) = self.room(room_id)? {
            let write = room_positions::RoomWrite::Ephemeral;
            self.room_positions.note(pos, room.short, room_id, write);
        }
        Ok(())
    }

    pub fn server_name(&self) -> &str {
        self.key.server_name()
    }

    pub fn default_version(&self) -> &RoomVersionId {
        &self.default_version
    }

    fn room_lock(&self, room_id: &RoomId) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(self.locks.lock().entry(room_id.to_owned()).or_default())
    }
}

/// Room versions Roost can create and join.
pub fn supported_versions() -> Vec<RoomVersionId> {
    use RoomVersionId::*;
    vec![V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12]
}
