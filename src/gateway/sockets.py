"""python-socketio's client manager as a part of delivery: two thin adapters.

python-socketio wants its ``client_manager`` to be a manager (it keeps the
rooms, the sids and the Engine.IO links there), so roomcast gives it one, and
that manager only forwards: a room broadcast goes to the node's
``delivery.RoomDelivery``, a socket leaving a room tells the delivery first and
the leave hook (presence, typing) after. Both implement ``delivery.Sockets``,
the port the delivery writes through.

* ``LocalSockets(AsyncManager)``: one node, no Redis; ``emit`` to one room
  forwards to the delivery.
* ``RedisSockets(AsyncRedisManager)``: several nodes. A message another node
  put on the Redis channel is delivered locally in
  ``AsyncPubSubManager._handle_emit``; it forwards there. Its ``_publish`` and
  ``_listen`` forward to ``redislink.RedisChannel`` (notices are best effort
  and never wait; the listener comes back within a second). Relayed events do
  not pass through here at all: ``publisher.Publisher`` hands them to the
  delivery and to the channel itself.

Each hook is pinned, covered by tests/contract/test_socketio_internals.py or
tests/contract/test_socketio_redis_internals.py, and listed in
docs/architecture.md.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import socketio
from socketio import packet as sio_packet

from roomcast.gateway.delivery import Registry, RoomDelivery
from roomcast.gateway.history import RecentEvents
from roomcast.gateway.redislink import RedisChannel
from roomcast.service.feed import LiveFeed

__all__ = ["LocalSockets", "OnLeave", "RedisSockets"]

OnLeave = Callable[[str, str], Awaitable[None]]
"""``on_leave(sid, room)``, after one of this node's sockets has left the room."""


class LocalSockets(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's in-process manager; room broadcasts go to the delivery."""

    def __init__(
        self,
        registry: Registry,
        recent: RecentEvents | None = None,
        feed: LiveFeed | None = None,
    ) -> None:
        super().__init__()
        self.delivery = RoomDelivery(self, registry, recent, feed)
        self.on_leave: OnLeave | None = None

    def eio_socket(self, eio_sid: str) -> Any:
        return self.server.eio.sockets.get(eio_sid)

    def packet(self, namespace: str, data: list[Any]) -> Any:
        return self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=data)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        target = to or room
        if callback is not None or not isinstance(target, str):
            # Acks on a broadcast, a broadcast to everyone or to several rooms:
            # python-socketio's own path (roomcast sends none of these).
            await super().emit(
                event, data, namespace, room=target, skip_sid=skip_sid, callback=callback, **kwargs
            )
            return
        await self.delivery.deliver(event, data, namespace, target, skip_sid)

    async def leave_room(self, sid: str, namespace: str, room: str) -> Any:
        self.delivery.leaving(sid, namespace, room)
        result = await super().leave_room(sid, namespace, room)
        if self.on_leave is not None:
            await self.on_leave(sid, room)
        return result


class RedisSockets(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager; what reaches this node goes to the delivery."""

    redis: Any

    def __init__(
        self,
        url: str,
        registry: Registry,
        recent: RecentEvents | None = None,
        feed: LiveFeed | None = None,
        *,
        channel: str = "roomcast",
        json: Any = None,
    ) -> None:
        super().__init__(url, channel=channel, json=json)
        self.delivery = RoomDelivery(self, registry, recent, feed)
        self.on_leave: OnLeave | None = None
        self.redis_channel = RedisChannel(url, channel, host_id=self.host_id)
        """The node's Redis channel: strict publishes, notices, the listener."""

    def eio_socket(self, eio_sid: str) -> Any:
        return self.server.eio.sockets.get(eio_sid)

    def packet(self, namespace: str, data: list[Any]) -> Any:
        return self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=data)

    @property
    def on_listening(self) -> Callable[[], None] | None:
        return self.redis_channel.on_listening

    @on_listening.setter
    def on_listening(self, callback: Callable[[], None] | None) -> None:
        self.redis_channel.on_listening = callback

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        """A broadcast to deliver on this node (another node's, or one of ours)."""
        room = message.get("room")
        if message.get("callback") is not None or not isinstance(room, str):
            await super()._handle_emit(message)  # python-socketio's own path
            return
        data = message["data"]
        if message.get("binary"):  # as AsyncPubSubManager._handle_emit decodes it
            attachments = [base64.b64decode(a) for a in data[1:]]
            data = sio_packet.Packet.reconstruct_binary(data[0], attachments)
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        await self.delivery.deliver(
            message["event"],
            data,
            message.get("namespace") or "/",
            room,
            message.get("skip_sid"),
        )

    async def leave_room(self, sid: str, namespace: str, room: str) -> Any:
        local = self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)
        if local:
            self.delivery.leaving(sid, namespace, room)
        result = await super().leave_room(sid, namespace, room)
        if self.on_leave is not None:
            await self.on_leave(sid, room)
        return result

    async def _publish(self, data: Any) -> None:
        # Notices (presence, typing, remote room changes): best effort, never waiting.
        await self.redis_channel.notice(data)

    async def _listen(self) -> AsyncIterator[Any]:
        async for message in self.redis_channel.listen():
            yield message

    async def close(self) -> None:
        """Stop listening and close the Redis clients; for shutdown."""
        await self.redis_channel.close(getattr(self, "thread", None))
