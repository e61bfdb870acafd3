"""``roomcast audit`` against a real PostgreSQL: the chain from stored rows, log, rooms, verify.

The commands run in-process (``roomcast.cli.main`` in a thread, so it can run its
own event loop) against this module's own database. Tampering lives in
test_audit_tamper.py, ``follow`` in tests/e2e/test_audit_cli.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from roomcast.cli import main
from roomcast.domain import commands, draw
from roomcast.domain.state import RoomStatus
from roomcast.outbox import codec
from roomcast.outbox.store import EventStore
from roomcast.service.draws import RoomSeeds
from roomcast.service.rooms import RoomService

from ..helpers import create_room, now, unique, user

alice = user("alice")
PLAYERS = [user(name) for name in ("bob", "carol", "dave", "erin", "frank")]


@pytest.fixture
def rooms(pool: asyncpg.Pool) -> Lottery:
    return Lottery(pool)


class Lottery:
    """Rooms built through the real service, with seeds handled as the HTTP handlers do."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.service = RoomService(EventStore(pool))
        self.seeds = RoomSeeds(pool)

    async def run(self, room_id: str, command: commands.Command) -> None:
        await self.service.execute(room_id, command)

    async def status(self, room_id: str, status: RoomStatus, at: datetime | None = None) -> None:
        seed = await (self.seeds.ensure if status is RoomStatus.ACTIVE else self.seeds.get)(room_id)
        await self.run(
            room_id,
            commands.ChangeRoomStatus(actor=alice, at=at or now(), status=status, seed=seed),
        )

    async def draw(self, room_id: str, prize_id: str = "prz_1") -> None:
        command = commands.DrawWinner(
            actor=alice,
            at=now(),
            prize_id=prize_id,
            winner_id=unique("win"),
            seed=await self.seeds.get(room_id),
        )
        await self.run(room_id, command)

    async def build(self, *, players: int = 4, draws: int = 3, close: bool = True) -> str:
        """create, ``players`` joins, a prize, active, ``draws`` draws, closed: a known log."""
        room_id = unique("room")
        await self.run(room_id, create_room(room_id, alice))
        for who in PLAYERS[:players]:
            await self.run(
                room_id,
                commands.JoinRoom(actor=who, at=now(), participant_id=f"part_{who.name.lower()}"),
            )
        await self.run(
            room_id,
            commands.CreatePrize(actor=alice, at=now(), prize_id="prz_1", name="TV", quantity=9),
        )
        await self.status(room_id, RoomStatus.ACTIVE)
        for _ in range(draws):
            await self.draw(room_id)
        if close:
            await self.status(room_id, RoomStatus.CLOSED)
        return room_id


class Ran:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def json(self) -> list[Any]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def audit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own_database_url: str
) -> Any:
    async def run(*args: str, database_url: str = own_database_url) -> Ran:
        monkeypatch.setenv("DATABASE_URL", database_url)
        capsys.readouterr()
        try:
            code = await asyncio.to_thread(main, ["audit", *args])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


# ------------------------------------------------------------ the chain from stored rows


async def test_rows_read_back_from_postgresql_rehash_to_their_stored_hashes(pool, rooms):
    """recordedAt must render identically at append time and from the timestamptz read back."""
    room_id = unique("room")
    plus_two = timezone(timedelta(hours=2))
    times = [
        datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC),  # no microseconds: no fraction at all
        datetime(2025, 1, 1, 12, 0, 0, 5, tzinfo=UTC),  # 000005
        datetime(2025, 1, 1, 12, 0, 0, 120000, tzinfo=UTC),  # trailing zeros kept
        datetime(2025, 1, 1, 14, 0, 1, 999999, tzinfo=plus_two),  # another offset: hashed as UTC
    ]
    await rooms.run(
        room_id, commands.CreateRoom(actor=alice, at=times[0], room_id=room_id, name="é")
    )
    for n, at in enumerate(times[1:]):
        await rooms.run(room_id, commands.UpdateRoom(actor=alice, at=at, name=f'n°{n} "q"\n'))

    records = await pool.fetch(
        "SELECT seq, event_id, type, data::text AS data, actor_id, recorded_at, prev_hash, hash"
        " FROM events WHERE stream_id = $1 ORDER BY seq",
        room_id,
    )
    prev = codec.ZERO_HASH
    rendered = []
    for r in records:
        canonical = codec.canonical_bytes(
            stream_id=room_id,
            seq=r["seq"],
            event_id=r["event_id"],
            type_=r["type"],
            data=r["data"].encode(),
            actor_id=r["actor_id"],
            recorded_at=r["recorded_at"],
        )
        assert bytes(r["prev_hash"]) == prev
        assert codec.chain_hash(prev, canonical) == bytes(r["hash"]), r["seq"]
        prev = bytes(r["hash"])
        rendered.append(json.loads(canonical)["recordedAt"])
    assert rendered == [
        "2025-01-01T12:00:00Z",
        "2025-01-01T12:00:00.000005Z",
        "2025-01-01T12:00:00.120000Z",
        "2025-01-01T12:00:01.999999Z",
    ]
    assert (
        bytes(await pool.fetchval("SELECT last_hash FROM streams WHERE stream_id = $1", room_id))
        == prev
    )


# ------------------------------------------------------------ seeds


async def test_a_room_gets_one_seed_however_many_activations_race_for_it(pool, rooms):
    room_id = unique("room")
    assert await rooms.seeds.ensure(room_id) is None, "no seed for a room that does not exist"
    await rooms.run(room_id, create_room(room_id, alice))
    assert await rooms.seeds.get(room_id) is None

    seeds = await asyncio.gather(*(RoomSeeds(pool).ensure(room_id) for _ in range(10)))

    assert len(set(seeds)) == 1
    assert len(seeds[0] or b"") == draw.SEED_BYTES
    assert await rooms.seeds.get(room_id) == seeds[0]


async def test_the_log_commits_to_the_stored_seed_and_reveals_it_on_closing(pool, rooms):
    room_id = await rooms.build(draws=1)
    seed = await rooms.seeds.get(room_id)
    assert seed is not None
    changes = [
        json.loads(r["data"])
        for r in await pool.fetch(
            "SELECT data::text AS data FROM events"
            " WHERE stream_id = $1 AND type = 'room:status_changed' ORDER BY seq",
            room_id,
        )
    ]
    assert changes[0]["seedCommitment"] == draw.commitment(seed)
    assert "seedReveal" not in changes[0]
    assert changes[1]["seedReveal"] == seed.hex()


# ------------------------------------------------------------ verify


async def test_verify_passes_a_closed_room_and_recomputes_its_draws(audit, rooms):
    room_id = await rooms.build(draws=3)

    ran = await audit("verify", room_id)

    assert ran.code == 0, ran.err
    assert ran.lines == [
        f"OK {room_id}: 11 events, hash chain intact up to the head; 3 draws verified"
    ]
    assert ran.err == ""


async def test_verify_says_an_open_rooms_draws_wait_for_the_seed(audit, rooms):
    room_id = await rooms.build(draws=2, close=False)

    ran = await audit("verify", room_id, "--json")

    assert ran.code == 0, ran.err
    [report] = ran.json()
    assert report == {
        "room": room_id,
        "ok": True,
        "events": 9,
        "headSeq": 9,
        "draws": 2,
        "drawsVerified": 0,
        "drawsPending": 2,
        "questions": 0,
        "questionsVerified": 0,
        "failedSeq": None,
        "reason": None,
    }
    text = await audit("verify", room_id)
    assert text.out.endswith("; 2 draws not yet verifiable: seed not revealed\n")


async def test_verify_all_sums_up_every_room_and_shows_progress_on_request(audit, rooms):
    await rooms.build(draws=1)

    ran = await audit("verify", "--all", "--progress")

    assert ran.code == 0, ran.out
    [summary] = ran.lines  # passing rooms get no line of their own
    assert summary.startswith("OK: ")
    assert " rooms, " in summary
    assert "draws verified" in summary
    assert ran.err.splitlines()[-1].startswith("verified ")


async def test_verify_follows_joins_draws_removed_winners_and_rejoins(audit, rooms, pool):
    room_id = await rooms.build(players=5, draws=0, close=False)
    await rooms.run(
        room_id,
        commands.CreatePrize(actor=alice, at=now(), prize_id="prz_big", name="Pen", quantity=99),
    )
    store = EventStore(pool)
    for n in range(40):
        if n % 4 == 0:
            newcomer = user(f"x{n:02}")
            await rooms.run(
                room_id, commands.JoinRoom(actor=newcomer, at=now(), participant_id=f"part_{n:02}")
            )
        await rooms.draw(room_id, "prz_big")
        if n % 3:
            loaded = await store.load(room_id)
            assert loaded.state is not None
            oldest = next(iter(loaded.state.winners))
            await rooms.run(room_id, commands.RemoveWinner(actor=alice, at=now(), winner_id=oldest))
    await rooms.status(room_id, RoomStatus.CLOSED)

    ran = await audit("verify", room_id, "--json")

    [report] = ran.json()
    assert (ran.code, report["ok"], report["drawsVerified"]) == (0, True, 40), report


# ------------------------------------------------------------ log


async def test_log_prints_json_lines_with_stable_fields_in_seq_order(audit, rooms, pool):
    room_id = await rooms.build(players=2, draws=1)

    ran = await audit("log", room_id, "--json")

    assert ran.code == 0, ran.err
    lines = ran.json()
    assert [line["seq"] for line in lines] == list(range(1, 8))
    assert list(lines[0]) == ["seq", "eventId", "type", "actorId", "recordedAt", "hash", "data"]
    stored = await pool.fetch(
        "SELECT event_id, hash, data::text AS data FROM events WHERE stream_id = $1 ORDER BY seq",
        room_id,
    )
    for line, row in zip(lines, stored, strict=True):
        assert line["eventId"] == str(row["event_id"])
        assert line["hash"] == bytes(row["hash"]).hex()
        assert line["data"] == json.loads(row["data"])
        assert line["recordedAt"].endswith("Z")
    assert [line["type"] for line in lines][-2:] == ["winner:selected", "room:status_changed"]
    assert lines[1]["actorId"] == "usr_bob"


async def test_log_filters_combine(audit, rooms, pool):
    room_id = await rooms.build(players=3, draws=2)
    at = {
        r["seq"]: r["recorded_at"]
        for r in await pool.fetch(
            "SELECT seq, recorded_at FROM events WHERE stream_id = $1", room_id
        )
    }

    async def seqs(*args: str) -> list[int]:
        ran = await audit("log", room_id, "--json", *args)
        assert ran.code == 0, ran.err
        return [line["seq"] for line in ran.json()]

    assert await seqs("--type", "participant:joined") == [2, 3, 4]
    assert await seqs("--type", "winner:selected", "--type", "room:created") == [1, 7, 8]
    assert await seqs("--actor", "usr_carol") == [3]
    assert await seqs("--after-seq", "2", "--until-seq", "4") == [3, 4]
    assert await seqs("--limit", "2", "--after-seq", "5") == [6, 7]
    assert await seqs("--since", at[8].isoformat(), "--until", at[9].isoformat()) == [8, 9]
    assert await seqs("--since", "2999-01-01") == []
    assert await seqs("--actor", "usr_alice", "--type", "winner:selected") == [7, 8]


async def test_log_as_a_table(audit, rooms):
    room_id = await rooms.build(players=2, draws=1)

    ran = await audit("log", room_id, "--table", "--type", "winner:selected")

    assert ran.code == 0, ran.err
    header, row = ran.lines
    assert header.split() == ["SEQ", "RECORDED", "AT", "(UTC)", "TYPE", "ACTOR", "HASH", "WHAT"]
    assert row.split()[0] == "6"
    assert "winner:selected" in row
    assert "draw #1: part_" in row
    assert "1 of 2 eligible" in row


# ------------------------------------------------------------ rooms


async def test_rooms_lists_status_counts_and_head(audit, rooms):
    closed = await rooms.build(players=1, draws=1)
    draft = unique("room")
    await rooms.run(draft, create_room(draft, alice, name="Draft room"))

    ran = await audit("rooms", "--json")

    assert ran.code == 0, ran.err
    listed = {line["roomId"]: line for line in ran.json()}
    assert listed[closed] | {"lastActivity": None} == {
        "roomId": closed,
        "name": "Lottery",
        "status": "closed",
        "events": 6,
        "headSeq": 6,
        "lastActivity": None,
    }
    assert listed[draft]["status"] == "draft"
    assert listed[draft]["name"] == "Draft room"
    assert next(iter(listed)) == draft, "most recent activity first"

    table = await audit("rooms", "--table", "--limit", "1")
    assert table.lines[0].split() == [
        "ROOM", "STATUS", "EVENTS", "HEAD", "LAST", "ACTIVITY", "(UTC)", "NAME",
    ]  # fmt: skip
    assert table.lines[1].split()[:4] == [draft, "draft", "1", "1"]


# ------------------------------------------------------------ errors in one line


async def test_an_unknown_room_is_one_line_and_exit_status_1(audit):
    for args in (["verify", "room_nope"], ["log", "room_nope"], ["follow", "room_nope"]):
        ran = await audit(*args)
        assert (ran.code, ran.out) == (1, "")
        assert ran.err == "roomcast audit: no such room: room_nope\n"


async def test_an_unreachable_database_is_one_line_and_exit_status_1(audit):
    ran = await audit("rooms", database_url="postgresql://roomcast@127.0.0.1:1/roomcast")

    assert ran.code == 1
    assert ran.err.startswith("roomcast audit: cannot reach the database: ")
    assert ran.err.count("\n") == 1


async def test_a_database_without_the_schema_is_one_line(audit, own_database_url):
    name = unique("empty")
    admin = await asyncpg.connect(own_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        other = urlunsplit(urlsplit(own_database_url)._replace(path=f"/{name}"))
        ran = await audit("verify", "--all", database_url=other)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    assert ran.code == 1
    assert ran.err == (
        "roomcast audit: the database has no roomcast schema "
        "(wrong DATABASE_URL, or run `roomcast migrate`)\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["log"],
        ["log", "r", "--limit", "0"],
        ["log", "r", "--since", "yesterday"],
        ["log", "r", "--json", "--table"],
        ["verify"],
        ["verify", "r", "--all"],
        ["follow", "r", "--poll", "0"],
    ],
    ids=repr,
)
async def test_bad_arguments_are_one_line_and_exit_status_2(audit, args):
    ran = await audit(*args)

    assert ran.code == 2
    assert ran.out == ""
    assert ran.err.count("\n") == 1
    assert ran.err.startswith("roomcast audit")
    assert ": error: " in ran.err


def test_the_audit_command_is_listed_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "audit" in capsys.readouterr().out
