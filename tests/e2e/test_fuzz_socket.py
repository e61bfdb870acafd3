"""Fuzzing the socket, bounded: every client event with hostile payloads, and raw packets.

* Per event a hypothesis strategy: wrong types, huge and deep values, NUL and
  control characters, unknown fields, a binary attachment, integers past 64
  bits; sent with and without an ack. The answer is a typed envelope (never
  INTERNAL_ERROR), the socket still answers a probe, and no error is logged.
* Raw Engine.IO / Socket.IO frames: the connection is closed or keeps answering;
  another client is still served and the process's memory stays bounded.

Each example opens its own connection (the per-connection rate limit is not what
is tested here), as a user of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .rawsocket import RawSocket
from .support import loud_records, user_id

EVENTS = [
    "room:subscribe",
    "room:unsubscribe",
    "room:replay",
    "quiz:answer_submit",
    "notification:mark_read",
    "notification:replay",
    "presence:get_online",
    "typing:start",
    "typing:stop",
    "no:such:event",
]

FIELDS = ["roomId", "lastSeq", "afterSeq", "limit", "batch", "questionId", "answer",
          "notificationId", "timestamp"]  # fmt: skip

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
    | st.sampled_from(["room_\x00x", "\x00", "a\x1fb", "", "x" * 70, "user:x", "9" * 40])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


_HUGE = "<huge>"
"""Stands for a 70,000-character string (expanded when the frame is built: hypothesis
would otherwise print it whole)."""
_hostile = _json | st.integers(1, 400).map(_deep) | st.just(_HUGE)
_payload = st.one_of(
    # An object with the protocol's fields, each of any type, plus unknown ones.
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), _hostile, max_size=6),
    _hostile,  # not an object at all
)


def _frame(event: str, args: list[Any], ack_id: int | None) -> str:
    body = json.dumps([event, *args]).replace(f'"{_HUGE}"', '"' + "h" * 70_000 + '"')
    return "42" + ("" if ack_id is None else str(ack_id)) + body


def _typed(answer: Any) -> None:
    assert isinstance(answer, dict), answer
    assert isinstance(answer.get("success"), bool), answer
    if not answer["success"]:
        assert answer["error"]["code"] != "INTERNAL_ERROR", answer
        assert isinstance(answer["error"]["message"], str)


def _loud(lines: list[dict[str, Any]], records: list[logging.LogRecord]) -> list[str]:
    bad = [str(line) for line in lines if line.get("log_level") in ("error", "critical")]
    bad += loud_records(records)
    return bad


async def _exchange(server, event: str, args: list[Any], binary: bool) -> None:
    raw = await RawSocket.connected(server, server.token(user_id()))
    try:
        if binary:
            # The first argument replaced by a binary attachment.
            head = _frame(event, [{"_placeholder": True, "num": 0}, *args[1:]], None)[2:]
            await raw.send("451-1" + head)
            await raw.send(b"\x00\xffbinary")
            _typed(await raw.ack(1))
        else:
            await raw.send(_frame(event, args, None))  # no ack: an error event at most
            await raw.send(_frame(event, args, 2))
            _typed(await raw.ack(2))
        errors = [f for f in _drain(raw) if f.startswith('42["error"')]
        for frame in errors:
            assert json.loads(frame[2:])[1]["code"] != "INTERNAL_ERROR", frame
        await raw.send('423["presence:get_online",{"roomId":"room_nope"}]')
        _typed(await raw.ack(3))  # the socket is still usable
    finally:
        await raw.close()


def _drain(raw: RawSocket) -> list[str]:
    out = []
    while not raw.frames.empty():
        frame = raw.frames.get_nowait()
        if isinstance(frame, str):
            out.append(frame)
    return out


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_answers_hostile_payloads_with_a_typed_error(server, event, caplog):
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        args=st.lists(_payload, min_size=0, max_size=3),
        binary=st.booleans(),
    )
    def check(args: list[Any], binary: bool) -> None:
        if binary and not args:
            args = [{}]
        with structlog.testing.capture_logs() as lines:
            asyncio.run(_exchange(server, event, args, binary))
        assert _loud(lines, caplog.records) == []

    check()


_garbage = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60),
    st.builds(
        lambda head, body: head + body,
        st.sampled_from(
            [
                "0",
                "1",
                "2",
                "3",
                "4",
                "40",
                "41",
                "42",
                "43",
                "44",
                "45",
                "46",
                "451-",
                "42/x,",
                "4 ",
                "5",
                "6",
                "b",
                "4-",
                "49",
            ]
        ),
        st.text(max_size=60),
    ),
)


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def _garbage_exchange(server, frame: str | bytes) -> None:
    raw = await RawSocket.connected(server, server.token(user_id()))
    try:
        await raw.send(frame)
        await raw.send('429["presence:get_online",{"roomId":"room_nope"}]')
        probe = asyncio.ensure_future(raw.ack(9, within=10))
        closed = asyncio.ensure_future(raw.closed.wait())
        done, pending = await asyncio.wait({probe, closed}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if probe in done and probe.exception() is None:
            _typed(probe.result())  # still open: it answers
        else:
            assert closed in done, "neither closed nor answering"
    finally:
        await raw.close()


def test_raw_garbage_closes_or_is_answered_and_memory_stays_bounded(server, caplog):
    before = _rss_bytes()

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(frame=_garbage)
    def check(frame: str | bytes) -> None:
        asyncio.run(_garbage_exchange(server, frame))

    with structlog.testing.capture_logs() as lines:
        check()
    assert _loud(lines, caplog.records) == []
    assert _rss_bytes() - before < 64 * 1024 * 1024
    asyncio.run(_still_served(server))


async def _still_served(server) -> None:
    raw = await RawSocket.connected(server, server.token(user_id()))
    await raw.send('421["presence:get_online",{"roomId":"room_nope"}]')
    _typed(await raw.ack(1))
    await raw.close()
