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
    [status] = statuses
    # Told once either way: by the eviction notice if it reached the socket before the
    # transport dropped, else by the refused re-subscribe after the reconnect.
    assert (status.room_id, status.state, status.code) in {
        (room_id, "failed", "PERMISSION_DENIED"),
        (room_id, "unsubscribed", "not_a_member"),
    }
    assert client.resubscribe_retries == 0
