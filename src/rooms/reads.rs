//! Reading rooms: records, PDUs, state, membership, timeline pages.

use std::sync::Arc;

use ruma::{EventId, OwnedRoomId, RoomId, UserId};

use super::Rooms;
use super::tables::{
    EVENT_SHORTS, PDUS, PduRecord, ROOM_MEMBERS, ROOM_STATE, ROOMS, RoomRecord, TIMELINE,
    USER_ROOMS,
};
use crate::error::{Error, Result};
use crate::events::Pdu;
use crate::storage::keys::{KeyBuilder, KeyReader};

/// One timeline entry: its stream position and the event.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub pos: u64,
    pub pdu: Pdu,
    /// The event's record (state before/after, for visibility and state lookups).
    pub record: PduRecord,
}

impl Rooms {
    pub fn room(&self, room_id: &RoomId) -> Result<Option<RoomRecord>> {
        self.room_records.get_or_load(room_id, || {
            Ok(ROOMS.get(&*self.db, &KeyBuilder::new().str(room_id.as_str()).build())?)
        })
    }

    pub fn event_short(&self, event_id: &EventId) -> Result<Option<u64>> {
        Ok(EVENT_SHORTS.get(&*self.db, &KeyBuilder::new().str(event_id.as_str()).build())?)
    }

    /// A PDU and its record, by short id.
    pub fn pdu_by_short(&self, short: u64) -> Result<Option<(Pdu, PduRecord)>> {
        if let Some(cached) = self.pdu_cache.get(&short) {
            return Ok(Some((*cached).clone()));
        }
        let Some(mut record) = PDUS.get(&*self.db, &short.to_be_bytes())? else {
            return Ok(None);
        };
        let json =
            serde_json::from_value(std::mem::take(&mut record.json)).map_err(Error::internal)?;
        let room_id = OwnedRoomId::try_from(record.room_id.as_str()).map_err(Error::internal)?;
        let event_id =
            ruma::OwnedEventId::try_from(record.event_id.as_str()).map_err(Error::internal)?;
        let entry = (Pdu::from_json(event_id, room_id, json)?, record);
        // Stored events never change (redactions live in their own index), so they cache.
        self.pdu_cache
            .insert(short, std::sync::Arc::new(entry.clone()));
        Ok(Some(entry))
    }

    /// A PDU by event id.
    pub fn pdu(&self, event_id: &EventId) -> Result<Option<Pdu>> {
        Ok(self.pdu_with_record(event_id)?.map(|(p, _)| p))
    }

    pub fn pdu_with_record(&self, event_id: &EventId) -> Result<Option<(Pdu, PduRecord)>> {
        match self.event_short(event_id)? {
            Some(short) => self.pdu_by_short(short),
            None => Ok(None),
        }
    }

    /// The current state event of `(kind, state_key)` in a room.
    pub fn current_state_event(
        &self,
        room_short: u64,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Pdu>> {
        match self.current_state_short(room_short, kind, state_key)? {
            Some(short) => Ok(self.pdu_by_short(short)?.map(|(p, _)| p)),
            None => Ok(None),
        }
    }

    /// The short id of the current state event of `(kind, state_key)`.
    pub fn current_state_short(
        &self,
        room_short: u64,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<u64>> {
        let Some(key_short) = self.state.state_key_short(kind, state_key)? else {
            return Ok(None);
        };
        self.current_state
            .get_or_load(&(room_short, key_short), || {
                let key = KeyBuilder::new().u64(room_short).u64(key_short).build();
                Ok(ROOM_STATE.get(&*self.db, &key)?)
            })
    }

    /// The stream position of an event, by short id. Sync asks this for every user's own
    /// member event in every room: the positions are kept apart from the (much larger) decoded
    /// events, so a room of 10,000 members doesn't cycle its members' events through the PDU
    /// cache.
    pub fn event_pos(&self, short: u64) -> Result<Option<u64>> {
        if let Some(pos) = self.pos_cache.get(&short) {
            return Ok(Some(pos));
        }
        let Some(record) = PDUS.get(&*self.db, &short.to_be_bytes())? else {
            return Ok(None);
        };
        self.pos_cache.insert(short, record.stream_pos);
        Ok(Some(record.stream_pos))
    }

    /// Every current state event of a room.
    pub fn current_state(&self, room_short: u64) -> Result<Vec<Pdu>> {
        let rows = ROOM_STATE.scan_prefix(&*self.db, &room_short.to_be_bytes(), usize::MAX)?;
        rows.into_iter()
            .filter_map(|(_, short)| self.pdu_by_short(short).transpose())
            .map(|r| r.map(|(p, _)| p))
            .collect()
    }

    /// The state events of a snapshot (the state at some point in the room's history).
    pub fn state_at(&self, snapshot: u64) -> Result<Vec<Pdu>> {
        self.state
            .load(snapshot)?
            .values()
            .filter_map(|short| self.pdu_by_short(*short).transpose())
            .map(|r| r.map(|(p, _)| p))
            .collect()
    }

    /// The state events of a snapshot whose `(type, state_key)` passes `keep`, reading only
    /// those events: a lazy-loading client in a room of 10,000 members wants a handful of
    /// member events, not all of them decoded and dropped.
    pub fn state_at_where(
        &self,
        snapshot: u64,
        keep: impl Fn(&str, &str) -> bool,
    ) -> Result<Vec<Pdu>> {
        let mut out = Vec::new();
        for (key_short, event_short) in self.state.load(snapshot)?.iter() {
            let names = self.state.state_key_of(*key_short)?;
            if keep(&names.0, &names.1)
                && let Some((pdu, _)) = self.pdu_by_short(*event_short)?
            {
                out.push(pdu);
            }
        }
        Ok(out)
    }

    /// The membership a member event sets, by short id. Visibility checks ask it of every
    /// reader's own member event: kept apart from the decoded events (see [`Self::event_pos`]).
    pub fn membership_set_by(&self, short: u64) -> Result<Option<String>> {
        if let Some(membership) = self.membership_cache.get(&short) {
            return Ok(Some(membership));
        }
        let membership = self
            .pdu_by_short(short)?
            .and_then(|(p, _)| p.content_json()["membership"].as_str().map(str::to_owned));
        if let Some(m) = &membership {
            self.membership_cache.insert(short, m.clone());
        }
        Ok(membership)
    }

    /// A user's membership within a snapshot.
    pub fn membership_at(&self, snapshot: u64, user_id: &UserId) -> Result<Option<String>> {
        match self.state_short_at(snapshot, "m.room.member", user_id.as_str())? {
            Some(short) => self.membership_set_by(short),
            None => Ok(None),
        }
    }

    /// The short id of the state event of `(kind, state_key)` within a snapshot.
    pub fn state_short_at(
        &self,
        snapshot: u64,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<u64>> {
        let Some(key_short) = self.state.state_key_short(kind, state_key)? else {
            return Ok(None);
        };
        Ok(self.state.load(snapshot)?.get(&key_short).copied())
    }

    /// One state event within a snapshot.
    pub fn state_event_at(
        &self,
        snapshot: u64,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Pdu>> {
        match self.state_short_at(snapshot, kind, state_key)? {
            Some(short) => Ok(self.pdu_by_short(short)?.map(|(p, _)| p)),
            None => Ok(None),
        }
    }

    /// A user's current membership in a room (`join`, `invite`, `leave`, `ban`, `knock`).
    pub fn membership(&self, room_short: u64, user_id: &UserId) -> Result<Option<String>> {
        Ok(ROOM_MEMBERS.get(
            &*self.db,
            &KeyBuilder::new()
                .u64(room_short)
                .str(user_id.as_str())
                .build(),
        )?)
    }

    /// `(user_id, membership)` of everyone with a membership in the room, read from the
    /// table; callers use the cached [`Rooms::roster`].
    pub(super) fn members(&self, room_short: u64) -> Result<Vec<(String, String)>> {
        let rows = ROOM_MEMBERS.scan_prefix(&*self.db, &room_short.to_be_bytes(), usize::MAX)?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, membership)| {
                let mut reader = KeyReader::new(&key);
                reader.u64()?;
                Some((reader.str()?, membership))
            })
            .collect())
    }

    /// The history visibility in force at a state snapshot (`shared` when unset), which every
    /// read checks per event.
    pub fn history_visibility_at(&self, snapshot: u64) -> Result<Arc<str>> {
        if let Some(cached) = self.visibility_cache.get(&snapshot) {
            return Ok(cached);
        }
        let value: Arc<str> = self
            .state_event_at(snapshot, "m.room.history_visibility", "")?
            .and_then(|p| {
                p.content_json()["history_visibility"]
                    .as_str()
                    .map(Arc::from)
            })
            .unwrap_or_else(|| Arc::from("shared"));
        self.visibility_cache.insert(snapshot, Arc::clone(&value));
        Ok(value)
    }

    /// `(room_id, membership)` of every room the user has a membership in. Every sync reads
    /// it; it changes only with the user's own member events.
    pub fn rooms_of(&self, user_id: &UserId) -> Result<Arc<Vec<(OwnedRoomId, String)>>> {
        self.user_rooms.get_or_load(user_id.as_str(), || {
            let prefix = KeyBuilder::new().str(user_id.as_str()).build();
            let rows = USER_ROOMS.scan_prefix(&*self.db, &prefix, usize::MAX)?;
            Ok(Arc::new(
                rows.into_iter()
                    .filter_map(|(key, membership)| {
                        let mut reader = KeyReader::new(&key);
                        reader.str()?;
                        Some((OwnedRoomId::try_from(reader.str()?).ok()?, membership))
                    })
                    .collect(),
            ))
        })
    }

    /// Timeline entries from stream position `from` (exclusive) in direction `backwards`, at
    /// most `limit`.
    pub fn timeline_page(
        &self,
        room_short: u64,
        from: u64,
        backwards: bool,
        limit: usize,
    ) -> Result<Vec<TimelineEntry>> {
        self.timeline_page_above(room_short, from, backwards, limit, None)
    }

    /// [`Self::timeline_page`] that, going backwards, stops above position `floor` without
    /// reading further: an incremental sync reads only what is new.
    pub fn timeline_page_above(
        &self,
        room_short: u64,
        from: u64,
        backwards: bool,
        limit: usize,
        floor: Option<u64>,
    ) -> Result<Vec<TimelineEntry>> {
        // An incremental read of what is new: memory usually knows (see `recent.rs`).
        if backwards
            && let Some(floor) = floor
            && let Some(recent) = self.recent.newest_between(room_short, floor, from, limit)
        {
            let mut out = Vec::with_capacity(recent.len());
            for (pos, short) in recent {
                if let Some((pdu, record)) = self.pdu_by_short(short)? {
                    out.push(TimelineEntry { pos, pdu, record });
                }
            }
            return Ok(out);
        }
        let prefix = room_short.to_be_bytes();
        let rows = if backwards {
            let start = match floor {
                Some(f) => KeyBuilder::new()
                    .u64(room_short)
                    .u64(f.saturating_add(1))
                    .build(),
                None => prefix.to_vec(),
            };
            let end = KeyBuilder::new().u64(room_short).u64(from).build();
            self.db
                .scan_range(TIMELINE.name, &start, Some(&end), true, limit)?
        } else {
            let start = KeyBuilder::new()
                .u64(room_short)
                .u64(from.saturating_add(1))
                .build();
            let end = KeyBuilder::new().u64(room_short + 1).build();
            self.db
                .scan_range(TIMELINE.name, &start, Some(&end), false, limit)?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            let pos = KeyReader::new(&key[8..])
                .u64()
                .ok_or_else(|| Error::internal("bad timeline key"))?;
            let short: u64 = serde_json::from_slice(&value).map_err(Error::internal)?;
            if let Some((pdu, record)) = self.pdu_by_short(short)? {
                out.push(TimelineEntry { pos, pdu, record });
            }
        }
        Ok(out)
    }
}

impl Rooms {
    /// Users with unlimited power in a room: in room versions that privilege creators (v12),
    /// the create event's sender and its `additional_creators`; otherwise nobody.
    pub fn creators(&self, room_id: &RoomId) -> Result<Vec<ruma::OwnedUserId>> {
        let Some(room) = self.room(room_id)? else {
            return Ok(Vec::new());
        };
        let version =
            ruma::RoomVersionId::try_from(room.version.as_str()).map_err(Error::internal)?;
        let rules = super::pipeline::rules_of(&version)?;
        if !rules.authorization.explicitly_privilege_room_creators {
            return Ok(Vec::new());
        }
        let Some(create) = self.current_state_event(room.short, "m.room.create", "")? else {
            return Ok(Vec::new());
        };
        let mut creators = vec![create.sender.clone()];
        if let Some(extra) = create.content_json()["additional_creators"].as_array() {
            creators.extend(
                extra
                    .iter()
                    .filter_map(|u| u.as_str())
                    .filter_map(|u| ruma::OwnedUserId::try_from(u).ok()),
            );
        }
        Ok(creators)
    }

    /// Forget a room the user left: it no longer counts among their rooms.
    pub fn forget(&self, room_id: &RoomId, user_id: &UserId) -> Result<()> {
        let mut batch = crate::storage::Batch::new();
        USER_ROOMS.delete(
            &mut batch,
            KeyBuilder::new()
                .str(user_id.as_str())
                .str(room_id.as_str())
                .build(),
        );
        Ok(self.db.write(batch)?)
    }
}

impl Rooms {
    /// Whether the user forgot the room: they have a membership in it but it is no longer among
    /// their rooms. Rejoining makes it theirs again.
    pub fn is_forgotten(&self, room_id: &RoomId, user_id: &UserId) -> Result<bool> {
        let key = KeyBuilder::new()
            .str(user_id.as_str())
            .str(room_id.as_str())
            .build();
        Ok(USER_ROOMS.get(&*self.db, &key)?.is_none())
    }

    /// The state snapshot in force at the gap after stream position `pos`: the state after the
    /// last event at or before it (0, the empty state, if there is none).
    pub fn snapshot_at(&self, room_short: u64, pos: u64) -> Result<u64> {
        let last = self.timeline_page(room_short, pos.saturating_add(1), true, 1)?;
        Ok(last
            .first()
            .map_or(super::state::EMPTY, |entry| entry.record.state_after))
    }
}

impl Rooms {
    /// The state events that differ between two snapshots: what a client holding `from` needs
    /// to reach `to`.
    pub fn state_diff(&self, from: u64, to: u64) -> Result<Vec<Pdu>> {
        let (before, after) = (self.state.load(from)?, self.state.load(to)?);
        after
            .iter()
            .filter(|(key, event)| before.get(key) != Some(event))
            .filter_map(|(_, short)| self.pdu_by_short(*short).transpose())
            .map(|r| r.map(|(p, _)| p))
            .collect()
    }
}

impl Rooms {
    /// Whether `user` meets a restricted join rule's `allow` conditions: joined to one of the
    /// rooms it names (`m.room_membership`).
    pub fn meets_join_allow(&self, join_rules: &serde_json::Value, user: &UserId) -> bool {
        join_rules["allow"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|allow| {
                allow["type"] == "m.room_membership"
                    && allow["room_id"]
                        .as_str()
                        .and_then(|r| RoomId::parse(r).ok())
                        .and_then(|r| self.room(&r).ok().flatten())
                        .is_some_and(|other| {
                            self.membership(other.short, user).ok().flatten().as_deref()
                                == Some("join")
                        })
            })
    }
}
