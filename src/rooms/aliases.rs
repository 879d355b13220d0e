//! Room aliases and the public room directory's visibility flags.

use ruma::{OwnedRoomId, RoomAliasId, RoomId, UserId};

use super::Rooms;
use super::tables::{ALIASES, AliasRecord, PUBLIC_ROOMS, ROOM_ALIASES};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::Batch;
use crate::storage::keys::{KeyBuilder, KeyReader};

fn alias_key(alias: &RoomAliasId) -> Vec<u8> {
    KeyBuilder::new().str(alias.as_str()).build()
}

impl Rooms {
    pub fn resolve_alias(&self, alias: &RoomAliasId) -> Result<Option<OwnedRoomId>> {
        Ok(ALIASES
            .get(&*self.db, &alias_key(alias))?
            .and_then(|r| OwnedRoomId::try_from(r.room_id).ok()))
    }

    pub fn alias_record(&self, alias: &RoomAliasId) -> Result<Option<AliasRecord>> {
        Ok(ALIASES.get(&*self.db, &alias_key(alias))?)
    }

    /// Point a local alias at a room. `M_ROOM_IN_USE` if the alias exists.
    pub fn create_alias(
        &self,
        alias: &RoomAliasId,
        room_id: &RoomId,
        creator: &UserId,
    ) -> Result<()> {
        if alias.server_name() != self.server_name() {
            return Err(Error::invalid_param("Alias must be on this server"));
        }
        let _guard = self.alias_lock.lock();
        if self.alias_record(alias)?.is_some() {
            return Err(Error::new(ErrorKind::RoomInUse, "Room alias already taken"));
        }
        let mut batch = Batch::new();
        let record = AliasRecord {
            room_id: room_id.to_string(),
            creator: creator.to_string(),
        };
        ALIASES.put(&mut batch, alias_key(alias), &record);
        ROOM_ALIASES.put(
            &mut batch,
            KeyBuilder::new()
                .str(room_id.as_str())
                .str(alias.as_str())
                .build(),
            &(),
        );
        Ok(self.db.write(batch)?)
    }

    pub fn delete_alias(&self, alias: &RoomAliasId) -> Result<()> {
        let _guard = self.alias_lock.lock();
        let record = self
            .alias_record(alias)?
            .ok_or_else(|| Error::not_found("Room alias not found"))?;
        let mut batch = Batch::new();
        ALIASES.delete(&mut batch, alias_key(alias));
        ROOM_ALIASES.delete(
            &mut batch,
            KeyBuilder::new()
                .str(&record.room_id)
                .str(alias.as_str())
                .build(),
        );
        Ok(self.db.write(batch)?)
    }

    /// The local aliases of a room.
    pub fn local_aliases(&self, room_id: &RoomId) -> Result<Vec<String>> {
        let prefix = KeyBuilder::new().str(room_id.as_str()).build();
        Ok(ROOM_ALIASES
            .scan_prefix(&*self.db, &prefix, usize::MAX)?
            .into_iter()
            .filter_map(|(key, ())| {
                let mut reader = KeyReader::new(&key);
                reader.str()?;
                reader.str()
            })
            .collect())
    }

    pub fn set_published(&self, room_id: &RoomId, published: bool) -> Result<()> {
        let mut batch = Batch::new();
        let key = KeyBuilder::new().str(room_id.as_str()).build();
        if published {
            PUBLIC_ROOMS.put(&mut batch, key, &());
        } else {
            PUBLIC_ROOMS.delete(&mut batch, key);
        }
        Ok(self.db.write(batch)?)
    }

    pub fn is_published(&self, room_id: &RoomId) -> Result<bool> {
        Ok(PUBLIC_ROOMS
            .get(&*self.db, &KeyBuilder::new().str(room_id.as_str()).build())?
            .is_some())
    }

    /// Published rooms, in room-id order.
    pub fn published_rooms(&self) -> Result<Vec<OwnedRoomId>> {
        Ok(PUBLIC_ROOMS
            .scan_prefix(&*self.db, b"", usize::MAX)?
            .into_iter()
            .filter_map(|(key, ())| OwnedRoomId::try_from(KeyReader::new(&key).str()?).ok())
            .collect())
    }
}
