//! Receipts (client-server API §Receipts): `m.read` (public), `m.read.private` (only its owner
//! sees it), threaded receipts. The latest receipt per (room, type, user, thread) is kept; each
//! change takes a stream position so sync delivers what changed since a token.

use std::sync::Arc;

use ruma::{EventId, RoomId, UserId};
use serde_json::{Map, Value, json};

use super::Notifier;
use super::tables::{RECEIPT_CHANGES, RECEIPTS, ReceiptChange, ReceiptRecord};
use crate::error::{Error, Result};
use crate::rooms::Rooms;
use crate::storage::keys::{KeyBuilder, KeyReader};
use crate::storage::stream::StreamCounter;
use crate::storage::stream_marks::StreamMarks;
use crate::storage::{Batch, KvEngine};
use crate::util::now_ms;

pub const READ: &str = "m.read";
pub const READ_PRIVATE: &str = "m.read.private";

pub struct Receipts {
    db: Arc<dyn KvEngine>,
    stream: Arc<StreamCounter>,
    notifier: Arc<Notifier>,
    rooms: Arc<Rooms>,
    /// Per room: the last position a receipt changed at (sync skips the table).
    marks: StreamMarks,
}

fn receipt_key(room_id: &str, kind: &str, user: &str, thread: &str) -> Vec<u8> {
    KeyBuilder::new()
        .str(room_id)
        .str(kind)
        .str(user)
        .str(thread)
        .build()
}

impl Receipts {
    pub fn new(
        db: Arc<dyn KvEngine>,
        stream: Arc<StreamCounter>,
        notifier: Arc<Notifier>,
        rooms: Arc<Rooms>,
    ) -> Self {
        Self {
            marks: StreamMarks::new(&stream),
            db,
            stream,
            notifier,
            rooms,
        }
    }

    /// Record a receipt. The event must be in the room; private receipts wake only their owner.
    pub fn set(
        &self,
        room_id: &RoomId,
        user: &UserId,
        kind: &str,
        event_id: &EventId,
        thread: Option<&str>,
    ) -> Result<()> {
        if !matches!(kind, READ | READ_PRIVATE) {
            return Err(Error::invalid_param("Unknown receipt type"));
        }
        let pdu = self
            .rooms
            .pdu(event_id)?
            .ok_or_else(|| Error::not_found("Event not found"))?;
        if pdu.room_id != room_id {
            return Err(Error::not_found("Event not found"));
        }
        let thread = thread.unwrap_or("");
        let key = receipt_key(room_id.as_str(), kind, user.as_str(), thread);
        let previous = RECEIPTS.get(&*self.db, &key)?;
        let permit = self.stream.reserve()?;
        let mut batch = Batch::new();
        if let Some(previous) = previous {
            RECEIPT_CHANGES.delete(
                &mut batch,
                KeyBuilder::new()
                    .str(room_id.as_str())
                    .u64(previous.stream_pos)
                    .build(),
            );
        }
        RECEIPTS.put(
            &mut batch,
            key,
            &ReceiptRecord {
                event_id: event_id.to_string(),
                ts: now_ms(),
                stream_pos: permit.pos(),
            },
        );
        RECEIPT_CHANGES.put(
            &mut batch,
            KeyBuilder::new()
                .str(room_id.as_str())
                .u64(permit.pos())
                .build(),
            &ReceiptChange {
                receipt_type: kind.to_owned(),
                user_id: user.to_string(),
                thread_id: thread.to_owned(),
            },
        );
        self.db.write(batch)?;
        let pos = permit.pos();
        self.marks.note(room_id.as_str(), pos);
        // A private receipt is its owner's alone: never part of a shared reply.
        if kind != READ_PRIVATE {
            self.rooms.note_ephemeral(pos, room_id)?;
        }
        drop(permit);
        let wake: Vec<String> = if kind == READ_PRIVATE {
            vec![user.to_string()]
        } else {
            let room = self
                .rooms
                .room(room_id)?
                .ok_or_else(|| Error::not_found("Unknown room"))?;
            self.rooms
                .roster(&room)?
                .joined()
                .map(str::to_owned)
                .collect()
        };
        self.notifier.notify_at(pos, wake);
        Ok(())
    }

    /// The `m.receipt` event a viewer gets for a room: all receipts (initial sync) or those that
    /// changed in `(since, upto]`. Others' private receipts are left out.
    pub fn event_for(
        &self,
        room_id: &RoomId,
        viewer: &UserId,
        since: Option<u64>,
        upto: u64,
    ) -> Result<Option<Value>> {
        let mut changes: Vec<(String, String, String, ReceiptRecord)> = Vec::new();
        match since {
            None => {
                let prefix = KeyBuilder::new().str(room_id.as_str()).build();
                for (key, record) in RECEIPTS.scan_prefix(&*self.db, &prefix, usize::MAX)? {
                    let mut reader = KeyReader::new(&key);
                    reader.str();
                    let (Some(kind), Some(user), Some(thread)) =
                        (reader.str(), reader.str(), reader.str())
                    else {
                        continue;
                    };
                    if record.stream_pos <= upto {
                        changes.push((kind, user, thread, record));
                    }
                }
            }
            Some(since) if !self.marks.changed_after(room_id.as_str(), since) => {}
            Some(since) => {
                let start = KeyBuilder::new()
                    .str(room_id.as_str())
                    .u64(since.saturating_add(1))
                    .build();
                let end = KeyBuilder::new()
                    .str(room_id.as_str())
                    .u64(upto.saturating_add(1))
                    .build();
                for (_, value) in self.db.scan_range(
                    RECEIPT_CHANGES.name,
                    &start,
                    Some(&end),
                    false,
                    usize::MAX,
                )? {
                    let change: ReceiptChange =
                        serde_json::from_slice(&value).map_err(Error::internal)?;
                    let key = receipt_key(
                        room_id.as_str(),
                        &change.receipt_type,
                        &change.user_id,
                        &change.thread_id,
                    );
                    if let Some(record) = RECEIPTS.get(&*self.db, &key)? {
                        changes.push((
                            change.receipt_type,
                            change.user_id,
                            change.thread_id,
                            record,
                        ));
                    }
                }
            }
        }
        let mut content = Map::new();
        for (kind, user, thread, record) in changes {
            if kind == READ_PRIVATE && user != viewer.as_str() {
                continue;
            }
            let mut receipt = json!({ "ts": record.ts });
            if !thread.is_empty() {
                receipt["thread_id"] = thread.into();
            }
            let by_event = content.entry(record.event_id).or_insert_with(|| json!({}));
            by_event[&kind][&user] = receipt;
        }
        Ok((!content.is_empty()).then(|| json!({ "type": "m.receipt", "content": content })))
    }
}
