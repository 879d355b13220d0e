"""A real client's sync loop: matrix-nio's AsyncClient.sync against the server.

nio validates /sync responses against its own JSON schemas and feeds them into
its room model, so this catches responses our own helpers accept but clients
choke on. Another user acts with plain requests while nio long-polls.
"""

import asyncio
import time

import pytest

nio = pytest.importorskip("nio")

from ct import assert_status, room_path  # noqa: E402

DEADLINE = 20.0  # seconds for everything to arrive
POLL_MS = 3000


def _ok(resp, cls):
    assert isinstance(resp, cls), f"expected {cls.__name__}, got {type(resp).__name__}: {resp}"
    return resp


def _act(other, room_id):
    """The other user (plain requests): a message, typing, then a receipt on it."""
    event_id = other.send_message(room_id, "hello nio")
    assert_status(
        other.put(room_path(room_id, "typing", other.user_id), json={"typing": True, "timeout": 30000}),
        200,
    )
    assert_status(other.post(room_path(room_id, "receipt", "m.read", event_id), json={}), 200)
    return event_id


async def _nio_sync_loop(base_url, me, other, room_id):
    client = nio.AsyncClient(base_url)
    client.restore_login(me.user_id, me.device_id, me.access_token)
    try:
        first = _ok(await client.sync(timeout=0), nio.SyncResponse)
        assert room_id in first.rooms.join, list(first.rooms.join)
        assert room_id in client.rooms
        assert client.next_batch == first.next_batch

        seen_message = seen_typing = seen_receipt = None
        sender_task = None
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not (seen_message and seen_typing and seen_receipt):
            sync_task = asyncio.ensure_future(client.sync(timeout=POLL_MS))
            if sender_task is None:
                # Act while nio's first long-poll is (probably) in flight.
                sender_task = asyncio.ensure_future(asyncio.to_thread(_act, other, room_id))
            resp = _ok(await sync_task, nio.SyncResponse)
            joined = resp.rooms.join.get(room_id)
            if joined is None:
                continue
            for ev in joined.timeline.events:
                if isinstance(ev, nio.RoomMessageText) and ev.body == "hello nio":
                    assert ev.sender == other.user_id, ev
                    seen_message = ev
            for ev in joined.ephemeral:
                if isinstance(ev, nio.TypingNoticeEvent) and other.user_id in ev.users:
                    seen_typing = ev
                if isinstance(ev, nio.ReceiptEvent):
                    for r in ev.receipts:
                        if r.user_id == other.user_id and r.receipt_type == "m.read":
                            seen_receipt = r
        event_id = await sender_task

        assert seen_message is not None, "nio never saw the message"
        assert seen_message.event_id == event_id
        assert seen_typing is not None, "nio never saw the typing notice"
        assert seen_receipt is not None, "nio never saw the receipt"
        assert seen_receipt.event_id == event_id, seen_receipt
        # nio's room model took them in.
        room = client.rooms[room_id]
        assert other.user_id in room.typing_users, room.typing_users
        assert room.read_receipts[other.user_id].event_id == event_id
    finally:
        await client.close()


def test_nio_sync_loop_sees_message_typing_and_receipt(open_server, user, user2):
    room_id = user.create_room(preset="public_chat")
    user2.join(room_id)
    asyncio.run(_nio_sync_loop(open_server.base_url, user, user2, room_id))
