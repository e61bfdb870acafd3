"""The relay's publisher on a gateway node: this node's delivery, and the other nodes.

The path of a committed event, one hop a module:

    outbox/relay.py           reads a batch of outbox rows, calls ``publish(events)``
    gateway/publisher.py      this node's delivery, and every other node through Redis
    gateway/delivery.py       each node: positions, gates, floors, frames, evictions
    gateway/sockets.py        python-socketio's manager: the rooms and Engine.IO queues

Without Redis there is one node and the batch ends at its delivery. With
Redis the batch goes to the channel in one pipeline
(``redislink.RedisChannel.publish``) while it is delivered here (neither
waits for the other): when Redis did not take it all, the relay keeps the
rows and publishes them again, and this node's delivery drops the copies by
seq. A relay without sockets (``roomcast relay``) uses
``redislink.RedisPublisher``, the second half alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from roomcast.gateway.delivery import RoomDelivery, room_name
from roomcast.gateway.redislink import RedisChannel
from roomcast.outbox.relay import Outgoing

__all__ = ["NodePublisher"]

_YIELD_EVERY = 64
"""How often (in relayed events) publishing checks whether to give the loop a turn."""
_YIELD_AFTER = 0.02
"""Seconds publishing may hold the event loop before it gives it a turn."""


class NodePublisher:
    """``outbox.relay.Publisher`` for a relay that runs inside a gateway node."""

    def __init__(
        self, delivery: RoomDelivery, channel: RedisChannel | None, *, offsets: bool = True
    ) -> None:
        self._delivery = delivery
        self._channel = channel
        self._offsets = offsets
        """Hand clients each event's offset (connection state recovery, docs/decisions/0009)."""
        self._published = 0
        self._turn_started = time.monotonic()
        self._in_turn = False

    def _turn_ended(self) -> None:
        self._in_turn = False

    async def publish(self, events: Sequence[Outgoing]) -> None:
        """Deliver ``events`` here while they go to the Redis channel (if any).

        The pipeline to Redis is started first and runs while this node's
        sockets are written to, so the other nodes do not wait for this node's
        fan-out, nor this node's sockets for Redis. The call returns when both
        are done.

        Every ``_YIELD_EVERY`` events, if publishing has held the loop for more
        than ``_YIELD_AFTER`` seconds, the loop is yielded to: a relay batch fans out
        to every local socket synchronously, and without a turn in between the
        sockets' writers, pings and handlers would wait for the whole batch. A
        quick batch is not cut (its ``room:events`` frame stays one frame).

        Raises:
            PublishFailed: Redis did not take the whole batch (this node's
                sockets have it already).
        """
        offsets = self._offsets
        broadcasts = [
            (
                outgoing.event,
                (outgoing.payload, outgoing.offset) if offsets else outgoing.payload,
                room_name(outgoing.room_id),
            )
            for outgoing in events
        ]
        channel = self._channel
        if channel is None:
            await self._deliver_here(broadcasts)
            return
        sending = asyncio.ensure_future(
            channel.publish([channel.message(*broadcast) for broadcast in broadcasts])
        )
        try:
            await asyncio.sleep(0)  # one turn: the pipeline is written before the fan-out
            await self._deliver_here(broadcasts)
        except BaseException:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            raise
        await sending

    async def _deliver_here(self, broadcasts: list[tuple[str, Any, str]]) -> None:
        delivery = self._delivery
        for event, data, room in broadcasts:
            if not self._in_turn:  # the first event published in this turn of the loop
                self._in_turn = True
                self._turn_started = time.monotonic()
                asyncio.get_running_loop().call_soon(self._turn_ended)
            self._published += 1
            if (
                self._published % _YIELD_EVERY == 0
                and time.monotonic() - self._turn_started > _YIELD_AFTER
            ):
                await asyncio.sleep(0)  # a turn of the loop for everyone else
            await delivery.deliver(event, data, "/", room)
