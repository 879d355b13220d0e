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
use std::sync::{Arc, OnceLock};

use super::Rooms;
use super::tables::RoomRecord;
use crate::error::Result;

/// Everyone with a membership in a room, at one state snapshot.
pub struct Roster {
    /// `(user_id, membership)`, ordered by user id.
    members: Vec<(String, String)>,
    joined: HashSet<String>,
    /// The first joined or invited members by the stream order of their member events (see
    /// [`Rooms::first_members`]), worked out once per snapshot when first asked.
    first: OnceLock<Arc<[String]>>,
}

/// How many of the first members a roster keeps: five heroes, and one more in case the reader
/// is among them.
const FIRST_MEMBERS: usize = 6;

impl Roster {
    fn new(members: Vec<(String, String)>) -> Self {
        let joined = members
            .iter()
            .filter(|(_, m)| m == "join")
            .map(|(u, _)| u.clone())
            .collect();
        Self {
            members,
            joined,
            first: OnceLock::new(),
        }
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

    /// Up to six joined or invited members, the earliest first by the stream order of their
    /// current member events: the room summary's heroes are the first five that aren't the
    /// reader (client-server API, `m.heroes`).
    pub fn first_members(&self, room: &RoomRecord, roster: &Roster) -> Result<Arc<[String]>> {
        if let Some(first) = roster.first.get() {
            return Ok(Arc::clone(first));
        }
        let mut ordered = Vec::new();
        for user in roster.with(&["join", "invite"]) {
            let Some(short) = self.state_short_at(room.current_snapshot, "m.room.member", user)?
            else {
                continue;
            };
            let pos = self.event_pos(short)?.unwrap_or(u64::MAX);
            ordered.push((pos, user));
        }
        ordered.sort_unstable();
        let first: Arc<[String]> = ordered
            .into_iter()
            .take(FIRST_MEMBERS)
            .map(|(_, user)| user.to_owned())
            .collect();
        Ok(Arc::clone(roster.first.get_or_init(|| first)))
    }
}
