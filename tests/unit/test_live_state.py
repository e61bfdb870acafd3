"""The in-process state behind presence, typing, socket limits and sessions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from roomcast.config import ConfigError, load_settings
from roomcast.domain.errors import ErrorCode, PayloadTooLarge, RateLimitExceeded
from roomcast.domain.state import UserRef
from roomcast.gateway.indicators import Typing
from roomcast.gateway.limits import ClientLimits, EventHeader, event_header
from roomcast.gateway.presence import MemoryPresence
from roomcast.gateway.sessions import Sessions, TokenExpired
from roomcast.tokens import Claims

ANN = UserRef(id="ann", name="Ann")
BOB = UserRef(id="bob", name="Bob", avatar="https://example.com/bob.png")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


class TestMemoryPresence:
    async def test_several_sockets_of_a_user_count_once(self):
        presence = MemoryPresence()
        assert await presence.join("r", "s1", ANN, at(0)) is True
        assert await presence.join("r", "s2", ANN, at(5)) is False
        assert await presence.join("r", "s1", ANN, at(9)) is False  # a repeated subscribe
        assert await presence.join("r", "s3", BOB, at(7)) is True
        online = await presence.online("r")
        assert [(u.id, u.connected_at) for u in online] == [("ann", at(0)), ("bob", at(7))]
        assert online[1].avatar == BOB.avatar

        assert await presence.leave("r", "s1") is None  # ann still has s2
        assert [(u.id, u.connected_at) for u in await presence.online("r")] == [
            ("ann", at(5)),  # connectedAt follows the socket that remains
            ("bob", at(7)),
        ]
        assert await presence.leave("r", "s2") == ANN
        assert await presence.leave("r", "s2") is None  # already gone
        assert [u.id for u in await presence.online("r")] == ["bob"]

    async def test_a_disconnect_leaves_every_room_and_reports_who_went_offline(self):
        presence = MemoryPresence()
        await presence.join("r1", "s1", ANN, at(0))
        await presence.join("r2", "s1", ANN, at(0))
        await presence.join("r2", "s2", ANN, at(1))
        assert await presence.is_in("r1", "s1")
        assert await presence.leave_all("s1") == [("r1", ANN)]  # r2 still has s2
        assert not await presence.is_in("r1", "s1")
        assert await presence.online("r1") == []
        assert [u.id for u in await presence.online("r2")] == ["ann"]
        assert await presence.leave_all("s2") == [("r2", ANN)]
        assert await presence.leave_all("never") == []


class TestTyping:
    async def test_the_timer_stops_a_silent_typist_once(self):
        fired: asyncio.Queue[tuple[str, str, UserRef]] = asyncio.Queue()

        async def expired(room_id: str, sid: str, user: UserRef) -> None:
            fired.put_nowait((room_id, sid, user))

        typing = Typing(0.05, expired)
        assert typing.start("r", "s1", ANN) is True
        assert typing.start("r", "s1", ANN) is False  # restarts the timer only
        assert await asyncio.wait_for(fired.get(), 5) == ("r", "s1", ANN)
        assert not typing.is_typing("r", "s1")
        assert len(typing) == 0

    async def test_stop_cancels_the_timer(self):
        fired: list[str] = []

        async def expired(room_id: str, sid: str, user: UserRef) -> None:
            fired.append(sid)

        typing = Typing(0.05, expired)
        typing.start("r", "s1", ANN)
        typing.start("r2", "s1", ANN)
        typing.start("r", "s2", BOB)
        assert typing.stop("r", "s1") == ANN
        assert typing.stop("r", "s1") is None
        assert typing.stop_all("s1") == [("r2", ANN)]
        assert typing.stop_all("s2") == [("r", BOB)]
        # Every timer was cancelled: one that still fired would have run by now.
        await asyncio.sleep(0.1)  # the absence of a timer callback cannot be awaited
        assert fired == []

    def test_the_timeout_must_be_positive(self):
        async def expired(room_id: str, sid: str, user: UserRef) -> None: ...

        with pytest.raises(ValueError, match="positive"):
            Typing(0, expired)


class TestEventHeader:
    """Socket.IO packets as python-socketio hands them over (Engine.IO's "4" stripped)."""

    @pytest.mark.parametrize(
        ("message", "header"),
        [
            ('221["room:subscribe",{"roomId":"r"}]', EventHeader("/", 21, "room:subscribe")),
            ('2["typing:start",{}]', EventHeader("/", None, "typing:start")),
            ('2/admin,7["a:b"]', EventHeader("/admin", 7, "a:b")),
            ('2["quo\\"te"]', EventHeader("/", None, 'quo"te')),
            ("2[]", EventHeader("/", None, "")),
        ],
    )
    def test_an_event_packet_header_is_read_without_its_data(self, message, header):
        assert event_header(message) == header

    @pytest.mark.parametrize(
        "message",
        ['0{"token":"x"}', "3", '31["ack"]', '51-3["up",{"_placeholder":true,"num":0}]', "x", ""],
    )
    def test_other_packets_have_no_event_header(self, message):
        assert event_header(message) is None


class TestClientLimits:
    def test_size_is_counted_in_utf8_bytes(self):
        limits = ClientLimits(events_per_minute=10, max_message_bytes=100)
        assert limits.oversized("x" * 100) is None
        assert limits.oversized("x" * 101) == 101
        assert limits.oversized("é" * 50) is None  # 100 bytes
        assert limits.oversized("é" * 51) == 102
        error = limits.too_large(102, "typing:start")
        assert isinstance(error, PayloadTooLarge)
        assert error.code is ErrorCode.PAYLOAD_TOO_LARGE
        assert error.details == {"event": "typing:start", "bytes": 102, "limit": 100}

    def test_events_are_counted_per_connection_over_a_sliding_minute(self):
        now = [0.0]
        limits = ClientLimits(events_per_minute=2, max_message_bytes=100, clock=lambda: now[0])
        limits.admit("a")
        limits.admit("a")
        limits.admit("b")
        with pytest.raises(RateLimitExceeded) as refused:
            limits.admit("a")
        assert refused.value.details["retryAfter"] == 60
        now[0] = 60.0
        limits.admit("a")  # the first hit left the window
        limits.forget("a")
        limits.admit("a")
        limits.admit("a")


class _FakeServer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.done = asyncio.Event()

    async def emit(self, event: str, data: Any = None, *, to: str | None = None) -> None:
        self.calls.append(("emit", (event, data, to)))

    async def disconnect(self, sid: str) -> None:
        self.calls.append(("disconnect", sid))
        self.done.set()


def claims(user: UserRef, expires_at: int, token_id: str | None) -> Claims:
    return Claims(user=user, expires_at=expires_at, token_id=token_id)


class TestSessions:
    async def test_a_session_ends_when_its_token_expires_notice_first(self):
        server = _FakeServer()
        sessions = Sessions(server, clock=lambda: 1_000.0)
        sessions.open("s1", claims(ANN, expires_at=1_000, token_id="t1"))  # due now
        await asyncio.wait_for(server.done.wait(), 5)
        notice = TokenExpired(expired_at=datetime.fromtimestamp(1_000, UTC), reason="expired")
        assert server.calls == [("emit", ("token:expired", notice, "s1")), ("disconnect", "s1")]
        assert len(sessions) == 0

    async def test_closing_a_session_cancels_its_timer(self):
        server = _FakeServer()
        sessions = Sessions(server, clock=lambda: 1_000.0)
        sessions.open("s1", claims(ANN, expires_at=1_000, token_id="t1"))
        sessions.close("s1")
        await asyncio.sleep(0.05)  # the absence of a timer callback cannot be awaited
        assert server.calls == []
        assert sessions.token_of("s1") is None

    async def test_one_timer_ends_sessions_in_the_order_their_tokens_expire(self):
        server = _FakeServer()
        now = [1_000.0]
        sessions = Sessions(server, clock=lambda: now[0])
        sessions.open("late", claims(ANN, expires_at=1_002, token_id="t1"))
        sessions.open("early", claims(ANN, expires_at=1_001, token_id="t2"))
        sessions.open("gone", claims(ANN, expires_at=1_001, token_id="t3"))
        sessions.close("gone")  # closed before its instant: never ended
        now[0] = 1_001.0
        sessions._fire()  # the shared timer's callback, as the loop would call it
        await asyncio.wait_for(server.done.wait(), 5)
        assert [c[1] for c in server.calls if c[0] == "disconnect"] == ["early"]
        server.done.clear()
        now[0] = 1_002.0
        sessions._fire()
        await asyncio.wait_for(server.done.wait(), 5)
        assert [c[1] for c in server.calls if c[0] == "disconnect"] == ["early", "late"]
        assert len(sessions) == 0

    async def test_closed_sessions_do_not_pile_up_in_the_heap(self):
        sessions = Sessions(_FakeServer(), clock=lambda: 1_000.0)
        sessions.open("kept", claims(ANN, expires_at=9_999, token_id="t0"))
        for i in range(500):
            sessions.open(f"s{i}", claims(ANN, expires_at=9_999, token_id=f"t{i}"))
            sessions.close(f"s{i}")
        assert len(sessions._deadlines) <= 2 * len(sessions) + 65
        sessions.close("kept")

    async def test_end_token_ends_every_socket_of_that_token_and_no_other(self):
        server = _FakeServer()
        sessions = Sessions(server, clock=lambda: 1_000.0)
        sessions.open("s1", claims(ANN, expires_at=9_999, token_id="t1"))
        sessions.open("s2", claims(ANN, expires_at=9_999, token_id="t1"))
        sessions.open("s3", claims(ANN, expires_at=9_999, token_id="t2"))
        assert await sessions.end_token("t1", reason="revoked") == 2
        ended = [c[1] for c in server.calls if c[0] == "disconnect"]
        assert ended == ["s1", "s2"]
        notices = [c[1][1] for c in server.calls if c[0] == "emit"]
        assert {n.reason for n in notices} == {"revoked"}
        assert sessions.token_of("s3") == "t2"
        assert await sessions.end_token("t1") == 0
        assert len(sessions) == 1
        sessions.close("s3")


class TestSettings:
    def test_live_knobs_are_read_from_the_environment(self):
        settings = load_settings(
            {
                "ROOMCAST_SOCKET_EVENTS_PER_MINUTE": "30",
                "ROOMCAST_TYPING_TIMEOUT": "2.5",
                "ROOMCAST_MAX_SOCKET_FRAME_BYTES": "200000",
            }
        )
        assert settings.socket_events_per_minute == 30
        assert settings.typing_timeout_seconds == 2.5
        assert settings.max_socket_frame_bytes == 200_000

    @pytest.mark.parametrize(
        ("environ", "variable"),
        [
            ({"ROOMCAST_SOCKET_EVENTS_PER_MINUTE": "0"}, "ROOMCAST_SOCKET_EVENTS_PER_MINUTE"),
            ({"ROOMCAST_TYPING_TIMEOUT": "0"}, "ROOMCAST_TYPING_TIMEOUT"),
            ({"ROOMCAST_MAX_SOCKET_FRAME_BYTES": "1000"}, "ROOMCAST_MAX_SOCKET_FRAME_BYTES"),
        ],
    )
    def test_impossible_values_are_refused_by_name(self, environ, variable):
        with pytest.raises(ConfigError, match=variable):
            load_settings(environ)
