//! History visibility (client-server API §"History visibility"), applied on every read path.

use std::collections::HashMap;

use ruma::UserId;

use super::Rooms;
use super::tables::PduRecord;
use crate::error::Result;
use crate::events::Pdu;

/// Decides visibility for one user over many events, caching what each state snapshot says.
pub struct VisibilityCheck<'a> {
    rooms: &'a Rooms,
    user: &'a UserId,
    /// The user's membership now.
    current: Option<String>,
    membership: HashMap<u64, Option<String>>,
}

impl<'a> VisibilityCheck<'a> {
    pub fn new(rooms: &'a Rooms, user: &'a UserId, room_short: u64) -> Result<Self> {
        let current = rooms.membership(room_short, user)?;
        Ok(Self::with_membership(rooms, user, current))
    }

    /// For a caller that already knows the user's current membership (sync, from the
    /// user's room list).
    pub fn with_membership(rooms: &'a Rooms, user: &'a UserId, current: Option<String>) -> Self {
        Self {
            rooms,
            user,
            current,
            membership: HashMap::new(),
        }
    }

    /// Whether the user is joined now.
    pub fn is_joined(&self) -> bool {
        self.current.as_deref() == Some("join")
    }

    fn membership_at(&mut self, snapshot: u64) -> Result<Option<String>> {
        if let Some(v) = self.membership.get(&snapshot) {
            return Ok(v.clone());
        }
        let value = self.rooms.membership_at(snapshot, self.user)?;
        self.membership.insert(snapshot, value.clone());
        Ok(value)
    }

    /// The spec's rules: world_readable → yes; the user was joined at the event → yes; `shared`
    /// and the user is joined now → yes; `invited` and the user was invited at the event → yes.
    /// The visibility in force is the one before the event; the membership is taken after it,
    /// so a user sees their own join.
    pub fn allows(&mut self, pdu: &Pdu, record: &PduRecord) -> Result<bool> {
        // Users always see changes to their own membership (their leave, kick or ban too).
        if pdu.member_target() == Some(self.user.as_str()) {
            return Ok(true);
        }
        // Cached per snapshot for every reader (`Rooms::history_visibility_at`).
        let visibility = self.rooms.history_visibility_at(record.state_before)?;
        if &*visibility == "world_readable" || (&*visibility == "shared" && self.is_joined()) {
            return Ok(true);
        }
        let membership = self.membership_at(record.state_after)?;
        Ok(match membership.as_deref() {
            Some("join") => true,
            Some("invite") if &*visibility == "invited" => true,
            _ => false,
        })
    }
}
