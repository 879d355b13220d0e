//! A room's member list, decoded once per state snapshot and shared.
//!
//! Fan-out reads the member list all the time: every event wakes the room's members, every
//! presence change asks "does the viewer share a room with this user?", sync summaries count
//! members. Scanning the membership table for each of those made delivery cost grow with the
//! room's size per reader. The roster is cached under the room's current snapshot id: any
//! membership change derives a new snapshot, so an entry whose snapshot is not the room
//! record's current one is simply rebuilt, which keeps the cache correct without any write-side
//! invalidation (and across several nodes sharing a store, as long as the room record is read
//! fresh).

use std::collections::HashSet;
use std::sync::Arc;

use super::Rooms;
use super::tables::RoomRecord;
use crate::error::Result;

/// Everyone with a membership in a room, at one state snapshot.
pub struct Roster {
    /// `(user_id, membership)`, ordered by user id.
    members: Vec<(String, String)>,
    joined: HashSet<String>,
}

impl Roster {
    fn new(members: Vec<(String, String)>) -> Self {
        let joined = members
            .iter()
            .filter(|(_, m)| m == "join")
            .map(|(u, _)| u.clone())
            .collect();
        Self { members, joined }
    }

    /// Users whose membership is one of `memberships`, ordered by user id.
    pub fn with<'a>(&'a self, memberships: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
        self.members
            .iter()
            .filter(move |(_, m)| memberships.contains(&m.as_str()))
            .map(|(u, _)| u.as_str())
    }

    pub fn joined(&self) -> impl Iterator<Item = &str> {
        self.with(&["join"])
    }

    pub fn is_joined(&self, user_id: &str) -> bool {
        self.joined.contains(user_id)
    }

    pub fn joined_count(&self) -> usize {
        self.joined.len()
    }

    pub fn count(&self, membership: &str) -> usize {
        self.members.iter().filter(|(_, m)| m == membership).count()
    }
}

impl Rooms {
    /// The room's current roster (see the module doc for why it is cached per snapshot).
    pub fn roster(&self, room: &RoomRecord) -> Result<Arc<Roster>> {
        if let Some((snapshot, roster)) = self.roster_cache.get(&room.short)
            && snapshot == room.current_snapshot
        {
            return Ok(roster);
        }
        let roster = Arc::new(Roster::new(self.members(room.short)?));
        self.roster_cache
            .insert(room.short, (room.current_snapshot, Arc::clone(&roster)));
        Ok(roster)
    }
}
