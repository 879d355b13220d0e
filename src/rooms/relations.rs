//! Relations (client-server API §"Forming relationships between events"): the index of events
//! that relate to others, edits (`m.replace`), threads (`m.thread`) and the aggregations served
//! in `unsigned.m.relations`.

use ruma::{EventId, UserId};
use serde_json::{Value, json};

use super::Rooms;
use super::tables::{RELATIONS, RelationRecord, THREADS, ThreadRecord};
use crate::error::{Error, Result};
use crate::events::Pdu;
use crate::storage::Batch;
use crate::storage::keys::{KeyBuilder, KeyReader};

/// `(rel_type, target)` of an event's `m.relates_to`, if it has one.
pub fn relation_of(pdu: &Pdu) -> Option<(String, ruma::OwnedEventId)> {
    let content = pdu.content_json();
    let relates = content.get("m.relates_to")?;
    let rel_type = relates.get("rel_type")?.as_str()?.to_owned();
    let target = ruma::OwnedEventId::try_from(relates.get("event_id")?.as_str()?).ok()?;
    Some((rel_type, target))
}

/// One related event found by [`Rooms::relations`].
pub struct Related {
    pub pos: u64,
    pub record: RelationRecord,
}

impl Rooms {
    /// Index `pdu`'s relation (and thread membership) into `batch`: part of the event's write.
    /// Says whether `pdu` had a relation to index.
    pub(super) fn index_relation(
        &self,
        pdu: &Pdu,
        room_short: u64,
        pos: u64,
        batch: &mut Batch,
    ) -> Result<bool> {
        let Some((rel_type, target)) = relation_of(pdu) else {
            return Ok(false);
        };
        let record = RelationRecord {
            event_id: pdu.event_id.to_string(),
            rel_type: rel_type.clone(),
            event_type: pdu.kind.to_string(),
            sender: pdu.sender.to_string(),
        };
        RELATIONS.put(
            batch,
            KeyBuilder::new().str(target.as_str()).u64(pos).build(),
            &record,
        );
        if rel_type == "m.thread" {
            let key = KeyBuilder::new()
                .u64(room_short)
                .str(target.as_str())
                .build();
            let mut thread = match THREADS.get(&*self.db, &key)? {
                Some(t) => t,
                None => {
                    let root_sender = self.pdu(&target)?.map(|r| r.sender.to_string());
                    ThreadRecord {
                        latest_event_id: String::new(),
                        latest_pos: 0,
                        count: 0,
                        participants: root_sender.into_iter().collect(),
                    }
                }
            };
            thread.latest_event_id = pdu.event_id.to_string();
            thread.latest_pos = pos;
            thread.count += 1;
            if !thread.participants.iter().any(|p| p == pdu.sender.as_str()) {
                thread.participants.push(pdu.sender.to_string());
            }
            THREADS.put(batch, key, &thread);
        }
        Ok(true)
    }

    /// Events relating to `target`, in stream order from `from` (exclusive) in either direction.
    pub fn relations(
        &self,
        target: &EventId,
        from: Option<u64>,
        backwards: bool,
        limit: usize,
    ) -> Result<Vec<Related>> {
        let prefix = KeyBuilder::new().str(target.as_str()).build();
        let end = crate::storage::keys::prefix_end(&prefix);
        let rows = match (from, backwards) {
            (None, false) => {
                self.db
                    .scan_range(RELATIONS.name, &prefix, end.as_deref(), false, limit)?
            }
            (None, true) => {
                self.db
                    .scan_range(RELATIONS.name, &prefix, end.as_deref(), true, limit)?
            }
            (Some(pos), false) => {
                let start = KeyBuilder::new()
                    .str(target.as_str())
                    .u64(pos.saturating_add(1))
                    .build();
                self.db
                    .scan_range(RELATIONS.name, &start, end.as_deref(), false, limit)?
            }
            (Some(pos), true) => {
                let stop = KeyBuilder::new().str(target.as_str()).u64(pos).build();
                self.db
                    .scan_range(RELATIONS.name, &prefix, Some(&stop), true, limit)?
            }
        };
        rows.into_iter()
            .map(|(key, value)| {
                let pos = KeyReader::new(&key[prefix.len()..])
                    .u64()
                    .ok_or_else(|| Error::internal("bad relation key"))?;
                let record = serde_json::from_slice(&value).map_err(Error::internal)?;
                Ok(Related { pos, record })
            })
            .collect()
    }

    /// The room's threads: `(root event id, record)`, most recently active first.
    pub fn threads(&self, room_short: u64) -> Result<Vec<(String, ThreadRecord)>> {
        let rows = THREADS.scan_prefix(&*self.db, &room_short.to_be_bytes(), usize::MAX)?;
        let mut threads: Vec<(String, ThreadRecord)> = rows
            .into_iter()
            .filter_map(|(key, record)| Some((KeyReader::new(&key[8..]).str()?, record)))
            .collect();
        threads.sort_by_key(|t| std::cmp::Reverse(t.1.latest_pos));
        Ok(threads)
    }

    pub fn thread(&self, room_short: u64, root: &EventId) -> Result<Option<ThreadRecord>> {
        Ok(THREADS.get(
            &*self.db,
            &KeyBuilder::new().u64(room_short).str(root.as_str()).build(),
        )?)
    }

    /// `unsigned.m.relations` for an event: the latest edit by its sender (`m.replace`), the
    /// thread summary (`m.thread`), references (`m.reference`).
    pub fn aggregations(&self, pdu: &Pdu, viewer: Option<&UserId>) -> Result<Option<Value>> {
        let related = self.relations(&pdu.event_id, None, false, 1000)?;
        if related.is_empty() {
            return Ok(None);
        }
        let mut out = serde_json::Map::new();
        let edit = related
            .iter()
            .rev()
            .find(|r| r.record.rel_type == "m.replace" && r.record.sender == pdu.sender.as_str());
        if let Some(edit) = edit
            && let Some(edit_pdu) = self.pdu(
                &ruma::OwnedEventId::try_from(edit.record.event_id.as_str())
                    .map_err(Error::internal)?,
            )?
            && self.redacted_by(&edit_pdu)?.is_none()
        {
            out.insert("m.replace".into(), self.plain_client_event(&edit_pdu));
        }
        let room = self.room(&pdu.room_id)?;
        if let Some(room) = room
            && let Some(thread) = self.thread(room.short, &pdu.event_id)?
            && let Some(latest) = self.pdu(
                &ruma::OwnedEventId::try_from(thread.latest_event_id.as_str())
                    .map_err(Error::internal)?,
            )?
        {
            let participated =
                viewer.is_some_and(|v| thread.participants.iter().any(|p| p == v.as_str()));
            out.insert(
                "m.thread".into(),
                json!({
                    "latest_event": self.plain_client_event(&latest),
                    "count": thread.count,
                    "current_user_participated": participated,
                }),
            );
        }
        let references: Vec<Value> = related
            .iter()
            .filter(|r| r.record.rel_type == "m.reference")
            .map(|r| json!({ "event_id": r.record.event_id }))
            .collect();
        if !references.is_empty() {
            out.insert("m.reference".into(), json!({ "chunk": references }));
        }
        Ok((!out.is_empty()).then_some(Value::Object(out)))
    }
}
