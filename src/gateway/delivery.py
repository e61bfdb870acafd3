"""Local delivery of room broadcasts, with the two hooks the protocol needs.

python-socketio delivers a room broadcast to this node's sockets in
``AsyncManager.emit`` (with Redis, every node runs it for every broadcast). We
hook in there, below the Redis layer, so both hooks work on every node:

* **Gates.** While a socket's ``room:subscribe`` replays history, live
  broadcasts for that room are held for it and flushed after the replay, so it
  sees one stream in seq order with no hole between history and live.
* **Evictions.** When ``participant:left`` names a user, or ``room:deleted``
  closes the room, this node's sockets of that user (or all) leave the room
  right after the event: a removed user receives nothing after the removal.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec
import socketio

from roomcast.domain.state import UserRef
from roomcast.metrics import BROADCASTS

__all__ = ["LocalDelivery", "RedisDelivery", "Registry", "Visibility", "room_name", "seq_of"]


def room_name(room_id: str) -> str:
    return f"room:{room_id}"


class _Seq(msgspec.Struct):
    seq: int = 0


class _Left(msgspec.Struct, rename="camel"):
    user_id: str = ""


class _Joined(msgspec.Struct):
    participant: _Left = msgspec.field(default_factory=_Left)


_seq_decoder = msgspec.json.Decoder(_Seq)
_left_decoder = msgspec.json.Decoder(_Left)
_joined_decoder = msgspec.json.Decoder(_Joined)


def seq_of(data: Any) -> int:
    if isinstance(data, msgspec.Raw):
        return _seq_decoder.decode(data).seq
    if isinstance(data, dict):
        return int(data.get("seq", 0))
    return 0


def left_user(data: Any) -> str | None:
    if isinstance(data, msgspec.Raw):
        return _left_decoder.decode(data).user_id or None
    if isinstance(data, dict):
        user = data.get("userId")
        return user if isinstance(user, str) else None
    return None


def joined_user(data: Any) -> str | None:
    if isinstance(data, msgspec.Raw):
        return _joined_decoder.decode(data).participant.user_id or None
    if isinstance(data, dict):
        participant = data.get("participant")
        user = participant.get("userId") if isinstance(participant, dict) else None
        return user if isinstance(user, str) else None
    return None


class Visibility:
    """Which events of a room's history a user may see while it is replayed to them.

    A user who is a member now sees the log, except what happened between their
    leaving (or removal) and their next joining: they get the ``participant:left``
    that ended their membership, then nothing until their ``participant:joined``.
    History before their first join is the room's record and stays visible. The
    starting point comes from the log (``EventStore.member_after``), so the same
    events are hidden whatever ``afterSeq`` a replay starts from.
    """

    def __init__(self, user_id: str, *, member: bool) -> None:
        self.user_id = user_id
        self.member = member
        """Whether the user was a member at the point the replay starts from."""

    def admit(self, event: str, data: Any) -> bool:
        if event == "participant:joined" and joined_user(data) == self.user_id:
            self.member = True
            return True
        if self.member and event == "participant:left" and left_user(data) == self.user_id:
            self.member = False
            return True
        return self.member


class Registry:
    """This node's sockets: who they are, and which (room, socket) pairs are gated."""

    def __init__(self) -> None:
        self.users: dict[str, UserRef] = {}
        self.sids_of_user: defaultdict[str, set[str]] = defaultdict(set)
        self.gates: dict[str, dict[str, list[tuple[str, Any]]]] = {}

    def add(self, sid: str, user: UserRef) -> None:
        self.users[sid] = user
        self.sids_of_user[user.id].add(sid)

    def remove(self, sid: str) -> None:
        user = self.users.pop(sid, None)
        if user is not None:
            sids = self.sids_of_user[user.id]
            sids.discard(sid)
            if not sids:
                del self.sids_of_user[user.id]
        for room in [r for r, gated in self.gates.items() if sid in gated]:
            self.close_gate(room, sid)

    def open_gate(self, room: str, sid: str) -> None:
        self.gates.setdefault(room, {})[sid] = []

    def take(self, room: str, sid: str) -> list[tuple[str, Any]]:
        """What was held for ``sid`` so far (the gate stays open)."""
        gated = self.gates.get(room, {})
        held = gated.get(sid, [])
        if held:
            gated[sid] = []
        return held

    def close_gate(self, room: str, sid: str) -> None:
        gated = self.gates.get(room)
        if gated is not None:
            gated.pop(sid, None)
            if not gated:
                del self.gates[room]


class LocalDelivery(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's in-process manager, with gates and evictions."""

    registry: Registry

    def bind(self, registry: Registry) -> None:
        self.registry = registry

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
        gated = self.registry.gates.get(target) if target else None
        if gated:
            skip = list(skip_sid) if isinstance(skip_sid, list) else [skip_sid]
            for sid, held in gated.items():
                held.append((event, data))
                skip.append(sid)
            skip_sid = skip
        await super().emit(
            event, data, namespace, room=target, skip_sid=skip_sid, callback=callback, **kwargs
        )
        if target and target.startswith("room:"):
            BROADCASTS.inc()
            await self.evict_after(event, data, namespace, target)

    async def evict_after(self, event: str, data: Any, namespace: str, room: str) -> None:
        """Apply the membership consequence of a just-delivered event to local sockets."""
        if event == "participant:left":
            user_id = left_user(data)
            for sid in list(self.registry.sids_of_user.get(user_id or "", ())):
                # A gate stays: a subscribe still replaying flushes the held
                # participant:left to the socket, then refuses (server._subscribe).
                await self.leave_room(sid, namespace, room)
        elif event == "room:deleted":
            for sid, _ in list(self.get_participants(namespace, room)):
                await self.leave_room(sid, namespace, room)
                self.registry.close_gate(room, sid)


class RedisDelivery(socketio.AsyncRedisManager, LocalDelivery):  # type: ignore[misc]
    """Several nodes share broadcasts through Redis; each node delivers locally via
    ``LocalDelivery.emit`` (it sits below the pub/sub layer in the MRO)."""
