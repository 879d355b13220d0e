//! Account data: per-user JSON blobs, global or per room, delivered through sync.
//!
//! Every write takes a stream position; the change index (`user‖pos → (room, type)`) is what
//! incremental sync reads to find what changed since a token. Rewriting a key deletes its older
//! index row in the same batch, so the index holds one row per key.

use std::sync::Arc;

use ruma::{RoomId, UserId};
use serde_json::Value;

use super::tables::{ACCOUNT_DATA, ACCOUNT_DATA_CHANGES, AccountDataChange, AccountDataRecord};
use crate::error::{Error, Result};
use crate::storage::keys::KeyBuilder;
use crate::storage::stream::StreamCounter;
use crate::storage::stream_marks::StreamMarks;
use crate::storage::{Batch, KvEngine};

/// Types the server manages itself; clients can't write them through this API (405).
const SERVER_MANAGED: &[&str] = &["m.fully_read", "m.push_rules"];

pub struct AccountData {
    db: Arc<dyn KvEngine>,
    stream: Arc<StreamCounter>,
    notifier: Arc<crate::sync::Notifier>,
    /// Per user: the last position their account data changed at (sync skips the table).
    marks: StreamMarks,
}

fn data_key(user_id: &UserId, room_id: Option<&RoomId>, data_type: &str) -> Vec<u8> {
    KeyBuilder::new()
        .str(user_id.as_str())
        .str(room_id.map(|r| r.as_str()).unwrap_or(""))
        .str(data_type)
        .build()
}

impl AccountData {
    pub fn new(
        db: Arc<dyn KvEngine>,
        stream: Arc<StreamCounter>,
        notifier: Arc<crate::sync::Notifier>,
    ) -> Self {
        Self {
            marks: StreamMarks::new(&stream),
            db,
            stream,
            notifier,
        }
    }

    pub fn get(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
    ) -> Result<Option<Value>> {
        Ok(ACCOUNT_DATA
            .get(&*self.db, &data_key(user_id, room_id, data_type))?
            .map(|r| r.content))
    }

    /// Store `content` as a client write: server-managed types are refused with 405 `M_BAD_JSON`.
    pub fn set_by_client(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
        content: Value,
    ) -> Result<()> {
        if SERVER_MANAGED.contains(&data_type) {
            return Err(
                Error::bad_json(format!("Cannot set {data_type} through this API."))
                    .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED),
            );
        }
        if !content.is_object() {
            return Err(Error::bad_json(
                "Account data content must be a JSON object",
            ));
        }
        self.set(user_id, room_id, data_type, content)
    }

    /// Store `content` (any type, including server-managed ones).
    pub fn set(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
        content: Value,
    ) -> Result<()> {
        let key = data_key(user_id, room_id, data_type);
        let previous = ACCOUNT_DATA.get(&*self.db, &key)?;
        let permit = self.stream.reserve()?;
        let mut batch = Batch::new();
        if let Some(previous) = previous {
            ACCOUNT_DATA_CHANGES.delete(
                &mut batch,
                KeyBuilder::new()
                    .str(user_id.as_str())
                    .u64(previous.stream_pos)
                    .build(),
            );
        }
        ACCOUNT_DATA.put(
            &mut batch,
            key,
            &AccountDataRecord {
                content,
                stream_pos: permit.pos(),
            },
        );
        ACCOUNT_DATA_CHANGES.put(
            &mut batch,
            KeyBuilder::new()
                .str(user_id.as_str())
                .u64(permit.pos())
                .build(),
            &AccountDataChange {
                room_id: room_id.map(|r| r.to_string()).unwrap_or_default(),
                data_type: data_type.to_owned(),
            },
        );
        self.db.write(batch)?;
        let pos = permit.pos();
        self.marks.note(user_id.as_str(), pos);
        drop(permit);
        self.notifier.notify_at(pos, [user_id.to_string()]);
        Ok(())
    }
}

impl AccountData {
    /// Every piece of account data of a user: `(room_id or "", type, content)`.
    pub fn all(&self, user_id: &UserId) -> Result<Vec<(String, String, Value)>> {
        let prefix = KeyBuilder::new().str(user_id.as_str()).build();
        let rows = ACCOUNT_DATA.scan_prefix(&*self.db, &prefix, usize::MAX)?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, record)| {
                let mut reader = crate::storage::keys::KeyReader::new(&key);
                reader.str()?;
                Some((reader.str()?, reader.str()?, record.content))
            })
            .collect())
    }

    /// What changed for a user at stream positions in `(since, upto]`: `(room_id or "", type,
    /// content)`, each key once with its current content.
    pub fn changed(
        &self,
        user_id: &UserId,
        since: u64,
        upto: u64,
    ) -> Result<Vec<(String, String, Value)>> {
        if !self.marks.changed_after(user_id.as_str(), since) {
            return Ok(Vec::new());
        }
        let start = KeyBuilder::new()
            .str(user_id.as_str())
            .u64(since.saturating_add(1))
            .build();
        let end = KeyBuilder::new()
            .str(user_id.as_str())
            .u64(upto.saturating_add(1))
            .build();
        let rows = self.db.scan_range(
            ACCOUNT_DATA_CHANGES.name,
            &start,
            Some(&end),
            false,
            usize::MAX,
        )?;
        let mut out = Vec::new();
        for (_, value) in rows {
            let change: AccountDataChange =
                serde_json::from_slice(&value).map_err(crate::error::Error::internal)?;
            let room = (!change.room_id.is_empty())
                .then(|| RoomId::parse(&change.room_id).ok())
                .flatten();
            if let Some(content) = self.get(user_id, room.as_deref(), &change.data_type)? {
                out.push((change.room_id, change.data_type, content));
            }
        }
        Ok(out)
    }
}
