"""The read path's wire payloads, spliced by PostgreSQL, equal the Python splice.

`sql.READ` and `sql.RELAY_BATCH` build `{"eventId":…,"seq":…,<stored JSON>}` in
SQL; `codec.envelope` is the definition. Every edge (replay, REST log read,
relay) must show the same bytes for one event.
"""

from __future__ import annotations

import uuid

import msgspec

from roomcast.domain import room
from roomcast.ids import uuid7
from roomcast.outbox import codec, sql
from roomcast.outbox.store import EventStore, prepare

from ..helpers import create_room, rename, unique, user


async def test_read_payloads_are_the_codec_envelopes_byte_for_byte(store: EventStore, pool):
    org = user("ada")
    stream = unique("room")
    loaded = await store.load(stream)
    events = room.decide(create_room(stream, org, name='Quotes " and ünïcode ✓'), None)
    state = loaded.state
    for event in events:
        state = room.evolve(state, event)
    for name in ["second", "a \\ backslash", "emoji 🎉"]:
        decided = room.decide(rename(org, name), state)
        for event in decided:
            state = room.evolve(state, event)
        events.extend(decided)
    pending = prepare(loaded, events, actor_id=org.id, new_event_id=uuid7)
    await store.append(pending)

    read = await store.read(stream, 0, 100)
    rows = await pool.fetch(
        "SELECT event_id, seq, type, data::text AS data FROM events"
        " WHERE stream_id = $1 ORDER BY seq",
        stream,
    )
    expected = [
        codec.envelope(r["type"], r["event_id"], r["seq"], r["data"].encode()) for r in rows
    ]
    assert read == expected == pending.envelopes
    assert [bytes(e.payload) for e in read] == [bytes(e.payload) for e in pending.envelopes]
    for envelope in read:
        decoded = msgspec.json.decode(envelope.payload)
        assert uuid.UUID(decoded["eventId"])
        assert decoded["type"] == envelope.event

    async with pool.acquire() as conn:
        relayed = [r for r in await conn.fetch(sql.RELAY_BATCH, 1000) if r["stream_id"] == stream]
    assert [(r["type"], r["payload"]) for r in relayed] == [
        (e.event, bytes(e.payload)) for e in expected
    ]
