"""The Python client heals: gaps refilled across hidden runs, re-subscribes reported.

(The retries through a database outage are in tests/faults/test_postgres_outage.py.)

Refill: join (2), leave (3), two renames while away (4, 5: hidden), rejoin (6), rename (7).
A client that has delivered up to 2 and then receives 7 live refills 3..6 with
``room:replay``: the server returns ``[left@3, joined@6]`` (4 and 5 are hidden),
and 6 must be delivered, not taken for a seq the client already passed.
"""

from __future__ import annotations

import asyncio

from roomcast.client import SubscriptionStatus, _Feed

from .support import create_room, rename_many, user_id


async def test_a_refill_across_a_hidden_run_delivers_the_event_after_it(server, http, connected):
    org, ann = user_id(), user_id()
    room_id = await create_room(http, server, org)
    participants = f"/api/rooms/{room_id}/participants"
    assert (await http.post(participants, headers=server.auth(ann))).status_code == 201
    assert (await http.delete(f"{participants}/me", headers=server.auth(ann))).status_code == 200
    await rename_many(http, server, org, room_id, 2, concurrency=1)
    assert (await http.post(participants, headers=server.auth(ann))).status_code == 201
    await rename_many(http, server, org, room_id, 1, concurrency=1)

    client, recorder = await connected(ann)
    [seven] = (await client.replay(room_id, after_seq=6))["events"]
    # As if the client had delivered 1..2 on this subscription and 7 arrived live.
    client._feeds[room_id] = _Feed(room_id=room_id, last_seq=2, subscribed=True)
    await client._on_event(seven["event"], seven["payload"])
    await recorder.wait_for_seq(7)
    assert recorder.seqs == [3, 6, 7]
    assert client.gaps_refilled == 1


async def test_a_re_subscribe_refused_for_good_is_reported_not_retried(server, http, connected):
    """Removed from the room while disconnected: the re-subscribe after the reconnect
    is refused with PERMISSION_DENIED, and the application is told (``failed``), or the
    eviction notice came first (``unsubscribed``); never retried."""
    org, ann = user_id(), user_id()
    room_id = await create_room(http, server, org)
    part = await http.post(f"/api/rooms/{room_id}/participants", headers=server.auth(ann))
    client, _ = await connected(ann)
    await client.subscribe(room_id, last_seq=0)
    statuses: list[SubscriptionStatus] = []
    told = asyncio.Event()

    def on_status(status: SubscriptionStatus) -> None:
        statuses.append(status)
        told.set()

    client.on_status(on_status)
    removed = await http.delete(
        f"/api/rooms/{room_id}/participants/{part.json()['data']['participant']['id']}",
        headers=server.auth(org),
    )
    assert removed.status_code == 200
    await client.sio.eio.ws.close()  # the transport drops; python-socketio reconnects
    async with asyncio.timeout(30):
        await told.wait()
        # A re-subscribe under way (its refusal comes after the notice) is let finish.
        await asyncio.gather(*list(client._tasks), return_exceptions=True)
    [status] = statuses
    # Told once either way, by the notice: the eviction's if it reached the socket
    # before the transport dropped, else the one the refused re-subscribe sends.
    assert (status.room_id, status.state, status.code) == (room_id, "unsubscribed", "not_a_member")
    assert client.resubscribe_retries == 0
    assert room_id not in client._feeds


async def test_a_refused_refill_tells_the_socket_it_is_out_of_the_room(server, http, raw_sockets):
    """A socket that follows a room (subscribed, or re-subscribing with ``lastSeq``)
    and is refused because its user is out of the room hears ``room:unsubscribed``
    with the reason before the refusal, and is in the room no more."""
    org, ann = user_id(), user_id()
    room_id = await create_room(http, server, org)
    part = await http.post(f"/api/rooms/{room_id}/participants", headers=server.auth(ann))
    participant = part.json()["data"]["participant"]["id"]
    removed = await http.delete(
        f"/api/rooms/{room_id}/participants/{participant}", headers=server.auth(org)
    )
    assert removed.status_code == 200
    sock, wire = await raw_sockets(server, ann)
    ack = await sock.call("room:subscribe", {"roomId": room_id, "lastSeq": 2}, timeout=10)
    assert ack["error"]["code"] == "PERMISSION_DENIED"
    assert wire.messages == [("room:unsubscribed", {"roomId": room_id, "reason": "not_a_member"})]

    # A first subscribe (nothing followed) is answered by its ack alone.
    ack = await sock.call("room:subscribe", {"roomId": room_id}, timeout=10)
    assert ack["error"]["code"] == "PERMISSION_DENIED"
    assert len(wire.messages) == 1

    gone = await create_room(http, server, org)
    await sock.call("room:subscribe", {"roomId": gone}, timeout=10)
    assert (await http.delete(f"/api/rooms/{gone}", headers=server.auth(org))).status_code == 200
    ack = await sock.call("room:subscribe", {"roomId": gone, "lastSeq": 1}, timeout=10)
    assert ack["error"]["code"] == "ROOM_NOT_FOUND"
    assert ("room:unsubscribed", {"roomId": gone, "reason": "room_deleted"}) in wire.messages
