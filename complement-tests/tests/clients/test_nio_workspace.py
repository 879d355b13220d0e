"""A chat "workspace" built with a real client library (matrix-nio, no e2e).

A space with two channel rooms linked by m.space.child; in one channel a
message, a thread reply, an edit of the reply, a reaction and a voice note;
then nio paginates the channel backwards with room_messages and everything must
be there, in order, with content intact. nio validates response shapes with
its own schemas, so this also checks that the rooms API is "client-shaped".
"""

import asyncio
import uuid

import pytest

nio = pytest.importorskip("nio")

from ct import CLIENT_V1, DEFAULT_PASSWORD, Server, assert_status, room_path, unique_localpart  # noqa: E402


def _ok(resp, cls):
    assert isinstance(resp, cls), f"expected {cls.__name__}, got {type(resp).__name__}: {resp}"
    return resp


async def _send(client, room_id, event_type, content):
    resp = _ok(await client.room_send(room_id, event_type, content, tx_id=uuid.uuid4().hex), nio.RoomSendResponse)
    assert resp.event_id.startswith("$"), resp
    return resp.event_id


async def _workspace(base_url: str) -> dict:
    client = nio.AsyncClient(base_url)
    try:
        username = unique_localpart("ct_nio_")
        _ok(await client.register(username, DEFAULT_PASSWORD, device_name="nio workspace"), nio.RegisterResponse)
        server_name = client.user_id.split(":", 1)[1]

        space = _ok(
            await client.room_create(name="CT workspace", space=True, preset=nio.RoomPreset.public_chat),
            nio.RoomCreateResponse,
        ).room_id
        channels = []
        for name in ("general", "random"):
            channels.append(
                _ok(
                    await client.room_create(name=name, preset=nio.RoomPreset.public_chat),
                    nio.RoomCreateResponse,
                ).room_id
            )
        for i, channel in enumerate(channels):
            _ok(
                await client.room_put_state(
                    space, "m.space.child", {"via": [server_name], "suggested": i == 0}, state_key=channel
                ),
                nio.RoomPutStateResponse,
            )
        create = _ok(await client.room_get_state_event(space, "m.room.create"), nio.RoomGetStateEventResponse)
        assert create.content.get("type") == "m.space", create.content

        general = channels[0]
        sent = []  # (event_id, type, content), in sending order
        root_content = {"msgtype": "m.text", "body": "Welcome to #general"}
        root = await _send(client, general, "m.room.message", root_content)
        sent.append((root, "m.room.message", root_content))

        reply_content = {
            "msgtype": "m.text",
            "body": "a threaded reply",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            },
        }
        reply = await _send(client, general, "m.room.message", reply_content)
        sent.append((reply, "m.room.message", reply_content))

        edit_content = {
            "msgtype": "m.text",
            "body": "* a threaded reply (edited)",
            "m.new_content": {"msgtype": "m.text", "body": "a threaded reply (edited)"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": reply},
        }
        edit = await _send(client, general, "m.room.message", edit_content)
        sent.append((edit, "m.room.message", edit_content))

        reaction_content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}}
        reaction = await _send(client, general, "m.reaction", reaction_content)
        sent.append((reaction, "m.reaction", reaction_content))

        voice_content = {
            "msgtype": "m.audio",
            "body": "Voice message",
            "url": f"mxc://{server_name}/ctNioVoice{uuid.uuid4().hex[:8]}",
            "info": {"mimetype": "audio/ogg", "duration": 2400, "size": 9000},
            "org.matrix.msc1767.audio": {"duration": 2400, "waveform": [0, 100, 400, 900, 300, 50]},
            "org.matrix.msc1767.text": "Voice message",
            "org.matrix.msc3245.voice": {},
        }
        voice = await _send(client, general, "m.room.message", voice_content)
        sent.append((voice, "m.room.message", voice_content))

        # Paginate back from the newest event with small pages.
        seen = []
        parsed = {}
        token = None
        for _ in range(50):
            page = _ok(
                await client.room_messages(general, start=token, direction=nio.MessageDirection.back, limit=3),
                nio.RoomMessagesResponse,
            )
            seen += [ev.source for ev in page.chunk]
            parsed.update({ev.source["event_id"]: ev for ev in page.chunk})
            if not page.end or not page.chunk:
                break
            token = page.end
        else:
            raise AssertionError("room_messages never reached the start of the room")

        by_id = {ev["event_id"]: ev for ev in seen}
        assert len(by_id) == len(seen), "an event was returned twice"
        ours = [ev for ev in seen if ev["event_id"] in {s[0] for s in sent}]
        assert [ev["event_id"] for ev in ours] == [s[0] for s in sent][::-1], "wrong order"
        for event_id, event_type, content in sent:
            ev = by_id[event_id]
            assert ev["type"] == event_type and ev["content"] == content, ev
            assert ev["sender"] == client.user_id
        assert seen[-1]["type"] == "m.room.create", seen[-1]

        # nio recognised the events (its own schemas accepted them).
        assert isinstance(parsed[voice], nio.RoomMessageAudio), parsed[voice]
        assert isinstance(parsed[root], nio.RoomMessageText), parsed[root]
        assert isinstance(parsed[reply], nio.RoomMessageText), parsed[reply]

        return {
            "user_id": client.user_id,
            "access_token": client.access_token,
            "device_id": client.device_id,
            "space": space,
            "channels": channels,
            "root": root,
            "reply": reply,
            "edit": edit,
            "reaction": reaction,
        }
    finally:
        await client.close()


def test_nio_workspace(open_server: Server):
    info = asyncio.run(_workspace(open_server.base_url))
    token = info["access_token"]

    # The space hierarchy lists both channels.
    body = assert_status(
        open_server.get(CLIENT_V1 + "/" + room_path(info["space"], "hierarchy"), access_token=token), 200
    )
    assert {r["room_id"] for r in body["rooms"]} == {info["space"], *info["channels"]}

    general = info["channels"][0]
    # Server-side aggregations: the thread summary on the root, the edit on the reply.
    root = assert_status(open_server.get(room_path(general, "event", info["root"]), access_token=token), 200)
    thread = root["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 1 and thread["current_user_participated"] is True, thread
    reply = assert_status(open_server.get(room_path(general, "event", info["reply"]), access_token=token), 200)
    assert reply["unsigned"]["m.relations"]["m.replace"]["event_id"] == info["edit"], reply
    reactions = assert_status(
        open_server.get(
            CLIENT_V1 + "/" + room_path(general, "relations", info["root"], "m.annotation"), access_token=token
        ),
        200,
    )
    assert [e["event_id"] for e in reactions["chunk"]] == [info["reaction"]]
