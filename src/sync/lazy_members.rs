//! Lazy-loaded members (client-server API §"Lazy-loading room members"): which member events
//! each device holds, so that an incremental sync sends a timeline sender's member event once,
//! not with every message, and not at all when the client already has it.
//!
//! A device holds a member event once it synced from a token at or after the response that
//! carried it: a response that was lost, or a retry from an older token, sends it again. A sync
//! without `since` starts the device afresh (clients drop their state for it). Forgetting is
//! always safe: a device the cache lost, or one with too many entries, is sent redundant member
//! events, which the spec allows. With several Roost nodes, a device's syncs must reach one node
//! for this to save anything, or the entries must move to the shared store; an initial sync on
//! another node must then also reset them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::users::Identity;
use crate::util::GenerationalCache;

/// Devices remembered (about twice as many at most).
const DEVICES: usize = 16_384;
/// Member events remembered per device; beyond, the device starts afresh.
const PER_DEVICE: usize = 4_096;

/// What one device was sent: (room short, member) → (member event short, position of the
/// response that carried it).
type Held = HashMap<(u64, String), (u64, u64)>;

pub struct SentMembers {
    devices: GenerationalCache<String, Arc<Mutex<Held>>>,
}

impl Default for SentMembers {
    fn default() -> Self {
        Self {
            devices: GenerationalCache::new(DEVICES),
        }
    }
}

fn device_key(device: &Identity) -> String {
    format!("{} {}", device.user_id, device.device_id)
}

impl SentMembers {
    /// The member events the device holds, to consult and extend while making one response.
    pub fn of(&self, device: &Identity, initial: bool) -> DeviceMembers {
        let key = device_key(device);
        let held = match self.devices.get(&key) {
            Some(held) if !initial => held,
            _ => {
                let held = Arc::new(Mutex::new(Held::new()));
                self.devices.insert(key, Arc::clone(&held));
                held
            }
        };
        DeviceMembers { held }
    }
}

/// One device's held member events.
pub struct DeviceMembers {
    held: Arc<Mutex<Held>>,
}

impl DeviceMembers {
    /// Whether the device holds `event` as `member`'s member event in the room: a response at
    /// or before `since` carried it.
    pub fn holds(&self, room: u64, member: &str, event: u64, since: Option<u64>) -> bool {
        let Some(since) = since else { return false };
        self.held
            .lock()
            .get(&(room, member.to_owned()))
            .is_some_and(|&(held, at)| held == event && at <= since)
    }

    /// The response ending at `upto` carries `event` as `member`'s member event.
    pub fn sent(&self, room: u64, member: &str, event: u64, upto: u64) {
        let mut held = self.held.lock();
        if held.len() >= PER_DEVICE {
            held.clear();
        }
        held.insert((room, member.to_owned()), (event, upto));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Identity {
        Identity {
            user_id: "@a:x".try_into().unwrap(),
            device_id: "D".into(),
        }
    }

    #[test]
    fn held_once_synced_past_and_forgotten_by_an_initial_sync() {
        let members = SentMembers::default();
        let d = members.of(&device(), false);
        d.sent(1, "@b:x", 10, 100);
        assert!(
            !d.holds(1, "@b:x", 10, Some(99)),
            "the carrying response isn't confirmed"
        );
        assert!(!d.holds(1, "@b:x", 10, None));
        assert!(d.holds(1, "@b:x", 10, Some(100)));
        assert!(
            !d.holds(1, "@b:x", 11, Some(100)),
            "a newer member event isn't held"
        );
        assert!(!d.holds(2, "@b:x", 10, Some(100)), "another room");
        assert!(members.of(&device(), false).holds(1, "@b:x", 10, Some(200)));
        assert!(!members.of(&device(), true).holds(1, "@b:x", 10, Some(200)));
    }
}
