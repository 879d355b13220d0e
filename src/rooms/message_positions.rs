//! Which of the newest stream positions hold a room's message, and so nothing else.
//!
//! Everything a sync response carries (timeline events, typing, receipts, presence, account
//! data, to-device messages) takes a position on the one stream. When every position of a
//! response's window `(since, upto]` is a message (a timeline event without a state key: text,
//! voice note, thread reply, reaction, redaction…) of one room, nothing else can be in that
//! window for anybody: no other room moved, no per-user stream did, no membership or state
//! changed. That lets sync answer each of the room's readers with one shared response
//! (`sync/v2/shared_reply.rs`) instead of a per-reader walk over all their rooms and streams;
//! whether the messages themselves look the same to every reader (nothing attached to them)
//! is checked there.
//!
//! A position not noted here may hold anything, and the caller does the full work: forgetting
//! is always safe. Positions are noted after their batch is written and before they retire
//! (`pipeline.rs`, `committed`), so a reader whose `upto` covers a message finds it, and a slot
//! names its position, so a slot reused by a later position is never mistaken for an older
//! one. Like the other in-memory indexes, each node of several notes its own appends; the
//! notifier's pub/sub will feed the others'.

use ruma::{OwnedRoomId, RoomId};

/// Positions remembered: a window reaching further back than this is worked out in full.
const SLOTS: usize = 4096;
/// The widest window answered from here (a reader further behind is rare and not hot).
const MAX_WINDOW: u64 = 64;

pub struct MessagePositions {
    /// Slot `pos % SLOTS`: the position last noted there and its room (short id and id).
    slots: parking_lot::Mutex<Vec<Option<(u64, u64, OwnedRoomId)>>>,
}

impl Default for MessagePositions {
    fn default() -> Self {
        Self {
            slots: parking_lot::Mutex::new(vec![None; SLOTS]),
        }
    }
}

impl MessagePositions {
    /// The event at `pos` is a message (no state key) of this room.
    pub fn note(&self, pos: u64, room_short: u64, room_id: &RoomId) {
        let entry = Some((pos, room_short, room_id.to_owned()));
        self.slots.lock()[slot(pos)] = entry;
    }

    /// The room (short id and id) whose messages are everything at `(since, upto]`, if that is
    /// known to be so.
    pub fn single_room(&self, since: u64, upto: u64) -> Option<(u64, OwnedRoomId)> {
        if upto <= since || upto - since > MAX_WINDOW {
            return None;
        }
        let slots = self.slots.lock();
        let (_, room, room_id) = match &slots[slot(upto)] {
            Some((pos, room, id)) if *pos == upto => (*pos, *room, id),
            _ => return None,
        };
        let all_of_it = (since + 1..upto)
            .all(|p| matches!(&slots[slot(p)], Some((pos, r, _)) if *pos == p && *r == room));
        all_of_it.then(|| (room, room_id.clone()))
    }
}

fn slot(pos: u64) -> usize {
    (pos % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_one_rooms_when_every_position_in_it_is_that_rooms_message() {
        let positions = MessagePositions::default();
        let a: OwnedRoomId = "!a:x".try_into().unwrap();
        let b: OwnedRoomId = "!b:x".try_into().unwrap();
        positions.note(11, 1, &a);
        positions.note(12, 1, &a);
        positions.note(14, 2, &b);
        assert_eq!(positions.single_room(10, 12), Some((1, a.clone())));
        assert_eq!(positions.single_room(11, 12), Some((1, a.clone())));
        assert_eq!(positions.single_room(12, 12), None, "an empty window");
        assert_eq!(positions.single_room(12, 13), None, "13 is not known");
        assert_eq!(positions.single_room(12, 14), None, "13 could be anything");
        assert_eq!(positions.single_room(13, 14), Some((2, b.clone())));
        assert_eq!(positions.single_room(10, 14), None, "two rooms");
        // A later position in the same slot is not the earlier one.
        positions.note(11 + SLOTS as u64, 2, &b);
        assert_eq!(positions.single_room(10, 12), None);
        assert_eq!(positions.single_room(0, 100), None, "too wide");
    }
}
