//! The one event pipeline: build → check → persist → publish.

use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{DeviceId, EventId, OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, UserId};

use super::Rooms;
use super::state;
use super::tables::{
    EVENT_SHORTS, EVENT_TXNS, EventTxn, LEGACY_EXTREMITIES, PDUS, PduRecord, REDACTIONS,
    ROOM_EXTREMITIES, ROOM_MEMBERS, ROOM_STATE, ROOMS, RoomRecord, TIMELINE, TXN_IDS, USER_ROOMS,
};
use std::collections::HashMap;

use crate::error::{Error, ErrorKind, Result};
use crate::events::{Pdu, PduTemplate};
use crate::storage::Batch;
use crate::storage::keys::KeyBuilder;
use crate::util::random_alphanumeric;

/// An event's rows, staged in a batch: its stream position (retired when dropped, after the
/// batch is written), and whether it redacts or relates to another event (which, once written,
/// moves the annotation epoch: see `annotations.rs`).
struct Persisted {
    permit: crate::storage::stream::StreamPermit,
    annotates: bool,
    room_short: u64,
    event_short: u64,
    /// A member event's target: their room list changed.
    member: Option<String>,
    /// A state event's key: the room's current state changed there.
    state_key_short: Option<u64>,
}

/// Forward extremities: `(event short, event id)`.
type Extremities = Vec<(u64, String)>;

/// Identifies a client transaction: the same device retrying the same request.
pub struct TxnKey<'a> {
    pub user: &'a UserId,
    pub device: &'a DeviceId,
    /// Which endpoint (`send`, `redact`): the same txn id on another endpoint is another request.
    pub endpoint: &'static str,
    pub txn_id: &'a str,
}

impl TxnKey<'_> {
    fn key(&self, room_id: &RoomId) -> Vec<u8> {
        KeyBuilder::new()
            .str(self.user.as_str())
            .str(self.device.as_str())
            .str(room_id.as_str())
            .str(self.endpoint)
            .str(self.txn_id)
            .build()
    }
}

/// The rules of a room version Roost supports.
pub fn rules_of(version: &RoomVersionId) -> Result<RoomVersionRules> {
    version.rules().ok_or_else(|| {
        Error::new(
            crate::error::ErrorKind::UnsupportedRoomVersion,
            "Unsupported room version",
        )
    })
}

impl Rooms {
    /// Append a new local event to an existing room: the pipeline for everything but a room's
    /// create event.
    pub async fn append(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        template: PduTemplate,
    ) -> Result<Pdu> {
        let lock = self.room_lock(room_id);
        let _guard = lock.lock().await;
        self.append_locked(room_id, sender, template, None)
    }

    /// Append idempotently: the first request with `txn` appends and records the event id in
    /// the same batch; a retry (sequential or concurrent — both run under the room lock) gets
    /// the recorded event id and appends nothing.
    pub async fn append_with_txn(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        template: PduTemplate,
        txn: &TxnKey<'_>,
    ) -> Result<OwnedEventId> {
        let lock = self.room_lock(room_id);
        let _guard = lock.lock().await;
        if let Some(event_id) = TXN_IDS.get(&*self.db, &txn.key(room_id))? {
            return OwnedEventId::try_from(event_id).map_err(Error::internal);
        }
        Ok(self
            .append_locked(room_id, sender, template, Some(txn))?
            .event_id)
    }

    /// Create a room: its create event, then `rest` in order, all under the room's lock so no
    /// other event interleaves. Returns the new room's id.
    pub async fn create_room_with(
        &self,
        version: &RoomVersionId,
        creator: &UserId,
        create_content: serde_json::Value,
        rest: Vec<PduTemplate>,
    ) -> Result<OwnedRoomId> {
        let rules = rules_of(version)?;
        let room_id = if rules.authorization.room_create_event_id_as_room_id {
            None
        } else {
            let id = format!("!{}:{}", random_alphanumeric(18), self.server_name());
            Some(RoomId::parse(id).map_err(Error::internal)?)
        };
        // From v12 the room id is the create event's hash: two identical create requests by
        // one user in the same millisecond would name the same room. Whoever comes second
        // (the room exists once it holds the lock) builds its create event again a millisecond
        // later, which gives another id.
        let (create, room_id, lock) = loop {
            let template = PduTemplate::state("m.room.create", "", create_content.clone());
            let create = Pdu::build(
                template,
                room_id.as_deref(),
                &rules,
                creator,
                &[],
                &[],
                1,
                &self.key,
            )?;
            ruma::state_res::check_state_independent_auth_rules(
                &rules.authorization,
                &create,
                |_: &EventId| None::<Pdu>,
            )
            .map_err(|e| Error::bad_json(format!("Invalid create event: {e}")))?;
            let room_id = create.room_id.clone();
            let lock = self.room_lock(&room_id);
            let guard = lock.lock_owned().await;
            if self.room(&room_id)?.is_none() {
                break (create, room_id, guard);
            }
            drop(guard);
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        };
        let _guard = lock;

        // Build and check every initial event against the state they form among themselves,
        // before anything is stored: an invalid initial state leaves no half-made room.
        let mut events = vec![create];
        let mut state: HashMap<(String, String), usize> = HashMap::new();
        state.insert(("m.room.create".into(), String::new()), 0);
        for template in rest {
            let content =
                serde_json::value::to_raw_value(&template.content).map_err(Error::internal)?;
            let kind = TimelineEventType::from(template.kind.as_str());
            let auth_types = ruma::state_res::auth_types_for_event(
                &kind,
                creator,
                template.state_key.as_deref(),
                &content,
                &rules.authorization,
            )
            .map_err(Error::bad_json)?;
            let auth: Vec<&Pdu> = auth_types
                .iter()
                .filter_map(|(k, sk)| state.get(&(k.to_string(), sk.clone())).map(|i| &events[*i]))
                .collect();
            let prev = events.last().expect("the create event is first");
            let pdu = Pdu::build(
                template,
                Some(&room_id),
                &rules,
                creator,
                &[prev],
                &auth,
                prev.depth + 1,
                &self.key,
            )?;
            let by_id = |id: &EventId| events.iter().find(|e| e.event_id == id).cloned();
            let in_state = |k: &StateEventType, sk: &str| {
                state
                    .get(&(k.to_string(), sk.to_owned()))
                    .map(|i| events[*i].clone())
            };
            ruma::state_res::check_state_independent_auth_rules(&rules.authorization, &pdu, by_id)
                .and_then(|()| {
                    ruma::state_res::check_state_dependent_auth_rules(
                        &rules.authorization,
                        &pdu,
                        in_state,
                    )
                })
                .map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidRoomState,
                        format!("Invalid initial state: {e}"),
                    )
                })?;
            if let Some(state_key) = &pdu.state_key {
                state.insert((pdu.kind.to_string(), state_key.clone()), events.len());
            }
            events.push(pdu);
        }

        let mut room = RoomRecord {
            short: self.ids.reserve()?.pos(),
            version: version.to_string(),
            current_snapshot: state::EMPTY,
            layers_since_full: 0,
        };
        let mut batch = Batch::new();
        let mut staged = Vec::with_capacity(events.len());
        for pdu in &events {
            let persisted =
                self.persist_into(&room_id, &mut room, pdu, Vec::new(), &mut batch, true)?;
            staged.push(persisted);
        }
        self.db.write(batch)?;
        self.committed(&room_id, &staged);
        let last = staged.iter().map(|p| p.permit.pos()).max().unwrap_or(0);
        drop(staged);
        if let Some(last_event) = events.last() {
            self.publish(&room, last_event, last)?;
        }
        Ok(room_id)
    }

    fn append_locked(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        template: PduTemplate,
        txn: Option<&TxnKey<'_>>,
    ) -> Result<Pdu> {
        let mut room = self
            .room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let version = RoomVersionId::try_from(room.version.as_str()).map_err(Error::internal)?;
        let rules = rules_of(&version)?;

        // prev_events: the forward extremities (one, while the room only has local events).
        let (extremities, legacy_keys) = self.extremities(room.short)?;
        let mut prev = Vec::with_capacity(extremities.len());
        for (_, event_id) in &extremities {
            let id = EventId::parse(event_id).map_err(Error::internal)?;
            prev.push(
                self.pdu(&id)?
                    .ok_or_else(|| Error::internal("missing forward extremity"))?,
            );
        }
        let depth = prev.iter().map(|p| p.depth).max().unwrap_or(0) + 1;

        // auth_events: the state the auth rules say this event depends on.
        let content =
            serde_json::value::to_raw_value(&template.content).map_err(Error::internal)?;
        let kind = TimelineEventType::from(template.kind.as_str());
        let auth_types = ruma::state_res::auth_types_for_event(
            &kind,
            sender,
            template.state_key.as_deref(),
            &content,
            &rules.authorization,
        )
        .map_err(Error::bad_json)?;
        let mut auth = Vec::new();
        for (kind, state_key) in auth_types {
            if let Some(pdu) =
                self.current_state_event(room.short, &kind.to_string(), &state_key)?
            {
                auth.push(pdu);
            }
        }

        let prev_refs: Vec<&Pdu> = prev.iter().collect();
        let auth_refs: Vec<&Pdu> = auth.iter().collect();
        let pdu = Pdu::build(
            template,
            Some(room_id),
            &rules,
            sender,
            &prev_refs,
            &auth_refs,
            depth,
            &self.key,
        )?;
        self.check(&pdu, &rules, &room)?;

        let mut batch = Batch::new();
        if let Some(txn) = txn {
            TXN_IDS.put(&mut batch, txn.key(room_id), &pdu.event_id.to_string());
            let echo = EventTxn {
                device_id: txn.device.to_string(),
                txn_id: txn.txn_id.to_owned(),
            };
            EVENT_TXNS.put(
                &mut batch,
                KeyBuilder::new().str(pdu.event_id.as_str()).build(),
                &echo,
            );
        }
        self.persist(room_id, &mut room, &pdu, legacy_keys, batch)?;
        Ok(pdu)
    }

    /// The room's forward extremities, and the legacy rows they came from (to delete) if the
    /// room has no [`ROOM_EXTREMITIES`] row yet.
    fn extremities(&self, room_short: u64) -> Result<(Extremities, Vec<Vec<u8>>)> {
        if let Some(list) = ROOM_EXTREMITIES.get(&*self.db, &room_short.to_be_bytes())? {
            return Ok((list, Vec::new()));
        }
        let rows = LEGACY_EXTREMITIES.scan_prefix(&*self.db, &room_short.to_be_bytes(), 64)?;
        let mut list = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for (key, event_id) in rows {
            let short = key
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| Error::internal("bad forward extremity key"))?;
            list.push((short, event_id));
            keys.push(key);
        }
        Ok((list, keys))
    }

    /// The auth rules: state-independent (the auth events themselves), then state-dependent
    /// against the room's current state (which, for a local event, is also the state before
    /// it and the source of its auth events).
    fn check(&self, pdu: &Pdu, rules: &RoomVersionRules, room: &RoomRecord) -> Result<()> {
        let fetch_event = |id: &EventId| self.pdu(id).ok().flatten();
        ruma::state_res::check_state_independent_auth_rules(&rules.authorization, pdu, fetch_event)
            .map_err(Error::forbidden)?;
        let fetch_state = |kind: &StateEventType, state_key: &str| {
            self.current_state_event(room.short, &kind.to_string(), state_key)
                .ok()
                .flatten()
        };
        ruma::state_res::check_state_dependent_auth_rules(&rules.authorization, pdu, fetch_state)
            .map_err(Error::forbidden)
    }

    /// Write an accepted event in one batch: PDU and short id, timeline position, state
    /// snapshot and current state, membership indexes, forward extremities, room record.
    fn persist(
        &self,
        room_id: &RoomId,
        room: &mut RoomRecord,
        pdu: &Pdu,
        legacy_extremities: Vec<Vec<u8>>,
        mut batch: Batch,
    ) -> Result<()> {
        let persisted =
            self.persist_into(room_id, room, pdu, legacy_extremities, &mut batch, false)?;
        self.db.write(batch)?;
        self.committed(room_id, std::slice::from_ref(&persisted));
        let pos = persisted.permit.pos();
        drop(persisted);
        self.publish(room, pdu, pos)
    }

    /// Bring the in-memory indexes up to events just written: after the write, before their
    /// positions are retired and readable (see `annotations.rs` and `recent.rs`).
    fn committed(&self, room_id: &RoomId, staged: &[Persisted]) {
        if staged.iter().any(|p| p.annotates) {
            self.annotations.bump();
        }
        // The room record changes with the current state only.
        if staged.iter().any(|p| p.state_key_short.is_some()) {
            self.room_records.remove(room_id);
        }
        for p in staged {
            self.recent
                .push(p.room_short, p.permit.pos(), p.event_short);
            if p.state_key_short.is_none() {
                let write = super::room_positions::RoomWrite::Message;
                self.room_positions
                    .note(p.permit.pos(), p.room_short, room_id, write);
            }
            if let Some(user) = &p.member {
                self.member_marks.note(user, p.permit.pos());
                self.user_rooms.remove(user);
            }
            if let Some(key_short) = p.state_key_short {
                self.current_state.remove(&(p.room_short, key_short));
            }
        }
    }

    /// Put an accepted event's rows into `batch` without writing it, so several events (a new
    /// room's initial events) can commit together. The returned permit must live until the
    /// batch is written. `staged`: earlier events of the batch are not readable yet, so the state
    /// snapshot is always a delta on its (staged) parent.
    fn persist_into(
        &self,
        room_id: &RoomId,
        room: &mut RoomRecord,
        pdu: &Pdu,
        legacy_extremities: Vec<Vec<u8>>,
        batch: &mut Batch,
        staged: bool,
    ) -> Result<Persisted> {
        let short = self.ids.reserve()?.pos();
        // Held until the batch committed: sync never reads past a position still in flight.
        let permit = self.stream.reserve()?;
        EVENT_SHORTS.put(
            batch,
            KeyBuilder::new().str(pdu.event_id.as_str()).build(),
            &short,
        );

        let state_before = room.current_snapshot;
        let mut member = None;
        let mut state_key_short = None;
        if let Some(state_key) = &pdu.state_key {
            let kind = pdu.kind.to_string();
            let key_short = self.state.state_key_short_or_create(&kind, state_key)?;
            state_key_short = Some(key_short);
            let parent = (room.current_snapshot != state::EMPTY).then_some(room.current_snapshot);
            // A staged parent is not in the database yet: never fold it into a full layer.
            let layers_since_full = if staged { 0 } else { room.layers_since_full };
            let (snapshot, layers) =
                self.state
                    .derive(parent, layers_since_full, &[(key_short, short)], batch)?;
            room.current_snapshot = snapshot;
            // Staged deltas still count, so the next full layer comes when it should.
            room.layers_since_full = if staged && parent.is_some() {
                room.layers_since_full + 1
            } else {
                layers
            };
            ROOM_STATE.put(
                batch,
                KeyBuilder::new().u64(room.short).u64(key_short).build(),
                &short,
            );
            if pdu.member_target().is_some() {
                let membership = pdu.content_json()["membership"]
                    .as_str()
                    .unwrap_or("leave")
                    .to_owned();
                ROOM_MEMBERS.put(
                    batch,
                    KeyBuilder::new().u64(room.short).str(state_key).build(),
                    &membership,
                );
                USER_ROOMS.put(
                    batch,
                    KeyBuilder::new()
                        .str(state_key)
                        .str(room_id.as_str())
                        .build(),
                    &membership,
                );
                member = Some(state_key.clone());
            }
        }
        let record = PduRecord {
            event_id: pdu.event_id.to_string(),
            room_id: room_id.to_string(),
            stream_pos: permit.pos(),
            state_after: room.current_snapshot,
            state_before,
            soft_failed: false,
            json: serde_json::to_value(&*pdu.json).map_err(Error::internal)?,
        };
        PDUS.put(batch, short.to_be_bytes().to_vec(), &record);
        TIMELINE.put(
            batch,
            KeyBuilder::new().u64(room.short).u64(permit.pos()).build(),
            &short,
        );
        let mut annotates = false;
        // A redaction only ever applies to an event of its own room.
        if pdu.kind == TimelineEventType::RoomRedaction
            && let Some(target) = redaction_target(pdu)
            && self.pdu(&target)?.is_none_or(|t| t.room_id == room_id)
        {
            REDACTIONS.put(
                batch,
                KeyBuilder::new().str(target.as_str()).build(),
                &pdu.event_id.to_string(),
            );
            annotates = true;
        }
        annotates |= self.index_relation(pdu, room.short, permit.pos(), batch)?;
        // A local event names every forward extremity as a prev_event: it is the only one now.
        for key in legacy_extremities {
            LEGACY_EXTREMITIES.delete(batch, key);
        }
        ROOM_EXTREMITIES.put(
            batch,
            room.short.to_be_bytes().to_vec(),
            &vec![(short, pdu.event_id.to_string())],
        );
        ROOMS.put(batch, KeyBuilder::new().str(room_id.as_str()).build(), room);
        Ok(Persisted {
            permit,
            annotates,
            room_short: room.short,
            event_short: short,
            member,
            state_key_short,
        })
    }

    /// Wake whoever the event concerns: the room's members (joined, invited, knocking) and,
    /// for a membership change, its target.
    fn publish(&self, room: &RoomRecord, pdu: &Pdu, pos: u64) -> Result<()> {
        let roster = self.roster(room)?;
        // A membership's target may not be in the roster (a leave, a ban); waking a user twice
        // is harmless.
        let target = pdu.member_target();
        let members = roster.with(&["join", "invite", "knock"]);
        self.notifier.notify_at(pos, members.chain(target));
        Ok(())
    }
}

/// The event a redaction redacts: `content.redacts` (v11+) or the top-level `redacts`.
pub fn redaction_target(pdu: &Pdu) -> Option<OwnedEventId> {
    pdu.content_json()["redacts"]
        .as_str()
        .and_then(|r| OwnedEventId::try_from(r).ok())
        .or_else(|| pdu.redacts.clone())
}

#[cfg(test)]
mod tests {
    use ruma::OwnedUserId;
    use serde_json::json;

    use super::{LEGACY_EXTREMITIES, ROOM_EXTREMITIES};
    use crate::events::PduTemplate;
    use crate::rooms::create::CreateRoom;
    use crate::storage::Batch;
    use crate::storage::keys::KeyBuilder;

    /// Services on a fresh database (it lives as long as the directory), and alice.
    fn fresh() -> (
        tempfile::TempDir,
        std::sync::Arc<crate::services::Services>,
        OwnedUserId,
    ) {
        let (dir, services) = crate::services::Services::fresh_for_tests();
        let alice = OwnedUserId::try_from("@alice:localhost").unwrap();
        (dir, services, alice)
    }

    /// A user's membership mark moves with their own member events only, so a sync from a
    /// token after it may skip reading their member events.
    #[tokio::test]
    async fn a_users_membership_mark_moves_with_their_member_events_only() {
        let (_dir, services, alice) = fresh();
        let rooms = &services.rooms;
        let bob = "@bob:localhost";
        let start = services.stream.frontier();
        let room_id = rooms
            .create_room(&alice, CreateRoom::default())
            .await
            .unwrap();
        let before = services.stream.frontier();
        assert!(
            rooms.membership_changed_after(alice.as_str(), start),
            "alice joined in the room's creation"
        );
        assert!(!rooms.membership_changed_after(bob, start));
        assert!(!rooms.membership_changed_after(alice.as_str(), before));

        let message = PduTemplate::message("m.room.message", json!({"body": "hi"}));
        rooms.append(&room_id, &alice, message).await.unwrap();
        assert!(
            !rooms.membership_changed_after(bob, before),
            "someone else's message"
        );

        let invite = PduTemplate::state("m.room.member", bob, json!({"membership": "invite"}));
        rooms.append(&room_id, &alice, invite).await.unwrap();
        assert!(rooms.membership_changed_after(bob, before));
        assert!(!rooms.membership_changed_after(bob, services.stream.frontier()));
        assert!(!rooms.membership_changed_after(alice.as_str(), before));
    }

    /// A database written before `room_extremities` existed keeps its forward extremities in
    /// the legacy table: the next append builds on them and moves the room to the new row.
    #[tokio::test]
    async fn appends_build_on_legacy_extremities_and_migrate_them() {
        let (_dir, services, alice) = fresh();
        let rooms = &services.rooms;
        let room_id = rooms
            .create_room(&alice, CreateRoom::default())
            .await
            .unwrap();
        let message = || PduTemplate::message("m.room.message", json!({"body": "hi"}));
        let last = rooms.append(&room_id, &alice, message()).await.unwrap();
        let room = rooms.room(&room_id).unwrap().unwrap();
        let last_short = rooms.event_short(&last.event_id).unwrap().unwrap();

        // Rewrite the room's extremities in the legacy layout.
        let legacy_key = KeyBuilder::new().u64(room.short).u64(last_short).build();
        let mut batch = Batch::new();
        ROOM_EXTREMITIES.delete(&mut batch, room.short.to_be_bytes().to_vec());
        LEGACY_EXTREMITIES.put(&mut batch, legacy_key.clone(), &last.event_id.to_string());
        rooms.db.write(batch).unwrap();

        let next = rooms.append(&room_id, &alice, message()).await.unwrap();
        assert_eq!(next.prev_events, vec![last.event_id.clone()]);
        assert_eq!(
            LEGACY_EXTREMITIES.get(&*rooms.db, &legacy_key).unwrap(),
            None
        );
        let row = ROOM_EXTREMITIES
            .get(&*rooms.db, &room.short.to_be_bytes())
            .unwrap()
            .unwrap();
        let next_short = rooms.event_short(&next.event_id).unwrap().unwrap();
        assert_eq!(row, vec![(next_short, next.event_id.to_string())]);

        // And from the new row on, as usual.
        let third = rooms.append(&room_id, &alice, message()).await.unwrap();
        assert_eq!(third.prev_events, vec![next.event_id.clone()]);
    }
}
