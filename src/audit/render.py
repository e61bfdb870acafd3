"""Output of the audit commands: JSON lines for pipes, a fixed-width table for terminals."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from roomcast.audit.chain import Row
from roomcast.audit.source import RoomLine

__all__ = ["EventLine", "RoomsTable", "Table", "event_json", "room_json", "summary"]

_any = msgspec.json.Decoder()


class EventLine(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One event of ``audit log --json``: stable names, in this order."""

    seq: int
    event_id: str
    type: str
    actor_id: str | None
    recorded_at: datetime
    hash: str
    data: msgspec.Raw


class RoomJson(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    room_id: str
    name: str | None
    status: str
    events: int
    head_seq: int
    last_activity: datetime | None


_encoder = msgspec.json.Encoder()


def event_json(row: Row) -> str:
    data = row.data.encode()
    if b"\n" in data or b"\r" in data:  # json keeps whitespace as given: keep one line per event
        data = msgspec.json.format(data, indent=0)
    line = EventLine(
        seq=row.seq,
        event_id=str(row.event_id),
        type=row.type,
        actor_id=row.actor_id,
        recorded_at=row.recorded_at.astimezone(UTC),
        hash=bytes(row.hash).hex(),
        data=msgspec.Raw(data),
    )
    return _encoder.encode(line).decode()


def room_json(room: RoomLine) -> str:
    return _encoder.encode(
        RoomJson(
            room_id=room.room_id,
            name=room.name,
            status=room.status,
            events=room.events,
            head_seq=room.head_seq,
            last_activity=room.last_activity,
        )
    ).decode()


def instant(value: datetime | None) -> str:
    """``2025-01-01 12:00:00.123Z``: UTC, milliseconds."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _terminal_width(out: TextIO) -> int | None:
    if not out.isatty():
        return None
    return shutil.get_terminal_size().columns


class Table:
    """Events as fixed-width lines: seq, time, type, actor, hash prefix, what happened."""

    def __init__(self, out: TextIO, seq_width: int = 4) -> None:
        self._out = out
        self._seq = max(seq_width, 3)
        self._width = _terminal_width(out)

    def header(self) -> None:
        self._line("SEQ", "RECORDED AT (UTC)", "TYPE", "ACTOR", "HASH", "WHAT")

    def row(self, row: Row) -> None:
        self._line(
            str(row.seq),
            instant(row.recorded_at),
            row.type,
            row.actor_id or "-",
            bytes(row.hash).hex()[:12],
            summary(row.type, row.data),
        )

    def _line(self, seq: str, at: str, type_: str, actor: str, digest: str, what: str) -> None:
        head = (
            f"{seq:>{self._seq}}  {at:<24}  {_fit(type_, 19):<19}  "
            f"{_fit(actor, 16):<16}  {digest:<12}  "
        )
        text = head + what
        if self._width is not None:
            text = _fit(text, self._width)
        print(text.rstrip(), file=self._out, flush=True)


class RoomsTable:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def show(self, rooms: list[RoomLine]) -> None:
        id_width = max([len("ROOM"), *(len(r.room_id) for r in rooms)])
        print(
            f"{'ROOM':<{id_width}}  {'STATUS':<8}  {'EVENTS':>8}  {'HEAD':>8}  "
            f"{'LAST ACTIVITY (UTC)':<24}  NAME",
            file=self._out,
        )
        for r in rooms:
            print(
                f"{r.room_id:<{id_width}}  {r.status:<8}  {r.events:>8}  {r.head_seq:>8}  "
                f"{instant(r.last_activity):<24}  {r.name or ''}".rstrip(),
                file=self._out,
            )


def summary(type_: str, data: str) -> str:
    """What an event did, in a few words, from its stored JSON."""
    try:
        payload = _any.decode(data)
    except msgspec.DecodeError:
        return "(undecodable data)"
    if not isinstance(payload, dict):
        return "(not an object)"
    try:
        return _summary(type_, payload)
    except (KeyError, TypeError, AttributeError):
        return _compact(payload)


def _compact(payload: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in payload.items() if k not in ("type", "roomId", "timestamp")}
    return _encoder.encode(rest).decode()


def _changes(changes: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_encoder.encode(v).decode()}" for k, v in changes.items())


def _summary(type_: str, p: Mapping[str, Any]) -> str:
    match type_:
        case "room:created":
            return f'"{p["room"]["name"]}" by {p["room"]["organizerId"]}'
        case "room:updated":
            return _changes(p["changes"])
        case "room:status_changed":
            text = f"{p['oldStatus']} → {p['newStatus']}"
            if "seedCommitment" in p:
                text += f"  seed commitment {str(p['seedCommitment'])[:16]}…"
            if "seedReveal" in p:
                text += f"  seed revealed {str(p['seedReveal'])[:16]}…"
            return text
        case "room:deleted":
            return f"seed revealed {str(p['seedReveal'])[:16]}…" if "seedReveal" in p else ""
        case "participant:joined":
            who = p["participant"]
            return f"{who['id']}  {who['user']['name']} ({who['userId']})"
        case "participant:left":
            text = f"{p['participantId']} ({p['userId']})"
            if p.get("reason") == "removed":
                text += f" removed by {p.get('removedBy')}"
            return text
        case "participant:updated":
            return f"{p['participantId']}  {_changes(p['changes'])}"
        case "prize:created":
            prize = p["prize"]
            return f'{prize["id"]}  "{prize["name"]}" ×{prize["quantity"]}'
        case "prize:updated":
            return f"{p['prizeId']}  {_changes(p['changes'])}"
        case "prize:deleted":
            return str(p["prizeId"])
        case "winner:selected":
            w = p["winner"]
            return (
                f"draw #{p.get('drawNumber')}: {w['participantId']} "
                f"({w['participant']['user']['name']}) wins {w['prizeId']} "
                f'"{w["prize"]["name"]}", 1 of {p.get("eligibleCount")} eligible'
            )
        case "winner:removed":
            return f"{p['winnerId']}  ({p['participantId']}, {p['prizeId']})"
    return _compact(p)
