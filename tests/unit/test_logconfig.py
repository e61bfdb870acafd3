"""What `roomcast serve` writes to stderr: one JSON line per event, ours and the libraries'."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TextIO, TypeVar

import msgspec
import pytest
import structlog

from roomcast import logfields
from roomcast.logconfig import configure_logging

S = TypeVar("S", bound=TextIO)


@contextlib.contextmanager
def logging_into(stream: S, *, per_loop_turn: bool = False) -> Iterator[S]:
    """JSON logging at info into ``stream``; structlog and the root logger restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(level="info", fmt="json", stream=stream, per_loop_turn=per_loop_turn)
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    with logging_into(io.StringIO()) as stream:
        yield stream


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [msgspec.json.decode(line) for line in stream.getvalue().splitlines()]


def test_our_lines_are_json_with_their_fields(configured: io.StringIO) -> None:
    log = structlog.get_logger("roomcast.gateway")
    log.info("socket_connected", sid="s1", user_id="usr_1")
    log.debug("not_at_info")
    try:
        raise RuntimeError("relay down")
    except RuntimeError:
        log.exception("relay_failed")
    lines = _lines(configured)
    assert [x["event"] for x in lines] == ["socket_connected", "relay_failed"]
    assert lines[0]["sid"] == "s1"
    assert lines[0]["level"] == "info"
    assert "timestamp" in lines[0]
    assert "RuntimeError: relay down" in str(lines[1]["exception"])


def test_websocket_handshake_lines_are_dropped_and_the_rest_kept(
    configured: io.StringIO,
) -> None:
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/socket.io/")
    logging.getLogger("websockets.server").info("connection open")
    logging.getLogger("websockets.server").info("connection closed")
    uvicorn.info('%s - "WebSocket %s" 403', "127.0.0.1:5000", "/socket.io/")
    uvicorn.warning("connection closed")  # a warning always gets through
    uvicorn.info("Started server process [%d]", 42)
    events = [x["event"] for x in _lines(configured)]
    assert events == [
        '127.0.0.1:5000 - "WebSocket /socket.io/" 403',
        "connection closed",
        "Started server process [42]",
    ]


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def per_turn() -> Iterator[CountingStream]:
    with logging_into(CountingStream(), per_loop_turn=True) as stream:
        yield stream


async def test_a_loop_turns_lines_leave_in_one_write_at_the_end_of_the_turn(
    per_turn: CountingStream,
) -> None:
    log = structlog.get_logger("roomcast.http")
    for i in range(3):
        log.info("request_finished", n=i)
    logging.getLogger("uvicorn.error").warning("a library's line joins them")
    assert per_turn.writes == 0  # still this turn
    await asyncio.sleep(0)  # one turn of the loop: the call_soon'd write runs
    assert per_turn.writes == 1
    events = [x["event"] for x in _lines(per_turn)]
    assert events == ["request_finished"] * 3 + ["a library's line joins them"]


def test_outside_a_loop_each_line_is_written_at_once(per_turn: CountingStream) -> None:
    structlog.get_logger("roomcast").info("starting")
    assert per_turn.writes == 1
    assert [x["event"] for x in _lines(per_turn)] == ["starting"]


def test_a_requests_lines_carry_its_fields_and_only_its_lines(configured: io.StringIO) -> None:
    log = structlog.get_logger("roomcast.http")
    with logfields.request_scope(request_id="r1"):
        log.info("inside")
        logfields.bind(command="update_room", seq=2)
        log.info("request_finished", seq=3)  # the line's own field wins
    log.info("after")
    logfields.bind(command="ignored")  # outside a request: nowhere to go
    log.info("still_after")
    inside, finished, after, still_after = _lines(configured)
    assert inside["request_id"] == "r1"
    assert "command" not in inside
    assert (finished["request_id"], finished["command"], finished["seq"]) == (
        "r1",
        "update_room",
        3,
    )
    assert "request_id" not in after
    assert "command" not in still_after


async def test_concurrent_requests_keep_their_own_fields(configured: io.StringIO) -> None:
    log = structlog.get_logger("roomcast.http")
    both_bound = asyncio.Barrier(2)

    async def request(rid: str) -> None:
        with logfields.request_scope(request_id=rid):
            logfields.bind(room_id=f"room_{rid}")
            await both_bound.wait()
            log.info("request_finished")

    await asyncio.gather(request("a"), request("b"))
    lines = sorted(_lines(configured), key=lambda x: str(x["request_id"]))
    assert [(x["request_id"], x["room_id"]) for x in lines] == [("a", "room_a"), ("b", "room_b")]


def test_timestamps_are_utc_iso_with_microseconds(configured: io.StringIO) -> None:
    before = datetime.now(UTC)
    structlog.get_logger("roomcast").info("one")
    structlog.get_logger("roomcast").info("two")
    after = datetime.now(UTC)
    stamps = [str(x["timestamp"]) for x in _lines(configured)]
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert before - timedelta(milliseconds=1) <= at <= after + timedelta(milliseconds=1)
    assert stamps[0] <= stamps[1]
