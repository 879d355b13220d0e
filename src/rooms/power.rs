//! Reading a room's power levels for checks the client API makes before it builds an event
//! (redaction of others' events, alias and directory changes). The auth rules themselves are
//! ruma's; this only answers "is this user's level high enough for X" the same way.

use ruma::{RoomId, UserId};
use serde_json::Value;

use super::Rooms;
use crate::error::Result;

/// The current power levels of a room, with who created it.
pub struct PowerLevels {
    content: Option<Value>,
    /// Users with unlimited power (v12 creators).
    creators: Vec<ruma::OwnedUserId>,
    /// The create event's sender: level 100 when the room has no power levels event.
    create_sender: Option<ruma::OwnedUserId>,
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

impl PowerLevels {
    /// A user's level (`i64::MAX` for privileged creators).
    pub fn user_level(&self, user: &UserId) -> i64 {
        if self.creators.iter().any(|c| c == user) {
            return i64::MAX;
        }
        match &self.content {
            Some(p) => as_int(&p["users"][user.as_str()])
                .or_else(|| as_int(&p["users_default"]))
                .unwrap_or(0),
            None if self.create_sender.as_deref() == Some(user) => 100,
            None => 0,
        }
    }

    /// The level an action needs: `invite` (default 0), `redact`, `kick`, `ban` (default 50).
    pub fn action_level(&self, action: &str) -> i64 {
        let default = if action == "invite" { 0 } else { 50 };
        self.content
            .as_ref()
            .and_then(|p| as_int(&p[action]))
            .unwrap_or(default)
    }

    /// The level a state event of `kind` needs: its `events` entry, else `state_default`.
    pub fn state_level(&self, kind: &str) -> i64 {
        let Some(p) = &self.content else { return 50 };
        as_int(&p["events"][kind])
            .or_else(|| as_int(&p["state_default"]))
            .unwrap_or(50)
    }
}

impl Rooms {
    pub fn power_levels(&self, room_id: &RoomId) -> Result<PowerLevels> {
        let creators = self.creators(room_id)?;
        let Some(room) = self.room(room_id)? else {
            return Ok(PowerLevels {
                content: None,
                creators,
                create_sender: None,
            });
        };
        let content = self
            .current_state_event(room.short, "m.room.power_levels", "")?
            .map(|p| p.content_json());
        let create_sender = self
            .current_state_event(room.short, "m.room.create", "")?
            .map(|c| c.sender);
        Ok(PowerLevels {
            content,
            creators,
            create_sender,
        })
    }

    /// Whether the user's level reaches what `action` needs.
    pub fn has_power(&self, room_id: &RoomId, user_id: &UserId, action: &str) -> Result<bool> {
        let power = self.power_levels(room_id)?;
        Ok(power.user_level(user_id) >= power.action_level(action))
    }

    /// Whether the user's level reaches what sending state of `kind` needs.
    pub fn can_send_state(&self, room_id: &RoomId, user_id: &UserId, kind: &str) -> Result<bool> {
        let power = self.power_levels(room_id)?;
        Ok(power.user_level(user_id) >= power.state_level(kind))
    }
}
