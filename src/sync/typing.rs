//! Typing notifications (client-server API §Typing). Held in memory: they live seconds and are
//! worthless after a restart. Every change takes a stream position, so sync delivers the current
//! typers of a room when they changed after `since`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use super::Notifier;
use crate::error::Result;
use crate::rooms::Rooms;
use crate::storage::stream::StreamCounter;

/// The longest a typing notice lasts without being renewed.
pub const MAX_TYPING: Duration = Duration::from_secs(120);

#[derive(Default)]
struct RoomTyping {
    /// Stream position of the last change.
    pos: u64,
    users: HashMap<OwnedUserId, Instant>,
}

pub struct Typing {
    stream: Arc<StreamCounter>,
    notifier: Arc<Notifier>,
    rooms: Arc<Rooms>,
    state: Mutex<HashMap<OwnedRoomId, RoomTyping>>,
}

impl Typing {
    pub fn new(stream: Arc<StreamCounter>, notifier: Arc<Notifier>, rooms: Arc<Rooms>) -> Self {
        Self {
            stream,
            notifier,
            rooms,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Start (for `timeout`) or stop a user's typing in a room, and wake the room's members.
    pub fn set(
        &self,
        room_id: &RoomId,
        user: &UserId,
        typing: bool,
        timeout: Duration,
    ) -> Result<()> {
        let permit = self.stream.reserve()?;
        {
            let mut state = self.state.lock();
            let room = state.entry(room_id.to_owned()).or_default();
            if typing {
                room.users
                    .insert(user.to_owned(), Instant::now() + timeout.min(MAX_TYPING));
            } else {
                room.users.remove(user);
            }
            room.pos = permit.pos();
        }
        let pos = permit.pos();
        self.rooms.note_ephemeral(pos, room_id)?;
        drop(permit);
        self.wake_room(room_id, pos)
    }

    /// The room's typers if they changed in `(since, upto]` (any time, for an initial sync with
    /// somebody typing).
    pub fn changed(&self, room_id: &RoomId, since: Option<u64>, upto: u64) -> Option<Vec<String>> {
        let state = self.state.lock();
        let room = state.get(room_id)?;
        let now = Instant::now();
        let typers: Vec<String> = room
            .users
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(u, _)| u.to_string())
            .collect();
        let changed = match since {
            Some(s) => room.pos > s && room.pos <= upto,
            None => !typers.is_empty(),
        };
        changed.then_some(typers)
    }

    /// Expire typing notices whose time ran out (checked every second, forever).
    pub async fn run_expiry(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = Instant::now();
            let expired: Vec<OwnedRoomId> = {
                let state = self.state.lock();
                state
                    .iter()
                    .filter(|(_, r)| r.users.values().any(|until| *until <= now))
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            for room_id in expired {
                let Ok(permit) = self.stream.reserve() else {
                    continue;
                };
                {
                    let mut state = self.state.lock();
                    if let Some(room) = state.get_mut(&room_id) {
                        room.users.retain(|_, until| *until > now);
                        room.pos = permit.pos();
                    }
                }
                let pos = permit.pos();
                let _ = self.rooms.note_ephemeral(pos, &room_id);
                drop(permit);
                let _ = self.wake_room(&room_id, pos);
            }
        }
    }

    fn wake_room(&self, room_id: &RoomId, pos: u64) -> Result<()> {
        let Some(room) = self.rooms.room(room_id)? else {
            return Ok(());
        };
        let roster = self.rooms.roster(&room)?;
        self.notifier.notify_at(pos, roster.joined());
        Ok(())
    }
}
