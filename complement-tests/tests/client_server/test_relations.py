"""Event relationships: GET /_matrix/client/v1/rooms/{id}/relations/...,
edits (m.replace), reactions (m.annotation), threads (m.thread, /threads).

Spec: client-server-api "Forming relationships between events" (relations.yaml),
"Event replacements", "Event annotations and reactions", "Threading"
(threads_list.yaml) and the server-side aggregations in `unsigned.m.relations`.
"""

import pytest

from ct import CLIENT_V1, assert_error, assert_status, room_path

# Unknown parent event: spec 404 M_NOT_FOUND; Synapse 404 M_UNKNOWN. Non-member:
# spec 404, Synapse 403 M_FORBIDDEN (README, Known differences).
NOT_FOUND_CODES = ("M_NOT_FOUND", "M_UNKNOWN")


def relations(user, room, event_id, *parts, **params):
    path = CLIENT_V1 + "/" + room_path(room, "relations", event_id, *parts)
    body = assert_status(user.get(path, params=params), 200)
    assert isinstance(body.get("chunk"), list), body
    return body


def all_relations(user, room, event_id, *parts, limit=2, **params):
    """Follow next_batch to the end; returns (event IDs, pages)."""
    ids, pages, token = [], 0, None
    while True:
        extra = {"from": token} if token else {}
        body = relations(user, room, event_id, *parts, limit=limit, **params, **extra)
        assert len(body["chunk"]) <= limit, body
        ids += [e["event_id"] for e in body["chunk"]]
        pages += 1
        token = body.get("next_batch")
        if not token:
            return ids, pages
        assert pages < 50, "next_batch never ended"


def threads(user, room, **params):
    body = assert_status(user.get(CLIENT_V1 + "/" + room_path(room, "threads"), params=params), 200)
    assert isinstance(body.get("chunk"), list), body
    return body


def thread_reply(user, room, root, body):
    return user.send_event(
        room,
        "m.room.message",
        {"msgtype": "m.text", "body": body, "m.relates_to": {"rel_type": "m.thread", "event_id": root}},
    )


def react(user, room, target, key):
    return user.send_event(
        room, "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
    )


def edit(user, room, target, new_body):
    return user.send_event(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": f"* {new_body}",
            "m.new_content": {"msgtype": "m.text", "body": new_body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )


@pytest.fixture
def related(user, user2):
    """A root message with 3 thread replies, 2 reactions and an edit (in that order)."""
    room = user.create_room(preset="public_chat")
    user2.join(room)
    root = user.send_message(room, "root")
    replies = [thread_reply(user2, room, root, f"reply {i}") for i in range(3)]
    reactions = [react(user, room, root, "👍"), react(user2, room, root, "🎉")]
    edit_id = edit(user, room, root, "root (edited)")
    return {
        "room": room,
        "root": root,
        "replies": replies,
        "reactions": reactions,
        "edit": edit_id,
        "all": replies + reactions + [edit_id],
    }


# -- /relations -------------------------------------------------------------------------


def test_relations_all(user, related):
    body = relations(user, related["room"], related["root"], limit=50)
    ids = [e["event_id"] for e in body["chunk"]]
    # Default direction is b: most recent first.
    assert ids == related["all"][::-1]
    assert "next_batch" not in body
    assert "recursion_depth" not in body  # `recurse` was not given


def test_relations_by_rel_type(user, related):
    room, root = related["room"], related["root"]
    threads_ = relations(user, room, root, "m.thread", limit=50)["chunk"]
    assert [e["event_id"] for e in threads_] == related["replies"][::-1]
    annotations = relations(user, room, root, "m.annotation", limit=50)["chunk"]
    assert [e["event_id"] for e in annotations] == related["reactions"][::-1]
    replaces = relations(user, room, root, "m.replace", limit=50)["chunk"]
    assert [e["event_id"] for e in replaces] == [related["edit"]]
    assert relations(user, room, root, "org.example.ct.none", limit=50)["chunk"] == []


def test_relations_by_rel_type_and_event_type(user, related):
    room, root = related["room"], related["root"]
    reactions = relations(user, room, root, "m.annotation", "m.reaction", limit=50)["chunk"]
    assert [e["event_id"] for e in reactions] == related["reactions"][::-1]
    for ev in reactions:
        assert ev["type"] == "m.reaction" and ev["content"]["m.relates_to"]["event_id"] == root, ev
    assert relations(user, room, root, "m.annotation", "m.room.message", limit=50)["chunk"] == []
    replies = relations(user, room, root, "m.thread", "m.room.message", limit=50)["chunk"]
    assert [e["event_id"] for e in replies] == related["replies"][::-1]


def test_relations_pagination(user, related):
    ids, pages = all_relations(user, related["room"], related["root"], limit=2)
    assert ids == related["all"][::-1]
    assert pages >= 3
    first = relations(user, related["room"], related["root"], limit=2)
    assert "prev_batch" not in first  # first page


def test_relations_pagination_forwards(user, related):
    ids, _ = all_relations(user, related["room"], related["root"], "m.thread", limit=2, dir="f")
    assert ids == related["replies"]
    body = relations(user, related["room"], related["root"], dir="f", limit=50)
    assert [e["event_id"] for e in body["chunk"]] == related["all"]


def test_relations_recurse(user, related):
    room, root = related["room"], related["root"]
    # A reaction to a thread reply relates to the root only indirectly.
    nested = react(user, room, related["replies"][0], "👀")
    direct = [e["event_id"] for e in relations(user, room, root, limit=50)["chunk"]]
    assert nested not in direct
    not_recursed = relations(user, room, root, limit=50, recurse="false")
    assert nested not in [e["event_id"] for e in not_recursed["chunk"]]
    recursed = relations(user, room, root, limit=50, recurse="true")
    assert nested in [e["event_id"] for e in recursed["chunk"]]
    assert set(related["all"]) <= {e["event_id"] for e in recursed["chunk"]}
    # Mandatory when `recurse` is given (Synapse omits it for recurse=false:
    # README, Known differences).
    assert isinstance(recursed.get("recursion_depth"), int) and recursed["recursion_depth"] >= 1, recursed


def test_relations_unknown_event(user):
    room = user.create_room()
    resp = user.get(CLIENT_V1 + "/" + room_path(room, "relations", "$ctnosuchevent"))
    assert_error(resp, 404, NOT_FOUND_CODES)


def test_relations_non_member(open_server, user, related):
    outsider = open_server.register()
    resp = outsider.get(CLIENT_V1 + "/" + room_path(related["room"], "relations", related["root"]))
    assert_error(resp, (403, 404), ("M_FORBIDDEN", "M_NOT_FOUND"))


# -- edits ------------------------------------------------------------------------------


def test_edit_aggregation_on_original(user, user2, related):
    room, root = related["room"], related["root"]
    ev = user2.get_event(room, root)
    # Since v1.7 the server does not replace the original content.
    assert ev["content"] == {"msgtype": "m.text", "body": "root"}, ev
    replace = ev["unsigned"]["m.relations"]["m.replace"]
    assert replace["event_id"] == related["edit"], replace
    assert replace["content"]["m.new_content"] == {"msgtype": "m.text", "body": "root (edited)"}
    assert replace["sender"] == user.user_id


def test_latest_edit_wins(user):
    room = user.create_room()
    root = user.send_message(room, "v0")
    edits = [user.get_event(room, edit(user, room, root, f"v{i}")) for i in (1, 2)]
    # Most recent by origin_server_ts, ties broken by the larger event ID.
    latest = max(edits, key=lambda e: (e["origin_server_ts"], e["event_id"]))
    replace = user.get_event(room, root)["unsigned"]["m.relations"]["m.replace"]
    assert replace["event_id"] == latest["event_id"], replace
    assert replace["content"]["m.new_content"] == latest["content"]["m.new_content"]


def test_edit_by_other_sender_is_not_applied(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    root = user.send_message(room, "mine")
    edit(user2, room, root, "hijacked")
    ev = user.get_event(room, root)
    # A replacement from a different sender is invalid and must not be aggregated.
    assert "m.replace" not in ev.get("unsigned", {}).get("m.relations", {}), ev
    assert ev["content"]["body"] == "mine"


# -- reactions --------------------------------------------------------------------------


def test_reactions_are_returned_as_annotations(user, user2, related):
    chunk = relations(user2, related["room"], related["root"], "m.annotation", "m.reaction", limit=50)["chunk"]
    keys = sorted(e["content"]["m.relates_to"]["key"] for e in chunk)
    assert keys == sorted(["👍", "🎉"])
    assert {e["sender"] for e in chunk} == {user.user_id, user2.user_id}


# -- threads ----------------------------------------------------------------------------


def test_thread_summary_on_root(open_server, user, user2, related):
    room, root = related["room"], related["root"]
    bystander = open_server.register()
    bystander.join(room)
    for viewer, participated in ((user, True), (user2, True), (bystander, False)):
        # The root's sender and repliers have participated; others have not.
        summary = viewer.get_event(room, root)["unsigned"]["m.relations"]["m.thread"]
        assert summary["count"] == 3, summary
        assert summary["latest_event"]["event_id"] == related["replies"][-1], summary
        assert summary["latest_event"]["content"]["body"] == "reply 2"
        assert summary["current_user_participated"] is participated, (viewer.user_id, summary)


def test_threads_list(open_server, user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    third = open_server.register()
    third.join(room)
    root_a = user.send_message(room, "thread A")
    root_b = third.send_message(room, "thread B")
    user.send_message(room, "not a thread")
    thread_reply(user2, room, root_a, "in A")
    thread_reply(user, room, root_b, "in B")

    every = threads(user, room)
    # Ordered by most recent activity first.
    assert [e["event_id"] for e in every["chunk"]] == [root_b, root_a]
    assert [e["event_id"] for e in threads(user, room, include="all")["chunk"]] == [root_b, root_a]
    for ev in every["chunk"]:
        assert "m.thread" in ev["unsigned"]["m.relations"], ev
    # participated: root sender or replier.
    assert [e["event_id"] for e in threads(user, room, include="participated")["chunk"]] == [root_b, root_a]
    assert [e["event_id"] for e in threads(user2, room, include="participated")["chunk"]] == [root_a]
    assert [e["event_id"] for e in threads(third, room, include="participated")["chunk"]] == [root_b]


def test_threads_pagination(user):
    room = user.create_room()
    roots = []
    for i in range(3):
        roots.append(user.send_message(room, f"root {i}"))
        thread_reply(user, room, roots[-1], f"reply {i}")
    seen, token = [], None
    for _ in range(10):
        body = threads(user, room, limit=1, **({"from": token} if token else {}))
        assert len(body["chunk"]) <= 1
        seen += [e["event_id"] for e in body["chunk"]]
        token = body.get("next_batch")
        if not token:
            break
    assert seen == roots[::-1]


def test_threads_bad_include(user):
    room = user.create_room()
    resp = user.get(CLIENT_V1 + "/" + room_path(room, "threads"), params={"include": "ct-bogus"})
    assert_error(resp, 400, "M_INVALID_PARAM")


def test_threads_non_member(user, user2):
    room = user.create_room(preset="public_chat")
    assert_error(user2.get(CLIENT_V1 + "/" + room_path(room, "threads")), 403, "M_FORBIDDEN")


def test_an_event_read_before_it_is_edited_shows_the_edit_after(user):
    """Reading an event, then editing it: the next read carries the edit (a server that
    remembers the event had nothing attached must notice the change)."""
    room = user.create_room()
    root = user.send_message(room, "before")
    first = user.get_event(room, root)
    assert "m.replace" not in first.get("unsigned", {}).get("m.relations", {}), first
    edit_id = edit(user, room, root, "after")
    replace = user.get_event(room, root)["unsigned"]["m.relations"]["m.replace"]
    assert replace["event_id"] == edit_id, replace


def test_an_event_read_before_it_is_redacted_is_redacted_after(user):
    room = user.create_room()
    root = user.send_message(room, "soon gone")
    assert user.get_event(room, root)["content"]["body"] == "soon gone"
    path = room_path(room, "redact", root, "ct-redact-" + root.strip("$")[:16])
    assert_status(user.put(path, json={"reason": "test"}), 200)
    after = user.get_event(room, root)
    assert after["content"] == {}, after
    assert "redacted_because" in after["unsigned"], after
