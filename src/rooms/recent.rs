//! The newest timeline positions of each room, in memory.
//!
//! An incremental sync asks every room of the user "what is new in `(since, upto]`?", and
//! nearly always the answer is "nothing" or "the one or two events just sent". Reading that from
//! RocksDB costs an iterator per room per response, the largest storage cost under fan-out.
//! [`RecentTimelines`] answers from memory whenever it can tell:
//!
//! - A room it tracks keeps its last [`TAIL_LEN`] timeline entries and a `floor`: every timeline
//!   event of the room above `floor` is in the tail.
//! - A room it doesn't track has no timeline event above `absent_floor` (the stream frontier at
//!   startup, or the highest position pushed when the map was last emptied to stay bounded).
//!
//! Otherwise (a `since` below what memory covers) the caller reads the table. Entries are
//! pushed after the event's batch is written and before its position is retired, so a reader
//! whose `upto` covers an event always finds it here. A room's appends are serialised, so its
//! entries arrive in position order. With several nodes, the pushes will be fed by the
//! notifier's pub/sub as well.

use std::collections::{HashMap, VecDeque};

/// Entries kept per room.
const TAIL_LEN: usize = 32;
/// Rooms tracked before the map is emptied.
const MAX_ROOMS: usize = 65_536;

pub struct RecentTimelines {
    inner: parking_lot::RwLock<Tails>,
}

struct Tails {
    rooms: HashMap<u64, Tail>,
    absent_floor: u64,
    /// The highest position pushed so far.
    high: u64,
}

struct Tail {
    floor: u64,
    /// `(stream position, event short id)`, oldest first.
    entries: VecDeque<(u64, u64)>,
}

impl RecentTimelines {
    /// `startup`: the stream frontier when the process started; every earlier event is below.
    pub fn new(startup: u64) -> Self {
        Self {
            inner: parking_lot::RwLock::new(Tails {
                rooms: HashMap::new(),
                absent_floor: startup,
                high: startup,
            }),
        }
    }

    /// A timeline event of `room` at `pos` is written: call before `pos` is retired.
    pub fn push(&self, room: u64, pos: u64, event: u64) {
        let mut tails = self.inner.write();
        if tails.rooms.len() >= MAX_ROOMS && !tails.rooms.contains_key(&room) {
            tails.rooms.clear();
            tails.absent_floor = tails.high;
        }
        tails.high = tails.high.max(pos);
        // Untracked so far: nothing of the room above `absent_floor`, and nothing between its
        // previous event (pushed earlier, so below `pos`) and `pos`.
        let floor = tails.absent_floor.min(pos.saturating_sub(1));
        let tail = tails.rooms.entry(room).or_insert_with(|| Tail {
            floor,
            entries: VecDeque::new(),
        });
        tail.entries.push_back((pos, event));
        if tail.entries.len() > TAIL_LEN
            && let Some((dropped, _)) = tail.entries.pop_front()
        {
            tail.floor = dropped;
        }
    }

    /// The room's timeline entries with positions in `(since, before)`, newest first, at most
    /// `limit`; `None` when memory doesn't cover `since`.
    pub fn newest_between(
        &self,
        room: u64,
        since: u64,
        before: u64,
        limit: usize,
    ) -> Option<Vec<(u64, u64)>> {
        let tails = self.inner.read();
        let Some(tail) = tails.rooms.get(&room) else {
            return (since >= tails.absent_floor).then(Vec::new);
        };
        if since < tail.floor {
            return None;
        }
        Some(
            tail.entries
                .iter()
                .rev()
                .skip_while(|(pos, _)| *pos >= before)
                .take_while(|(pos, _)| *pos > since)
                .take(limit)
                .copied()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{RecentTimelines, TAIL_LEN};

    #[test]
    fn answers_only_what_memory_covers() {
        let recent = RecentTimelines::new(100);
        assert_eq!(
            recent.newest_between(1, 100, 200, 10),
            Some(vec![]),
            "an untracked room has nothing since startup"
        );
        assert_eq!(
            recent.newest_between(1, 99, 200, 10),
            None,
            "before startup: unknown"
        );
        recent.push(1, 105, 7);
        recent.push(1, 110, 8);
        assert_eq!(
            recent.newest_between(1, 100, 200, 10),
            Some(vec![(110, 8), (105, 7)])
        );
        assert_eq!(recent.newest_between(1, 105, 200, 10), Some(vec![(110, 8)]));
        assert_eq!(recent.newest_between(1, 100, 110, 10), Some(vec![(105, 7)]));
        assert_eq!(recent.newest_between(1, 100, 200, 1), Some(vec![(110, 8)]));
        assert_eq!(recent.newest_between(1, 99, 200, 10), None);
        assert_eq!(recent.newest_between(2, 100, 200, 10), Some(vec![]));
    }

    #[test]
    fn a_full_tail_raises_its_floor() {
        let recent = RecentTimelines::new(0);
        for i in 1..=(TAIL_LEN as u64 + 2) {
            recent.push(1, i * 10, i);
        }
        // Entries 1 and 2 fell out: the floor is 20, so `since` 10 is unknown.
        assert_eq!(recent.newest_between(1, 10, u64::MAX, 100), None);
        let got = recent.newest_between(1, 20, u64::MAX, 100).unwrap();
        assert_eq!(got.len(), TAIL_LEN);
        assert_eq!(got.last(), Some(&(30, 3)));
    }
}
