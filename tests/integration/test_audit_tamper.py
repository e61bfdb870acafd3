"""``roomcast audit verify`` against a log changed behind roomcast's back.

A superuser can disable the append-only trigger; these tests do, in this
module's own database (so no other test sees the damage), and commit the change,
because ``verify`` reads through a connection of its own.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import msgspec
import pytest

from roomcast.cli import main
from roomcast.outbox import codec

from .test_audit import Lottery, Ran


@pytest.fixture
def rooms(pool: asyncpg.Pool) -> Lottery:
    return Lottery(pool)


@pytest.fixture
def audit(monkeypatch, capsys, own_database_url) -> Any:
    async def run(*args: str) -> Ran:
        monkeypatch.setenv("DATABASE_URL", own_database_url)
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["audit", *args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


async def tamper(pool: asyncpg.Pool, *statements: tuple[Any, ...]) -> None:
    """Run ``statements`` with the append-only trigger off, in one committed transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        for sql, *args in statements:
            await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")


async def test_the_trigger_forbids_the_change_unless_a_superuser_disables_it(pool, rooms):
    room_id = await rooms.build(draws=1)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await pool.execute("UPDATE events SET actor_id = 'x' WHERE stream_id = $1", room_id)


async def test_a_changed_event_is_named_by_its_seq(pool, rooms, audit):
    room_id = await rooms.build(draws=2)
    await tamper(
        pool,
        (
            "UPDATE events SET data = replace(data::text, '\"Carol\"', '\"Karl\"')::json"
            " WHERE stream_id = $1 AND seq = 3",
            room_id,
        ),
    )

    ran = await audit("verify", room_id)

    assert ran.code == 1
    assert ran.lines == [
        f"FAIL {room_id}: seq 3 (participant:joined): hash mismatch: the stored event is not "
        "the one that was hashed " + ran.lines[0].split("hashed ", 1)[1]
    ]
    assert ran.err == ""
    [report] = (await audit("verify", room_id, "--json")).json()
    assert (report["ok"], report["failedSeq"], report["events"]) == (False, 3, 2)


async def test_a_changed_time_is_caught_too(pool, rooms, audit):
    room_id = await rooms.build(draws=1)
    await tamper(
        pool,
        (
            "UPDATE events SET recorded_at = recorded_at - interval '1 hour'"
            " WHERE stream_id = $1 AND seq = 8",
            room_id,
        ),
    )

    ran = await audit("verify", room_id)

    assert ran.code == 1
    assert ran.out.startswith(f"FAIL {room_id}: seq 8 (winner:selected): hash mismatch")


async def test_a_removed_event_is_a_gap(pool, rooms, audit):
    room_id = await rooms.build(draws=1)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM outbox WHERE stream_id = $1 AND seq = 4", room_id)
    await tamper(pool, ("DELETE FROM events WHERE stream_id = $1 AND seq = 4", room_id))

    ran = await audit("verify", room_id)

    assert ran.code == 1
    assert ran.lines == [
        f"FAIL {room_id}: seq 5 (participant:joined): seq 5 follows seq 3: seq 4 is missing"
    ]


async def test_a_moved_stream_head_is_caught(pool, rooms, audit):
    room_id = await rooms.build(draws=1)
    await pool.execute("UPDATE streams SET last_hash = $2 WHERE stream_id = $1", room_id, bytes(32))

    ran = await audit("verify", room_id)

    assert ran.code == 1
    assert ran.lines == [f"FAIL {room_id}: streams.last_hash is not the hash of the last event"]


async def rehash_from(pool: asyncpg.Pool, room_id: str, first: int, data: dict[int, bytes]) -> None:
    """Replace ``data`` of some events and recompute every hash from seq ``first`` on, and
    the head: a rewrite the chain alone cannot see."""
    rows = await pool.fetch(
        "SELECT seq, event_id, type, data::text AS data, actor_id, recorded_at, prev_hash"
        " FROM events WHERE stream_id = $1 AND seq >= $2 ORDER BY seq",
        room_id,
        first,
    )
    prev = bytes(rows[0]["prev_hash"])
    statements: list[tuple[Any, ...]] = []
    for r in rows:
        body = data.get(r["seq"], r["data"].encode())
        digest = codec.chain_hash(
            prev,
            codec.canonical_bytes(
                stream_id=room_id,
                seq=r["seq"],
                event_id=r["event_id"],
                type_=r["type"],
                data=body,
                actor_id=r["actor_id"],
                recorded_at=r["recorded_at"],
            ),
        )
        statements.append(
            (
                "UPDATE events SET data = $3::json, prev_hash = $4, hash = $5"
                " WHERE stream_id = $1 AND seq = $2",
                room_id,
                r["seq"],
                body.decode(),
                prev,
                digest,
            )
        )
        prev = digest
    statements.append(("UPDATE streams SET last_hash = $2 WHERE stream_id = $1", room_id, prev))
    await tamper(pool, *statements)


async def rig_the_second_draw(pool: asyncpg.Pool, room_id: str) -> tuple[int, str]:
    """Give the second draw another eligible winner and recompute every hash after it:
    (its seq, the rigged participation)."""
    draws = await pool.fetch(
        "SELECT seq, data::text AS data FROM events"
        " WHERE stream_id = $1 AND type = 'winner:selected' ORDER BY seq",
        room_id,
    )
    joined = {
        p["id"]: p
        for p in (
            json.loads(r["data"])["participant"]
            for r in await pool.fetch(
                "SELECT data::text AS data FROM events"
                " WHERE stream_id = $1 AND type = 'participant:joined'",
                room_id,
            )
        )
    }
    second = json.loads(draws[1]["data"])
    earlier = json.loads(draws[0]["data"])["winner"]["participantId"]
    rigged = next(
        p for p in sorted(joined) if p not in {earlier, second["winner"]["participantId"]}
    )
    second["winner"]["participantId"] = rigged
    second["winner"]["participant"] = {"id": rigged, "user": joined[rigged]["user"]}
    await rehash_from(
        pool, room_id, draws[1]["seq"], {draws[1]["seq"]: msgspec.json.encode(second)}
    )
    return draws[1]["seq"], rigged


async def test_a_rigged_winner_with_every_hash_recomputed_is_caught_by_the_draw_check(
    pool, rooms, audit
):
    room_id = await rooms.build(players=4, draws=3)
    seq, rigged = await rig_the_second_draw(pool, room_id)

    ran = await audit("verify", room_id)

    assert ran.code == 1
    [line] = ran.lines
    assert line.startswith(
        f"FAIL {room_id}: seq {seq} (winner:selected): "
        f"rigged draw: the winner is {rigged} but the seed picks part_"
    )
    assert line.endswith("(draw 2, 3 eligible)")


async def test_verify_all_names_every_broken_room_and_fails(pool, rooms, audit):
    intact = await rooms.build(draws=1)
    broken = await rooms.build(draws=1)
    await tamper(
        pool,
        ("UPDATE events SET actor_id = 'usr_mallory' WHERE stream_id = $1 AND seq = 1", broken),
    )

    ran = await audit("verify", "--all", "--json")

    assert ran.code == 1
    reports = {r["room"]: r for r in ran.json()}
    assert reports[intact]["ok"] is True
    assert (reports[broken]["ok"], reports[broken]["failedSeq"]) == (False, 1)
    text = await audit("verify", "--all")
    assert f"FAIL {broken}: seq 1 (room:created): hash mismatch" in text.out
    assert intact not in text.out
    assert text.lines[-1].startswith("FAIL: ")


# The verifier reads a page of rows, checks their chain, then their draws: the
# first failure must still be the first in seq order, and pages must leave no row
# out, wherever a page boundary falls (pages of 2 seqs here).


async def test_a_draw_that_fails_before_a_broken_link_in_the_same_page_is_named_first(
    pool, rooms, audit
):
    room_id = await rooms.build(players=4, draws=3)
    seq, rigged = await rig_the_second_draw(pool, room_id)
    await tamper(
        pool,
        (
            "UPDATE events SET actor_id = 'usr_mallory' WHERE stream_id = $1 AND seq = $2",
            room_id,
            seq + 1,
        ),
    )

    ran = await audit("verify", room_id)

    assert ran.code == 1
    assert ran.lines[0].startswith(
        f"FAIL {room_id}: seq {seq} (winner:selected): rigged draw: the winner is {rigged}"
    )
    [report] = (await audit("verify", room_id, "--json")).json()
    assert (report["failedSeq"], report["events"]) == (seq, seq)


async def test_an_intact_room_verifies_in_pages_smaller_than_its_log(rooms, audit, monkeypatch):
    monkeypatch.setattr("roomcast.audit.source.PAGE_ROWS", 2)
    room_id = await rooms.build(players=4, draws=3)

    ran = await audit("verify", room_id)

    assert ran.lines == [
        f"OK {room_id}: 11 events, hash chain intact up to the head; 3 draws verified"
    ]


async def test_a_gap_wider_than_a_page_is_named(pool, rooms, audit, monkeypatch):
    monkeypatch.setattr("roomcast.audit.source.PAGE_ROWS", 2)
    room_id = await rooms.build(players=4, draws=1)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM outbox WHERE stream_id = $1 AND seq BETWEEN 3 AND 7", room_id
        )
    await tamper(pool, ("DELETE FROM events WHERE stream_id = $1 AND seq BETWEEN 3 AND 7", room_id))

    ran = await audit("verify", room_id)

    assert ran.lines == [
        f"FAIL {room_id}: seq 8 (winner:selected): seq 8 follows seq 2: seq 3 is missing"
    ]


@pytest.mark.parametrize("moved_to", [0, 25])
async def test_a_row_moved_before_seq_1_or_far_past_the_head_is_read(
    pool, rooms, audit, monkeypatch, moved_to
):
    monkeypatch.setattr("roomcast.audit.source.PAGE_ROWS", 2)
    room_id = await rooms.build(players=4, draws=1)
    head = await pool.fetchval("SELECT version FROM streams WHERE stream_id = $1", room_id)
    await tamper(
        pool,
        ("ALTER TABLE events DROP CONSTRAINT events_seq_check",),
        ("UPDATE events SET seq = $3 WHERE stream_id = $1 AND seq = $2", room_id, head, moved_to),
    )
    try:
        ran = await audit("verify", room_id)
    finally:
        await tamper(
            pool,
            ("DELETE FROM outbox WHERE stream_id = $1", room_id),
            ("DELETE FROM events WHERE stream_id = $1 AND seq < 1", room_id),
            ("ALTER TABLE events ADD CONSTRAINT events_seq_check CHECK (seq >= 1)",),
        )

    assert ran.code == 1
    if moved_to == 0:
        assert ran.lines == [
            f"FAIL {room_id}: seq 0 (room:status_changed): seq 0 follows seq 0: "
            "seq 1 is duplicated or out of order"
        ]
    else:
        assert ran.lines == [
            f"FAIL {room_id}: seq 25 (room:status_changed): seq 25 follows seq {head - 1}: "
            f"seq {head} is missing"
        ]
