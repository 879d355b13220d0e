//! `/sync` v2 (client-server API §Syncing): initial and incremental sync, long-polling.
//!
//! A response covers the stream positions `(since, upto]`, where `upto` is the retired frontier
//! read at the start: everything at or below it has committed, so nothing is skipped, and the
//! same `since` always yields the same events (the positions are fixed once retired).
//! `next_batch` is `upto`. Tokens are the same `s<pos>` gaps `/messages` uses, so `prev_batch`
//! pages back with `/messages`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ruma::RoomId;
use serde_json::{Value, json};

use super::Notifier;
use super::filter::SyncFilter;
use super::lazy_members::{DeviceMembers, SentMembers};
use super::presence::Presence;
use super::receipts::Receipts;
use super::response::{
    Events, RoomSection, RoomsSection, SharedReply, SyncReply, SyncResponse, Timeline,
    UnreadNotifications,
};
use super::shared_timeline::{SharedRaw, SharedTimelines, TimelineWindow, WindowKey};
use super::to_device::ToDevice;
use super::typing::Typing;
use crate::error::Result;
use crate::events::Pdu;
use crate::rooms::Rooms;
use crate::rooms::reads::TimelineEntry;
use crate::rooms::tables::RoomRecord;
use crate::rooms::visibility::VisibilityCheck;
use crate::storage::stream::StreamCounter;
use crate::users::Identity;
use crate::users::account_data::AccountData;

mod shared_reply;

pub use shared_reply::{FanoutScratch, JoinedMemo};

/// Timeline events per room when the filter names no limit.
const DEFAULT_TIMELINE_LIMIT: usize = 10;
/// State types shown for invites and knocks (stripped state).
const STRIPPED_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

/// Everything a sync response is made of.
pub struct SyncSources {
    pub rooms: Arc<Rooms>,
    pub account_data: Arc<AccountData>,
    pub typing: Arc<Typing>,
    pub receipts: Arc<Receipts>,
    pub to_device: Arc<ToDevice>,
    pub presence: Arc<Presence>,
}

pub struct SyncService {
    rooms: Arc<Rooms>,
    account_data: Arc<AccountData>,
    typing: Arc<Typing>,
    receipts: Arc<Receipts>,
    to_device: Arc<ToDevice>,
    presence: Arc<Presence>,
    notifier: Arc<Notifier>,
    stream: Arc<StreamCounter>,
    /// Which member events each device holds, for lazy-loading filters.
    sent_members: SentMembers,
    /// Timeline windows shared by the readers they look the same to.
    shared_timelines: SharedTimelines,
}

/// What a client asked for.
pub struct SyncParams {
    pub since: Option<u64>,
    /// Whether `since` shows the client holds what it was sent up to there, so that what is
    /// deleted once delivered (to-device messages) goes up to it: `/sync`, yes. A WebSocket
    /// sends ahead of its client's acks and deletes what they acknowledge as they come.
    pub since_confirms: bool,
    pub full_state: bool,
    pub filter: Arc<SyncFilter>,
    /// How long to wait for news; none: until there is some.
    pub timeout: Option<Duration>,
    /// `set_presence`: none leaves presence as it is.
    pub set_presence: Option<String>,
    /// `use_state_after`: answer `state_after` (state up to the end of the timeline).
    pub use_state_after: bool,
}

pub fn token(pos: u64) -> String {
    format!("s{pos}")
}

/// [`SyncService::shared_news`]'s answer.
pub enum SharedNews<'s> {
    /// Nothing after `since` yet.
    Nothing,
    /// The response shared by every reader it is the same for (it ends at its `pos`).
    Shared(&'s Arc<SharedReply>),
    /// Something else: the full computation must tell.
    Other,
}

/// The user's membership in a room being synced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Membership {
    /// Joined; `in_window`: the join is in this response's window, so the client gets the
    /// room's full state.
    Joined {
        in_window: bool,
    },
    Left,
}

impl SyncService {
    pub fn new(sources: SyncSources, notifier: Arc<Notifier>, stream: Arc<StreamCounter>) -> Self {
        let SyncSources {
            rooms,
            account_data,
            typing,
            receipts,
            to_device,
            presence,
        } = sources;
        Self {
            rooms,
            account_data,
            typing,
            receipts,
            to_device,
            presence,
            notifier,
            stream,
            sent_members: SentMembers::default(),
            shared_timelines: SharedTimelines::default(),
        }
    }

    /// Answer a sync: at once if there is anything (or it is an initial or full-state sync),
    /// else when something for this user commits, else empty at the timeout.
    pub async fn sync(&self, who: &Identity, params: &SyncParams) -> Result<SyncReply> {
        if let Some(presence) = &params.set_presence {
            self.presence.set(&who.user_id, presence, None, true)?;
        }
        let deadline = params.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut timed_out = false;
        loop {
            // Register before reading, so a commit between the read and the wait still
            // wakes us.
            let next = self.notifier.next_news(who.user_id.as_str());
            if let Some(reply) = self.answer(who, params, timed_out)? {
                return Ok(reply);
            }
            let arrived = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, next.arrived())
                    .await
                    .unwrap_or(true),
                None => next.arrived().await,
            };
            if !arrived || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                timed_out = true;
            }
        }
    }

    /// The response to `params` as things stand, without waiting: `None` when it would be
    /// empty and an empty one isn't due (an incremental sync with nothing new before its
    /// timeout).
    pub fn answer(
        &self,
        who: &Identity,
        params: &SyncParams,
        timed_out: bool,
    ) -> Result<Option<SyncReply>> {
        let upto = self.stream.frontier();
        let since = params.since.map(|s| s.min(upto));
        // Everything a response carries sits on the stream: with `since` at the frontier
        // there can be nothing new, so a client coming straight back after a response
        // waits without a computation (half of all long-poll work under fan-out).
        if since == Some(upto) && !params.full_state && !timed_out {
            return Ok(None);
        }
        // Under fan-out, usually one response serves all of a message's readers.
        if let Some(since) = since
            && let Some(reply) = self
                .shared_reply(
                    who,
                    since,
                    upto,
                    params,
                    None,
                    &mut FanoutScratch::default(),
                )?
                .cloned()
        {
            return Ok(Some(SyncReply::Shared(reply)));
        }
        let (body, has_news) = self.compute(who, since, upto, params)?;
        if has_news || since.is_none() || params.full_state || timed_out {
            return Ok(Some(SyncReply::Made(Box::new(body))));
        }
        Ok(None)
    }

    /// For a connection that holds everything up to `since` and is told there is news: what
    /// it is, if that can be told without the full computation (`params` is the connection's,
    /// its own `since` aside). A connection answers its news from the notifier's thread this
    /// way, without waking its own task.
    pub fn shared_news<'s>(
        &self,
        who: &Identity,
        since: Option<u64>,
        params: &SyncParams,
        memo: &mut JoinedMemo,
        scratch: &'s mut FanoutScratch,
    ) -> Result<SharedNews<'s>> {
        let upto = self.stream.frontier();
        let Some(since) = since else {
            return Ok(SharedNews::Other);
        };
        if since >= upto {
            return Ok(SharedNews::Nothing);
        }
        Ok(
            match self.shared_reply(who, since, upto, params, Some(memo), scratch)? {
                Some(reply) => SharedNews::Shared(reply),
                None => SharedNews::Other,
            },
        )
    }

    fn compute(
        &self,
        who: &Identity,
        since: Option<u64>,
        upto: u64,
        params: &SyncParams,
    ) -> Result<(SyncResponse, bool)> {
        let filter = &params.filter;
        let mut rooms = RoomsSection::default();
        let mut has_news = false;
        // Lazy loading: the member events this device holds (a sync without `since` starts
        // it afresh).
        let held_members = filter
            .room
            .state
            .lazy_load_members
            .then(|| self.sent_members.of(who, since.is_none()));
        let held_members = held_members.as_ref();
        // The user's account data changes, read once for the global section and every room.
        let account_changes = match since {
            None => self.account_data.all(&who.user_id)?,
            Some(s) => self.account_data.changed(&who.user_id, s, upto)?,
        };
        for (room_id, membership) in self.rooms.rooms_of(&who.user_id)?.iter() {
            if !filter.room.allows_room(room_id) {
                continue;
            }
            let Some(room) = self.rooms.room(room_id)? else {
                continue;
            };
            // The user's own member event, unless none of theirs changed since `since` (then
            // it is in no window and shown nowhere: most syncs skip the two reads).
            let own = if since
                .is_some_and(|s| !self.rooms.membership_changed_after(who.user_id.as_str(), s))
            {
                None
            } else {
                self.own_membership(&room, who)?
            };
            // A membership change newer than this response waits for the next one.
            if own.as_ref().is_some_and(|(_, pos)| *pos > upto) {
                continue;
            }
            let changed_in_window = own
                .as_ref()
                .is_some_and(|(_, pos)| since.is_none_or(|s| *pos > s));
            // Changed since the client's last sync (an initial sync has no "since").
            let changed_since = since.is_some() && changed_in_window;
            match membership.as_str() {
                "join" => {
                    let (section, news) = self.joined_room(
                        who,
                        room_id,
                        &room,
                        since,
                        upto,
                        params,
                        &account_changes,
                        held_members,
                        Membership::Joined {
                            in_window: changed_since,
                        },
                    )?;
                    if news || since.is_none() {
                        has_news |= news;
                        rooms.join.insert(room_id.to_string(), section);
                    }
                }
                kind @ ("invite" | "knock") if changed_in_window => {
                    let state = self.stripped_state(&room, own.map(|(short, _)| short))?;
                    let (map, key) = if kind == "invite" {
                        (&mut rooms.invite, "invite_state")
                    } else {
                        (&mut rooms.knock, "knock_state")
                    };
                    map.insert(room_id.to_string(), json!({ key: { "events": state } }));
                    has_news = true;
                }
                "leave" | "ban"
                    if changed_since || (since.is_none() && filter.room.include_leave) =>
                {
                    let until = own.as_ref().map_or(upto, |(_, pos)| *pos);
                    let (section, news) = self.joined_room(
                        who,
                        room_id,
                        &room,
                        since,
                        until,
                        params,
                        &account_changes,
                        held_members,
                        Membership::Left,
                    )?;
                    if news || since.is_none() {
                        has_news |= news;
                        rooms.leave.insert(room_id.to_string(), section);
                    }
                }
                _ => {}
            }
        }

        let account_data: Vec<Value> = account_changes
            .into_iter()
            .filter(|(room, kind, _)| room.is_empty() && filter.account_data.allows_type(kind))
            .map(|(_, kind, content)| json!({ "type": kind, "content": content }))
            .collect();
        let confirmed = since.filter(|_| params.since_confirms);
        let to_device = self.to_device.deliver(who, confirmed, since, upto)?;
        // A filter without presence skips the work (an initial sync's presence is everyone
        // in the user's rooms).
        let presence: Vec<Value> = if filter.presence.allows_type("m.presence") {
            self.presence
                .events_for(&who.user_id, since, upto)?
                .into_iter()
                .filter(|e| {
                    e["sender"]
                        .as_str()
                        .is_some_and(|s| filter.presence.allows_sender(s))
                })
                .collect()
        } else {
            Vec::new()
        };
        has_news |= !account_data.is_empty() || !to_device.is_empty() || !presence.is_empty();
        let body = SyncResponse {
            rooms,
            account_data: account_data.into(),
            presence: presence.into(),
            to_device: to_device.into(),
            ..SyncResponse::empty(token(upto))
        };
        Ok((body, has_news))
    }

    /// The user's own current member event in a room (short id) and its stream position.
    fn own_membership(&self, room: &RoomRecord, who: &Identity) -> Result<Option<(u64, u64)>> {
        let Some(short) =
            self.rooms
                .current_state_short(room.short, "m.room.member", who.user_id.as_str())?
        else {
            return Ok(None);
        };
        Ok(self.rooms.event_pos(short)?.map(|pos| (short, pos)))
    }

    /// A joined or left room: timeline, state, account data (and, joined, ephemeral events and
    /// the summary). A left room's `upto` is its leave.
    #[allow(clippy::too_many_arguments)]
    fn joined_room(
        &self,
        who: &Identity,
        room_id: &RoomId,
        room: &RoomRecord,
        since: Option<u64>,
        upto: u64,
        params: &SyncParams,
        account_changes: &[(String, String, Value)],
        held_members: Option<&DeviceMembers>,
        membership: Membership,
    ) -> Result<(RoomSection, bool)> {
        let filter = &params.filter.room;
        let (window, _) = self.timeline_window(who, room.short, since, upto, params, membership)?;
        let timeline: &[TimelineEntry] = &window.entries;
        let limited = window.limited;

        // State: everything at the start of the timeline for a first sync of this room (initial
        // sync, full_state, or the user joined in this window); otherwise what changed in a gap
        // the timeline doesn't cover.
        let joined_now = matches!(membership, Membership::Joined { in_window: true });
        let first_sync = since.is_none() || params.full_state || joined_now;
        let start_snapshot = match timeline.first() {
            Some(first) => first.record.state_before,
            None => self.rooms.snapshot_at(room.short, upto)?,
        };
        // The summary comes when the membership may have changed: a first sync of the room or
        // a member event in the timeline.
        let joined = membership != Membership::Left;
        let membership_changed =
            first_sync || timeline.iter().any(|e| e.pdu.member_target().is_some());
        let summary = if joined && membership_changed {
            Some(self.summary(room, who)?)
        } else {
            None
        };
        // Lazy loading keeps only the members the timeline needs, the summary's heroes (which
        // the spec requires with them) and, in a first sync of the room, the user's own.
        let wanted_members: Option<BTreeSet<&str>> = filter.state.lazy_load_members.then(|| {
            let mut wanted: BTreeSet<&str> =
                timeline.iter().map(|e| e.pdu.sender.as_str()).collect();
            if first_sync {
                wanted.insert(who.user_id.as_str());
            }
            if let Some((_, heroes)) = &summary {
                wanted.extend(heroes.iter().map(String::as_str));
            }
            wanted
        });
        // Which state keys a full state load reads at all (the rest is never decoded).
        let keep = |kind: &str, state_key: &str| {
            filter.state.allows_type(kind)
                && (kind != "m.room.member"
                    || wanted_members
                        .as_ref()
                        .is_none_or(|w| w.contains(state_key)))
        };
        // `use_state_after` (v1.16): the state up to the *end* of the timeline instead, so the
        // client never has to apply timeline events to its state.
        let state_snapshot = if params.use_state_after {
            match timeline.last() {
                Some(last) => last.record.state_after,
                None => self.rooms.snapshot_at(room.short, upto)?,
            }
        } else {
            start_snapshot
        };
        let mut state: Vec<Pdu> = if first_sync {
            self.rooms.state_at_where(state_snapshot, keep)?
        } else if params.use_state_after || limited {
            let since_snapshot = self.rooms.snapshot_at(room.short, since.unwrap_or(0))?;
            self.rooms.state_diff(since_snapshot, state_snapshot)?
        } else {
            Vec::new()
        };
        if let (Some(held), Some(wanted)) = (held_members, &wanted_members)
            && !first_sync
        {
            let since = since.filter(|_| !filter.state.include_redundant_members);
            let missing = self.members_not_held(
                held,
                room.short,
                state_snapshot,
                wanted,
                timeline,
                &state,
                since,
            )?;
            state.extend(missing);
        }
        state.retain(|p| {
            filter.state.allows(p)
                && p.state_key
                    .as_deref()
                    .is_some_and(|k| keep(&p.kind.to_string(), k))
        });
        if let Some(held) = held_members {
            self.note_members_sent(held, room.short, timeline, &state, upto)?;
        }

        let room_account_data: Vec<Value> = account_changes
            .iter()
            .filter(|(room, kind, _)| {
                room == room_id.as_str() && filter.account_data.allows_type(kind)
            })
            .map(|(_, kind, content)| json!({ "type": kind, "content": content }))
            .collect();

        let mut ephemeral = Vec::new();
        if membership != Membership::Left {
            ephemeral = self.ephemeral(room_id, who, since, upto)?;
            ephemeral.retain(|e| {
                e["type"]
                    .as_str()
                    .is_some_and(|t| filter.ephemeral.allows_type(t))
            });
        }
        let has_news = !timeline.is_empty()
            || !state.is_empty()
            || !room_account_data.is_empty()
            || !ephemeral.is_empty();
        let state: Events<_> = state
            .iter()
            .map(|p| self.rooms.client_event_json(p, None))
            .collect::<Result<Vec<_>>>()?
            .into();
        let (state, state_after) = if params.use_state_after {
            (None, Some(state))
        } else {
            (Some(state), None)
        };
        let section = RoomSection {
            timeline: SharedRaw(Arc::clone(&window.json)),
            state,
            state_after,
            account_data: room_account_data.into(),
            ephemeral: joined.then(|| ephemeral.into()),
            unread_notifications: joined.then(UnreadNotifications::default),
            summary: summary.map(|(summary, _)| summary),
        };
        Ok((section, has_news))
    }

    /// The room's typing and receipts that changed in `(since, upto]`, as `who` sees them (others'
    /// private receipts left out), before the filter.
    fn ephemeral(
        &self,
        room_id: &RoomId,
        who: &Identity,
        since: Option<u64>,
        upto: u64,
    ) -> Result<Vec<Value>> {
        let mut ephemeral = Vec::new();
        if let Some(typers) = self.typing.changed(room_id, since, upto) {
            ephemeral.push(json!({ "type": "m.typing", "content": { "user_ids": typers } }));
        }
        ephemeral.extend(
            self.receipts
                .event_for(room_id, &who.user_id, since, upto)?,
        );
        Ok(ephemeral)
    }

    /// The key a window of `(since, upto]` is shared by among readers joined through it.
    fn shared_window_key(
        &self,
        room_short: u64,
        since: u64,
        upto: u64,
        params: &SyncParams,
    ) -> WindowKey {
        WindowKey {
            room: room_short,
            since,
            upto,
            filter: params.filter.timeline_key(),
            annotation_epoch: self.rooms.annotation_epoch(),
        }
    }

    /// The room's timeline for this response: up to the filter's limit of events in
    /// `(since, upto]` the reader may see, newest last. A reader joined through the whole
    /// window who sent none of its events shares the window with every other such reader (see
    /// `shared_timeline.rs`); with whether the window is that shared one (not one of the
    /// reader's own).
    fn timeline_window(
        &self,
        who: &Identity,
        room_short: u64,
        since: Option<u64>,
        upto: u64,
        params: &SyncParams,
        membership: Membership,
    ) -> Result<(Arc<TimelineWindow>, bool)> {
        let key = match (membership, since) {
            (Membership::Joined { in_window: false }, Some(since)) => {
                Some(self.shared_window_key(room_short, since, upto, params))
            }
            _ => None,
        };
        if let Some(key) = &key
            && let Some(window) = self.shared_timelines.get(key)
            && window.shareable_with(&who.user_id)
        {
            return Ok((window, true));
        }

        let filter = &params.filter.room;
        let limit = filter
            .timeline
            .limit
            .unwrap_or(DEFAULT_TIMELINE_LIMIT)
            .clamp(1, 1000);
        // Only "joined now" matters to the check, and the room list says it.
        let current = match membership {
            Membership::Joined { .. } => "join",
            Membership::Left => "leave",
        };
        let mut check =
            VisibilityCheck::with_membership(&self.rooms, &who.user_id, Some(current.to_owned()));
        // Newest first from `upto`, down to `since`, one more than the limit to see a gap.
        let mut newest_first: Vec<TimelineEntry> = Vec::new();
        let mut cursor = upto.saturating_add(1);
        let mut exhausted = false;
        'walk: loop {
            let page = self
                .rooms
                .timeline_page_above(room_short, cursor, true, 100, since)?;
            let last_page = page.len() < 100;
            for entry in page {
                cursor = entry.pos;
                if since.is_some_and(|s| entry.pos <= s) {
                    exhausted = true;
                    break 'walk;
                }
                if check.allows(&entry.pdu, &entry.record)? && filter.timeline.allows(&entry.pdu) {
                    newest_first.push(entry);
                    if newest_first.len() > limit {
                        break 'walk;
                    }
                }
            }
            if last_page {
                exhausted = true;
                break;
            }
        }
        let limited = newest_first.len() > limit || (!exhausted && !newest_first.is_empty());
        newest_first.truncate(limit);
        let entries: Vec<TimelineEntry> = newest_first.into_iter().rev().collect();
        let events = entries
            .iter()
            .map(|e| self.rooms.client_event_json(&e.pdu, Some(who)))
            .collect::<Result<Vec<_>>>()?;
        let prev_batch = token(entries.first().map_or(upto, |e| e.pos.saturating_sub(1)));
        let json = serde_json::value::to_raw_value(&Timeline {
            events,
            limited,
            prev_batch,
        })
        .map_err(crate::error::Error::internal)?;
        let window = Arc::new(TimelineWindow::new(entries, limited, json));
        if let Some(key) = key
            && window.shareable_with(&who.user_id)
            && window
                .entries
                .iter()
                .all(|e| self.rooms.was_plain_at(&e.pdu, key.annotation_epoch))
        {
            self.shared_timelines.insert(key, Arc::clone(&window));
            return Ok((window, true));
        }
        Ok((window, false))
    }

    /// Lazy loading, incremental: the member events (at `snapshot`) of the `wanted` members
    /// that neither the timeline nor `state` carries and the device doesn't hold as of `since`
    /// (`None`: send them whatever it holds).
    #[allow(clippy::too_many_arguments)]
    fn members_not_held(
        &self,
        held: &DeviceMembers,
        room_short: u64,
        snapshot: u64,
        wanted: &BTreeSet<&str>,
        timeline: &[TimelineEntry],
        state: &[Pdu],
        since: Option<u64>,
    ) -> Result<Vec<Pdu>> {
        let carried: BTreeSet<&str> = timeline
            .iter()
            .map(|e| &e.pdu)
            .chain(state)
            .filter_map(Pdu::member_target)
            .collect();
        let mut missing = Vec::new();
        for member in wanted.iter().filter(|m| !carried.contains(*m)) {
            let Some(short) = self
                .rooms
                .state_short_at(snapshot, "m.room.member", member)?
            else {
                continue;
            };
            if !held.holds(room_short, member, short, since)
                && let Some((pdu, _)) = self.rooms.pdu_by_short(short)?
            {
                missing.push(pdu);
            }
        }
        Ok(missing)
    }

    /// Lazy loading: the device is sent every member event in this response's timeline and
    /// state (a response ending at `upto`).
    fn note_members_sent(
        &self,
        held: &DeviceMembers,
        room_short: u64,
        timeline: &[TimelineEntry],
        state: &[Pdu],
        upto: u64,
    ) -> Result<()> {
        for pdu in timeline.iter().map(|e| &e.pdu).chain(state) {
            if let Some(member) = pdu.member_target()
                && let Some(short) = self.rooms.event_short(&pdu.event_id)?
            {
                held.sent(room_short, member, short, upto);
            }
        }
        Ok(())
    }

    /// `m.heroes` and member counts, and the heroes.
    fn summary(&self, room: &RoomRecord, who: &Identity) -> Result<(Value, Vec<String>)> {
        let roster = self.rooms.roster(room)?;
        let heroes: Vec<String> = self
            .rooms
            .first_members(room, &roster)?
            .iter()
            .filter(|u| *u != who.user_id.as_str())
            .take(5)
            .cloned()
            .collect();
        let summary = json!({
            "m.heroes": heroes,
            "m.joined_member_count": roster.joined_count(),
            "m.invited_member_count": roster.count("invite"),
        });
        Ok((summary, heroes))
    }

    /// Stripped state for an invite or knock: a few room state events and the user's own
    /// member event.
    fn stripped_state(&self, room: &RoomRecord, own: Option<u64>) -> Result<Vec<Value>> {
        let strip = |p: &Pdu| json!({ "type": p.kind.to_string(), "state_key": p.state_key, "content": p.content_json(), "sender": p.sender });
        let mut out = Vec::new();
        for kind in STRIPPED_TYPES {
            if let Some(p) = self.rooms.current_state_event(room.short, kind, "")? {
                out.push(strip(&p));
            }
        }
        if let Some((own, _)) = own
            .map(|short| self.rooms.pdu_by_short(short))
            .transpose()?
            .flatten()
        {
            out.push(strip(&own));
        }
        Ok(out)
    }
}
