"""A second verifier, written from docs/audit.md alone, must agree with ``roomcast audit verify``.

The verifier below uses hashlib, json and asyncpg only: no roomcast code, so a
mistake or an unstated assumption in the document shows up as a disagreement.
The log is made through the REST API of the running server; the tampered
variants are copies of it in this module's own database.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from ..conftest import RunningServer

# ====================================================================== the verifier
# Everything between these lines follows docs/audit.md, section by section.

ZERO = bytes(32)


def json_string(value: str | None) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def recorded_at(value: datetime) -> str:
    at = value.astimezone(UTC)
    fraction = f".{at.microsecond:06d}" if at.microsecond else ""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def canonical(stream_id: str, row: dict[str, Any]) -> bytes:
    return (
        '{"actorId":'
        + json_string(row["actor_id"])
        + ',"data":'
        + row["data"]
        + ',"eventId":'
        + json_string(str(row["event_id"]))
        + ',"recordedAt":'
        + json_string(recorded_at(row["recorded_at"]))
        + ',"seq":'
        + str(row["seq"])
        + ',"streamId":'
        + json_string(stream_id)
        + ',"type":'
        + json_string(row["type"])
        + "}"
    ).encode("utf-8")


def entropy(seed: bytes, n: int) -> int:
    return int.from_bytes(hashlib.sha256(seed + n.to_bytes(8, "big")).digest(), "big")


@dataclass
class Verdict:
    ok: bool = True
    failed_seq: int | None = None
    reason: str = ""
    events: int = 0
    draws_verified: int = 0
    draws_pending: int = 0
    winners: list[str] = field(default_factory=list)
    """Every draw's recomputed winner, in order."""
    eligible: list[list[str]] = field(default_factory=list)
    """Every draw's eligible list, in order."""

    def fail(self, seq: int | None, reason: str) -> Verdict:
        self.ok, self.failed_seq, self.reason = False, seq, reason
        return self


def verify(stream_id: str, rows: list[dict[str, Any]], version: int, last_hash: bytes) -> Verdict:
    verdict = Verdict()
    # 1. The hash chain, seqs 1..N, and the head.
    prev = ZERO
    for expected_seq, row in enumerate(rows, start=1):
        if row["seq"] != expected_seq:
            return verdict.fail(row["seq"], "gap")
        if bytes(row["prev_hash"]) != prev:
            return verdict.fail(row["seq"], "prev_hash")
        digest = hashlib.sha256(prev + canonical(stream_id, row)).digest()
        if digest != bytes(row["hash"]):
            return verdict.fail(row["seq"], "hash")
        prev = digest
        verdict.events += 1
    if version != len(rows) or bytes(last_hash) != prev:
        return verdict.fail(None, "head")

    # 2. Draws. The reveal comes last, so look for it first.
    datas = [json.loads(row["data"]) for row in rows]
    seed = next((bytes.fromhex(d["seedReveal"]) for d in datas if "seedReveal" in d), None)
    commitment = None
    participations: dict[str, tuple[str, str]] = {}  # id -> (user id, role)
    wins: dict[str, str] = {}  # winner id -> user id
    draws = 0
    for row, data in zip(rows, datas, strict=True):
        kind = row["type"]
        if kind == "room:status_changed" and data["newStatus"] == "active":
            commitment = data.get("seedCommitment")
            if commitment is None:
                return verdict.fail(row["seq"], "activated without a commitment")
        revealed = "seedReveal" in data
        if revealed and hashlib.sha256(seed or b"").hexdigest() != commitment:
            return verdict.fail(row["seq"], "reveal does not match the commitment")
        if kind == "participant:joined":
            p = data["participant"]
            participations[p["id"]] = (p["userId"], p["role"])
        elif kind == "participant:left":
            participations.pop(data["participantId"], None)
        elif kind == "participant:updated":
            p = data["participant"]
            participations[data["participantId"]] = (p["userId"], p["role"])
        elif kind == "winner:removed":
            wins.pop(data["winnerId"], None)
        elif kind == "winner:selected":
            draws += 1
            if commitment is None or data["drawNumber"] != draws:
                return verdict.fail(row["seq"], "draw number or commitment")
            holders = set(wins.values())
            eligible = sorted(
                pid
                for pid, (user_id, role) in participations.items()
                if role == "participant" and user_id not in holders
            )
            verdict.eligible.append(eligible)
            if data["eligibleCount"] != len(eligible):
                return verdict.fail(row["seq"], "eligibleCount")
            chosen = data["winner"]["participantId"]
            if seed is None:
                if chosen not in eligible:
                    return verdict.fail(row["seq"], "winner not eligible")
                verdict.draws_pending += 1
            else:
                winner = eligible[entropy(seed, draws) % len(eligible)]
                verdict.winners.append(winner)
                if chosen != winner:
                    return verdict.fail(row["seq"], "rigged")
                verdict.draws_verified += 1
            wins[data["winner"]["id"]] = data["winner"]["participant"]["user"]["id"]
    return verdict


async def read_room(conn: asyncpg.Connection, room_id: str) -> Verdict:
    rows = [
        dict(r)
        for r in await conn.fetch(
            "SELECT seq, event_id, type, data::text AS data, actor_id, recorded_at, prev_hash,"
            " hash FROM events WHERE stream_id = $1 ORDER BY seq",
            room_id,
        )
    ]
    head = await conn.fetchrow(
        "SELECT version, last_hash FROM streams WHERE stream_id = $1", room_id
    )
    return verify(room_id, rows, head["version"], head["last_hash"])


# ====================================================================== the tests


def user_id() -> str:
    return f"usr_{uuid.uuid4().hex[:10]}"


async def roomcast_verify(database_url: str, room_id: str) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "roomcast",
        "audit",
        "verify",
        room_id,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": database_url},
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    report: dict[str, Any] = json.loads(out)
    assert child.returncode == (0 if report["ok"] else 1), err
    return report


def agree(mine: Verdict, theirs: dict[str, Any]) -> None:
    assert (mine.ok, mine.failed_seq) == (theirs["ok"], theirs["failedSeq"]), (mine, theirs)
    if mine.ok:
        assert (mine.events, mine.draws_verified, mine.draws_pending) == (
            theirs["events"],
            theirs["drawsVerified"],
            theirs["drawsPending"],
        )


@pytest.fixture(scope="module")
async def lottery(server: RunningServer) -> dict[str, Any]:
    """A room played over REST: joins, a moderator, a leaver, two prizes, five draws (one
    winner removed and drawn again), closed. Returns its id and the winners' ids."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def call(method: str, path: str, who: str, **kw: Any) -> Any:
            response = await http.request(method, path, headers=server.auth(who), **kw)
            assert response.status_code < 300, response.text
            return response.json()["data"]

        org = user_id()
        room_id = (await call("POST", "/api/rooms", org, json={"name": "Verifiable"}))["room"]["id"]
        people = [user_id() for _ in range(7)]
        parts = [
            (await call("POST", f"/api/rooms/{room_id}/participants", who))["participant"]["id"]
            for who in people
        ]
        promote = {"role": "moderator"}
        await call("PATCH", f"/api/rooms/{room_id}/participants/{parts[0]}", org, json=promote)
        await call("DELETE", f"/api/rooms/{room_id}/participants/me", people[1])
        prizes = [
            (
                await call(
                    "POST", f"/api/rooms/{room_id}/prizes", org, json={"name": n, "quantity": q}
                )
            )["prize"]["id"]
            for n, q in (("Car", 1), ("Pen", 4))
        ]
        await call("POST", f"/api/rooms/{room_id}/status", org, json={"status": "active"})
        winners = []
        for prize_id in (prizes[0], prizes[1], prizes[1]):
            drawn = await call(
                "POST", f"/api/rooms/{room_id}/draws", org, json={"prizeId": prize_id}
            )
            winners.append(drawn["winner"])
        await call("DELETE", f"/api/rooms/{room_id}/winners/{winners[1]['id']}", org)
        await call("POST", f"/api/rooms/{room_id}/participants", user_id())  # a late joiner
        for _ in range(2):
            drawn = await call(
                "POST", f"/api/rooms/{room_id}/draws", org, json={"prizeId": prizes[1]}
            )
            winners.append(drawn["winner"])
        await call("POST", f"/api/rooms/{room_id}/status", org, json={"status": "closed"})
    return {"room_id": room_id, "winners": [w["participantId"] for w in winners]}


async def test_the_independent_verifier_agrees_with_roomcast_on_a_real_lottery(
    lottery, database_url
):
    room_id = lottery["room_id"]
    conn = await asyncpg.connect(database_url)
    try:
        mine = await read_room(conn, room_id)
    finally:
        await conn.close()

    assert mine.ok, mine
    assert mine.draws_verified == 5
    assert mine.winners == lottery["winners"], "the recomputed winners are the ones drawn"
    agree(mine, await roomcast_verify(database_url, room_id))


@pytest.fixture
async def copy(lottery, database_url, own_database_url) -> AsyncIterator[str]:
    """The lottery's head and events copied into this module's own database (same room id,
    as the id is hashed; inserts pass the trigger), removed again afterwards."""
    room_id = lottery["room_id"]
    source = await asyncpg.connect(database_url)
    target = await asyncpg.connect(own_database_url)
    try:
        head = await source.fetchrow("SELECT * FROM streams WHERE stream_id = $1", room_id)
        rows = await source.fetch(
            "SELECT stream_id, seq, event_id, type, data::text AS data, actor_id, recorded_at,"
            " prev_hash, hash FROM events WHERE stream_id = $1 ORDER BY seq",
            room_id,
        )
        async with target.transaction():
            await target.execute(
                "INSERT INTO streams (stream_id, version, last_hash) VALUES ($1, $2, $3)",
                room_id,
                head["version"],
                head["last_hash"],
            )
            await target.executemany(
                "INSERT INTO events (stream_id, seq, event_id, type, data, actor_id, recorded_at,"
                " prev_hash, hash) VALUES ($1, $2, $3, $4, $5::json, $6, $7, $8, $9)",
                [tuple(r) for r in rows],
            )
        yield own_database_url
    finally:
        async with target.transaction():
            await target.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            await target.execute("DELETE FROM events WHERE stream_id = $1", room_id)
            await target.execute("DELETE FROM streams WHERE stream_id = $1", room_id)
            await target.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        await source.close()
        await target.close()


async def rewrite(url: str, room_id: str, edit: Any, *, rehash: bool) -> None:
    """Apply ``edit(seq, data) -> data`` to the room's events, with the trigger off; with
    ``rehash`` also recompute every hash and the head, using the verifier's own formula."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            rows = [
                dict(r)
                for r in await conn.fetch(
                    "SELECT seq, event_id, type, data::text AS data, actor_id, recorded_at,"
                    " prev_hash, hash FROM events WHERE stream_id = $1 ORDER BY seq",
                    room_id,
                )
            ]
            prev = ZERO
            for row in rows:
                row["data"] = edit(row["seq"], row["data"])
                if rehash:
                    row["prev_hash"] = prev
                    row["hash"] = hashlib.sha256(prev + canonical(room_id, row)).digest()
                    prev = row["hash"]
                await conn.execute(
                    "UPDATE events SET data = $3::json, prev_hash = $4, hash = $5"
                    " WHERE stream_id = $1 AND seq = $2",
                    room_id,
                    row["seq"],
                    row["data"],
                    row["prev_hash"],
                    row["hash"],
                )
            if rehash:
                await conn.execute(
                    "UPDATE streams SET last_hash = $2 WHERE stream_id = $1", room_id, prev
                )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()


async def verify_in(url: str, room_id: str) -> Verdict:
    conn = await asyncpg.connect(url)
    try:
        return await read_room(conn, room_id)
    finally:
        await conn.close()


async def test_the_copy_verifies_like_the_original(lottery, copy):
    mine = await verify_in(copy, lottery["room_id"])

    assert mine.ok
    agree(mine, await roomcast_verify(copy, lottery["room_id"]))


async def test_both_verifiers_name_the_same_seq_for_a_changed_event(lottery, copy):
    room_id = lottery["room_id"]

    def rename_the_pen(seq: int, data: str) -> str:
        return data.replace('"name":"Pen"', '"name":"Pencil"')

    await rewrite(copy, room_id, rename_the_pen, rehash=False)
    mine = await verify_in(copy, room_id)

    assert (mine.ok, mine.reason) == (False, "hash")
    agree(mine, await roomcast_verify(copy, room_id))


async def test_both_verifiers_name_the_same_rigged_draw_when_every_hash_is_recomputed(
    lottery, copy
):
    room_id = lottery["room_id"]
    honest = await verify_in(copy, room_id)
    last_eligible = honest.eligible[-1]
    other = next(p for p in last_eligible if p != lottery["winners"][-1])
    joined = {}

    def rig_the_last_draw(seq: int, data: str) -> str:
        event = json.loads(data)
        if event.get("type") == "participant:joined":
            joined[event["participant"]["id"]] = event["participant"]["user"]
        if event.get("type") != "winner:selected" or event["drawNumber"] != 5:
            return data
        event["winner"]["participantId"] = other
        event["winner"]["participant"] = {"id": other, "user": joined[other]}
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False)

    await rewrite(copy, room_id, rig_the_last_draw, rehash=True)
    mine = await verify_in(copy, room_id)

    assert (mine.ok, mine.reason) == (False, "rigged")
    theirs = await roomcast_verify(copy, room_id)
    assert theirs["reason"].startswith(f"rigged draw: the winner is {other}")
    agree(mine, theirs)
