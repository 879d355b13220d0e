"""Published room directory: GET/POST /publicRooms, GET/PUT
/directory/list/room/{roomId}.

Spec: client-server-api "Published room directory" (list_public_rooms.yaml,
definitions/public_rooms_response.yaml).

run.sh lets every user publish rooms and serves GET /publicRooms without a
token (Synapse's defaults differ: README, Known differences).
"""

import uuid

from ct import assert_error, assert_status, q


def tag():
    """A unique word to find this test's rooms among everyone else's."""
    return "ctdir" + uuid.uuid4().hex[:10]


def search(client, term, **body):
    data = assert_status(client.post("publicRooms", json={"filter": {"generic_search_term": term}, **body}), 200)
    assert isinstance(data.get("chunk"), list), data
    return data


def visibility(client, room):
    return assert_status(client.get(f"directory/list/room/{q(room)}"), 200)["visibility"]


def set_visibility(user, room, value):
    assert assert_status(user.put(f"directory/list/room/{q(room)}", json={"visibility": value}), 200) == {}


def test_published_room_entry(user):
    word = tag()
    room = user.create_room(
        preset="public_chat", visibility="public", name=f"{word} name", topic="the topic"
    )
    chunk = search(user, word)["chunk"]
    assert [r["room_id"] for r in chunk] == [room]
    entry = chunk[0]
    assert entry["name"] == f"{word} name" and entry["topic"] == "the topic", entry
    assert entry["num_joined_members"] == 1
    assert entry["world_readable"] is False and entry["guest_can_join"] is False, entry
    assert entry.get("join_rule", "public") == "public", entry


def test_search_matches_topic_and_is_case_insensitive(user):
    word = tag()
    room = user.create_room(preset="public_chat", visibility="public", name="plain", topic=f"about {word}")
    assert [r["room_id"] for r in search(user, word.upper())["chunk"]] == [room]


def test_private_rooms_are_not_listed(user):
    word = tag()
    user.create_room(preset="public_chat", name=f"{word} unlisted")
    assert search(user, word)["chunk"] == []


def test_room_types_filter(user):
    word = tag()
    space = user.create_room(
        preset="public_chat", visibility="public", name=f"{word} space", creation_content={"type": "m.space"}
    )
    room = user.create_room(preset="public_chat", visibility="public", name=f"{word} room")
    spaces = search(user, word, filter={"generic_search_term": word, "room_types": ["m.space"]})["chunk"]
    assert [r["room_id"] for r in spaces] == [space]
    assert spaces[0]["room_type"] == "m.space"
    plain = search(user, word, filter={"generic_search_term": word, "room_types": [None]})["chunk"]
    assert [r["room_id"] for r in plain] == [room]


def test_limit_and_since_pagination(user):
    word = tag()
    rooms = {
        user.create_room(preset="public_chat", visibility="public", name=f"{word} {i}") for i in range(5)
    }
    seen = []
    first = search(user, word, limit=2)
    assert len(first["chunk"]) == 2 and "next_batch" in first, first
    assert "prev_batch" not in first, first
    page = first
    seen += [r["room_id"] for r in page["chunk"]]
    pages = [first]
    while "next_batch" in page:
        page = search(user, word, limit=2, since=page["next_batch"])
        assert 0 < len(page["chunk"]) <= 2, page
        assert "prev_batch" in page, page
        seen += [r["room_id"] for r in page["chunk"]]
        pages.append(page)
        assert len(pages) < 10
    assert len(seen) == len(set(seen)) == 5 and set(seen) == rooms
    # prev_batch of the second page leads back to the first page.
    back = search(user, word, limit=2, since=pages[1]["prev_batch"])
    assert [r["room_id"] for r in back["chunk"]] == [r["room_id"] for r in first["chunk"]]


def test_total_room_count_estimate(user):
    word = tag()
    for i in range(2):
        user.create_room(preset="public_chat", visibility="public", name=f"{word} {i}")
    body = search(user, word)
    if "total_room_count_estimate" in body:
        assert isinstance(body["total_room_count_estimate"], int), body


def test_get_public_rooms_without_auth(open_server, user):
    room = user.create_room(preset="public_chat", visibility="public", name=tag())
    seen, since = [], None
    for _ in range(200):
        params = {"limit": 50, **({"since": since} if since else {})}
        body = assert_status(open_server.get("publicRooms", params=params), 200)
        assert isinstance(body["chunk"], list) and len(body["chunk"]) <= 50, body
        seen += [r["room_id"] for r in body["chunk"]]
        since = body.get("next_batch")
        if not since or room in seen:
            break
    assert room in seen


def test_get_public_rooms_limit(user):
    for i in range(2):
        user.create_room(preset="public_chat", visibility="public", name=tag())
    body = assert_status(user.get("publicRooms", params={"limit": 1}), 200)
    assert len(body["chunk"]) == 1 and "next_batch" in body, body


def test_post_public_rooms_requires_auth(open_server):
    assert_error(open_server.post("publicRooms", json={}), 401, "M_MISSING_TOKEN")


# -- /directory/list/room/{roomId} -------------------------------------------------------


def test_set_visibility(user):
    word = tag()
    room = user.create_room(preset="public_chat", name=word)
    assert visibility(user, room) == "private"
    set_visibility(user, room, "public")
    assert visibility(user, room) == "public"
    assert [r["room_id"] for r in search(user, word)["chunk"]] == [room]
    set_visibility(user, room, "private")
    assert visibility(user, room) == "private"
    assert search(user, word)["chunk"] == []


def test_visibility_readable_without_auth(open_server, user):
    room = user.create_room(preset="public_chat", visibility="public")
    assert visibility(open_server, room) == "public"


def test_visibility_defaults_to_public(user):
    room = user.create_room(preset="public_chat")
    # "visibility: ... Defaults to public."
    assert assert_status(user.put(f"directory/list/room/{q(room)}", json={}), 200) == {}
    assert visibility(user, room) == "public"


def test_visibility_unknown_room(user):
    assert_error(user.get(f"directory/list/room/{q('!ctnosuchroom:' + user.server_name)}"), 404, "M_NOT_FOUND")


def test_visibility_invalid_value(user):
    room = user.create_room(preset="public_chat")
    resp = user.put(f"directory/list/room/{q(room)}", json={"visibility": "ct-bogus"})
    assert_error(resp, 400, ("M_BAD_JSON", "M_INVALID_PARAM"))
    assert visibility(user, room) == "private"


def test_set_visibility_by_non_moderator(user, user2):
    room = user.create_room(preset="public_chat")
    user2.join(room)
    # Access control is up to the server ("MAY"); a refusal is 403 M_FORBIDDEN.
    resp = user2.put(f"directory/list/room/{q(room)}", json={"visibility": "public"})
    if resp.status_code == 200:
        assert visibility(user, room) == "public"
    else:
        assert_error(resp, 403, "M_FORBIDDEN")
        assert visibility(user, room) == "private"
