//! Auth rules (room versions 1–12, "Authorisation rules"), one test per rule reachable through
//! the client-server API, plus the permission rules the client-server API layers on top (who
//! may redact or kick, createRoom refusing an initial state the rules reject). Each test has an
//! allowed case (200, and the effect visible through the room's state, timeline or events) and
//! a refused one (403 `M_FORBIDDEN`, and nothing stored: the timeline gains no event and the
//! state is unchanged). Rules that differ between room versions run for the default version
//! (12) and for older ones.
//!
//! Users are named by role: `alice` creates rooms (a privileged creator from v12, level 100
//! before), `bob`/`carol`/`eve` are plain users (level 0; where a refusal must come from one
//! threshold only, bob gets 10 so he outranks the target), `dave`/`erin`/`frank` are given the
//! levels a test needs.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::harness::{Server, assert_error, unique};

const API: &str = "/_matrix/client/v3";

struct User {
    id: String,
    token: String,
}

async fn user(server: &Server, name: &str) -> User {
    let (id, token, _) = server.register(&unique(name), "pw").await;
    User { id, token }
}

/// One server and the users a test needs.
async fn setup(names: &[&str]) -> (Server, Vec<User>) {
    let server = Server::start().await;
    let mut users = Vec::new();
    for name in names {
        users.push(user(&server, name).await);
    }
    (server, users)
}

#[track_caller]
fn ok(res: &(StatusCode, Value)) {
    assert_eq!(res.0, StatusCode::OK, "body: {}", res.1);
}

#[track_caller]
fn forbidden(res: &(StatusCode, Value)) {
    assert_error(res, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

/// A request the auth rules must refuse: 403 `M_FORBIDDEN`, and the room's timeline (as
/// `$viewer` sees it) gains no event.
macro_rules! refused {
    ($server:expr, $viewer:expr, $room:expr, $request:expr) => {{
        let before = head($server, $viewer, $room).await;
        let res = $request;
        forbidden(&res);
        assert_eq!(
            head($server, $viewer, $room).await,
            before,
            "a refused event must not be stored"
        );
    }};
}

/// One `#[tokio::test]` per room version for a check taking the version.
macro_rules! versions {
    ($check:ident: $($test:ident => $version:literal),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                $check($version).await;
            }
        )+
    };
}

// ---- requests ------------------------------------------------------------------------------

async fn create_room(server: &Server, creator: &User, version: &str, mut body: Value) -> String {
    body["room_version"] = version.into();
    let res = server
        .request(
            Method::POST,
            &format!("{API}/createRoom"),
            Some(&creator.token),
            Some(body),
        )
        .await;
    ok(&res);
    res.1["room_id"].as_str().unwrap().to_owned()
}

/// Whether the version makes room creators infinitely powerful (and bars them from `users`).
fn creators_privileged(version: &str) -> bool {
    version == "12"
}

/// A power levels `users` map: before v12 the creator must be listed at 100 (or it could not
/// send the rest of createRoom's events), from v12 it must not be.
fn users_map(version: &str, creator: &User, others: &[(&User, i64)]) -> Value {
    let mut users = Map::new();
    if !creators_privileged(version) {
        users.insert(creator.id.clone(), 100.into());
    }
    for (user, level) in others {
        users.insert(user.id.clone(), (*level).into());
    }
    Value::Object(users)
}

/// A public room whose power levels are the defaults with `overrides` applied and `levels`
/// given to users; `members` join it.
async fn public_room(
    server: &Server,
    creator: &User,
    version: &str,
    mut overrides: Value,
    levels: &[(&User, i64)],
    members: &[&User],
) -> String {
    overrides["users"] = users_map(version, creator, levels);
    let room = create_room(
        server,
        creator,
        version,
        json!({"preset": "public_chat", "power_level_content_override": overrides}),
    )
    .await;
    for member in members {
        ok(&join(server, member, &room).await);
    }
    room
}

/// An invite-only room with the given join rules content.
async fn room_with_join_rules(
    server: &Server,
    creator: &User,
    version: &str,
    join_rules: Value,
) -> String {
    create_room(
        server,
        creator,
        version,
        json!({
            "preset": "private_chat",
            "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": join_rules}],
        }),
    )
    .await
}

async fn post(server: &Server, user: &User, path: &str, body: Value) -> (StatusCode, Value) {
    server
        .request(Method::POST, path, Some(&user.token), Some(body))
        .await
}

async fn join(server: &Server, user: &User, room: &str) -> (StatusCode, Value) {
    post(server, user, &format!("{API}/join/{room}"), json!({})).await
}

async fn knock(server: &Server, user: &User, room: &str) -> (StatusCode, Value) {
    post(server, user, &format!("{API}/knock/{room}"), json!({})).await
}

async fn leave(server: &Server, user: &User, room: &str) -> (StatusCode, Value) {
    post(
        server,
        user,
        &format!("{API}/rooms/{room}/leave"),
        json!({}),
    )
    .await
}

/// `invite`, `kick`, `ban` or `unban` `target`.
async fn act(
    server: &Server,
    user: &User,
    room: &str,
    action: &str,
    target: &User,
) -> (StatusCode, Value) {
    post(
        server,
        user,
        &format!("{API}/rooms/{room}/{action}"),
        json!({"user_id": target.id}),
    )
    .await
}

async fn put_state(
    server: &Server,
    user: &User,
    room: &str,
    kind: &str,
    key: &str,
    content: Value,
) -> (StatusCode, Value) {
    server
        .request(
            Method::PUT,
            &format!("{API}/rooms/{room}/state/{kind}/{key}"),
            Some(&user.token),
            Some(content),
        )
        .await
}

/// The content of a current state event, `None` if there is none (404).
async fn state(server: &Server, viewer: &User, room: &str, kind: &str, key: &str) -> Option<Value> {
    let res = server
        .request(
            Method::GET,
            &format!("{API}/rooms/{room}/state/{kind}/{key}"),
            Some(&viewer.token),
            None,
        )
        .await;
    if res.0 == StatusCode::NOT_FOUND {
        assert_eq!(res.1["errcode"], "M_NOT_FOUND", "{}", res.1);
        return None;
    }
    ok(&res);
    Some(res.1)
}

/// `target`'s current membership, `None` if the room has no member event for them.
async fn membership(server: &Server, viewer: &User, room: &str, target: &User) -> Option<String> {
    state(server, viewer, room, "m.room.member", &target.id)
        .await
        .map(|c| c["membership"].as_str().unwrap().to_owned())
}

async fn power_levels(server: &Server, viewer: &User, room: &str) -> Value {
    state(server, viewer, room, "m.room.power_levels", "")
        .await
        .expect("power levels")
}

async fn send(
    server: &Server,
    user: &User,
    room: &str,
    kind: &str,
    content: Value,
) -> (StatusCode, Value) {
    let txn = unique("txn");
    server
        .request(
            Method::PUT,
            &format!("{API}/rooms/{room}/send/{kind}/{txn}"),
            Some(&user.token),
            Some(content),
        )
        .await
}

async fn say(server: &Server, user: &User, room: &str, text: &str) -> (StatusCode, Value) {
    send(
        server,
        user,
        room,
        "m.room.message",
        json!({"msgtype": "m.text", "body": text}),
    )
    .await
}

/// Send a message that must be accepted; returns its event id.
async fn said(server: &Server, user: &User, room: &str, text: &str) -> String {
    let res = say(server, user, room, text).await;
    ok(&res);
    res.1["event_id"].as_str().unwrap().to_owned()
}

async fn redact(server: &Server, user: &User, room: &str, event_id: &str) -> (StatusCode, Value) {
    let txn = unique("redact");
    server
        .request(
            Method::PUT,
            &format!("{API}/rooms/{room}/redact/{event_id}/{txn}"),
            Some(&user.token),
            Some(json!({})),
        )
        .await
}

/// The room's timeline, newest first.
async fn timeline(server: &Server, viewer: &User, room: &str, limit: u32) -> Vec<Value> {
    let res = server
        .request(
            Method::GET,
            &format!("{API}/rooms/{room}/messages?dir=b&limit={limit}"),
            Some(&viewer.token),
            None,
        )
        .await;
    ok(&res);
    res.1["chunk"].as_array().unwrap().clone()
}

/// The id of the newest event in the room.
async fn head(server: &Server, viewer: &User, room: &str) -> String {
    timeline(server, viewer, room, 1).await[0]["event_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn in_timeline(server: &Server, viewer: &User, room: &str, event_id: &str) -> bool {
    timeline(server, viewer, room, 1000)
        .await
        .iter()
        .any(|e| e["event_id"] == event_id)
}

/// An event as served by `GET /rooms/{room}/event/{id}`.
async fn event(server: &Server, viewer: &User, room: &str, event_id: &str) -> Value {
    let res = server
        .request(
            Method::GET,
            &format!("{API}/rooms/{room}/event/{event_id}"),
            Some(&viewer.token),
            None,
        )
        .await;
    ok(&res);
    res.1
}

async fn event_content(server: &Server, viewer: &User, room: &str, event_id: &str) -> Value {
    event(server, viewer, room, event_id).await["content"].clone()
}

async fn joined_rooms(server: &Server, user: &User) -> Vec<Value> {
    let res = server
        .request(
            Method::GET,
            &format!("{API}/joined_rooms"),
            Some(&user.token),
            None,
        )
        .await;
    ok(&res);
    res.1["joined_rooms"].as_array().unwrap().clone()
}

/// A refusal the spec lets be either a rejected event (403 `M_FORBIDDEN`) or a malformed
/// request (400 `M_BAD_JSON`).
#[track_caller]
fn forbidden_or_bad_json(res: &(StatusCode, Value)) {
    let code = (res.0, res.1["errcode"].as_str().unwrap_or_default());
    assert!(
        code == (StatusCode::FORBIDDEN, "M_FORBIDDEN")
            || code == (StatusCode::BAD_REQUEST, "M_BAD_JSON"),
        "expected 403 M_FORBIDDEN or 400 M_BAD_JSON, got {} {}",
        res.0,
        res.1
    );
}

// ---- 1. m.room.member, membership join -----------------------------------------------------

/// 5.3.6 "If the join_rule is public, allow." — 5.3.7 "Otherwise, reject." (invite room).
async fn join_public_room_but_not_invite_only_room(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let public = create_room(&server, alice, version, json!({"preset": "public_chat"})).await;
    let private = create_room(&server, alice, version, json!({"preset": "private_chat"})).await;

    ok(&join(&server, bob, &public).await);
    assert_eq!(
        membership(&server, alice, &public, bob).await.as_deref(),
        Some("join")
    );

    refused!(&server, alice, &private, join(&server, bob, &private).await);
    assert_eq!(membership(&server, alice, &private, bob).await, None);
}
versions!(join_public_room_but_not_invite_only_room:
    join_public_room_but_not_invite_only_room_v12 => "12",
    join_public_room_but_not_invite_only_room_v1 => "1",
);

/// 5.3.4 "If the join_rule is invite … allow if membership state is invite or join": an
/// invited user joins; one whose invite was rejected (now `leave`) may not.
async fn invited_user_joins_invite_only_room(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &u[..] else {
        unreachable!()
    };
    let room = create_room(&server, alice, version, json!({"preset": "private_chat"})).await;
    ok(&act(&server, alice, &room, "invite", bob).await);
    ok(&join(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("join")
    );

    ok(&act(&server, alice, &room, "invite", carol).await);
    ok(&leave(&server, carol, &room).await);
    refused!(&server, alice, &room, join(&server, carol, &room).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("leave")
    );
}
versions!(invited_user_joins_invite_only_room:
    invited_user_joins_invite_only_room_v12 => "12",
    invited_user_joins_invite_only_room_v1 => "1",
);

/// 5.3.3 "If the sender is banned, reject." — once unbanned, the public room admits them again.
async fn banned_user_cannot_join(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let room = public_room(&server, alice, version, json!({}), &[], &[bob]).await;
    ok(&act(&server, alice, &room, "ban", bob).await);

    refused!(&server, alice, &room, join(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("ban")
    );

    ok(&act(&server, alice, &room, "unban", bob).await);
    ok(&join(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("join")
    );
}
versions!(banned_user_cannot_join:
    banned_user_cannot_join_v12 => "12",
    banned_user_cannot_join_v1 => "1",
);

/// 5.3.2 "If the sender does not match state_key, reject." — whatever the sender's power, and
/// even for an invited target; the user themselves may.
async fn cannot_set_another_users_membership_to_join(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &u[..] else {
        unreachable!()
    };
    let room = public_room(&server, alice, version, json!({}), &[], &[]).await;
    let join_content = json!({"membership": "join"});

    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            alice,
            &room,
            "m.room.member",
            &bob.id,
            join_content.clone()
        )
        .await
    );
    assert_eq!(membership(&server, alice, &room, bob).await, None);

    ok(&act(&server, alice, &room, "invite", carol).await);
    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            alice,
            &room,
            "m.room.member",
            &carol.id,
            join_content.clone()
        )
        .await
    );
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("invite")
    );

    ok(&put_state(&server, bob, &room, "m.room.member", &bob.id, join_content).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("join")
    );
}
versions!(cannot_set_another_users_membership_to_join:
    cannot_set_another_users_membership_to_join_v12 => "12",
    cannot_set_another_users_membership_to_join_v1 => "1",
);

/// 5.1 "If there is no state_key property … reject." — an `m.room.member` sent as a message
/// event (403, or 400 `M_BAD_JSON` as malformed) changes no membership; the real join works.
async fn member_event_without_state_key_is_refused(version: &str) {
    let (server, u) = setup(&["alice", "carol"]).await;
    let [alice, carol] = &u[..] else {
        unreachable!()
    };
    let room = public_room(&server, alice, version, json!({}), &[], &[]).await;

    let before = head(&server, alice, &room).await;
    let res = send(
        &server,
        carol,
        &room,
        "m.room.member",
        json!({"membership": "join"}),
    )
    .await;
    forbidden_or_bad_json(&res);
    assert_eq!(head(&server, alice, &room).await, before);
    assert_eq!(membership(&server, alice, &room, carol).await, None);

    ok(&join(&server, carol, &room).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("join")
    );
}
versions!(member_event_without_state_key_is_refused:
    member_event_without_state_key_is_refused_v12 => "12",
    member_event_without_state_key_is_refused_v1 => "1",
);

// ---- 2. m.room.member, membership invite ---------------------------------------------------

/// 5.4.4 "If the sender's power level is greater than or equal to the invite level, allow."
/// — 5.4.5 "Otherwise, reject."
async fn invite_needs_invite_level(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave", "eve"]).await;
    let [alice, bob, carol, dave, eve] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"invite": 50}),
        &[(dave, 50)],
        &[bob, dave],
    )
    .await;

    ok(&act(&server, dave, &room, "invite", carol).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("invite")
    );

    refused!(
        &server,
        alice,
        &room,
        act(&server, bob, &room, "invite", eve).await
    );
    assert_eq!(membership(&server, alice, &room, eve).await, None);
}
versions!(invite_needs_invite_level:
    invite_needs_invite_level_v12 => "12",
    invite_needs_invite_level_v1 => "1",
);

/// 5.4.2 "If the sender's current membership state is not join, reject." — neither an outsider
/// nor an invited user may invite; once joined (invite level 0) they may.
async fn non_member_cannot_invite(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave"]).await;
    let [alice, bob, carol, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(&server, alice, version, json!({}), &[], &[]).await;

    refused!(
        &server,
        alice,
        &room,
        act(&server, bob, &room, "invite", carol).await
    );
    assert_eq!(membership(&server, alice, &room, carol).await, None);

    ok(&act(&server, alice, &room, "invite", dave).await);
    refused!(
        &server,
        alice,
        &room,
        act(&server, dave, &room, "invite", carol).await
    );
    assert_eq!(membership(&server, alice, &room, carol).await, None);

    ok(&join(&server, bob, &room).await);
    ok(&act(&server, bob, &room, "invite", carol).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("invite")
    );
}
versions!(non_member_cannot_invite:
    non_member_cannot_invite_v12 => "12",
    non_member_cannot_invite_v1 => "1",
);

/// 5.4.3 "If target user's current membership state is join or ban, reject." (ban half);
/// after an unban the invite goes through.
async fn cannot_invite_banned_user(version: &str) {
    let (server, u) = setup(&["alice", "carol"]).await;
    let [alice, carol] = &u[..] else {
        unreachable!()
    };
    let room = public_room(&server, alice, version, json!({}), &[], &[]).await;
    ok(&act(&server, alice, &room, "ban", carol).await);

    refused!(
        &server,
        alice,
        &room,
        act(&server, alice, &room, "invite", carol).await
    );
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("ban")
    );

    ok(&act(&server, alice, &room, "unban", carol).await);
    ok(&act(&server, alice, &room, "invite", carol).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("invite")
    );
}
versions!(cannot_invite_banned_user:
    cannot_invite_banned_user_v12 => "12",
    cannot_invite_banned_user_v1 => "1",
);

/// 5.4.3 "If target user's current membership state is join or ban, reject." (join half).
async fn cannot_invite_joined_user(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &u[..] else {
        unreachable!()
    };
    let room = public_room(&server, alice, version, json!({}), &[], &[bob]).await;

    refused!(
        &server,
        alice,
        &room,
        act(&server, alice, &room, "invite", bob).await
    );
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("join")
    );

    ok(&act(&server, alice, &room, "invite", carol).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("invite")
    );
}
versions!(cannot_invite_joined_user:
    cannot_invite_joined_user_v12 => "12",
    cannot_invite_joined_user_v1 => "1",
);

// ---- 3. m.room.member, membership leave (leave and kick) -----------------------------------

/// 5.5.1 "If the sender matches state_key, allow if and only if that user's current membership
/// state is invite, join, or knock." — a joined user leaves, an invited one rejects; a user
/// with no membership, or who already left, can't send a leave.
async fn user_may_leave_only_from_invite_or_join(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave"]).await;
    let [alice, bob, carol, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(&server, alice, version, json!({}), &[], &[bob]).await;

    ok(&leave(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("leave")
    );
    ok(&act(&server, alice, &room, "invite", carol).await);
    ok(&leave(&server, carol, &room).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("leave")
    );

    let leave_content = json!({"membership": "leave"});
    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            dave,
            &room,
            "m.room.member",
            &dave.id,
            leave_content.clone()
        )
        .await
    );
    assert_eq!(membership(&server, alice, &room, dave).await, None);
    refused!(
        &server,
        alice,
        &room,
        put_state(&server, bob, &room, "m.room.member", &bob.id, leave_content).await
    );
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("leave")
    );
}
versions!(user_may_leave_only_from_invite_or_join:
    user_may_leave_only_from_invite_or_join_v12 => "12",
    user_may_leave_only_from_invite_or_join_v1 => "1",
);

/// 5.5.4 "If the sender's power level is greater than or equal to the kick level, and the
/// target user's power level is less than the sender's power level, allow." (kick level half).
async fn kick_needs_kick_level(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave"]).await;
    let [alice, bob, carol, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"kick": 50}),
        &[(bob, 10), (dave, 50)],
        &[bob, carol, dave],
    )
    .await;

    refused!(
        &server,
        alice,
        &room,
        act(&server, bob, &room, "kick", carol).await
    );
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("join")
    );

    ok(&act(&server, dave, &room, "kick", carol).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("leave")
    );
}
versions!(kick_needs_kick_level:
    kick_needs_kick_level_v12 => "12",
    kick_needs_kick_level_v1 => "1",
);

/// 5.5.4 (target half): the target's level must be below the sender's — an equal moderator and
/// the room's creator can't be kicked by a moderator; a plain user can.
async fn cannot_kick_user_at_or_above_own_level(version: &str) {
    let (server, u) = setup(&["alice", "bob", "dave", "erin"]).await;
    let [alice, bob, dave, erin] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({}),
        &[(dave, 50), (erin, 50)],
        &[bob, dave, erin],
    )
    .await;

    refused!(
        &server,
        alice,
        &room,
        act(&server, dave, &room, "kick", erin).await
    );
    assert_eq!(
        membership(&server, alice, &room, erin).await.as_deref(),
        Some("join")
    );
    refused!(
        &server,
        alice,
        &room,
        act(&server, dave, &room, "kick", alice).await
    );
    assert_eq!(
        membership(&server, alice, &room, alice).await.as_deref(),
        Some("join")
    );

    ok(&act(&server, dave, &room, "kick", bob).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("leave")
    );
}
versions!(cannot_kick_user_at_or_above_own_level:
    cannot_kick_user_at_or_above_own_level_v12 => "12",
    cannot_kick_user_at_or_above_own_level_v1 => "1",
);

/// `POST /kick` (client-server API, 403: "The kickee is not currently in the room."): kicking
/// a user who was never in the room is refused and stores nothing; kicking a member works.
async fn kicking_user_not_in_room_is_refused(version: &str) {
    let (server, u) = setup(&["alice", "bob", "dave", "eve"]).await;
    let [alice, bob, dave, eve] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({}),
        &[(dave, 50)],
        &[bob, dave],
    )
    .await;

    refused!(
        &server,
        alice,
        &room,
        act(&server, dave, &room, "kick", eve).await
    );
    assert_eq!(membership(&server, alice, &room, eve).await, None);

    ok(&act(&server, dave, &room, "kick", bob).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("leave")
    );
}
versions!(kicking_user_not_in_room_is_refused:
    kicking_user_not_in_room_is_refused_v12 => "12",
    kicking_user_not_in_room_is_refused_v1 => "1",
);

// ---- 4. m.room.member, membership ban, and unban -------------------------------------------

/// 5.6.2 "If the sender's power level is greater than or equal to the ban level, and the
/// target user's power level is less than the sender's power level, allow." (ban level half)
/// — a user not in the room may be banned too.
async fn ban_needs_ban_level(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave", "eve"]).await;
    let [alice, bob, carol, dave, eve] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"ban": 50}),
        &[(bob, 10), (dave, 50)],
        &[bob, carol, dave],
    )
    .await;

    refused!(
        &server,
        alice,
        &room,
        act(&server, bob, &room, "ban", carol).await
    );
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("join")
    );

    ok(&act(&server, dave, &room, "ban", carol).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("ban")
    );
    ok(&act(&server, dave, &room, "ban", eve).await);
    assert_eq!(
        membership(&server, alice, &room, eve).await.as_deref(),
        Some("ban")
    );
}
versions!(ban_needs_ban_level:
    ban_needs_ban_level_v12 => "12",
    ban_needs_ban_level_v1 => "1",
);

/// 5.6.2 (target half): the target's level must be below the sender's.
async fn cannot_ban_user_at_or_above_own_level(version: &str) {
    let (server, u) = setup(&["alice", "bob", "dave", "erin"]).await;
    let [alice, bob, dave, erin] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({}),
        &[(dave, 50), (erin, 50)],
        &[bob, dave, erin],
    )
    .await;

    refused!(
        &server,
        alice,
        &room,
        act(&server, dave, &room, "ban", erin).await
    );
    assert_eq!(
        membership(&server, alice, &room, erin).await.as_deref(),
        Some("join")
    );
    refused!(
        &server,
        alice,
        &room,
        act(&server, dave, &room, "ban", alice).await
    );
    assert_eq!(
        membership(&server, alice, &room, alice).await.as_deref(),
        Some("join")
    );

    ok(&act(&server, dave, &room, "ban", bob).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("ban")
    );
}
versions!(cannot_ban_user_at_or_above_own_level:
    cannot_ban_user_at_or_above_own_level_v12 => "12",
    cannot_ban_user_at_or_above_own_level_v1 => "1",
);

/// 5.5.3 "If the target user's current membership state is ban, and the sender's power level
/// is less than the ban level, reject." — with it, the unbanned user may join again.
async fn unban_needs_ban_level(version: &str) {
    let (server, u) = setup(&["alice", "bob", "dave", "eve"]).await;
    let [alice, bob, dave, eve] = &u[..] else {
        unreachable!()
    };
    // kick 0, bob above eve: only the ban level stands between bob and the unban.
    let room = public_room(
        &server,
        alice,
        version,
        json!({"ban": 50, "kick": 0}),
        &[(bob, 10), (dave, 50)],
        &[bob, dave],
    )
    .await;
    ok(&act(&server, alice, &room, "ban", eve).await);

    refused!(
        &server,
        alice,
        &room,
        act(&server, bob, &room, "unban", eve).await
    );
    assert_eq!(
        membership(&server, alice, &room, eve).await.as_deref(),
        Some("ban")
    );

    ok(&act(&server, dave, &room, "unban", eve).await);
    assert_eq!(
        membership(&server, alice, &room, eve).await.as_deref(),
        Some("leave")
    );
    ok(&join(&server, eve, &room).await);
}
versions!(unban_needs_ban_level:
    unban_needs_ban_level_v12 => "12",
    unban_needs_ban_level_v1 => "1",
);

/// "To unban somebody, you must have power level greater than or equal to both the kick and ban
/// levels" (5.5.3 then 5.5.4).
async fn unban_also_needs_kick_level(version: &str) {
    let (server, u) = setup(&["alice", "dave", "eve", "frank"]).await;
    let [alice, dave, eve, frank] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"ban": 50, "kick": 75}),
        &[(dave, 50), (frank, 75)],
        &[dave, frank],
    )
    .await;
    ok(&act(&server, alice, &room, "ban", eve).await);

    refused!(
        &server,
        alice,
        &room,
        act(&server, dave, &room, "unban", eve).await
    );
    assert_eq!(
        membership(&server, alice, &room, eve).await.as_deref(),
        Some("ban")
    );

    ok(&act(&server, frank, &room, "unban", eve).await);
    assert_eq!(
        membership(&server, alice, &room, eve).await.as_deref(),
        Some("leave")
    );
}
versions!(unban_also_needs_kick_level:
    unban_also_needs_kick_level_v12 => "12",
    unban_also_needs_kick_level_v1 => "1",
);

// ---- 5. m.room.member, membership knock (v7+) ----------------------------------------------

/// 5.7.3 "If the sender's current membership is not ban, invite, or join, allow." — 5.7.4
/// "Otherwise, reject."; a knocker can then be invited and join. Nobody knocks for another.
async fn knock_allowed_when_join_rule_is_knock(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "eve"]).await;
    let [alice, bob, carol, eve] = &u[..] else {
        unreachable!()
    };
    let room = room_with_join_rules(&server, alice, version, json!({"join_rule": "knock"})).await;

    // 5.7.2 "If sender does not match state_key, reject."
    let knock_content = json!({"membership": "knock"});
    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            alice,
            &room,
            "m.room.member",
            &carol.id,
            knock_content
        )
        .await
    );
    assert_eq!(membership(&server, alice, &room, carol).await, None);

    ok(&knock(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("knock")
    );
    ok(&act(&server, alice, &room, "invite", bob).await);
    ok(&join(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("join")
    );

    // Joined, invited or banned: no knocking.
    refused!(&server, alice, &room, knock(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("join")
    );
    ok(&act(&server, alice, &room, "ban", eve).await);
    refused!(&server, alice, &room, knock(&server, eve, &room).await);
    assert_eq!(
        membership(&server, alice, &room, eve).await.as_deref(),
        Some("ban")
    );
}
versions!(knock_allowed_when_join_rule_is_knock:
    knock_allowed_when_join_rule_is_knock_v12 => "12",
    knock_allowed_when_join_rule_is_knock_v7 => "7",
);

/// 5.7.1 "If the join_rule is anything other than knock or knock_restricted, reject." — in a
/// public and an invite room; once the join rule is `knock`, the same knock goes through.
async fn knock_refused_unless_join_rule_is_knock(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let public = create_room(&server, alice, version, json!({"preset": "public_chat"})).await;
    let private = create_room(&server, alice, version, json!({"preset": "private_chat"})).await;

    refused!(&server, alice, &public, knock(&server, bob, &public).await);
    assert_eq!(membership(&server, alice, &public, bob).await, None);
    refused!(
        &server,
        alice,
        &private,
        knock(&server, bob, &private).await
    );
    assert_eq!(membership(&server, alice, &private, bob).await, None);

    let rules = json!({"join_rule": "knock"});
    ok(&put_state(&server, alice, &private, "m.room.join_rules", "", rules).await);
    ok(&knock(&server, bob, &private).await);
    assert_eq!(
        membership(&server, alice, &private, bob).await.as_deref(),
        Some("knock")
    );
}
versions!(knock_refused_unless_join_rule_is_knock:
    knock_refused_unless_join_rule_is_knock_v12 => "12",
    knock_refused_unless_join_rule_is_knock_v7 => "7",
);

/// v6 has no knock membership (5.8 "Otherwise, the membership is unknown. Reject."), even with
/// `join_rule: knock`; the same room in v7 takes the knock.
#[tokio::test]
async fn knock_needs_room_version_7() {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let knock_rule = json!({"join_rule": "knock"});
    let v6 = room_with_join_rules(&server, alice, "6", knock_rule.clone()).await;
    let v7 = room_with_join_rules(&server, alice, "7", knock_rule).await;

    refused!(&server, alice, &v6, knock(&server, bob, &v6).await);
    assert_eq!(membership(&server, alice, &v6, bob).await, None);

    ok(&knock(&server, bob, &v7).await);
    assert_eq!(
        membership(&server, alice, &v7, bob).await.as_deref(),
        Some("knock")
    );
}

/// In a knock room a knocker may rescind (5.5.1, leave from `knock`, v7+) but not join
/// uninvited (5.3.4 admits only `invite` or `join`).
async fn knocker_may_rescind_but_not_join_uninvited(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let room = room_with_join_rules(&server, alice, version, json!({"join_rule": "knock"})).await;
    ok(&knock(&server, bob, &room).await);

    refused!(&server, alice, &room, join(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("knock")
    );

    ok(&leave(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("leave")
    );
}
versions!(knocker_may_rescind_but_not_join_uninvited:
    knocker_may_rescind_but_not_join_uninvited_v12 => "12",
    knocker_may_rescind_but_not_join_uninvited_v7 => "7",
);

// ---- 6. restricted join rules (v8+) --------------------------------------------------------

/// A public room `bob` joins, and a room of `version` with `join_rule` allowing its members.
async fn allowed_room_and_restricted_room(
    server: &Server,
    alice: &User,
    bob: &User,
    version: &str,
    join_rule: &str,
) -> (String, String) {
    let allowed = create_room(server, alice, "12", json!({"preset": "public_chat"})).await;
    ok(&join(server, bob, &allowed).await);
    let rules = json!({
        "join_rule": join_rule,
        "allow": [{"type": "m.room_membership", "room_id": allowed}],
    });
    let restricted = room_with_join_rules(server, alice, version, rules).await;
    (allowed, restricted)
}

/// 5.3.5 restricted: a member of an allowed room joins, authorised via a joined user with
/// invite power (Roost picks `alice`); a non-member has no authoriser and is refused.
async fn restricted_join_needs_membership_of_allowed_room(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &u[..] else {
        unreachable!()
    };
    let (_, room) =
        allowed_room_and_restricted_room(&server, alice, bob, version, "restricted").await;

    ok(&join(&server, bob, &room).await);
    let member = state(&server, alice, &room, "m.room.member", &bob.id)
        .await
        .unwrap();
    assert_eq!(member["membership"], "join");
    assert_eq!(
        member["join_authorised_via_users_server"],
        alice.id.as_str()
    );

    refused!(&server, alice, &room, join(&server, carol, &room).await);
    assert_eq!(membership(&server, alice, &room, carol).await, None);
}
versions!(restricted_join_needs_membership_of_allowed_room:
    restricted_join_needs_membership_of_allowed_room_v12 => "12",
    restricted_join_needs_membership_of_allowed_room_v10 => "10",
    restricted_join_needs_membership_of_allowed_room_v8 => "8",
);

/// Before v8 `restricted` is no join rule the auth rules know: joining is refused even for a
/// member of the allowed room (5.3.7 "Otherwise, reject."); in v8 the same join goes through.
#[tokio::test]
async fn restricted_join_needs_room_version_8() {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let (_, v7) = allowed_room_and_restricted_room(&server, alice, bob, "7", "restricted").await;
    let (_, v8) = allowed_room_and_restricted_room(&server, alice, bob, "8", "restricted").await;

    refused!(&server, alice, &v7, join(&server, bob, &v7).await);
    assert_eq!(membership(&server, alice, &v7, bob).await, None);

    ok(&join(&server, bob, &v8).await);
    assert_eq!(
        membership(&server, alice, &v8, bob).await.as_deref(),
        Some("join")
    );
}

/// v10+ `knock_restricted`: members of the allowed room join (5.3.5), others may knock (5.7.1)
/// but not join.
async fn knock_restricted_admits_members_and_knockers(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &u[..] else {
        unreachable!()
    };
    let (_, room) =
        allowed_room_and_restricted_room(&server, alice, bob, version, "knock_restricted").await;

    ok(&join(&server, bob, &room).await);
    assert_eq!(
        membership(&server, alice, &room, bob).await.as_deref(),
        Some("join")
    );
    refused!(&server, alice, &room, join(&server, carol, &room).await);
    assert_eq!(membership(&server, alice, &room, carol).await, None);
    ok(&knock(&server, carol, &room).await);
    assert_eq!(
        membership(&server, alice, &room, carol).await.as_deref(),
        Some("knock")
    );
}
versions!(knock_restricted_admits_members_and_knockers:
    knock_restricted_admits_members_and_knockers_v12 => "12",
    knock_restricted_admits_members_and_knockers_v10 => "10",
);

/// Before v10 `knock_restricted` admits nobody: neither the allowed room's member's join nor a
/// knock; the v10 room admits both.
#[tokio::test]
async fn knock_restricted_needs_room_version_10() {
    let (server, u) = setup(&["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &u[..] else {
        unreachable!()
    };
    let (_, v9) =
        allowed_room_and_restricted_room(&server, alice, bob, "9", "knock_restricted").await;
    let (_, v10) =
        allowed_room_and_restricted_room(&server, alice, bob, "10", "knock_restricted").await;

    refused!(&server, alice, &v9, join(&server, bob, &v9).await);
    assert_eq!(membership(&server, alice, &v9, bob).await, None);
    refused!(&server, alice, &v9, knock(&server, carol, &v9).await);
    assert_eq!(membership(&server, alice, &v9, carol).await, None);

    ok(&join(&server, bob, &v10).await);
    ok(&knock(&server, carol, &v10).await);
    assert_eq!(
        membership(&server, alice, &v10, carol).await.as_deref(),
        Some("knock")
    );
}

// ---- 7. events_default and per-type levels for messages ------------------------------------

/// 8 "If the event type's required power level is greater than the sender's power level,
/// reject." — for a message type without an `events` entry, `events_default`.
async fn events_default_gates_messages(version: &str) {
    let (server, u) = setup(&["alice", "bob", "dave"]).await;
    let [alice, bob, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"events_default": 10}),
        &[(dave, 10)],
        &[bob, dave],
    )
    .await;

    refused!(
        &server,
        alice,
        &room,
        say(&server, bob, &room, "too quiet").await
    );

    let id = said(&server, dave, &room, "loud enough").await;
    assert!(in_timeline(&server, alice, &room, &id).await);
}
versions!(events_default_gates_messages:
    events_default_gates_messages_v12 => "12",
    events_default_gates_messages_v1 => "1",
);

/// 8 with an `events` entry: the entry, not `events_default`, sets a type's level — raising one
/// type above a low default, or lowering one below a high default.
async fn events_entry_overrides_events_default(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let raised = public_room(
        &server,
        alice,
        version,
        json!({"events_default": 0, "events": {"com.example.locked": 50}}),
        &[],
        &[bob],
    )
    .await;
    let lowered = public_room(
        &server,
        alice,
        version,
        json!({"events_default": 50, "events": {"m.room.message": 0}}),
        &[],
        &[bob],
    )
    .await;

    refused!(
        &server,
        alice,
        &raised,
        send(&server, bob, &raised, "com.example.locked", json!({"n": 1})).await
    );
    let id = said(&server, bob, &raised, "default applies").await;
    assert!(in_timeline(&server, alice, &raised, &id).await);

    refused!(
        &server,
        alice,
        &lowered,
        send(&server, bob, &lowered, "com.example.other", json!({"n": 2})).await
    );
    let id = said(&server, bob, &lowered, "entry applies").await;
    assert!(in_timeline(&server, alice, &lowered, &id).await);
}
versions!(events_entry_overrides_events_default:
    events_entry_overrides_events_default_v12 => "12",
    events_entry_overrides_events_default_v1 => "1",
);

// ---- 8. state_default and per-type levels for state ----------------------------------------

/// 8 for state events: without an `events` entry a state type needs `state_default`.
async fn state_default_gates_state_events(version: &str) {
    let (server, u) = setup(&["alice", "bob", "dave"]).await;
    let [alice, bob, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"state_default": 50}),
        &[(dave, 50)],
        &[bob, dave],
    )
    .await;

    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            bob,
            &room,
            "com.example.state",
            "",
            json!({"by": "bob"})
        )
        .await
    );
    assert_eq!(
        state(&server, alice, &room, "com.example.state", "").await,
        None
    );

    ok(&put_state(
        &server,
        dave,
        &room,
        "com.example.state",
        "",
        json!({"by": "dave"}),
    )
    .await);
    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            bob,
            &room,
            "com.example.state",
            "",
            json!({"by": "bob"})
        )
        .await
    );
    assert_eq!(
        state(&server, alice, &room, "com.example.state", "").await,
        Some(json!({"by": "dave"}))
    );
}
versions!(state_default_gates_state_events:
    state_default_gates_state_events_v12 => "12",
    state_default_gates_state_events_v1 => "1",
);

/// 8 with an `events` entry for a state type: it overrides `state_default` both ways.
async fn events_entry_overrides_state_default(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let lowered = public_room(
        &server,
        alice,
        version,
        json!({"state_default": 50, "events": {"m.room.topic": 0}}),
        &[],
        &[bob],
    )
    .await;
    let raised = public_room(
        &server,
        alice,
        version,
        json!({"state_default": 0, "events": {"m.room.name": 50}}),
        &[],
        &[bob],
    )
    .await;

    ok(&put_state(
        &server,
        bob,
        &lowered,
        "m.room.topic",
        "",
        json!({"topic": "low"}),
    )
    .await);
    assert_eq!(
        state(&server, alice, &lowered, "m.room.topic", "")
            .await
            .unwrap()["topic"],
        "low"
    );
    refused!(
        &server,
        alice,
        &lowered,
        put_state(
            &server,
            bob,
            &lowered,
            "m.room.name",
            "",
            json!({"name": "no"})
        )
        .await
    );
    assert_eq!(
        state(&server, alice, &lowered, "m.room.name", "").await,
        None
    );

    ok(&put_state(
        &server,
        bob,
        &raised,
        "m.room.topic",
        "",
        json!({"topic": "open"}),
    )
    .await);
    assert_eq!(
        state(&server, alice, &raised, "m.room.topic", "")
            .await
            .unwrap()["topic"],
        "open"
    );
    refused!(
        &server,
        alice,
        &raised,
        put_state(
            &server,
            bob,
            &raised,
            "m.room.name",
            "",
            json!({"name": "no"})
        )
        .await
    );
    assert_eq!(
        state(&server, alice, &raised, "m.room.name", "").await,
        None
    );
}
versions!(events_entry_overrides_state_default:
    events_entry_overrides_state_default_v12 => "12",
    events_entry_overrides_state_default_v1 => "1",
);

/// 9 "If the event has a state_key that starts with an @ and does not match the sender,
/// reject." — whatever the sender's power; a user's own key is fine.
async fn state_key_of_another_user_is_refused(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"state_default": 0}),
        &[],
        &[bob],
    )
    .await;
    let kind = "com.example.profile";

    refused!(
        &server,
        alice,
        &room,
        put_state(&server, bob, &room, kind, &alice.id, json!({"by": "bob"})).await
    );
    assert_eq!(state(&server, alice, &room, kind, &alice.id).await, None);
    refused!(
        &server,
        alice,
        &room,
        put_state(&server, alice, &room, kind, &bob.id, json!({"by": "alice"})).await
    );
    assert_eq!(state(&server, alice, &room, kind, &bob.id).await, None);

    ok(&put_state(&server, bob, &room, kind, &bob.id, json!({"by": "bob"})).await);
    assert_eq!(
        state(&server, alice, &room, kind, &bob.id).await,
        Some(json!({"by": "bob"}))
    );
}
versions!(state_key_of_another_user_is_refused:
    state_key_of_another_user_is_refused_v12 => "12",
    state_key_of_another_user_is_refused_v1 => "1",
);

// ---- 9. m.room.power_levels ----------------------------------------------------------------

/// A public room where `dave` (50) may send power levels; `levels` adds users.
async fn moderated_room(
    server: &Server,
    alice: &User,
    dave: &User,
    version: &str,
    extra: Value,
    levels: &[(&User, i64)],
    members: &[&User],
) -> String {
    let mut overrides = extra;
    overrides["events"] = json!({"m.room.power_levels": 50});
    let mut all = vec![(dave, 50)];
    all.extend_from_slice(levels);
    public_room(server, alice, version, overrides, &all, members).await
}

/// 10.10 "For each entry being added to, or changed in, the users property: If the new value
/// is greater than the sender's current power level, reject." — up to one's own level is fine.
async fn cannot_grant_level_above_own(version: &str) {
    let (server, u) = setup(&["alice", "bob", "dave"]).await;
    let [alice, bob, dave] = &u[..] else {
        unreachable!()
    };
    let room = moderated_room(&server, alice, dave, version, json!({}), &[], &[bob, dave]).await;
    let before = power_levels(&server, alice, &room).await;

    let mut above = before.clone();
    above["users"][&bob.id] = 51.into();
    refused!(
        &server,
        alice,
        &room,
        put_state(&server, dave, &room, "m.room.power_levels", "", above).await
    );
    assert_eq!(power_levels(&server, alice, &room).await, before);

    let mut equal = before.clone();
    equal["users"][&bob.id] = 50.into();
    ok(&put_state(&server, dave, &room, "m.room.power_levels", "", equal).await);
    assert_eq!(
        power_levels(&server, alice, &room).await["users"][&bob.id],
        50
    );
}
versions!(cannot_grant_level_above_own:
    cannot_grant_level_above_own_v12 => "12",
    cannot_grant_level_above_own_v1 => "1",
);

/// 10.9 "For each entry being changed in, or removed from, the users property, other than the
/// sender's own entry: If the current value is greater than or equal to the sender's current
/// power level, reject." — lower users and one's own entry may be changed.
async fn cannot_change_level_of_user_at_or_above_own(version: &str) {
    let (server, u) = setup(&["alice", "dave", "erin", "frank"]).await;
    let [alice, dave, erin, frank] = &u[..] else {
        unreachable!()
    };
    let room = moderated_room(
        &server,
        alice,
        dave,
        version,
        json!({}),
        &[(erin, 50), (frank, 20)],
        &[dave],
    )
    .await;
    let before = power_levels(&server, alice, &room).await;

    let mut demote_equal = before.clone();
    demote_equal["users"][&erin.id] = 10.into();
    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            dave,
            &room,
            "m.room.power_levels",
            "",
            demote_equal
        )
        .await
    );
    let mut remove_equal = before.clone();
    remove_equal["users"]
        .as_object_mut()
        .unwrap()
        .remove(&erin.id);
    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            dave,
            &room,
            "m.room.power_levels",
            "",
            remove_equal
        )
        .await
    );
    assert_eq!(power_levels(&server, alice, &room).await, before);

    let mut demote_lower = before.clone();
    demote_lower["users"][&frank.id] = 10.into();
    demote_lower["users"][&dave.id] = 40.into();
    ok(&put_state(
        &server,
        dave,
        &room,
        "m.room.power_levels",
        "",
        demote_lower,
    )
    .await);
    let after = power_levels(&server, alice, &room).await;
    assert_eq!(after["users"][&frank.id], 10);
    assert_eq!(after["users"][&dave.id], 40);
    assert_eq!(after["users"][&erin.id], 50);
}
versions!(cannot_change_level_of_user_at_or_above_own:
    cannot_change_level_of_user_at_or_above_own_v12 => "12",
    cannot_change_level_of_user_at_or_above_own_v1 => "1",
);

/// 10.6 (levels like `ban`, `kick`: current or new value above the sender's level, reject) and
/// 10.8 (`events` entries: new value above the sender's level, reject); changes within one's
/// level are allowed.
async fn cannot_change_settings_beyond_own_level(version: &str) {
    let (server, u) = setup(&["alice", "dave"]).await;
    let [alice, dave] = &u[..] else {
        unreachable!()
    };
    let room = moderated_room(
        &server,
        alice,
        dave,
        version,
        json!({"ban": 75, "kick": 50}),
        &[],
        &[dave],
    )
    .await;
    let before = power_levels(&server, alice, &room).await;

    let mut lower_ban = before.clone();
    lower_ban["ban"] = 50.into();
    let mut raise_kick = before.clone();
    raise_kick["kick"] = 60.into();
    let mut high_event = before.clone();
    high_event["events"]["com.example.x"] = 60.into();
    for attempt in [lower_ban, raise_kick, high_event] {
        refused!(
            &server,
            alice,
            &room,
            put_state(&server, dave, &room, "m.room.power_levels", "", attempt).await
        );
    }
    assert_eq!(power_levels(&server, alice, &room).await, before);

    let mut within = before.clone();
    within["kick"] = 40.into();
    within["events"]["com.example.x"] = 50.into();
    ok(&put_state(&server, dave, &room, "m.room.power_levels", "", within).await);
    let after = power_levels(&server, alice, &room).await;
    assert_eq!(after["kick"], 40);
    assert_eq!(after["events"]["com.example.x"], 50);
}
versions!(cannot_change_settings_beyond_own_level:
    cannot_change_settings_beyond_own_level_v12 => "12",
    cannot_change_settings_beyond_own_level_v1 => "1",
);

/// Power levels content with a string level in `ban`, `users` or `events`.
fn stringy_variants(before: &Value, bob: &User) -> Vec<Value> {
    let mut ban = before.clone();
    ban["ban"] = "60".into();
    let mut users = before.clone();
    users["users"][&bob.id] = "40".into();
    let mut events = before.clone();
    events["events"]["m.room.name"] = "60".into();
    vec![ban, users, events]
}

/// v10+ 10.1–10.3: levels that are not integers ("50") are rejected (403, or 400 `M_BAD_JSON`
/// when refused as malformed), and nothing is stored; the same change as integers is accepted.
async fn string_power_levels_refused(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let room = public_room(&server, alice, version, json!({}), &[], &[bob]).await;
    let before = power_levels(&server, alice, &room).await;

    for attempt in stringy_variants(&before, bob) {
        let head_before = head(&server, alice, &room).await;
        let res = put_state(&server, alice, &room, "m.room.power_levels", "", attempt).await;
        forbidden_or_bad_json(&res);
        assert_eq!(head(&server, alice, &room).await, head_before);
        assert_eq!(power_levels(&server, alice, &room).await, before);
    }

    let mut ints = before.clone();
    ints["ban"] = 60.into();
    ints["users"][&bob.id] = 40.into();
    ok(&put_state(
        &server,
        alice,
        &room,
        "m.room.power_levels",
        "",
        ints.clone(),
    )
    .await);
    assert_eq!(power_levels(&server, alice, &room).await, ints);
}
versions!(string_power_levels_refused:
    string_power_levels_refused_v12 => "12",
    string_power_levels_refused_v11 => "11",
    string_power_levels_refused_v10 => "10",
);

/// v1–v9: levels may be strings that are integers; they are accepted and stored as sent.
async fn string_power_levels_accepted(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let room = public_room(&server, alice, version, json!({}), &[], &[bob]).await;
    let before = power_levels(&server, alice, &room).await;

    for attempt in stringy_variants(&before, bob) {
        ok(&put_state(
            &server,
            alice,
            &room,
            "m.room.power_levels",
            "",
            attempt.clone(),
        )
        .await);
        assert_eq!(power_levels(&server, alice, &room).await, attempt);
    }
}
versions!(string_power_levels_accepted:
    string_power_levels_accepted_v9 => "9",
    string_power_levels_accepted_v1 => "1",
);

/// v12 10.4 "If the users property in content contains the sender of the m.room.create event or
/// any of the additional_creators …, reject." — other users may be listed.
#[tokio::test]
async fn creators_may_not_be_listed_in_users_v12() {
    let (server, u) = setup(&["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &u[..] else {
        unreachable!()
    };
    let room = create_room(
        &server,
        alice,
        "12",
        json!({"preset": "public_chat", "creation_content": {"additional_creators": [bob.id]}}),
    )
    .await;
    let before = power_levels(&server, alice, &room).await;

    for creator in [alice, bob] {
        let mut listed = before.clone();
        listed["users"][&creator.id] = 100.into();
        refused!(
            &server,
            alice,
            &room,
            put_state(&server, alice, &room, "m.room.power_levels", "", listed).await
        );
    }
    assert_eq!(power_levels(&server, alice, &room).await, before);

    let mut other = before.clone();
    other["users"][&carol.id] = 100.into();
    ok(&put_state(&server, alice, &room, "m.room.power_levels", "", other).await);
    assert_eq!(
        power_levels(&server, alice, &room).await["users"][&carol.id],
        100
    );
}

/// Before v12 the creator is an ordinary entry of `users`: listing (and changing) it is allowed.
#[tokio::test]
async fn creator_may_be_listed_in_users_before_v12() {
    let (server, u) = setup(&["alice"]).await;
    let [alice] = &u[..] else { unreachable!() };
    let room = create_room(&server, alice, "11", json!({"preset": "public_chat"})).await;
    let mut pl = power_levels(&server, alice, &room).await;
    assert_eq!(pl["users"][&alice.id], 100);
    pl["users"][&alice.id] = 90.into();
    ok(&put_state(&server, alice, &room, "m.room.power_levels", "", pl).await);
    assert_eq!(
        power_levels(&server, alice, &room).await["users"][&alice.id],
        90
    );
}

/// v12: additional creators (`creation_content.additional_creators`) have unlimited power
/// although not in `users`: bob changes power levels and kicks a level-100 user, who can't kick
/// him; before v12 the same field grants nothing.
async fn additional_creators_have_unlimited_power(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave"]).await;
    let [alice, bob, carol, dave] = &u[..] else {
        unreachable!()
    };
    let room = create_room(
        &server,
        alice,
        version,
        json!({
            "preset": "public_chat",
            "creation_content": {"additional_creators": [bob.id]},
            "power_level_content_override": {"users": users_map(version, alice, &[(dave, 100)])},
        }),
    )
    .await;
    ok(&join(&server, bob, &room).await);
    ok(&join(&server, dave, &room).await);
    let before = power_levels(&server, alice, &room).await;
    let mut change = before.clone();
    change["users"][&carol.id] = 50.into();

    if creators_privileged(version) {
        refused!(
            &server,
            alice,
            &room,
            act(&server, dave, &room, "kick", bob).await
        );
        assert_eq!(
            membership(&server, alice, &room, bob).await.as_deref(),
            Some("join")
        );
        ok(&put_state(&server, bob, &room, "m.room.power_levels", "", change).await);
        assert_eq!(
            power_levels(&server, alice, &room).await["users"][&carol.id],
            50
        );
        ok(&act(&server, bob, &room, "kick", dave).await);
        assert_eq!(
            membership(&server, alice, &room, dave).await.as_deref(),
            Some("leave")
        );
    } else {
        refused!(
            &server,
            alice,
            &room,
            put_state(&server, bob, &room, "m.room.power_levels", "", change).await
        );
        assert_eq!(power_levels(&server, alice, &room).await, before);
        ok(&act(&server, dave, &room, "kick", bob).await);
        assert_eq!(
            membership(&server, alice, &room, bob).await.as_deref(),
            Some("leave")
        );
    }
}
versions!(additional_creators_have_unlimited_power:
    additional_creators_have_unlimited_power_v12 => "12",
    additional_creators_have_no_power_v11 => "11",
);

// ---- 10. redactions ------------------------------------------------------------------------

/// Client-server API `PUT /redact`: "Any user with a power level greater than or equal to the
/// m.room.redaction event power level may send redactions for their own events" (auth rule 8
/// for the redaction event's type) — below that level, not even one's own.
async fn sender_may_redact_own_event(version: &str) {
    let (server, u) = setup(&["alice", "bob", "dave"]).await;
    let [alice, bob, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"events": {"m.room.redaction": 10}, "redact": 50}),
        &[(dave, 10)],
        &[bob, dave],
    )
    .await;

    let daves = said(&server, dave, &room, "dave's own").await;
    ok(&redact(&server, dave, &room, &daves).await);
    assert_eq!(
        event_content(&server, alice, &room, &daves).await,
        json!({})
    );

    let bobs = said(&server, bob, &room, "bob's own").await;
    refused!(
        &server,
        alice,
        &room,
        redact(&server, bob, &room, &bobs).await
    );
    assert_eq!(
        event_content(&server, alice, &room, &bobs).await["body"],
        "bob's own"
    );
}
versions!(sender_may_redact_own_event:
    sender_may_redact_own_event_v12 => "12",
    sender_may_redact_own_event_v11 => "11",
    sender_may_redact_own_event_v1 => "1",
);

/// Redacting another user's event needs the `redact` level (client-server API; v1–v2 auth
/// rule 11, v3+ "Handling redactions").
async fn redacting_others_events_needs_redact_level(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave"]).await;
    let [alice, bob, carol, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"redact": 50}),
        &[(dave, 50)],
        &[bob, carol, dave],
    )
    .await;
    let carols = said(&server, carol, &room, "carol's").await;

    refused!(
        &server,
        alice,
        &room,
        redact(&server, bob, &room, &carols).await
    );
    assert_eq!(
        event_content(&server, alice, &room, &carols).await["body"],
        "carol's"
    );

    ok(&redact(&server, dave, &room, &carols).await);
    assert_eq!(
        event_content(&server, alice, &room, &carols).await,
        json!({})
    );
}
versions!(redacting_others_events_needs_redact_level:
    redacting_others_events_needs_redact_level_v12 => "12",
    redacting_others_events_needs_redact_level_v11 => "11",
    redacting_others_events_needs_redact_level_v1 => "1",
);

/// The same rule for redactions sent with `PUT /send/m.room.redaction` (client-server API
/// v1.18: "Homeservers MUST allow clients to send m.room.redaction events with this endpoint
/// for all room versions. In rooms with a version older than 11 they MUST move the redacts
/// property inside the content to the top level of the event."): one's own event may be
/// redacted, another's only with the `redact` level.
async fn redaction_sent_as_event_needs_redact_level_for_others(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave"]).await;
    let [alice, bob, carol, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"redact": 50}),
        &[(dave, 50)],
        &[bob, carol, dave],
    )
    .await;
    let carols = said(&server, carol, &room, "carol's").await;
    let redaction = |target: &str| json!({"redacts": target});

    refused!(
        &server,
        alice,
        &room,
        send(&server, bob, &room, "m.room.redaction", redaction(&carols)).await
    );
    assert_eq!(
        event_content(&server, alice, &room, &carols).await["body"],
        "carol's"
    );

    let bobs = said(&server, bob, &room, "bob's").await;
    let res = send(&server, bob, &room, "m.room.redaction", redaction(&bobs)).await;
    ok(&res);
    assert_eq!(event_content(&server, alice, &room, &bobs).await, json!({}));
    let sent = event(&server, alice, &room, res.1["event_id"].as_str().unwrap()).await;
    if version.parse::<u32>().unwrap() < 11 {
        assert_eq!(sent["redacts"], bobs.as_str(), "top-level redacts: {sent}");
    } else {
        assert_eq!(sent["content"]["redacts"], bobs.as_str(), "{sent}");
    }

    ok(&send(&server, dave, &room, "m.room.redaction", redaction(&carols)).await);
    assert_eq!(
        event_content(&server, alice, &room, &carols).await,
        json!({})
    );
}
versions!(redaction_sent_as_event_needs_redact_level_for_others:
    redaction_sent_as_event_needs_redact_level_for_others_v12 => "12",
    redaction_sent_as_event_needs_redact_level_for_others_v11 => "11",
    redaction_sent_as_event_needs_redact_level_for_others_v10 => "10",
    redaction_sent_as_event_needs_redact_level_for_others_v1 => "1",
);

/// Power to redact in one room is no power over another room's events: bob, creator of his
/// own room, names carol's event from a room where he is a plain member. Whatever the answer,
/// carol's event stays intact; redacting it in its own room needs the level there.
async fn redaction_cannot_reach_into_another_room(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = &u[..] else {
        unreachable!()
    };
    let room = public_room(&server, alice, version, json!({}), &[], &[bob, carol]).await;
    let carols = said(&server, carol, &room, "carol's").await;
    let bobs_room = create_room(&server, bob, version, json!({})).await;

    let via_redact = redact(&server, bob, &bobs_room, &carols).await;
    let via_send = send(
        &server,
        bob,
        &bobs_room,
        "m.room.redaction",
        json!({"redacts": carols}),
    )
    .await;
    let served = event(&server, alice, &room, &carols).await;
    assert_eq!(
        served["content"]["body"], "carol's",
        "redacted from another room (answers {} {} / {} {}): {served}",
        via_redact.0, via_redact.1, via_send.0, via_send.1
    );
    assert!(
        served["unsigned"].get("redacted_because").is_none(),
        "{served}"
    );

    refused!(
        &server,
        alice,
        &room,
        redact(&server, bob, &room, &carols).await
    );
    ok(&redact(&server, alice, &room, &carols).await);
    assert_eq!(
        event_content(&server, alice, &room, &carols).await,
        json!({})
    );
}
versions!(redaction_cannot_reach_into_another_room:
    redaction_cannot_reach_into_another_room_v12 => "12",
    redaction_cannot_reach_into_another_room_v1 => "1",
);

// ---- 11. m.room.create ---------------------------------------------------------------------

/// 1.1 "If type is m.room.create: If it has any prev_events, reject." — a room has exactly the
/// one create event createRoom made, whatever the state key and the sender's power.
async fn create_event_cannot_be_sent_again(version: &str) {
    let (server, u) = setup(&["alice"]).await;
    let [alice] = &u[..] else { unreachable!() };
    let room = create_room(&server, alice, version, json!({})).await;
    let original = state(&server, alice, &room, "m.room.create", "")
        .await
        .unwrap();
    assert_eq!(original["room_version"], version);

    let again = json!({"creator": alice.id, "room_version": version, "m.federate": false});
    for key in ["", "other"] {
        refused!(
            &server,
            alice,
            &room,
            put_state(&server, alice, &room, "m.room.create", key, again.clone()).await
        );
    }
    refused!(
        &server,
        alice,
        &room,
        send(&server, alice, &room, "m.room.create", again.clone()).await
    );
    assert_eq!(
        state(&server, alice, &room, "m.room.create", "").await,
        Some(original)
    );
    assert_eq!(
        state(&server, alice, &room, "m.room.create", "other").await,
        None
    );
}
versions!(create_event_cannot_be_sent_again:
    create_event_cannot_be_sent_again_v12 => "12",
    create_event_cannot_be_sent_again_v1 => "1",
);

/// createRoom whose implied initial state breaks the auth rules (client-server API createRoom,
/// 400: "The initial state implied by the parameters to the request is invalid: for example,
/// the user's power_level is set below that necessary to set the room name (errcode set to
/// M_INVALID_ROOM_STATE)"): refused, and no room is left behind.
async fn assert_create_room_refused(server: &Server, creator: &User, body: Value) {
    let rooms_before = joined_rooms(server, creator).await;
    let res = server
        .request(
            Method::POST,
            &format!("{API}/createRoom"),
            Some(&creator.token),
            Some(body),
        )
        .await;
    let rooms_after = joined_rooms(server, creator).await;
    assert!(
        res.0 == StatusCode::BAD_REQUEST
            && res.1["errcode"] == "M_INVALID_ROOM_STATE"
            && rooms_after == rooms_before,
        "createRoom answered {} {}; joined rooms before {rooms_before:?}, after {rooms_after:?}",
        res.0,
        res.1
    );
}

/// v12 10.4 through createRoom: `power_level_content_override` listing the creator in `users`.
#[tokio::test]
async fn create_room_listing_creator_in_users_is_refused_v12() {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let with_creator = json!({
        "room_version": "12",
        "power_level_content_override": {"users": {alice.id.clone(): 100}},
    });
    assert_create_room_refused(&server, alice, with_creator).await;

    let room = create_room(
        &server,
        alice,
        "12",
        json!({"power_level_content_override": {"users": {bob.id.clone(): 50}}}),
    )
    .await;
    assert_eq!(
        power_levels(&server, alice, &room).await["users"],
        json!({bob.id.clone(): 50})
    );
    assert!(joined_rooms(&server, alice).await.contains(&json!(room)));
}

/// Rule 8 through createRoom (the spec's own example): before v12, overriding `users` without
/// the creator leaves them at level 0, below what the preset's state events need.
#[tokio::test]
async fn create_room_leaving_creator_powerless_is_refused_v11() {
    let (server, u) = setup(&["alice"]).await;
    let [alice] = &u[..] else { unreachable!() };
    let powerless = json!({"room_version": "11", "power_level_content_override": {"users": {}}});
    assert_create_room_refused(&server, alice, powerless).await;

    let room = create_room(
        &server,
        alice,
        "11",
        json!({"power_level_content_override": {"users": {alice.id.clone(): 100}}}),
    )
    .await;
    assert!(joined_rooms(&server, alice).await.contains(&json!(room)));
}

// ---- 12. senders not joined ----------------------------------------------------------------

/// 6 "If the sender's current membership state is not join, reject." — outsiders and invited
/// users can send neither messages nor state; joined members can.
async fn non_member_cannot_send(version: &str) {
    let (server, u) = setup(&["alice", "bob", "carol", "dave"]).await;
    let [alice, bob, carol, dave] = &u[..] else {
        unreachable!()
    };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"state_default": 0}),
        &[],
        &[bob],
    )
    .await;
    ok(&act(&server, alice, &room, "invite", dave).await);

    for outsider in [carol, dave] {
        refused!(
            &server,
            alice,
            &room,
            say(&server, outsider, &room, "let me in").await
        );
        refused!(
            &server,
            alice,
            &room,
            put_state(
                &server,
                outsider,
                &room,
                "com.example.state",
                "",
                json!({"n": 1})
            )
            .await
        );
    }
    assert_eq!(
        state(&server, alice, &room, "com.example.state", "").await,
        None
    );

    let id = said(&server, bob, &room, "member").await;
    assert!(in_timeline(&server, alice, &room, &id).await);
    ok(&put_state(
        &server,
        bob,
        &room,
        "com.example.state",
        "",
        json!({"n": 2}),
    )
    .await);
    assert_eq!(
        state(&server, alice, &room, "com.example.state", "").await,
        Some(json!({"n": 2}))
    );
}
versions!(non_member_cannot_send:
    non_member_cannot_send_v12 => "12",
    non_member_cannot_send_v1 => "1",
);

/// 6 for a user who left: what they could send while joined is refused afterwards.
async fn user_who_left_cannot_send(version: &str) {
    let (server, u) = setup(&["alice", "bob"]).await;
    let [alice, bob] = &u[..] else { unreachable!() };
    let room = public_room(
        &server,
        alice,
        version,
        json!({"state_default": 0}),
        &[],
        &[bob],
    )
    .await;

    let id = said(&server, bob, &room, "before leaving").await;
    assert!(in_timeline(&server, alice, &room, &id).await);
    ok(&put_state(
        &server,
        bob,
        &room,
        "com.example.state",
        "",
        json!({"n": 1}),
    )
    .await);
    ok(&leave(&server, bob, &room).await);

    refused!(
        &server,
        alice,
        &room,
        say(&server, bob, &room, "after leaving").await
    );
    refused!(
        &server,
        alice,
        &room,
        put_state(
            &server,
            bob,
            &room,
            "com.example.state",
            "",
            json!({"n": 2})
        )
        .await
    );
    assert_eq!(
        state(&server, alice, &room, "com.example.state", "").await,
        Some(json!({"n": 1}))
    );
}
versions!(user_who_left_cannot_send:
    user_who_left_cannot_send_v12 => "12",
    user_who_left_cannot_send_v1 => "1",
);
