//! One response for every reader a message reaches alike.
//!
//! Under fan-out one message (or typing change, or read receipt) wakes every member of its
//! room, and for most of them the whole incremental response is the same bytes: the message
//! in that room's timeline, the typing or receipts in its `ephemeral` section, and nothing
//! else. Working it out per reader walks all the reader's rooms and streams (a workspace user
//! is in many channels) and serialises the result, once per reader. Instead, when it can be
//! told cheaply that a reader's response is that common one, the reader gets the response made
//! once, for the first of them, in both transports' forms.
//!
//! A reader's response to `(since, upto]` is the common one when:
//! - every position in the window is a message (no state key), typing change or public read
//!   receipt of one room (`rooms/room_positions.rs`): then no other room, no state or
//!   membership change, no private receipt, presence, account data or to-device message of
//!   anyone's is in it;
//! - the reader's memberships didn't change after `since` and it is joined to that room: it
//!   was joined through the whole window, so it sees every event and needs no state (and a
//!   join committed after `upto`, already in the room list, is not mistaken for one before);
//! - its filter keeps the room, lets typing and receipts through if the window has any, and
//!   doesn't ask for `state_after` or full state; with lazy-loaded members, the device already
//!   holds each sender's member event (nothing to add to `state`). A gap (`limited`) hides no
//!   state change: the window has none.
//!
//! The timeline itself is the room's window, which the readers it looks the same to already
//! share (same room, window, timeline filter and annotation epoch: `shared_timeline.rs`); a
//! reader who sent one of its events (its device gets `transaction_id`), or a window with
//! something attached to one of its events (an edit, reaction, thread reply or redaction: the
//! aggregations depend on the viewer), gets a window of its own. The reply is made from the
//! window and kept with it, so it is shared exactly as far as the window is: by every reader
//! of a plain window, by nobody else for a reader's own. A thread reply or a reaction *to an
//! earlier event* is itself a plain message, and shared.
//!
//! Anything that makes a response depend on its reader in another way must keep such readers
//! off this path or into the key: notification counts once push rules land, the device's
//! one-time key counts once end-to-end encryption fills them (they are sent in every
//! response, not only when they change), ignored users.
//!
//! Anything else falls back to the full computation, which gives the same bytes (tests check
//! it, over a random history too).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Membership, SyncParams, SyncService, token};
use crate::error::{Error, Result};
use crate::rooms::filter::EventFilter;
use crate::rooms::room_positions::RoomWindow;
use crate::sync::response::{Events, RoomSection, SharedReply, SyncResponse, UnreadNotifications};
use crate::sync::shared_timeline::SharedRaw;
use crate::sync::shared_timeline::{TimelineWindow, WindowKey};
use crate::users::Identity;

/// What a connection that follows the stream remembers of its last shared reply: its user
/// was joined to the room (by short id) and no membership of theirs changed from that window's
/// start through its end (`upto`, the second field). Reading the user's room list for every
/// message was most of what a shared reply's checks cost per reader.
///
/// A later window `(since', …]` with `since' ≤ upto`, in which no membership of theirs
/// changed after `since'` either (checked anyway), leaves no time since the earlier window's
/// start for a change: they are still joined, without reading the list again.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinedMemo(Option<(u64, u64)>);

impl JoinedMemo {
    fn still_joined(&self, room_short: u64, since: u64) -> bool {
        self.0
            .is_some_and(|(room, through)| room == room_short && since <= through)
    }
}

/// What one thread keeps from one reader to the next while it tells a fan-out's readers their
/// news (`sync/notifier.rs`): the room of the last window asked about, and the shared timeline
/// window the last reader got. A message's readers ask for the same ones, and taken from the
/// shared structures per reader, each was a lock or a reference count that both cores
/// contended for, and a room id copied.
#[derive(Default)]
pub struct FanoutScratch {
    /// `(since, upto)` and its room, if it is one room's.
    room: Option<((u64, u64), Option<RoomWindow>)>,
    /// A window by its key, and whether it is the shared one (not a reader's own).
    window: Option<(WindowKey, Arc<TimelineWindow>, bool)>,
}

impl SyncService {
    /// `who`'s response to `(since, upto]`, if it is the one shared by every reader of the
    /// window's only room that it is the same for (see the module's doc). `None`: work it out.
    /// `scratch` holds what the previous reader of a fan-out found (a fresh one otherwise).
    pub(super) fn shared_reply<'s>(
        &self,
        who: &Identity,
        since: u64,
        upto: u64,
        params: &SyncParams,
        memo: Option<&mut JoinedMemo>,
        scratch: &'s mut FanoutScratch,
    ) -> Result<Option<&'s Arc<SharedReply>>> {
        let filter = &params.filter.room;
        if params.full_state || params.use_state_after {
            return Ok(None);
        }
        let FanoutScratch {
            room: room_memo,
            window: window_memo,
        } = scratch;
        let (_, room) = match room_memo {
            Some(held) if held.0 == (since, upto) => held,
            slot => slot.insert(((since, upto), self.rooms.single_room_window(since, upto))),
        };
        let Some(RoomWindow {
            short: room_short,
            id: room_id,
            ephemeral,
        }) = &*room
        else {
            return Ok(None);
        };
        let (room_short, ephemeral) = (*room_short, *ephemeral);
        // Typing and receipts go in as they are, so the reader's filter must let both through.
        let all_ephemeral =
            |f: &EventFilter| f.allows_type("m.typing") && f.allows_type("m.receipt");
        if !filter.allows_room(room_id)
            || (ephemeral && !all_ephemeral(&filter.ephemeral))
            || self
                .rooms
                .membership_changed_after(who.user_id.as_str(), since)
        {
            return Ok(None);
        }
        let remembered = memo
            .as_deref()
            .is_some_and(|m| m.still_joined(room_short, since));
        if !remembered
            && !self
                .rooms
                .rooms_of(&who.user_id)?
                .iter()
                .any(|(id, membership)| id == room_id && membership == "join")
        {
            return Ok(None);
        }
        if let Some(memo) = memo {
            *memo = JoinedMemo(Some((room_short, upto)));
        }
        let joined_through = Membership::Joined { in_window: false };
        // The last reader's window stays only if it is the shared one this reader gets too:
        // the same key, and shareable with them.
        let key = self.shared_window_key(room_short, since, upto, params);
        window_memo.take_if(|(held, window, shared)| {
            !(*shared && *held == key && window.shareable_with(&who.user_id))
        });
        let (_, window, _): &'s _ = match window_memo {
            Some(entry) => entry,
            slot => {
                let (window, shared) = self.timeline_window(
                    who,
                    room_short,
                    Some(since),
                    upto,
                    params,
                    joined_through,
                )?;
                slot.insert((key, window, shared))
            }
        };
        // Nothing to show (messages filtered out, nothing ephemeral): the full computation
        // finds no news here either.
        if window.entries.is_empty() && !ephemeral {
            return Ok(None);
        }
        if filter.state.lazy_load_members && !window.entries.is_empty() {
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
            return Ok(Some(reply));
        }
        // The room's typers and public receipts that changed in the window, as every member
        // gets them (the window holds no private receipt), and every filter here lets through.
        let shared_ephemeral = if ephemeral {
            self.ephemeral(room_id, who, Some(since), upto)?
        } else {
            Vec::new()
        };
        if window.entries.is_empty() && shared_ephemeral.is_empty() {
            return Ok(None);
        }
        let mut body = SyncResponse::empty(token(upto));
        body.rooms.join.insert(
            room_id.to_string(),
            RoomSection {
                timeline: SharedRaw(Arc::clone(&window.json)),
                state: Some(Events::from(Vec::new())),
                state_after: None,
                account_data: Vec::new().into(),
                ephemeral: Some(shared_ephemeral.into()),
                unread_notifications: Some(UnreadNotifications::default()),
                summary: None,
            },
        );
        let reply = Arc::new(SharedReply::new(upto, &body).map_err(Error::internal)?);
        Ok(Some(window.reply.get_or_init(|| reply)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ruma::{OwnedRoomId, OwnedUserId};
    use serde_json::json;

    use super::super::{SyncParams, SyncService};
    use super::FanoutScratch;
    use crate::events::PduTemplate;
    use crate::rooms::create::{CreateRoom, Preset};
    use crate::rooms::pipeline::TxnKey;
    use crate::services::Services;
    use crate::sync::filter::SyncFilter;
    use crate::sync::response::SharedReply;
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

    async fn say(services: &Services, room_id: &OwnedRoomId, user: &str) -> ruma::OwnedEventId {
        let message = PduTemplate::message("m.room.message", json!({"body": "hi"}));
        let user = OwnedUserId::try_from(user).unwrap();
        let pdu = services.rooms.append(room_id, &user, message).await;
        pdu.unwrap().event_id
    }

    /// `who` sends a message with a transaction id (its device's responses carry it).
    async fn send_with_txn(
        services: &Services,
        room_id: &OwnedRoomId,
        who: &Identity,
        txn_id: &str,
    ) {
        let txn = TxnKey {
            user: &who.user_id,
            device: &who.device_id,
            endpoint: "send",
            txn_id,
        };
        let mine = PduTemplate::message("m.room.message", json!({"body": "mine"}));
        services
            .rooms
            .append_with_txn(room_id, &who.user_id, mine, &txn)
            .await
            .unwrap();
    }

    /// The shared reply for `who`, if it is one, told on its own (a fresh scratch).
    fn shared_alone(
        sync: &SyncService,
        who: &Identity,
        since: u64,
        upto: u64,
        p: &SyncParams,
    ) -> crate::error::Result<Option<Arc<SharedReply>>> {
        let mut scratch = FanoutScratch::default();
        Ok(sync
            .shared_reply(who, since, upto, p, None, &mut scratch)?
            .cloned())
    }

    /// The shared reply `who` must be given.
    fn shared(
        sync: &SyncService,
        who: &Identity,
        since: u64,
        upto: u64,
        p: &SyncParams,
    ) -> Arc<SharedReply> {
        let reply = shared_alone(sync, who, since, upto, p).unwrap();
        reply.unwrap_or_else(|| panic!("{} ({since}, {upto}] is shared", who.user_id))
    }

    /// The full computation's body for `who`, without `age` (see [`without_age`]).
    fn computed(
        sync: &SyncService,
        who: &Identity,
        since: u64,
        upto: u64,
        p: &SyncParams,
    ) -> serde_json::Value {
        let (body, news) = sync.compute(who, Some(since), upto, p).unwrap();
        assert!(news);
        without_age(&serde_json::to_vec(&body).unwrap())
    }

    /// Readers told one after another with one scratch (as a fan-out's thread tells them)
    /// each get what they would get alone: the shared reply, or their own.
    #[tokio::test]
    async fn a_fanout_scratch_hands_on_only_the_shared_window() {
        let (_dir, services) = Services::fresh_for_tests();
        let room_id = room_of_three(&services).await;
        let (alice, bob, carol) = (
            device("@alice:localhost"),
            device("@bob:localhost"),
            device("@carol:localhost"),
        );
        let sync = &services.sync;
        let since = services.stream.frontier();
        send_with_txn(&services, &room_id, &alice, "t1").await;
        let upto = services.stream.frontier();
        let p = params(since, SyncFilter::default());
        let mut scratch = FanoutScratch::default();
        let mut told = |who: &Identity, since: u64, upto: u64, p: &SyncParams| {
            let reply = sync.shared_reply(who, since, upto, p, None, &mut scratch);
            Arc::clone(reply.unwrap().expect("shared"))
        };

        let for_bob = told(&bob, since, upto, &p);
        // The sender after bob: not bob's window, but hers, with her transaction id.
        let for_alice = told(&alice, since, upto, &p);
        assert!(!Arc::ptr_eq(&for_alice, &for_bob));
        assert!(String::from_utf8_lossy(&for_alice.body).contains("\"transaction_id\":\"t1\""));
        // Carol after alice: the shared one again.
        let for_carol = told(&carol, since, upto, &p);
        assert!(Arc::ptr_eq(&for_carol, &for_bob));
        assert!(!String::from_utf8_lossy(&for_carol.body).contains("transaction_id"));
        // Another timeline filter is another window; so is the next message.
        let one = SyncFilter::from_value(json!({"room": {"timeline": {"limit": 1}}})).unwrap();
        let p_one = params(since, one);
        let for_bob_one = told(&bob, since, upto, &p_one);
        assert!(!Arc::ptr_eq(&for_bob_one, &for_bob));
        assert_eq!(
            without_age(&for_bob_one.body),
            computed(sync, &bob, since, upto, &p_one)
        );
        let next = say(&services, &room_id, "@alice:localhost").await;
        let later = services.stream.frontier();
        let p_next = params(upto, SyncFilter::default());
        let for_carol_next = told(&carol, upto, later, &p_next);
        assert!(String::from_utf8_lossy(&for_carol_next.body).contains(next.as_str()));
        assert_eq!(
            without_age(&for_carol_next.body),
            computed(sync, &carol, upto, later, &p_next)
        );
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

        let for_bob = shared(sync, &bob, since, upto, &p);
        let for_carol = shared(sync, &carol, since, upto, &p);
        assert!(Arc::ptr_eq(&for_bob, &for_carol), "made once");
        assert_eq!(
            without_age(&for_bob.body),
            computed(sync, &bob, since, upto, &p)
        );
        assert_eq!(for_bob.next_batch, format!("s{upto}"));
        // One whole text frame, its payload the transport's message around the body.
        let mut frame = std::io::Cursor::new(&for_bob.ws_frame[..]);
        let (header, len) = tungstenite::protocol::frame::FrameHeader::parse(&mut frame)
            .unwrap()
            .unwrap();
        let payload = &for_bob.ws_frame[frame.position() as usize..];
        assert!(header.is_final && header.mask.is_none() && len == payload.len() as u64);
        let ws: serde_json::Value = serde_json::from_slice(payload).unwrap();
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
        let topic = shared(sync, &carol, after_root, after_reply, &p_reply);
        assert_eq!(
            without_age(&topic.body),
            computed(sync, &carol, after_root, after_reply, &p_reply)
        );
        // …but a window with the root and its reply shows the root's thread summary, which
        // depends on the viewer: each reader's window and reply are its own.
        let p_both = params(upto, SyncFilter::default());
        let for_bob = shared(sync, &bob, upto, after_reply, &p_both);
        let for_carol = shared(sync, &carol, upto, after_reply, &p_both);
        assert!(!Arc::ptr_eq(&for_bob, &for_carol));
        assert_eq!(
            without_age(&for_carol.body),
            computed(sync, &carol, upto, after_reply, &p_both)
        );

        // The sender's device gets its transaction id: its reply is its own.
        let alice = device("@alice:localhost");
        let before_own = services.stream.frontier();
        send_with_txn(&services, &room_id, &alice, "t1").await;
        let after_own = services.stream.frontier();
        let p_own = params(before_own, SyncFilter::default());
        let for_alice = shared(sync, &alice, before_own, after_own, &p_own);
        let for_bob = shared(sync, &bob, before_own, after_own, &p_own);
        assert!(String::from_utf8_lossy(&for_alice.body).contains("\"transaction_id\":\"t1\""));
        assert!(!String::from_utf8_lossy(&for_bob.body).contains("transaction_id"));
        assert_eq!(
            without_age(&for_alice.body),
            computed(sync, &alice, before_own, after_own, &p_own)
        );
        assert_eq!(
            without_age(&for_bob.body),
            computed(sync, &bob, before_own, after_own, &p_own)
        );

        // A filter that leaves the room out works it out in full; one with a gap shares (the
        // gap hides no state change).
        let not_the_room =
            SyncFilter::from_value(json!({"room": {"not_rooms": [room_id]}})).unwrap();
        let p2 = params(since, not_the_room);
        assert!(
            shared_alone(sync, &bob, since, upto, &p2)
                .unwrap()
                .is_none()
        );
        let limit_one =
            SyncFilter::from_value(json!({"room": {"timeline": {"limit": 1}}})).unwrap();
        let p3 = params(since, limit_one);
        let gap = shared(sync, &bob, since, upto, &p3);
        assert!(String::from_utf8_lossy(&gap.body).contains("\"limited\":true"));
        assert_eq!(
            without_age(&gap.body),
            computed(sync, &bob, since, upto, &p3)
        );
    }

    #[tokio::test]
    async fn anything_else_in_the_window_or_for_the_reader_is_worked_out_in_full() {
        let (_dir, services) = Services::fresh_for_tests();
        let room_id = room_of_three(&services).await;
        let bob = device("@bob:localhost");
        let sync = &services.sync;
        let p = |since| params(since, SyncFilter::default());

        // Typing and a public receipt in the window go in everyone's reply alike…
        let since = services.stream.frontier();
        let last = say(&services, &room_id, "@alice:localhost").await;
        let carol = device("@carol:localhost").user_id;
        let typing = Duration::from_secs(10);
        services.typing.set(&room_id, &carol, true, typing).unwrap();
        let receipts = &services.receipts;
        receipts
            .set(&room_id, &carol, "m.read", &last, None)
            .unwrap();
        let upto = services.stream.frontier();
        let reply = shared(sync, &bob, since, upto, &p(since));
        let body = without_age(&reply.body);
        let ephemeral = &body["rooms"]["join"][room_id.as_str()]["ephemeral"]["events"];
        assert_eq!(ephemeral[0]["type"], "m.typing");
        assert_eq!(ephemeral[1]["type"], "m.receipt");
        assert_eq!(body, computed(sync, &bob, since, upto, &p(since)));
        // …unless the reader's filter leaves one of them out…
        let no_typing = json!({"room": {"ephemeral": {"not_types": ["m.typing"]}}});
        let p_no_typing = params(since, SyncFilter::from_value(no_typing).unwrap());
        assert!(
            shared_alone(sync, &bob, since, upto, &p_no_typing)
                .unwrap()
                .is_none()
        );
        // …and a private receipt is its owner's alone.
        let before_private = services.stream.frontier();
        receipts
            .set(&room_id, &carol, "m.read.private", &last, None)
            .unwrap();
        let after_private = services.stream.frontier();
        let who_carol = device("@carol:localhost");
        let p_private = p(before_private);
        assert!(
            shared_alone(sync, &who_carol, before_private, after_private, &p_private)
                .unwrap()
                .is_none()
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
            shared_alone(sync, &dave, since, upto, &p(since))
                .unwrap()
                .is_none()
        );
        // Once past the join, the newcomer is like everyone else.
        let reply = shared(sync, &dave, after_join, upto, &p(after_join));
        assert_eq!(
            without_age(&reply.body),
            computed(sync, &dave, after_join, upto, &p(after_join))
        );
        assert!(
            shared_alone(sync, &bob, after_join, upto, &p(after_join))
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
            shared_alone(sync, &bob, since, upto, &params(since, lazy()))
                .unwrap()
                .is_none()
        );
        let first = computed(sync, &bob, since, upto, &params(since, lazy()));
        let state = &first["rooms"]["join"][room_id.as_str()]["state"]["events"];
        assert_eq!(
            state[0]["state_key"], "@alice:localhost",
            "the sender's member event"
        );
        say(&services, &room_id, "@alice:localhost").await;
        let next = services.stream.frontier();
        let reply = shared_alone(sync, &bob, upto, next, &params(upto, lazy()))
            .unwrap()
            .expect("held now");
        assert_eq!(
            without_age(&reply.body),
            computed(sync, &bob, upto, next, &params(upto, lazy()))
        );
    }

    /// The JSON without `unsigned.age` (worked out when a window is made, so two windows of
    /// the same events a moment apart differ in it).
    fn without_age(json: &[u8]) -> serde_json::Value {
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(map) => {
                    map.remove("age");
                    map.values_mut().for_each(strip);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut value = serde_json::from_slice(json).unwrap();
        strip(&mut value);
        value
    }

    /// For each reader and filter, a shared reply to `(since, upto]`, if one is given, is what
    /// the full computation says. Returns how many were given.
    const READERS: [&str; 4] = [
        "@alice:localhost",
        "@bob:localhost",
        "@carol:localhost",
        "@dave:localhost",
    ];

    fn filters() -> [serde_json::Value; 4] {
        [
            json!({}),
            json!({"room": {"state": {"lazy_load_members": true}}}),
            json!({"room": {"timeline": {"limit": 2, "not_types": ["m.reaction"]}}}),
            json!({"room": {"ephemeral": {"not_types": ["m.typing"]}}}),
        ]
    }

    /// As a connection following the stream would, window after window: each reader's shared
    /// reply with the memo of its last one is the reply given without it. Returns how often
    /// the memo answered for the room list.
    fn check_memos(
        sync: &SyncService,
        since: u64,
        upto: u64,
        memos: &mut std::collections::BTreeMap<(&'static str, usize), super::JoinedMemo>,
    ) -> usize {
        let mut remembered = 0;
        for reader in READERS {
            for (i, filter) in filters().into_iter().enumerate() {
                let who = device(reader);
                let mut p = params(since, SyncFilter::from_value(filter.clone()).unwrap());
                p.since_confirms = false;
                let memo = memos.entry((reader, i)).or_default();
                if memo.0.is_some_and(|(_, through)| since <= through) {
                    remembered += 1;
                }
                let mut scratch = FanoutScratch::default();
                let with = sync
                    .shared_reply(&who, since, upto, &p, Some(memo), &mut scratch)
                    .unwrap()
                    .cloned();
                let without = shared_alone(sync, &who, since, upto, &p).unwrap();
                assert_eq!(
                    with.map(|r| without_age(&r.body)),
                    without.map(|r| without_age(&r.body)),
                    "{reader} ({since}, {upto}] {filter}"
                );
            }
        }
        remembered
    }

    fn check_shared_replies(sync: &SyncService, since: u64, upto: u64) -> usize {
        let mut shared = 0;
        for reader in READERS {
            for filter in &filters() {
                let who = device(reader);
                let mut p = params(since, SyncFilter::from_value(filter.clone()).unwrap());
                p.since_confirms = false;
                let Some(reply) = shared_alone(sync, &who, since, upto, &p).unwrap() else {
                    continue;
                };
                shared += 1;
                let (body, news) = sync.compute(&who, Some(since), upto, &p).unwrap();
                assert!(news, "{reader} ({since}, {upto}] {filter}");
                assert_eq!(
                    without_age(&reply.body),
                    without_age(&serde_json::to_vec(&body).unwrap()),
                    "{reader} ({since}, {upto}] {filter}"
                );
            }
        }
        shared
    }

    /// A pseudo-random history of two rooms (messages, thread replies, reactions, redactions,
    /// typing, receipts, account data, a member leaving and coming back): as it is written, for
    /// every short window up to the newest position, every reader and several filters, a shared
    /// reply, whenever one is given, is what the full computation says.
    #[tokio::test]
    async fn shared_replies_match_the_full_computation_over_a_random_history() {
        let (_dir, services) = Services::fresh_for_tests();
        let rooms = &services.rooms;
        let sync = &services.sync;
        let users = [
            "@alice:localhost",
            "@bob:localhost",
            "@carol:localhost",
            "@dave:localhost",
        ];
        let user = |i: usize| OwnedUserId::try_from(users[i]).unwrap();
        let big = room_of_three(&services).await;
        let join = |u: &str| PduTemplate::state("m.room.member", u, json!({"membership": "join"}));
        rooms.append(&big, &user(3), join(users[3])).await.unwrap();
        let small = rooms
            .create_room(
                &user(0),
                CreateRoom {
                    preset: Some(Preset::PublicChat),
                    ..CreateRoom::default()
                },
            )
            .await
            .unwrap();
        rooms
            .append(&small, &user(1), join(users[1]))
            .await
            .unwrap();

        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % n) as usize
        };
        // Messages of the big room and their senders, for replies, reactions and redactions.
        let mut said: Vec<(ruma::OwnedEventId, usize)> = Vec::new();
        let mut dave_joined = true;
        let mut done_count = std::collections::BTreeMap::new();
        let mut shared = 0;
        let mut remembered = 0;
        let mut memos = std::collections::BTreeMap::new();
        let mut positions = vec![services.stream.frontier()];
        for _ in 0..80 {
            let speaker = next(if dave_joined { 4 } else { 3 });
            let earlier = (!said.is_empty()).then(|| said[next(said.len() as u64)].clone());
            let done = match (next(12), earlier) {
                (0..=3, _) | (5 | 6 | 11, None) => {
                    let body = json!({"msgtype": "m.text", "body": "hi"});
                    let pdu = PduTemplate::message("m.room.message", body);
                    // Half of them from a client transaction (the sender's device sees its id).
                    let who = device(users[speaker]);
                    let txn_id = format!("t{}", said.len());
                    let txn = TxnKey {
                        user: &who.user_id,
                        device: &who.device_id,
                        endpoint: "send",
                        txn_id: &txn_id,
                    };
                    let event_id = if next(2) == 0 {
                        rooms
                            .append_with_txn(&big, &who.user_id, pdu, &txn)
                            .await
                            .unwrap()
                    } else {
                        rooms
                            .append(&big, &who.user_id, pdu)
                            .await
                            .unwrap()
                            .event_id
                    };
                    said.push((event_id, speaker));
                    "message"
                }
                (4, _) => {
                    let pdu = PduTemplate::message("m.room.message", json!({"body": "aside"}));
                    rooms.append(&small, &user(next(2)), pdu).await.unwrap();
                    "other room"
                }
                (5, Some((root, _))) => {
                    let body = json!({"msgtype": "m.text", "body": "in a topic",
                        "m.relates_to": {"rel_type": "m.thread", "event_id": root}});
                    let pdu = PduTemplate::message("m.room.message", body);
                    rooms.append(&big, &user(speaker), pdu).await.unwrap();
                    "thread reply"
                }
                (6, Some((target, _))) => {
                    let body = json!({"m.relates_to": {"rel_type": "m.annotation",
                        "event_id": target, "key": "+1"}});
                    let pdu = PduTemplate::message("m.reaction", body);
                    rooms.append(&big, &user(speaker), pdu).await.unwrap();
                    "reaction"
                }
                (7, _) => {
                    let typing = next(2) == 0;
                    let timeout = Duration::from_secs(30);
                    services
                        .typing
                        .set(&big, &user(speaker), typing, timeout)
                        .unwrap();
                    "typing"
                }
                (8, Some((event, _))) => {
                    let kind = if next(2) == 0 {
                        "m.read"
                    } else {
                        "m.read.private"
                    };
                    services
                        .receipts
                        .set(&big, &user(speaker), kind, &event, None)
                        .unwrap();
                    "receipt"
                }
                (9, _) => {
                    let room = (next(2) == 0).then_some(&*big);
                    let content = json!({"n": next(100)});
                    services
                        .account_data
                        .set(&user(next(4)), room, "org.example.test", content)
                        .unwrap();
                    "account data"
                }
                (10, _) => {
                    let membership = if dave_joined { "leave" } else { "join" };
                    let pdu = PduTemplate::state(
                        "m.room.member",
                        users[3],
                        json!({"membership": membership}),
                    );
                    rooms.append(&big, &user(3), pdu).await.unwrap();
                    dave_joined = !dave_joined;
                    "membership"
                }
                (11, Some((target, sender))) if sender != 3 || dave_joined => {
                    let pdu = PduTemplate {
                        kind: "m.room.redaction".into(),
                        state_key: None,
                        content: json!({"redacts": target}),
                        redacts: Some(target.clone()),
                    };
                    rooms.append(&big, &user(sender), pdu).await.unwrap();
                    "redaction"
                }
                _ => continue,
            };
            *done_count.entry(done).or_insert(0) += 1;
            // As clients sync: the windows up to now, from each of the last few tokens.
            let upto = services.stream.frontier();
            for &since in positions.iter().rev().take(3) {
                shared += check_shared_replies(sync, since, upto);
            }
            if let Some(&since) = positions.last() {
                remembered += check_memos(sync, since, upto, &mut memos);
            }
            positions.push(upto);
        }

        assert!(
            shared >= 100,
            "the history exercised shared replies ({shared} of them)"
        );
        assert!(
            remembered >= 100,
            "the history exercised remembered memberships ({remembered} times)"
        );
    }
}
