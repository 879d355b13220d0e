//! Which of the newest stream positions belong to one room's messages or its shared ephemeral
//! events, and so to nothing else.
//!
//! Everything a sync response carries (timeline events, typing, receipts, presence, account
//! data, to-device messages) takes a position on the one stream. When every position of a
//! response's window `(since, upto]` is one room's message (a timeline event without a state
//! key: text, voice note, thread reply, reaction, redaction…), typing change or public read
//! receipt, nothing else can be in that window for anybody: no other room moved, no per-user
//! stream did, no membership or state changed. That lets sync answer each of the room's readers
//! with one shared response (`sync/v2/shared_reply.rs`) instead of a per-reader walk over all
//! their rooms and streams. Private receipts are seen by their owner only, so they are never
//! noted.
//!
//! A position not noted here may hold anything, and the caller does the full work: forgetting
//! is always safe. Positions are noted after their write and before they retire (messages in
//! `pipeline.rs`, `committed`; typing and receipts where they are set), so a reader whose
//! `upto` covers one finds it, and a slot names its position, so a slot reused by a later
//! position is never mistaken for an older one. Like the other in-memory indexes, each node of
//! several notes its own writes; the notifier's pub/sub will feed the others'.

use ruma::{OwnedRoomId, RoomId};

/// Positions remembered. A reader's window ends at the frontier it read, so only the newest
/// positions are ever asked about: [`MAX_WINDOW`] of them, with room to spare for positions
/// still in flight. (Each slot is some 40 bytes and a room id: this is resident memory.)
const SLOTS: usize = 1024;
/// The widest window answered from here (a reader further behind is rare and not hot).
const MAX_WINDOW: u64 = 64;

/// What a noted position holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomWrite {
    /// A timeline event without a state key.
    Message,
    /// A typing change or a public read receipt: in every member's `ephemeral` section alike.
    Ephemeral,
}

/// A window that is all one room's: the room and whether any of it is ephemeral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomWindow {
    pub short: u64,
    pub id: OwnedRoomId,
    pub ephemeral: bool,
}

type Slot = Option<(u64, u64, OwnedRoomId, RoomWrite)>;

pub struct RoomPositions {
    /// Slot `pos % SLOTS`: the position last noted there, its room (short id and id) and what
    /// it holds.
    slots: parking_lot::Mutex<Vec<Slot>>,
}

impl Default for RoomPositions {
    fn default() -> Self {
        Self {
            slots: parking_lot::Mutex::new(vec![None; SLOTS]),
        }
    }
}

impl RoomPositions {
    /// The write at `pos` is this room's, of this kind.
    pub fn note(&self, pos: u64, room_short: u64, room_id: &RoomId, write: RoomWrite) {
        let entry = Some((pos, room_short, room_id.to_owned(), write));
        self.slots.lock()[slot(pos)] = entry;
    }

    /// The room whose writes are everything at `(since, upto]`, if that is known to be so.
    pub fn single_room(&self, since: u64, upto: u64) -> Option<RoomWindow> {
        if upto <= since || upto - since > MAX_WINDOW {
            return None;
        }
        let slots = self.slots.lock();
        let (short, id) = match &slots[slot(upto)] {
            Some((pos, short, id, _)) if *pos == upto => (*short, id),
            _ => return None,
        };
        let mut ephemeral = false;
        for p in since + 1..=upto {
            match &slots[slot(p)] {
                Some((pos, room, _, write)) if *pos == p && *room == short => {
                    ephemeral |= *write == RoomWrite::Ephemeral;
                }
                _ => return None,
            }
        }
        Some(RoomWindow {
            short,
            id: id.clone(),
            ephemeral,
        })
    }
}

fn slot(pos: u64) -> usize {
    (pos % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_one_rooms_when_every_position_in_it_is_that_rooms() {
        let positions = RoomPositions::default();
        let a: OwnedRoomId = "!a:x".try_into().unwrap();
        let b: OwnedRoomId = "!b:x".try_into().unwrap();
        let window = |short, id: &OwnedRoomId, ephemeral| {
            Some(RoomWindow {
                short,
                id: id.clone(),
                ephemeral,
            })
        };
        positions.note(11, 1, &a, RoomWrite::Message);
        positions.note(12, 1, &a, RoomWrite::Message);
        positions.note(14, 2, &b, RoomWrite::Message);
        positions.note(15, 2, &b, RoomWrite::Ephemeral);
        assert_eq!(positions.single_room(10, 12), window(1, &a, false));
        assert_eq!(positions.single_room(11, 12), window(1, &a, false));
        assert_eq!(positions.single_room(12, 12), None, "an empty window");
        assert_eq!(positions.single_room(12, 13), None, "13 is not known");
        assert_eq!(positions.single_room(12, 14), None, "13 could be anything");
        assert_eq!(positions.single_room(13, 14), window(2, &b, false));
        assert_eq!(positions.single_room(13, 15), window(2, &b, true));
        assert_eq!(positions.single_room(14, 15), window(2, &b, true));
        assert_eq!(positions.single_room(10, 14), None, "two rooms");
        // A later position in the same slot is not the earlier one.
        positions.note(11 + SLOTS as u64, 2, &b, RoomWrite::Message);
        assert_eq!(positions.single_room(10, 12), None);
        assert_eq!(positions.single_room(0, 100), None, "too wide");
    }
}
