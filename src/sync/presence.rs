//! Presence (client-server API §Presence): what a user set, derived down to `unavailable` and
//! `offline` by idle time, delivered to users who share a room with them. A config switch
//! turns it off.

use std::collections::BTreeSet;
use std::sync::Arc;

use ruma::UserId;
use serde_json::{Value, json};

use super::Notifier;
use super::tables::{PRESENCE, PRESENCE_CHANGES, PresenceRecord};
use crate::error::{Error, Result};
use crate::rooms::Rooms;
use crate::rooms::roster::Roster;
use crate::storage::keys::KeyBuilder;
use crate::storage::stream::StreamCounter;
use crate::storage::stream_marks::StreamMarks;
use crate::storage::{Batch, KvEngine};
use crate::util::{GenerationalCache, now_ms};

/// How often an unchanged `online` is written again just to refresh `last_active`.
const REFRESH_MS: u64 = 60_000;

pub struct Presence {
    db: Arc<dyn KvEngine>,
    stream: Arc<StreamCounter>,
    notifier: Arc<Notifier>,
    rooms: Arc<Rooms>,
    pub enabled: bool,
    idle_ms: u64,
    offline_ms: u64,
    /// The last position any presence changed at (key ""): sync skips the change table.
    marks: StreamMarks,
    /// Records by user (also "none"): every sync reads its user's to apply `set_presence`,
    /// and it rarely changes. An entry goes after each write of the record.
    records: GenerationalCache<String, Option<PresenceRecord>>,
}

/// Presence records kept in memory (about twice as many at most).
const RECORD_CACHE_CAPACITY: usize = 16_384;

impl Presence {
    pub fn new(
        db: Arc<dyn KvEngine>,
        stream: Arc<StreamCounter>,
        notifier: Arc<Notifier>,
        rooms: Arc<Rooms>,
        config: &crate::config::PresenceConfig,
    ) -> Self {
        Self {
            marks: StreamMarks::new(&stream),
            records: GenerationalCache::new(RECORD_CACHE_CAPACITY),
            db,
            stream,
            notifier,
            rooms,
            enabled: config.enabled,
            idle_ms: config.idle_timeout_secs * 1000,
            offline_ms: config.offline_timeout_secs * 1000,
        }
    }

    fn record(&self, user: &UserId) -> Result<Option<PresenceRecord>> {
        self.records.get_or_load(user.as_str(), || {
            Ok(PRESENCE.get(&*self.db, &KeyBuilder::new().str(user.as_str()).build())?)
        })
    }

    /// Write a batch holding `user`'s record.
    fn commit(&self, user: &UserId, batch: Batch) -> Result<()> {
        self.db.write(batch)?;
        self.records.remove(user.as_str());
        Ok(())
    }

    /// Set a user's presence (and status message); `refresh_only` writes only if the state
    /// changed or `last_active` is stale, so every sync doesn't cost a write.
    pub fn set(
        &self,
        user: &UserId,
        presence: &str,
        status_msg: Option<Option<String>>,
        refresh_only: bool,
    ) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if !matches!(presence, "online" | "unavailable" | "offline") {
            return Err(Error::invalid_param(
                "presence must be online, unavailable or offline",
            ));
        }
        let previous = self.record(user)?;
        if refresh_only
            && let Some(p) = &previous
            && p.presence == presence
        {
            // Nothing others would see changed: refresh `last_active` quietly (no stream
            // position, nobody woken), at most once a minute. Waking a room's every member on
            // each member's periodic refresh is quadratic in the room's size.
            if now_ms().saturating_sub(p.last_active_ms) >= REFRESH_MS {
                let mut refreshed = p.clone();
                refreshed.last_active_ms = now_ms();
                let mut batch = Batch::new();
                PRESENCE.put(
                    &mut batch,
                    KeyBuilder::new().str(user.as_str()).build(),
                    &refreshed,
                );
                self.commit(user, batch)?;
            }
            return Ok(());
        }
        let status_msg = match status_msg {
            Some(s) => s,
            None => previous.as_ref().and_then(|p| p.status_msg.clone()),
        };
        // A first record that says `offline` with no message shows others nothing new (no
        // presence reads as offline): store it without publishing a change to the room.
        if previous.is_none() && presence == "offline" && status_msg.is_none() {
            let record = PresenceRecord {
                presence: presence.to_owned(),
                status_msg,
                last_active_ms: now_ms(),
                stream_pos: 0,
            };
            let mut batch = Batch::new();
            PRESENCE.put(
                &mut batch,
                KeyBuilder::new().str(user.as_str()).build(),
                &record,
            );
            self.commit(user, batch)?;
            return Ok(());
        }
        let permit = self.stream.reserve()?;
        let mut batch = Batch::new();
        if let Some(p) = &previous {
            PRESENCE_CHANGES.delete(&mut batch, p.stream_pos.to_be_bytes().to_vec());
        }
        let record = PresenceRecord {
            presence: presence.to_owned(),
            status_msg,
            last_active_ms: now_ms(),
            stream_pos: permit.pos(),
        };
        PRESENCE.put(
            &mut batch,
            KeyBuilder::new().str(user.as_str()).build(),
            &record,
        );
        PRESENCE_CHANGES.put(
            &mut batch,
            permit.pos().to_be_bytes().to_vec(),
            &user.to_string(),
        );
        self.commit(user, batch)?;
        let pos = permit.pos();
        self.marks.note("", pos);
        drop(permit);
        let mut audience: Vec<String> = self.audience(user)?.into_iter().collect();
        audience.push(user.to_string());
        self.notifier.notify_at(pos, audience);
        Ok(())
    }

    /// The rosters of the rooms `user` is joined to.
    fn joined_rosters(&self, user: &UserId) -> Result<Vec<Arc<Roster>>> {
        let mut rosters = Vec::new();
        for (room_id, membership) in self.rooms.rooms_of(user)?.iter() {
            if membership == "join"
                && let Some(room) = self.rooms.room(room_id)?
            {
                rosters.push(self.rooms.roster(&room)?);
            }
        }
        Ok(rosters)
    }

    /// Users who share a joined room with `user`.
    fn audience(&self, user: &UserId) -> Result<BTreeSet<String>> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        for roster in self.joined_rosters(user)? {
            out.extend(roster.joined().map(str::to_owned));
        }
        out.remove(user.as_str());
        Ok(out)
    }

    /// Whether `viewer` may see `user`'s presence: themselves, or someone sharing a room.
    pub fn may_see(&self, viewer: &UserId, user: &UserId) -> Result<bool> {
        Ok(viewer == user
            || self
                .joined_rosters(viewer)?
                .iter()
                .any(|r| r.is_joined(user.as_str())))
    }

    /// The presence content clients see, with idle time applied.
    pub fn content(&self, user: &UserId) -> Result<Option<Value>> {
        let Some(record) = self.record(user)? else {
            return Ok(None);
        };
        let ago = now_ms().saturating_sub(record.last_active_ms);
        let presence = match record.presence.as_str() {
            "online" if ago >= self.offline_ms => "offline",
            "online" if ago >= self.idle_ms => "unavailable",
            other => other,
        };
        let mut content = json!({
            "presence": presence,
            "last_active_ago": ago,
            "currently_active": presence == "online",
        });
        if let Some(msg) = &record.status_msg {
            content["status_msg"] = msg.clone().into();
        }
        Ok(Some(content))
    }

    /// `m.presence` events for `viewer`: everyone visible (initial sync) or whose presence
    /// changed in `(since, upto]`.
    pub fn events_for(&self, viewer: &UserId, since: Option<u64>, upto: u64) -> Result<Vec<Value>> {
        if !self.enabled {
            return Ok(Vec::new());
        }
        let users: Vec<String> = match since {
            None => {
                let mut audience = self.audience(viewer)?;
                audience.insert(viewer.to_string());
                audience.into_iter().collect()
            }
            Some(since) if !self.marks.changed_after("", since) => return Ok(Vec::new()),
            Some(since) => {
                // What changed first: usually nothing, and then the audience (everyone in the
                // viewer's rooms, costly in big rooms) is never computed.
                let changed: Vec<String> = self
                    .db
                    .scan_range(
                        PRESENCE_CHANGES.name,
                        &since.saturating_add(1).to_be_bytes(),
                        Some(&upto.saturating_add(1).to_be_bytes()),
                        false,
                        usize::MAX,
                    )?
                    .into_iter()
                    .filter_map(|(_, v)| serde_json::from_slice::<String>(&v).ok())
                    .collect();
                if changed.is_empty() {
                    return Ok(Vec::new());
                }
                // The viewer's rooms once, then a set lookup per changed user: a burst of
                // changes (a workspace coming online) costs each viewer one lookup per change.
                let rosters = self.joined_rosters(viewer)?;
                changed
                    .into_iter()
                    .filter(|user| {
                        user == viewer.as_str() || rosters.iter().any(|r| r.is_joined(user))
                    })
                    .collect()
            }
        };
        let mut events = Vec::new();
        for user in users {
            let Ok(user_id) = UserId::parse(&user) else {
                continue;
            };
            if let Some(content) = self.content(&user_id)? {
                events.push(json!({ "type": "m.presence", "sender": user, "content": content }));
            }
        }
        Ok(events)
    }
}
