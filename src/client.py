"""A Python client that never misses an event: ``roomcast.client.RoomcastClient``.

On top of python-socketio's ``AsyncClient`` it keeps, per room, the last seq it
delivered, and

* drops duplicates (a seq it already delivered: at-least-once on the wire),
* delivers to handlers strictly in seq order, one event at a time,
* on a gap (seq jumps), refills it with ``room:replay`` before going on,
* when a subscribe's replay was cut short (the server replays at most
  ``ROOMCAST_SUBSCRIBE_REPLAY_MAX`` seqs inline; ``room:subscribed`` says
  ``replay.truncated``), pages the rest up to its ``headSeq`` with
  ``room:replay`` the same way, live events held meanwhile,
* after any reconnect, subscribes again with ``lastSeq`` so the server replays
  what was missed; a refused re-subscribe that may succeed later (the database
  is down: ``SERVICE_UNAVAILABLE``; a rate limit; a timeout) is retried with
  capped exponential backoff and jitter, honouring ``retryAfter``, until it
  succeeds or the socket drops (the next connect starts again). One that cannot
  (``PERMISSION_DENIED``, ``ROOM_NOT_FOUND``, …) is given up, and the room is
  no longer followed. Each step is reported to ``on_status`` handlers as a
  ``SubscriptionStatus`` (``retrying`` / ``subscribed`` / ``failed``), not only
  logged;
* when the server says the socket is out of a room (``room:unsubscribed`` with
  a ``reason``: the user was removed, the room deleted, or a gap refill was
  refused for that), stops following it (no refill, no re-subscribe) and
  reports ``SubscriptionStatus(state="unsubscribed", code=reason)``; the notice
  itself reaches ``room:unsubscribed`` and ``"*"`` handlers too;
* follows the user's own notification stream the same way, once asked to
  (``follow_notifications``): once each, in seq order, what was missed while
  disconnected fetched with ``notification:replay``;
* when the server ends the session because the token expired (``token:expired``,
  then a disconnect), connects again with a fresh token from the ``token``
  function (python-socketio itself never reconnects after a server-side
  disconnect), and so resubscribes as above.

By default it subscribes with ``batch: true``: the server then sends a room's
events as ``room:events`` frames (arrays of payloads, the replay included), many
events per Socket.IO message. Handlers still get one call per event, with the
event's name (the payload's ``type``). ``batch=False`` asks for one message per
event.

Example::

    async with RoomcastClient("http://127.0.0.1:8000", token) as client:
        client.on("winner:selected", lambda event, payload: print(payload["winner"]))
        await client.subscribe("room_3f9c0a1b2c4d5e6f")
        await client.wait_closed()
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import socketio
import structlog

__all__ = [
    "Handler",
    "RoomcastClient",
    "StatusHandler",
    "SubscriptionError",
    "SubscriptionStatus",
]

log = structlog.get_logger("roomcast.client")

Handler = Callable[[str, dict[str, Any]], Awaitable[None] | None]
"""``handler(event_name, payload)``; may be sync or async."""

_REPLAY_LIMIT = 1000
_BATCH_EVENT = "room:events"
_INBOX = "user:"
"""The feed key of the user's notification stream (room ids never contain ':')."""


class SubscriptionError(Exception):
    """The server refused a subscribe or replay; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class SubscriptionStatus:
    """What became of a re-subscribe after a reconnect (``on_status`` handlers get it).

    ``state``: ``retrying`` (refused or timed out; tried again in ``retry_in``
    seconds), ``subscribed`` (caught up from ``last_seq``; ``attempt`` > 1 after
    retries), ``failed`` (refused for good, e.g. ``PERMISSION_DENIED``: no
    more events for this room until the application subscribes again) or
    ``unsubscribed`` (the server put the socket out of the room: ``code`` is its
    ``reason``, e.g. ``not_a_member``; the room is no longer followed).
    ``room_id`` is ``"user:"`` for the notification stream.
    """

    room_id: str
    state: Literal["retrying", "subscribed", "failed", "unsubscribed"]
    attempt: int
    last_seq: int | None
    code: str | None = None
    """The refusal's protocol code, or ``TIMEOUT`` / ``DISCONNECTED``."""
    message: str | None = None
    retry_in: float | None = None


StatusHandler = Callable[[SubscriptionStatus], Awaitable[None] | None]

_RETRYABLE = frozenset({"SERVICE_UNAVAILABLE", "RATE_LIMIT_EXCEEDED", "TIMEOUT", "INTERNAL_ERROR"})
"""Refusals a later try may not get; any other code is final."""


@dataclass
class _Feed:
    room_id: str
    last_seq: int | None
    pending: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscribed: bool = False
    target: int = 0
    """Deliver everything up to this seq (a truncated subscribe's ``headSeq``) even
    with nothing pending: the part the server did not replay inline is paged."""
    retry: asyncio.Task[None] | None = None
    """The running re-subscribe (with its retries); a new connect replaces it."""
    refill_retry: asyncio.Task[None] | None = None
    """A refill that failed and may pass later, waiting for its next try."""
    refill_failures: int = 0


class RoomcastClient:
    """Subscribe to rooms and receive every event once, in order, across reconnects."""

    def __init__(
        self,
        url: str,
        token: str | Callable[[], str],
        *,
        transports: list[str] | None = None,
        reconnection_delay: float = 0.5,
        request_timeout: float = 30.0,
        batch: bool = True,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        """``retry_initial`` / ``retry_max``: the re-subscribe backoff's first and largest
        delay in seconds (doubled per attempt, each drawn between half and all of it)."""
        self.url = url
        self._token = token
        self._transports = transports or ["websocket"]
        self._timeout = request_timeout
        self.batch = batch
        self._feeds: dict[str, _Feed] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._status_handlers: list[StatusHandler] = []
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self.resubscribe_retries = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.reconnects = 0
        self.duplicates_dropped = 0
        self.gaps_refilled = 0
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=reconnection_delay,
            reconnection_delay_max=5,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("token:expired", self._on_token_expired)
        self.sio.on("*", self._on_event)
        self._connected_once = False
        self._reconnection_delay = reconnection_delay
        self._token_expired = False
        self._closing = False

    # ------------------------------------------------------------------ API

    async def connect(self) -> None:
        await self.sio.connect(
            self.url,
            auth=self._auth,
            transports=self._transports,
            wait_timeout=self._timeout,
        )

    async def close(self) -> None:
        self._closing = True
        await self.sio.disconnect()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> RoomcastClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def wait_closed(self) -> None:
        await self.sio.wait()

    def on(self, event: str, handler: Handler) -> None:
        """Call ``handler`` for ``event``; ``"*"`` gets every event (room events in seq
        order, plus notices such as ``room:subscribed`` and ``error``)."""
        self._handlers.setdefault(event, []).append(handler)

    def on_status(self, handler: StatusHandler) -> None:
        """Call ``handler(SubscriptionStatus)`` whenever a re-subscribe after a reconnect
        is refused (and retried, or given up) or succeeds after refusals."""
        self._status_handlers.append(handler)

    def last_seq(self, room_id: str) -> int | None:
        feed = self._feeds.get(room_id)
        return None if feed is None else feed.last_seq

    async def subscribe(self, room_id: str, last_seq: int | None = None) -> dict[str, Any]:
        """Subscribe; with ``last_seq``, everything after it is delivered first (what the
        server does not replay inline, past its cap, is paged with ``room:replay``).
        Returns the ack's ``data`` (``replay.truncated`` says whether paging follows)."""
        feed = self._feeds.get(room_id)
        if feed is None:
            feed = self._feeds[room_id] = _Feed(room_id=room_id, last_seq=last_seq)
        return await self._subscribe(feed)

    async def follow_notifications(self, last_seq: int = 0) -> None:
        """Deliver this user's notification events (``notification:*``) to handlers once
        each and in seq order, starting after ``last_seq``; missed ones are fetched now
        and after every reconnect."""
        feed = self._feeds.get(_INBOX)
        if feed is None:
            feed = self._feeds[_INBOX] = _Feed(room_id=_INBOX, last_seq=last_seq)
        await self._catch_up(feed)

    async def unsubscribe(self, room_id: str) -> None:
        feed = self._feeds.pop(room_id, None)
        if feed is not None and feed.retry is not None:
            feed.retry.cancel()
        await self._call("room:unsubscribe", {"roomId": room_id})

    async def replay(self, room_id: str, after_seq: int, limit: int = 100) -> dict[str, Any]:
        return await self._call(
            "room:replay", {"roomId": room_id, "afterSeq": after_seq, "limit": limit}
        )

    # ------------------------------------------------------------- internals

    def _auth(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"token": token}

    async def _call(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        ack = await self.sio.call(event, payload, timeout=self._timeout)
        if not isinstance(ack, dict) or not ack.get("success"):
            error = ack.get("error", {}) if isinstance(ack, dict) else {}
            details = error.get("details")
            raise SubscriptionError(
                str(error.get("code", "INVALID_PAYLOAD")),
                str(error.get("message", ack)),
                details if isinstance(details, dict) else None,
            )
        data: dict[str, Any] = ack.get("data") or {}
        return data

    async def _subscribe(self, feed: _Feed) -> dict[str, Any]:
        payload: dict[str, Any] = {"roomId": feed.room_id}
        if feed.last_seq is not None:
            payload["lastSeq"] = feed.last_seq
        if self.batch:
            payload["batch"] = True
        data = await self._call("room:subscribe", payload)
        if feed.last_seq is None:
            feed.last_seq = int(data["headSeq"])  # live from here on
        feed.subscribed = True
        self._schedule(feed)
        return data

    async def _on_connect(self) -> None:
        if self._connected_once:
            self.reconnects += 1
            # Not awaited here: the ack of room:subscribe arrives through the very
            # loop that is running this handler.
            for feed in list(self._feeds.values()):
                if feed.retry is not None:
                    feed.retry.cancel()  # its socket is gone; start again on this one
                feed.retry = asyncio.ensure_future(self._resubscribe(feed))
                self._tasks.add(feed.retry)
                feed.retry.add_done_callback(self._tasks.discard)
        self._connected_once = True

    async def _on_token_expired(self, payload: Any = None, *_: Any) -> None:
        self._token_expired = True
        await self._dispatch("token:expired", payload if isinstance(payload, dict) else {})

    async def _on_disconnect(self, *_: Any) -> None:
        if self._token_expired and not self._closing:
            self._token_expired = False
            if callable(self._token):
                self._spawn(self._renew())
            else:
                log.warning("token_expired_no_refresh", detail="pass a token function to renew")

    async def _renew(self) -> None:
        """Connect again, with a fresh token, after the server ended an expired session."""
        await self.sio.eio.wait()  # the old connection's read loop has ended
        # python-socketio finishes its own disconnect in another task and offers
        # nothing to await: look until it is done (a few loop turns). Done means
        # its HTTP session is closed and dropped too; connecting before that would
        # reuse the session it is about to close, or leave a new one unclosed.
        for _ in range(100):
            if self.sio.eio.state == "disconnected" and self.sio.eio.http is None:
                break
            await asyncio.sleep(0.05)
        delay = self._reconnection_delay
        while not self._closing:
            try:
                await self.connect()  # _on_connect resubscribes every room with lastSeq
                return
            except socketio.exceptions.ConnectionError as exc:
                if "AUTHENTICATION_FAILED" in str(exc):
                    log.warning("token_refresh_refused", error=str(exc))
                    return
                log.warning("reconnect_failed", error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _catch_up(self, feed: _Feed) -> None:
        """The inbox has no subscribe: every socket of the user gets it live. Fetch
        what came after ``last_seq`` up to the head and deliver it in order."""
        feed.subscribed = True
        while True:
            before = feed.last_seq
            assert before is not None
            data = await self._call(
                "notification:replay", {"afterSeq": before, "limit": _REPLAY_LIMIT}
            )
            for item in data.get("events", []):
                self._accept(item["event"], item["payload"])
            await self._drain(feed)
            done = data.get("nextAfter", 0) >= data.get("headSeq", 0)
            if done or feed.last_seq is None or feed.last_seq <= before:
                return

    async def _resubscribe(self, feed: _Feed) -> None:
        """Subscribe ``feed`` again on the new connection; retry what may pass later."""
        attempt = 0
        while not self._closing and self._feeds.get(feed.room_id) is feed:
            attempt += 1
            try:
                if feed.room_id == _INBOX:
                    await self._catch_up(feed)
                else:
                    await self._subscribe(feed)
            except SubscriptionError as exc:
                code, message, hint = exc.code, exc.message, exc.details.get("retryAfter")
            except (TimeoutError, socketio.exceptions.TimeoutError):
                code, message, hint = "TIMEOUT", "no answer in time", None
            except socketio.exceptions.SocketIOError as exc:
                # Not connected any more: the next connect re-subscribes afresh.
                log.info("resubscribe_interrupted", room_id=feed.room_id, error=str(exc))
                return
            else:
                if attempt > 1:
                    await self._report(
                        SubscriptionStatus(feed.room_id, "subscribed", attempt, feed.last_seq)
                    )
                return
            feed.subscribed = False
            if self._feeds.get(feed.room_id) is not feed:
                return  # put out by the server's room:unsubscribed, which said so already
            if code not in _RETRYABLE:
                log.warning("resubscribe_failed", room_id=feed.room_id, code=code, error=message)
                self._feeds.pop(feed.room_id, None)  # refused for good: not tried again
                await self._report(
                    SubscriptionStatus(
                        feed.room_id, "failed", attempt, feed.last_seq, code, message
                    )
                )
                return
            delay = self._backoff(attempt, hint)
            self.resubscribe_retries += 1
            log.warning(
                "resubscribe_retrying", room_id=feed.room_id, code=code, retry_in=round(delay, 3)
            )
            await self._report(
                SubscriptionStatus(
                    feed.room_id, "retrying", attempt, feed.last_seq, code, message, delay
                )
            )
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, hint: object) -> float:
        """Capped exponential backoff with jitter, never sooner than the server's hint."""
        ceiling = min(self._retry_max, self._retry_initial * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        if isinstance(hint, int | float) and hint > delay:
            delay = min(float(hint), self._retry_max)
        return delay

    async def _report(self, status: SubscriptionStatus) -> None:
        for handler in self._status_handlers:
            try:
                result = handler(status)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a failing handler must not stop the retries
                log.exception("status_handler_failed", room_id=status.room_id)

    async def _on_event(self, event: str, payload: Any = None, *_: Any) -> None:
        if event == _BATCH_EVENT and isinstance(payload, list):
            touched: dict[str, _Feed] = {}
            for item in payload:
                if isinstance(item, dict) and isinstance(item.get("type"), str):
                    feed = self._accept(item["type"], item)
                    if feed is not None:
                        touched[feed.room_id] = feed
            for feed in touched.values():  # one drain per frame, not one per event
                self._schedule(feed)
            return
        if not isinstance(payload, dict):
            return
        feed_key, seq = _feed_key(event, payload), payload.get("seq")
        if event == "room:unsubscribed" and isinstance(payload.get("reason"), str):
            await self._put_out(payload)
        if feed_key is None or feed_key not in self._feeds or not isinstance(seq, int):
            if event == "room:subscribed" and feed_key in self._feeds:
                self._replay_cut(self._feeds[feed_key], payload)
            await self._dispatch(event, payload)  # not a followed event (e.g. room:subscribed)
            return
        feed = self._accept(event, payload)
        if feed is not None:
            self._schedule(feed)

    def _replay_cut(self, feed: _Feed, notice: dict[str, Any]) -> None:
        """The inline replay ended (``room:subscribed``): if it was cut, page the rest.

        Taken from the notice, not the ack: every inline event came before it, so
        paging starts where they end instead of reading them twice."""
        cut, head = notice.get("replay"), notice.get("headSeq")
        if isinstance(cut, dict) and cut.get("truncated") is True and isinstance(head, int):
            feed.target = max(feed.target, head)
            self._schedule(feed)

    async def _put_out(self, notice: dict[str, Any]) -> None:
        """The server took this socket out of a room: stop following it, say so."""
        feed = self._feeds.pop(str(notice.get("roomId")), None)
        if feed is None:
            return
        feed.subscribed = False  # what is queued is delivered; no refill, no retry
        if feed.retry is not None:
            feed.retry.cancel()
        reason = str(notice["reason"])
        log.info("room_unsubscribed", room_id=feed.room_id, reason=reason)
        await self._report(
            SubscriptionStatus(feed.room_id, "unsubscribed", 0, feed.last_seq, reason)
        )

    def _accept(self, event: str, payload: dict[str, Any]) -> _Feed | None:
        """Queue one event for in-order delivery; the feed to drain, or None."""
        feed_key, seq = _feed_key(event, payload), payload.get("seq")
        feed = self._feeds.get(feed_key) if feed_key is not None else None
        if feed is None or not isinstance(seq, int):
            return None
        if (feed.last_seq is not None and seq <= feed.last_seq) or seq in feed.pending:
            self.duplicates_dropped += 1
            return None
        feed.pending[seq] = (event, payload)
        return feed

    def _schedule(self, feed: _Feed) -> None:
        self._spawn(self._drain(feed))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, feed: _Feed) -> None:
        """Deliver pending events in seq order; refill a gap (or page the rest of a cut
        replay, up to ``target``) from the server."""
        async with feed.lock:
            while feed.last_seq is not None:
                following = feed.last_seq + 1
                item = feed.pending.pop(following, None)
                if item is not None:
                    feed.last_seq = following
                    await self._dispatch(*item)
                    continue
                # Drop what is already delivered, then refill the hole.
                for seq in [s for s in feed.pending if s <= feed.last_seq]:
                    del feed.pending[seq]
                if feed.pending:
                    before = min(feed.pending)
                elif feed.target > feed.last_seq:
                    before = feed.target + 1
                else:
                    return
                if not feed.subscribed or not await self._refill(feed, before):
                    return

    async def _refill(self, feed: _Feed, before: int) -> bool:
        assert feed.last_seq is not None
        limit = min(_REPLAY_LIMIT, before - feed.last_seq - 1)
        try:
            if feed.room_id == _INBOX:
                data = await self._call(
                    "notification:replay", {"afterSeq": feed.last_seq, "limit": limit}
                )
            else:
                data = await self.replay(feed.room_id, feed.last_seq, limit)
        except SubscriptionError as exc:
            self._refill_later(feed, exc.code, exc.details.get("retryAfter"))
            return False
        except (socketio.exceptions.TimeoutError, TimeoutError):
            self._refill_later(feed, "TIMEOUT", None)
            return False
        except socketio.exceptions.SocketIOError as exc:
            # Not connected: the next connect subscribes again from last_seq.
            log.info("gap_refill_interrupted", room_id=feed.room_id, error=str(exc))
            return False
        feed.refill_failures = 0
        progressed = False
        # The replay returns, in order, every event after last_seq that we may see,
        # up to nextAfter: a seq it skips is hidden from us (we were not a member
        # then), so the next returned one follows on directly ([left@5, joined@8]).
        for item in data.get("events", []):
            payload = item["payload"]
            seq = payload["seq"]
            if isinstance(seq, int) and seq > feed.last_seq:
                feed.last_seq = seq
                feed.pending.pop(seq, None)
                await self._dispatch(item["event"], payload)
                progressed = True
        # The server scanned up to nextAfter: seqs up to it that it did not return
        # are hidden from us (we were not a member then), not lost.
        scanned = data.get("nextAfter")
        if isinstance(scanned, int) and feed.last_seq < scanned < before:
            feed.last_seq = scanned
            progressed = True
        if progressed:
            self.gaps_refilled += 1
        return progressed

    def _refill_later(self, feed: _Feed, code: str, hint: object) -> None:
        """Try a failed refill again after a backoff, if a later try may pass.

        Waiting for the next event instead would leave the tail of a quiet room
        missing for good."""
        feed.refill_failures += 1
        if code not in _RETRYABLE:
            log.warning("gap_refill_failed", room_id=feed.room_id, code=code)
            return
        if feed.refill_retry is not None and not feed.refill_retry.done():
            return
        delay = self._backoff(feed.refill_failures, hint)
        log.warning("gap_refill_retrying", room_id=feed.room_id, code=code, retry_in=delay)

        async def again() -> None:
            await asyncio.sleep(delay)  # the backoff itself, not a stand-in for an event
            if not self._closing and self._feeds.get(feed.room_id) is feed:
                await self._drain(feed)

        feed.refill_retry = asyncio.ensure_future(again())
        self._tasks.add(feed.refill_retry)
        feed.refill_retry.add_done_callback(self._tasks.discard)

    async def _dispatch(self, event: str, payload: dict[str, Any]) -> None:
        for handler in (*self._handlers.get(event, ()), *self._handlers.get("*", ())):
            try:
                result = handler(event, payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one failing handler must not stop delivery to others
                log.exception("handler_failed", handler_event=event, seq=payload.get("seq"))


def _feed_key(event: str, payload: dict[str, Any]) -> str | None:
    """Which followed stream an event belongs to: its room, or the user's inbox."""
    if event.startswith("notification:") and "userId" in payload:
        return _INBOX
    room_id = payload.get("roomId")
    return room_id if isinstance(room_id, str) else None
