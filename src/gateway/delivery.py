"""This node's delivery of room events to its sockets: one plain object, ``RoomDelivery``.

Every room event reaching this node passes here once, in the relay's order:
from the relay in this process (``gateway.publisher``), or from another node
through Redis (``gateway.sockets.RedisSockets`` hands python-socketio's
decoded message over). It writes to the sockets through ``Sockets``, a narrow
port onto python-socketio's client manager (who is in a room, eio sids,
leaving a room, the Engine.IO queues); the manager is a part, not a base class.
What it does on the way:

* **Gates.** While a socket's ``room:subscribe`` replays history, live
  broadcasts for that room are held for it and flushed after the replay, so it
  sees one stream in seq order with no hole between history and live.
* **Evictions.** When ``participant:left`` names a user, or ``room:deleted``
  closes the room, this node's sockets of that user (or all) leave the room
  right after the event: a removed user receives nothing after the removal.
* **Batch subscribers.** A socket that subscribed with ``batch: true`` gets the
  room's events as ``room:events`` frames (arrays of payloads): the room
  events broadcast during one event-loop tick are collected and sent as one
  frame, encoded once for every batch subscriber of the room.

Delivery writes each packet straight onto the sockets' Engine.IO queues: the
packet is encoded once per broadcast and no task is created per recipient
(python-socketio's ``AsyncManager.emit`` creates one per recipient and waits
for all of them; profiles put ~40 % of fan-out CPU there).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from engineio import packet as eio_packet

from roomcast.domain.state import UserRef
from roomcast.gateway import jsoncodec
from roomcast.gateway.history import RecentEvents
from roomcast.gateway.positions import RoomPositions, Verdict
from roomcast.metrics import BROADCASTS
from roomcast.service.feed import LiveFeed
from roomcast.service.visibility import left_user, seq_of

__all__ = [
    "BATCH_EVENT",
    "Registry",
    "RoomDelivery",
    "Sockets",
    "payload_of",
    "room_name",
    "seq_of",
]

BATCH_EVENT = "room:events"
"""The event that carries an array of room event payloads to a batch subscriber."""


def room_name(room_id: str) -> str:
    return f"room:{room_id}"


def stream_of(room: str) -> str:
    """The stream id behind a room's name (``room_name``'s inverse)."""
    return room.removeprefix("room:")


def payload_of(data: Any) -> Any:
    """A relayed broadcast's data is ``(payload, offset)`` (gateway/recovery.py): the payload."""
    return data[0] if isinstance(data, tuple) else data


class Registry:
    """This node's sockets: who they are, and which (room, socket) pairs are gated."""

    def __init__(self) -> None:
        self.users: dict[str, UserRef] = {}
        self.sids_of_user: defaultdict[str, set[str]] = defaultdict(set)
        self.gates: dict[str, dict[str, list[tuple[str, str, Any]]]] = {}
        """Per room, the sockets whose subscribe replays it: their ``holding`` list."""
        self.holding: dict[str, list[tuple[str, str, Any]]] = {}
        """Per socket with a subscribe running: every room broadcast held for it
        (room, event, data), in delivery order, its other rooms' included, so a
        live offset cannot claim what its replay has not sent yet (recovery.py)."""
        self.batch: dict[str, set[str]] = {}
        """Per room, the live (ungated) sockets that take its events as ``room:events``."""
        self.floors: dict[str, dict[str, tuple[int, bool]]] = {}
        """Per room, sockets just out of a subscribe: (the last seq it sent them, batch).
        Live events up to that seq are duplicates of the replay and are not sent; the
        first one above it ends the floor (the relay publishes a room in seq order)."""

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
        for room in [r for r, sids in self.batch.items() if sid in sids]:
            self.set_batch(room, sid, False)
        for room in [r for r, floored in self.floors.items() if sid in floored]:
            self.drop_floor(room, sid)

    def is_batch(self, room: str, sid: str) -> bool:
        """Whether ``sid`` takes ``room``'s events as ``room:events`` frames."""
        if sid in self.batch.get(room, ()):
            return True
        floor = self.floors.get(room, {}).get(sid)
        return floor is not None and floor[1]

    def drop_floor(self, room: str, sid: str) -> None:
        floored = self.floors.get(room)
        if floored is not None:
            floored.pop(sid, None)
            if not floored:
                del self.floors[room]

    def set_batch(self, room: str, sid: str, batch: bool) -> None:
        if batch:
            self.batch.setdefault(room, set()).add(sid)
            return
        sids = self.batch.get(room)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self.batch[room]

    def open_gate(self, room: str, sid: str) -> None:
        self.gates.setdefault(room, {})[sid] = self.holding.setdefault(sid, [])

    def take(self, sid: str) -> list[tuple[str, str, Any]]:
        """What was held for ``sid`` so far, all rooms (the gates stay open)."""
        held = self.holding.get(sid)
        if not held:
            return []
        taken = held[:]
        held.clear()
        return taken

    def close_gate(self, room: str, sid: str) -> None:
        gated = self.gates.get(room)
        if gated is not None:
            gated.pop(sid, None)
            if not gated:
                del self.gates[room]
        if sid in self.holding and not any(sid in g for g in self.gates.values()):
            del self.holding[sid]


class Sockets(Protocol):
    """The port onto python-socketio's client manager that delivery writes through.

    ``gateway.sockets`` implements it on the manager python-socketio is given
    (the manager keeps the rooms; delivery only reads them and asks to leave).
    """

    @property
    def rooms(self) -> dict[str, dict[str, dict[str, Any]]]:
        """namespace → room → sid → eio sid (``AsyncManager.rooms``): read only."""
        ...

    def get_participants(self, namespace: str, room: str) -> Iterator[tuple[str, str]]:
        """(sid, eio sid) of this node's sockets in ``room``."""
        ...

    def eio_sid_from_sid(self, sid: str, namespace: str) -> str | None: ...

    async def leave_room(self, sid: str, namespace: str, room: str) -> Any:
        """Take a socket out of a room; the leave hook (presence, typing) runs too."""
        ...

    def eio_socket(self, eio_sid: str) -> Any:
        """The Engine.IO socket (its ``queue``, ``closed``), or None when gone."""
        ...

    def packet(self, namespace: str, data: list[Any]) -> Any:
        """A Socket.IO EVENT packet of the server's packet class, not encoded yet."""
        ...


class RoomDelivery:
    """This node's room delivery: gates, floors, frames, positions, evictions,
    recent events and the SSE feed, written to sockets through ``Sockets``."""

    on_hole: Callable[[str], None] | None = None
    """Called with a room's name when events wait behind a hole (``roomwatch.PositionWatch``
    refills it from the log)."""

    def __init__(
        self,
        sockets: Sockets,
        registry: Registry,
        recent: RecentEvents | None = None,
        feed: LiveFeed | None = None,
    ) -> None:
        self.sockets = sockets
        self.registry = registry
        self.feed = LiveFeed() if feed is None else feed
        """Listeners other than sockets (SSE streams), handed each room event first."""
        self.recent = RecentEvents(per_room=0, total=0) if recent is None else recent
        self.positions = RoomPositions()
        self._ticks: dict[tuple[str, str], list[Any]] = {}
        """Room events waiting for this tick's ``room:events`` frame, per (namespace, room)."""
        self.position: str | None = None
        """The offset of the last relayed event delivered here in order (recovery.py)."""
        self.offsets = True
        """Deliver relayed events with their offset as a last argument (recovery on)."""

    # ------------------------------------------------------------ writing

    def packets(self, namespace: str, event: str, args: Sequence[Any]) -> list[Any]:
        """One Socket.IO event as Engine.IO packets, encoded once for any number of sockets."""
        pkt = self.sockets.packet(namespace, [event, *args])
        encoded = pkt.encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        return [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]

    def event_packet(self, namespace: str, event: str, data: Any, offset: str | None = None) -> Any:
        """One room event (or a ``room:events`` array of them) as one Engine.IO packet.

        Room payloads are JSON (``msgspec.Raw`` or, from Redis, decoded dicts)
        and never binary, so this writes the Socket.IO v5 EVENT packet itself
        (``2[/nsp,]<json>``) instead of python-socketio's ``Packet``, which walks
        the data looking for bytes: ~8 % of a replay's CPU in a profile.
        """
        if isinstance(data, tuple):
            data, offset = data
        body = jsoncodec.dumps([event, data] if offset is None else [event, data, offset])
        head = "2" if namespace == "/" else f"2{namespace},"
        return eio_packet.Packet(eio_packet.MESSAGE, head + body)

    def put(self, eio_sid: str, packets: Iterable[Any]) -> None:
        """Queue packets on one socket, synchronously.

        This is what engineio's ``AsyncSocket.send`` does (its queue is
        unbounded, so ``put`` never waits), minus its per-packet ping check and
        log call: the socket's own ping task closes a silent client anyway. A
        socket that is gone or closing is skipped, as ``send_packet`` does.
        """
        socket = self.sockets.eio_socket(eio_sid)
        if socket is None or socket.closed:
            return
        for pkt in packets:
            socket.queue.put_nowait(pkt)

    def send(self, sid: str, namespace: str, event: str, args: Sequence[Any]) -> None:
        """Send one event to one socket of this node (no Redis hop, no task)."""
        eio_sid = self.sockets.eio_sid_from_sid(sid, namespace)
        if eio_sid is not None:
            self.put(eio_sid, self.packets(namespace, event, args))

    # ------------------------------------------------------------ gates

    def open_gate(self, room: str, sid: str, namespace: str = "/") -> None:
        """Hold the room's broadcasts for ``sid`` from now on (its subscribe replays)."""
        self.flush(room, namespace)  # what was broadcast before goes out as before
        self.registry.open_gate(room, sid)

    def close_gate(
        self, room: str, sid: str, *, batch: bool, floor: int = 0, namespace: str = "/"
    ) -> None:
        """Deliver live to ``sid`` again, as ``room:events`` frames when ``batch``.

        ``floor``: the last seq the subscribe sent; live events up to it are not
        sent again (the replay read them before the relay published them).
        Synchronous on purpose: the caller's last ``take()`` and this call must
        have no ``await`` between them. The tick's frame is flushed first: what
        it holds was also held at the gate, and went out with the replay.
        """
        self.flush(room, namespace)
        self.registry.close_gate(room, sid)
        self.registry.set_batch(room, sid, False)
        self.registry.drop_floor(room, sid)
        if floor > 0:
            # Joins the frame's recipients at its first event above the floor.
            self.registry.floors.setdefault(room, {})[sid] = (floor, batch)
        else:
            self.registry.set_batch(room, sid, batch)

    # ------------------------------------------------------------ broadcasting

    async def deliver(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str,
        skip_sid: Any = None,
    ) -> None:
        """One broadcast to ``room`` (python-socketio's emit arguments), on this node.

        A room event (its payload has a ``seq``) goes through the room's
        position first: a duplicate is dropped, one past a hole waits for the
        refill (``on_hole``). Relayed data is ``(payload, offset)``.
        """
        target = room
        relayed = (
            isinstance(data, tuple)
            and len(data) == 2
            and isinstance(data[1], str)
            and target.startswith("room:")
        )
        if relayed and not self.offsets:
            data, relayed = data[0], False
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        seq = seq_of(data) if (len(args) == 1 or relayed) and target.startswith("room:") else 0
        if seq <= 0:
            await self._deliver(event, data, args, namespace, target, 0, skip_sid)
            return
        positions = self.positions
        verdict = positions.arrive(target, seq, event, data, listened=self.listened(target))
        if verdict is Verdict.DROP:
            return
        if verdict is Verdict.HOLD:
            if not positions.owned(target):
                self.hole(target)
            return
        try:
            await self._deliver(event, data, args, namespace, target, seq, skip_sid)
            while (following := positions.take_next(target)) is not None:
                next_seq, next_event, next_data = following
                await self._deliver(next_event, next_data, [next_data], namespace, target, next_seq)
        finally:
            gap = positions.release(target)
        if gap:
            self.hole(target)

    def listened(self, room: str) -> bool:
        """Whether a socket of this node is in ``room``, on "/" or on seed 003's
        ``/rooms/{roomId}`` namespace."""
        rooms = self.sockets.rooms
        return bool(rooms.get("/", {}).get(room)) or bool(
            rooms.get("/rooms/" + stream_of(room), {}).get(room)
        )

    def hole(self, room: str) -> None:
        """Events for ``room`` wait behind a hole: have it refilled from the log."""
        if self.on_hole is not None:
            self.on_hole(room)

    async def deliver_logged(self, room: str, event: str, data: Any, seq: int) -> None:
        """Deliver an event a refill read from the log (its position already moved)."""
        await self._deliver(event, data, [data], "/", room, seq)

    async def _deliver(
        self,
        event: str,
        data: Any,
        args: list[Any],
        namespace: str,
        target: str,
        seq: int,
        skip_sid: Any = None,
    ) -> None:
        """Send one event to this node's sockets in ``target``: gates, floors, frames, evictions."""
        payload = data
        if isinstance(data, tuple) and seq > 0:  # relayed: (payload, offset)
            payload = data[0]
            if self.positions.holding():
                # Events wait here behind a hole: what is sent now is out of the
                # relay's order, so it claims no position (docs/decisions/0009).
                data, args = payload, [payload]
            else:
                self.position = data[1]
        if seq > 0:  # a room event: kept for replays, whether anyone here listens or not
            self.recent.record(target, event, payload, seq)
            if event == "room:deleted":
                self.recent.forget(target)
            if self.feed:  # this node's SSE streams (service/feed.py), in the same order
                self.feed.deliver(target, event, payload, seq)
        sockets = self.sockets
        rooms = sockets.rooms
        if not rooms:  # (a room namespace's sockets may be here without "/")
            return
        if isinstance(skip_sid, list):
            skip: set[str] = set(skip_sid)
        else:
            skip = set() if skip_sid is None else {skip_sid}
        gated = self.registry.gates.get(target)
        if gated:
            for sid, held in gated.items():
                held.append((target, event, data))
                skip.add(sid)
        floors = self.registry.floors.get(target)
        if floors:
            self._apply_floors(target, namespace, floors, seq, skip)
        batch = self.registry.batch.get(target)
        if batch:
            if seq > 0:  # a room event: into this tick's frame
                self._collect(namespace, target, payload)
                skip |= batch
            else:  # anything else must not overtake the frame being collected
                self.flush(target, namespace)
        packets: list[Any] | None = None
        holding = self.registry.holding if target.startswith("room:") else None
        for sid, eio_sid in sockets.get_participants(namespace, target):
            if sid not in skip:
                if holding and sid in holding:  # another room of it is replaying
                    holding[sid].append((target, event, data))
                    continue
                if packets is None:
                    packets = self.packets(namespace, event, args)
                self.put(eio_sid, packets)
        if namespace == "/" and len(rooms) > ("/" in rooms) and target.startswith("room:"):
            # Sockets of seed 003's room namespace, "/rooms/{roomId}", get the
            # room's events too (encoded for their namespace).
            room_ns = "/rooms/" + target[5:]
            ns_packets: list[Any] | None = None
            for sid, eio_sid in sockets.get_participants(room_ns, target):
                if sid not in skip:
                    if holding and sid in holding:
                        holding[sid].append((target, event, data))
                        continue
                    if ns_packets is None:
                        ns_packets = self.packets(room_ns, event, args)
                    self.put(eio_sid, ns_packets)
        if target.startswith("room:"):
            BROADCASTS.inc()
            await self.evict_after(event, payload, namespace, target)

    def _apply_floors(
        self,
        room: str,
        namespace: str,
        floors: dict[str, tuple[int, bool]],
        seq: int,
        skip: set[str],
    ) -> None:
        if seq <= 0:
            return  # not a room event: floors are about seqs
        for sid, (floor, batch) in list(floors.items()):
            if seq <= floor:
                skip.add(sid)  # its subscribe already sent this one
                continue
            self.registry.drop_floor(room, sid)
            if batch:
                # The tick's frame so far predates this socket's stream: send it
                # to the others first, then let this socket join the frame.
                self.flush(room, namespace)
                self.registry.set_batch(room, sid, True)

    def _collect(self, namespace: str, room: str, data: Any) -> None:
        key = (namespace, room)
        tick = self._ticks.get(key)
        if tick is None:
            tick = self._ticks[key] = []
            # After the running callback: a relay batch published without a
            # pause becomes one frame.
            asyncio.get_running_loop().call_soon(self.flush, room, namespace)
        tick.append(data)

    def flush(self, room: str, namespace: str = "/") -> None:
        """Send the room's collected events, one ``room:events`` frame for all its batch sockets.

        The recipients are the batch sockets live in the room now: every change
        to that set (a gate opening or closing, a socket leaving) flushes first.
        """
        payloads = self._ticks.pop((namespace, room), None)
        sids = self.registry.batch.get(room)
        if not payloads or not sids:
            return
        gated = self.registry.gates.get(room, {})
        packets = [self.event_packet(namespace, BATCH_EVENT, payloads)]
        for sid in sids:
            if sid not in gated:
                eio_sid = self.sockets.eio_sid_from_sid(sid, namespace)
                if eio_sid is not None:
                    self.put(eio_sid, packets)

    def leaving(self, sid: str, namespace: str, room: str) -> None:
        """A socket of this node is about to leave ``room`` (``Sockets.leave_room`` calls it)."""
        self.flush(room, namespace)  # events broadcast while it was in the room still reach it
        self.registry.set_batch(room, sid, False)
        self.registry.drop_floor(room, sid)

    async def _evict_room_namespace(self, event: str, data: Any, room: str) -> None:
        """The same evictions for the room's sockets on seed 003's ``/rooms/{roomId}``:
        they stay connected and receive nothing more of the room."""
        room_ns = "/rooms/" + room[5:]
        members = self.sockets.rooms.get(room_ns, {}).get(room, {})
        if not members:
            return
        if event == "participant:left":
            user_id = left_user(data)
            evicted = [s for s in self.registry.sids_of_user.get(user_id or "", ()) if s in members]
        else:
            evicted = list(members)
        for sid in evicted:
            await self.sockets.leave_room(sid, room_ns, room)
            if event == "room:deleted":
                self.registry.close_gate(room, sid)

    async def evict_after(self, event: str, data: Any, namespace: str, room: str) -> None:
        """Apply the membership consequence of a just-delivered event to local sockets."""
        rooms = self.sockets.rooms
        if len(rooms) > ("/" in rooms) and event in ("participant:left", "room:deleted"):
            await self._evict_room_namespace(event, data, room)
        if event == "participant:left":
            user_id = left_user(data)
            members = rooms.get(namespace, {}).get(room, {})
            evicted = [s for s in self.registry.sids_of_user.get(user_id or "", ()) if s in members]
            reason = "not_a_member"
        elif event == "room:deleted":
            evicted = [sid for sid, _ in self.sockets.get_participants(namespace, room)]
            reason = "room_deleted"
        else:
            return
        # One after the other (each leave hook awaits): the room's next events
        # wait meanwhile (this delivery owns the room, gateway/positions.py).
        for sid in evicted:
            gated = sid in self.registry.gates.get(room, {})
            await self.sockets.leave_room(sid, namespace, room)  # the tick's frame goes out first
            if event == "room:deleted":
                self.registry.close_gate(room, sid)
            elif gated:
                # A gate stays: a subscribe still replaying flushes the held
                # participant:left to the socket, then refuses (server._subscribe).
                continue
            # Told it is out, so it stops asking for the room's events.
            self.send(
                sid, namespace, "room:unsubscribed", [{"roomId": stream_of(room), "reason": reason}]
            )
