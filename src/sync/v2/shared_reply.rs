//! One response for every reader a message reaches alike.
//!
//! Under fan-out one message wakes every member of its room, and for most of them the whole
//! incremental response is the same bytes: the message in that room's timeline and nothing
//! else. Working it out per reader walks all the reader's rooms and streams (a workspace user
//! is in many channels) and serialises the result, once per reader. Instead, when it can be
//! told cheaply that a reader's response is that common one, the reader gets the response made
//! once, for the first of them, in both transports' forms.
//!
//! A reader's response to `(since, upto]` is the common one when:
//! - every position in the window is a message (no state key) of one room
//!   (`rooms/message_positions.rs`): then no other room, no state or membership change, no
//!   typing, receipt, presence, account data or to-device message of anyone's is in it;
//! - the reader's memberships didn't change after `since` and it is joined to that room: it
//!   was joined through the whole window, so it sees every event and needs no state;
//! - its filter keeps the room and shows the messages without a gap (`limited`) and without
//!   `state_after`; with lazy-loaded members, the device already holds each sender's member
//!   event (nothing to add to `state`);
//! - it sent none of the messages (its device would get `transaction_id`) and nothing is
//!   attached to any of them: no edit, reaction, thread reply or redaction (aggregations
//!   depend on the viewer). A thread reply or reaction *to an earlier event* is itself such a
//!   message and is shared.
//!
//! Anything that makes a response depend on its reader in another way must keep such readers
//! off this path or into the key: notification counts once push rules land, the device's
//! one-time key counts once end-to-end encryption fills them (they are sent in every
//! response, not only when they change), ignored users.
//!
//! The response is then a function of the room's timeline window, which is already shared by
//! exactly these readers (same room, window, timeline filter and annotation epoch:
//! `shared_timeline.rs`), so the window carries it. Anything else falls back to the full
//! computation, which always gives the same bytes (a test checks it).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Membership, SyncParams, SyncService, token};
use crate::error::{Error, Result};
use crate::sync::response::{Events, RoomSection, SharedReply, SyncResponse, UnreadNotifications};
use crate::sync::shared_timeline::SharedRaw;
use crate::users::Identity;

impl SyncService {
    /// `who`'s response to `(since, upto]`, if it is the one shared by every reader of the
    /// window's only room that it is the same for (see the module's doc). `None`: work it out.
    pub(super) fn shared_reply(
        &self,
        who: &Identity,
        since: u64,
        upto: u64,
        params: &SyncParams,
    ) -> Result<Option<Arc<SharedReply>>> {
        let filter = &params.filter.room;
        if params.full_state || params.use_state_after {
            return Ok(None);
        }
        let Some((room_short, room_id)) = self.rooms.single_room_window(since, upto) else {
            return Ok(None);
        };
        if !filter.allows_room(&room_id)
            || self
                .rooms
                .membership_changed_after(who.user_id.as_str(), since)
            || !self
                .rooms
                .rooms_of(&who.user_id)?
                .iter()
                .any(|(id, membership)| *id == room_id && membership == "join")
        {
            return Ok(None);
        }
        let joined_through = Membership::Joined { in_window: false };
        let window =
            self.timeline_window(who, room_short, Some(since), upto, params, joined_through)?;
        if window.entries.is_empty()
            || window.limited
            || window.plain_at != Some(self.rooms.annotation_epoch())
            || window.entries.iter().any(|e| e.pdu.sender == who.user_id)
        {
            return Ok(None);
        }
        if filter.state.lazy_load_members {
            if filter.state.include_redundant_members {
                return Ok(None);
            }
            let held = self.sent_members.of(who, false);
            let senders: BTreeSet<&str> = window
                .entries
                .iter()
                .map(|e| e.pdu.sender.as_str())
                .collect();
            let snapshot = window.entries[0].record.state_before;
            let missing = self.members_not_held(
                &held,
                room_short,
                snapshot,
                &senders,
                &window.entries,
                &[],
                Some(since),
            )?;
            if !missing.is_empty() {
                return Ok(None);
            }
        }
        // What `/sync` deletes once delivered: everything up to its `since` (there is nothing
        // in the window to deliver).
        if params.since_confirms {
            self.to_device.acknowledge(who, since)?;
        }
        if let Some(reply) = window.reply.get() {
            return Ok(Some(Arc::clone(reply)));
        }
        let mut body = SyncResponse::empty(token(upto));
        body.rooms.join.insert(
            room_id.to_string(),
            RoomSection {
                timeline: SharedRaw(Arc::clone(&window.json)),
                state: Some(Events::from(Vec::new())),
                state_after: None,
                account_data: Vec::new().into(),
                ephemeral: Some(Vec::new().into()),
                unread_notifications: Some(UnreadNotifications::default()),
                summary: None,
            },
        );
        let reply = Arc::new(SharedReply::new(&body).map_err(Error::internal)?);
        Ok(Some(Arc::clone(window.reply.get_or_init(|| reply))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ruma::{OwnedRoomId, OwnedUserId};
    use serde_json::json;

    use super::super::{SyncParams, SyncService};
    use crate::events::PduTemplate;
    use crate::rooms::create::{CreateRoom, Preset};
    use crate::services::Services;
    use crate::sync::filter::SyncFilter;
    use crate::users::Identity;

    fn device(user: &str) -> Identity {
        Identity {
            user_id: OwnedUserId::try_from(user).unwrap(),
            device_id: "D".into(),
        }
    }

    fn params(since: u64, filter: SyncFilter) -> SyncParams {
        SyncParams {
            since: Some(since),
            since_confirms: true,
            full_state: false,
            filter: Arc::new(filter),
            timeout: None,
            set_presence: None,
            use_state_after: false,
        }
    }

    /// A public room of alice's that bob and carol joined.
    async fn room_of_three(services: &Services) -> OwnedRoomId {
        let alice = device("@alice:localhost").user_id;
        let create = CreateRoom {
            preset: Some(Preset::PublicChat),
            ..CreateRoom::default()
        };
        let room_id = services.rooms.create_room(&alice, create).await.unwrap();
        for user in ["@bob:localhost", "@carol:localhost"] {
            let join = PduTemplate::state("m.room.member", user, json!({"membership": "join"}));
            let user = OwnedUserId::try_from(user).unwrap();
            services.rooms.append(&room_id, &user, join).await.unwrap();
        }
        room_id
    }

    async fn say(services: &Services, room_id: &OwnedRoomId, user: &str) {
        let message = PduTemplate::message("m.room.message", json!({"body": "hi"}));
        let user = OwnedUserId::try_from(user).unwrap();
        services
            .rooms
            .append(room_id, &user, message)
            .await
            .unwrap();
    }

    /// The full computation's body for `who`.
    fn computed(
        sync: &SyncService,
        who: &Identity,
        since: u64,
        upto: u64,
        p: &SyncParams,
    ) -> Vec<u8> {
        let (body, news) = sync.compute(who, Some(since), upto, p).unwrap();
        assert!(news);
        serde_json::to_vec(&body).unwrap()
    }

    #[tokio::test]
    async fn the_shared_reply_is_what_each_reader_would_have_been_sent() {
        let (_dir, services) = Services::fresh_for_tests();
        let room_id = room_of_three(&services).await;
        let (bob, carol) = (device("@bob:localhost"), device("@carol:localhost"));
        let since = services.stream.frontier();
        say(&services, &room_id, "@alice:localhost").await;
        say(&services, &room_id, "@alice:localhost").await;
        let upto = services.stream.frontier();
        let sync = &services.sync;
        let p = params(since, SyncFilter::default());

        let for_bob = sync
            .shared_reply(&bob, since, upto, &p)
            .unwrap()
            .expect("shared");
        let for_carol = sync
            .shared_reply(&carol, since, upto, &p)
            .unwrap()
            .expect("shared");
        assert!(Arc::ptr_eq(&for_bob, &for_carol), "made once");
        assert_eq!(for_bob.body, computed(sync, &bob, since, upto, &p));
        assert_eq!(for_bob.next_batch, format!("s{upto}"));
        let ws: serde_json::Value = serde_json::from_slice(&for_bob.ws_message).unwrap();
        assert_eq!(ws["type"], "sync");
        assert_eq!(
            ws["body"],
            serde_json::from_slice::<serde_json::Value>(&for_bob.body).unwrap()
        );

        // A thread reply to an earlier message is a message like any other…
        let root = services
            .rooms
            .append(
                &room_id,
                &device("@alice:localhost").user_id,
                PduTemplate::message("m.room.message", json!({"body": "root"})),
            )
            .await
            .unwrap();
        let after_root = services.stream.frontier();
        let reply = json!({"body": "in a topic", "msgtype": "m.text",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root.event_id}});
        services
            .rooms
            .append(
                &room_id,
                &device("@alice:localhost").user_id,
                PduTemplate::message("m.room.message", reply),
            )
            .await
            .unwrap();
        let after_reply = services.stream.frontier();
        let p_reply = params(after_root, SyncFilter::default());
        let shared = sync
            .shared_reply(&carol, after_root, after_reply, &p_reply)
            .unwrap()
            .expect("a thread reply is shared");
        assert_eq!(
            shared.body,
            computed(sync, &carol, after_root, after_reply, &p_reply)
        );
        // …but a window with the root and its reply shows the root's thread summary, which
        // depends on the viewer.
        let p_both = params(upto, SyncFilter::default());
        assert!(
            sync.shared_reply(&carol, upto, after_reply, &p_both)
                .unwrap()
                .is_none()
        );

        // The sender's device gets its transaction ids: not shared.
        let alice = device("@alice:localhost");
        assert!(
            sync.shared_reply(&alice, since, upto, &p)
                .unwrap()
                .is_none()
        );
        // A filter that leaves the room out, or one with a gap, works it out in full.
        let not_the_room =
            SyncFilter::from_value(json!({"room": {"not_rooms": [room_id]}})).unwrap();
        let p2 = params(since, not_the_room);
        assert!(sync.shared_reply(&bob, since, upto, &p2).unwrap().is_none());
        let limit_one =
            SyncFilter::from_value(json!({"room": {"timeline": {"limit": 1}}})).unwrap();
        let p3 = params(since, limit_one);
        assert!(sync.shared_reply(&bob, since, upto, &p3).unwrap().is_none());
    }

    #[tokio::test]
    async fn anything_else_in_the_window_or_for_the_reader_is_worked_out_in_full() {
        let (_dir, services) = Services::fresh_for_tests();
        let room_id = room_of_three(&services).await;
        let bob = device("@bob:localhost");
        let sync = &services.sync;
        let p = |since| params(since, SyncFilter::default());

        // Typing in the window.
        let since = services.stream.frontier();
        say(&services, &room_id, "@alice:localhost").await;
        let carol = device("@carol:localhost").user_id;
        services
            .typing
            .set(&room_id, &carol, true, Duration::from_secs(10))
            .unwrap();
        let upto = services.stream.frontier();
        assert!(
            sync.shared_reply(&bob, since, upto, &p(since))
                .unwrap()
                .is_none()
        );
        // The message alone, without the typing after it, is shared.
        assert!(
            sync.shared_reply(&bob, since, since + 1, &p(since))
                .unwrap()
                .is_some()
        );

        // A newcomer joined in the window gets the room's state: not shared.
        let since = services.stream.frontier();
        let dave = device("@dave:localhost");
        let join = PduTemplate::state(
            "m.room.member",
            dave.user_id.as_str(),
            json!({"membership": "join"}),
        );
        services
            .rooms
            .append(&room_id, &dave.user_id, join)
            .await
            .unwrap();
        let after_join = services.stream.frontier();
        say(&services, &room_id, "@alice:localhost").await;
        let upto = services.stream.frontier();
        assert!(
            sync.shared_reply(&dave, since, upto, &p(since))
                .unwrap()
                .is_none()
        );
        // Once past the join, the newcomer is like everyone else.
        let reply = sync
            .shared_reply(&dave, after_join, upto, &p(after_join))
            .unwrap()
            .expect("joined through the window");
        assert_eq!(
            reply.body,
            computed(sync, &dave, after_join, upto, &p(after_join))
        );
        assert!(
            sync.shared_reply(&bob, after_join, upto, &p(after_join))
                .unwrap()
                .is_some()
        );

        // Lazy loading: shared only once the device holds the sender's member event.
        let lazy = || {
            SyncFilter::from_value(json!({"room": {"state": {"lazy_load_members": true}}})).unwrap()
        };
        let since = services.stream.frontier();
        say(&services, &room_id, "@alice:localhost").await;
        let upto = services.stream.frontier();
        assert!(
            sync.shared_reply(&bob, since, upto, &params(since, lazy()))
                .unwrap()
                .is_none()
        );
        let first = computed(sync, &bob, since, upto, &params(since, lazy()));
        assert!(
            String::from_utf8(first)
                .unwrap()
                .contains("@alice:localhost\",\"type\":\"m.room.member")
        );
        say(&services, &room_id, "@alice:localhost").await;
        let next = services.stream.frontier();
        let reply = sync
            .shared_reply(&bob, upto, next, &params(upto, lazy()))
            .unwrap()
            .expect("held now");
        assert_eq!(
            reply.body,
            computed(sync, &bob, upto, next, &params(upto, lazy()))
        );
    }
}
