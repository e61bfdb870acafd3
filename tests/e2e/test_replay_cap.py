"""A subscribe replays at most ``ROOMCAST_SUBSCRIBE_REPLAY_MAX`` seqs inline; the
clients page the rest with ``room:replay`` (docs/decisions/0019-subscribe-replay-cap.md).

On a node whose cap is CAP, a room holds several times that many events. The
Python client, and a plain python-socketio client written from docs/protocol.md
alone, each end with 1..head once and in order, while live events are committed
and delivered in the middle of their paging (a handler inside the paged range
commits one and waits until it has been broadcast). Connection state recovery is
not capped: a recovered socket (seed 003's client, which cannot page) gets
everything it missed from the server itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from roomcast.client import RoomcastClient, SubscriptionError
from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from . import test_js_client
from .csr import CsrSocket
from .support import Recorder, Wire, create_room, rename_many, user_id
from .test_js_client import JS_DIR

node_exe = test_js_client.node  # the fixture that finds node and installs socket.io-client
PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

CAP = 40
HEAD = 5 * CAP
"""A room of this many events: the subscribe replays CAP of them, the client pages the rest."""
PAUSE_AT = 3 * CAP
"""The paged seq whose handler commits a live event and waits for its broadcast."""
LIVE = 3
"""Live events committed while the client is paging."""


@pytest.fixture(scope="module")
def node(
    own_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=own_database_url,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("replay-cap")),
        rest_rate_limit=0,
        subscribe_replay_max=CAP,
    )
    with run_server(settings) as running:
        yield running


@pytest.fixture
async def http(node: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
        yield client


@pytest.fixture
async def observer(node: RunningServer) -> AsyncIterator[Callable[[str, str], Awaitable[Wire]]]:
    """A live-only socket in a room: it sees when an event has been broadcast."""
    opened: list[socketio.AsyncClient] = []

    async def make(org: str, room_id: str) -> Wire:
        client = socketio.AsyncClient(reconnection=False)
        wire = Wire()
        client.on("*", wire.record)
        await client.connect(node.url, auth={"token": node.token(org)}, transports=["websocket"])
        opened.append(client)
        ack = await client.call("room:subscribe", {"roomId": room_id}, timeout=30)
        assert ack["success"] is True, ack
        return wire

    yield make
    for client in opened:
        await client.disconnect()


async def full_room(http: httpx.AsyncClient, node: RunningServer, org: str) -> str:
    room_id = await create_room(http, node, org)
    await rename_many(http, node, org, room_id, HEAD - 1)
    return room_id


class LiveDuringPaging:
    """Called for each delivered seq: at PAUSE_AT (inside the paged range) it commits
    LIVE events one by one, each awaited until the observer has it, so each is on the
    wire to the paging client before it has delivered PAUSE_AT."""

    def __init__(self, http: httpx.AsyncClient, node: RunningServer, org: str, room_id: str):
        self.http, self.node, self.org, self.room_id = http, node, org, room_id
        self.wire: Wire | None = None
        self.committed: list[int] = []

    async def __call__(self, seq: int) -> None:
        if seq != PAUSE_AT or self.committed:
            return
        assert self.wire is not None
        for i in range(LIVE):
            response = await self.http.patch(
                f"/api/rooms/{self.room_id}",
                json={"name": f"live {i}"},
                headers=self.node.auth(self.org),
            )
            assert response.status_code == 200, response.text
            seq_now = HEAD + i + 1
            await self.wire.wait_for_seq(seq_now)
            self.committed.append(seq_now)


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "single"])
async def test_the_python_client_pages_past_the_cap_while_live_events_arrive(
    node: RunningServer, http: httpx.AsyncClient, observer: Any, batch: bool
):
    org = user_id()
    room_id = await full_room(http, node, org)
    live = LiveDuringPaging(http, node, org, room_id)
    live.wire = await observer(org, room_id)
    recorder = Recorder()
    notices: list[dict[str, Any]] = []

    async def on_any(event: str, payload: dict[str, Any]) -> None:
        if event == "room:subscribed":
            notices.append(payload)
        await recorder(event, payload)
        if "seq" in payload and "eventId" in payload:
            await live(payload["seq"])

    async with RoomcastClient(node.url, node.token(org), batch=batch) as client:
        client.on("*", on_any)
        ack = await client.subscribe(room_id, last_seq=0)
        assert ack["headSeq"] == HEAD
        assert ack["replaying"] == CAP
        assert ack["replay"] == {"truncated": True, "nextAfter": CAP}
        await recorder.wait_for_seq(HEAD + LIVE)
        assert live.committed == list(range(HEAD + 1, HEAD + LIVE + 1))
        assert recorder.seqs == list(range(1, HEAD + LIVE + 1))
        assert len({p["eventId"] for _, p in recorder.events}) == HEAD + LIVE
        assert client.gaps_refilled >= 1  # the part past the cap came by room:replay
        [notice] = notices
        assert notice["replay"] == {"truncated": True, "nextAfter": CAP}
        assert notice["replayed"] == CAP


@pytest.mark.parametrize(
    "failure",
    [
        socketio.exceptions.TimeoutError(),
        SubscriptionError("SERVICE_UNAVAILABLE", "the database is unavailable", {"retryAfter": 0}),
    ],
    ids=["ack-lost", "refused-for-now"],
)
async def test_a_failed_page_is_tried_again_in_a_room_that_stays_quiet(
    node: RunningServer, http: httpx.AsyncClient, failure: Exception
):
    """The first ``room:replay`` fails (its ack lost, or a refusal a later try may not
    get) and no event follows: the client tries the page again after its backoff
    instead of waiting for a next event that never comes."""
    org = user_id()
    room_id = await full_room(http, node, org)
    recorder = Recorder()
    async with RoomcastClient(node.url, node.token(org), retry_initial=0.05) as client:
        real_call, failed = client.sio.call, []

        async def call(event: str, data: Any = None, **kwargs: Any) -> Any:
            if event == "room:replay" and not failed:
                failed.append(data)
                raise failure
            return await real_call(event, data, **kwargs)

        client.sio.call = call  # type: ignore[method-assign]
        client.on("*", recorder)
        ack = await client.subscribe(room_id, last_seq=0)
        assert ack["replay"] == {"truncated": True, "nextAfter": CAP}
        await recorder.wait_for_seq(HEAD, within=30)
        assert failed == [{"roomId": room_id, "afterSeq": CAP, "limit": failed[0]["limit"]}]
        assert recorder.seqs == list(range(1, HEAD + 1))


class ProtocolDocClient:
    """A plain python-socketio client that follows docs/protocol.md's client rules and
    nothing else: lastSeq, duplicates dropped, gaps and a truncated subscribe's rest
    filled with room:replay, one event at a time."""

    def __init__(
        self, url: str, token: str, room_id: str, on_seq: Callable[[int], Awaitable[None]]
    ):
        self.url, self.token, self.room_id, self.on_seq = url, token, room_id, on_seq
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("*", self._wire)
        self.last_seq = 0
        self.ahead: dict[int, dict[str, Any]] = {}
        self.head_to_reach = 0  # a truncated subscribe's headSeq
        self.processed: list[dict[str, Any]] = []
        self.pages = 0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()

    async def start(self, last_seq: int) -> dict[str, Any]:
        self.last_seq = last_seq
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"])
        ack = await self.sio.call(
            "room:subscribe", {"roomId": self.room_id, "lastSeq": last_seq}, timeout=30
        )
        assert ack["success"] is True, ack
        data: dict[str, Any] = ack["data"]
        return data

    async def _wire(self, event: str, payload: Any = None, *_: Any) -> None:
        if not isinstance(payload, dict) or payload.get("roomId") != self.room_id:
            return
        if event == "room:subscribed":
            # The inline part is over; the rest up to headSeq is ours to page.
            if payload["replay"]["truncated"]:
                self.head_to_reach = max(self.head_to_reach, payload["headSeq"])
        elif isinstance(payload.get("seq"), int):
            if payload["seq"] > self.last_seq:  # rule 2: drop duplicates
                self.ahead[payload["seq"]] = payload
        else:
            return
        task = asyncio.create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        async with self._lock:  # rule 6: one at a time
            while True:
                for seq in [s for s in self.ahead if s <= self.last_seq]:
                    del self.ahead[seq]
                following = self.ahead.pop(self.last_seq + 1, None)
                if following is not None:  # rule 3
                    await self._process(following)
                    continue
                if self.ahead:  # rule 4: a gap up to the held event
                    before = min(self.ahead)
                elif self.head_to_reach > self.last_seq:  # the truncated subscribe's rest
                    before = self.head_to_reach + 1
                else:
                    return
                ack = await self.sio.call(
                    "room:replay",
                    {
                        "roomId": self.room_id,
                        "afterSeq": self.last_seq,
                        "limit": min(1000, before - self.last_seq - 1),
                    },
                    timeout=30,
                )
                assert ack["success"] is True, ack
                self.pages += 1
                page = ack["data"]
                for item in page["events"]:
                    if item["payload"]["seq"] > self.last_seq:
                        await self._process(item["payload"])
                self.last_seq = max(self.last_seq, page["nextAfter"])

    async def _process(self, payload: dict[str, Any]) -> None:
        self.last_seq = payload["seq"]
        async with self._changed:
            self.processed.append(payload)
            self._changed.notify_all()
        await self.on_seq(payload["seq"])

    async def wait_for(self, seq: int, within: float = 60) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: self.last_seq >= seq)

    async def close(self) -> None:
        await self.sio.disconnect()


async def test_a_client_written_from_the_protocol_doc_pages_past_the_cap(
    node: RunningServer, http: httpx.AsyncClient, observer: Any
):
    org = user_id()
    room_id = await full_room(http, node, org)
    live = LiveDuringPaging(http, node, org, room_id)
    live.wire = await observer(org, room_id)
    client = ProtocolDocClient(node.url, node.token(org), room_id, live)
    try:
        data = await client.start(last_seq=0)
        assert (data["headSeq"], data["fromSeq"], data["replaying"]) == (HEAD, 0, CAP)
        assert data["replay"] == {"truncated": True, "nextAfter": CAP}
        await client.wait_for(HEAD + LIVE)
        assert live.committed == list(range(HEAD + 1, HEAD + LIVE + 1))
        assert [p["seq"] for p in client.processed] == list(range(1, HEAD + LIVE + 1))
        assert len({p["eventId"] for p in client.processed}) == HEAD + LIVE
        # Inline: 1..CAP, flagged; the rest came through room:replay pages.
        inline = [p["seq"] for p in client.processed if p.get("replayed")]
        assert inline == list(range(1, CAP + 1))
        assert client.pages >= 1
    finally:
        await client.close()


async def test_a_subscribe_within_the_cap_is_not_truncated(
    node: RunningServer, http: httpx.AsyncClient
):
    org = user_id()
    room_id = await full_room(http, node, org)
    client = ProtocolDocClient(node.url, node.token(org), room_id, lambda _: asyncio.sleep(0))
    try:
        data = await client.start(last_seq=HEAD - CAP)
        assert data["replaying"] == CAP
        assert data["replay"] == {"truncated": False, "nextAfter": HEAD}
        await client.wait_for(HEAD)
        assert [p["seq"] for p in client.processed] == list(range(HEAD - CAP + 1, HEAD + 1))
        assert client.pages == 0
    finally:
        await client.close()


async def test_a_recovery_above_the_cap_is_replayed_whole_by_the_server(
    node: RunningServer, http: httpx.AsyncClient
):
    """Seed 003's client subscribes without lastSeq and cannot page: what a recovered
    session missed, however much, comes from the server, once each and in order."""
    org = user_id()
    room_id = await create_room(http, node, org)
    socket = CsrSocket(node.url, node.token(org))
    await socket.connect()
    ack = await socket.call("room:subscribe", {"roomId": room_id})  # seed 003: no lastSeq
    assert ack["success"] is True, ack
    await rename_many(http, node, org, room_id, 2)
    await socket.wait_for(room_id, 3)
    await socket.drop()
    await rename_many(http, node, org, room_id, 3 * CAP)  # missed while away: 4..3*CAP+3
    await socket.connect()
    assert socket.recovered[-1] is True
    ack = await socket.call("room:subscribe", {"roomId": room_id})  # on `connect`, as the seed
    assert ack["success"] is True, ack
    await rename_many(http, node, org, room_id, 1)
    last = 3 * CAP + 4
    await socket.wait_for(room_id, last)
    assert socket.seqs[room_id] == list(range(2, last + 1))
    await socket.close()


def documented_follow_room() -> str:
    """docs/protocol.md's JavaScript client, the code block as printed."""
    blocks = re.findall(r"```javascript\n(.*?)```", PROTOCOL.read_text(), re.S)
    [block] = [b for b in blocks if "export function followRoom" in b]
    return block


async def test_the_documented_javascript_client_pages_past_the_cap(
    node: RunningServer, http: httpx.AsyncClient, node_exe: str, tmp_path: Path
):
    """docs/protocol.md's `followRoom`, run as printed with socket.io-client: its first
    `room:replay` is held (tests/e2e/js/doc_follow_room.mjs) until live events have
    reached its socket, then it pages to the head and goes on with them."""
    org = user_id()
    room_id = await full_room(http, node, org)
    module = tmp_path / "follow_room.mjs"
    module.write_text(documented_follow_room())
    (tmp_path / "node_modules").symlink_to(JS_DIR / "node_modules")
    process = await asyncio.create_subprocess_exec(
        node_exe, str(JS_DIR / "doc_follow_room.mjs"), module.as_uri(), node.url,
        node.token(org), room_id, "0",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env={**os.environ},
    )  # fmt: skip
    delivered: list[dict[str, Any]] = []
    wire: set[int] = set()
    paging: list[int] = []
    changed = asyncio.Condition()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = json.loads(raw)
            async with changed:
                if "seq" in line:
                    delivered.append(line)
                elif "wire" in line:
                    wire.add(line["wire"])
                elif "paging" in line:
                    paging.append(line["paging"])
                changed.notify_all()

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(60), changed:
            await changed.wait_for(condition)

    reader = asyncio.create_task(read())
    try:
        await until(lambda: bool(paging))
        assert paging == [CAP]  # the inline part came first, then the example paged
        for i in range(LIVE):
            response = await http.patch(
                f"/api/rooms/{room_id}", json={"name": f"live {i}"}, headers=node.auth(org)
            )
            assert response.status_code == 200, response.text
        # On the socket while the paging is still held: the example must keep them aside.
        await until(lambda: set(range(HEAD + 1, HEAD + LIVE + 1)) <= wire)
        assert [d["seq"] for d in delivered] == list(range(1, CAP + 1))
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
        await until(lambda: len(delivered) >= HEAD + LIVE)
        assert [d["seq"] for d in delivered] == list(range(1, HEAD + LIVE + 1))
        assert [d["seq"] for d in delivered if d["replayed"]] == list(range(1, CAP + 1))
    finally:
        reader.cancel()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_room_namespace_says_the_cut_in_its_notice_and_the_rest_is_paged_on_root(
    node: RunningServer, http: httpx.AsyncClient
):
    """``/rooms/{roomId}`` with ``lastSeq`` has no ack: ``room:subscribed`` carries the cut,
    and the same connection pages the rest on ``/``."""
    org = user_id()
    room_id = await full_room(http, node, org)
    namespace = f"/rooms/{room_id}"
    client = socketio.AsyncClient(reconnection=False)
    got: list[tuple[str, dict[str, Any]]] = []
    changed = asyncio.Condition()

    async def record(event: str, payload: Any = None, *_: Any) -> None:
        async with changed:
            got.append((event, payload))
            changed.notify_all()

    client.on("*", record, namespace=namespace)
    await client.connect(
        node.url,
        namespaces=["/", namespace],
        auth={"token": node.token(org), "lastSeq": 0},
        transports=["websocket"],
    )
    try:
        async with asyncio.timeout(30), changed:
            await changed.wait_for(lambda: any(e == "room:subscribed" for e, _ in got))
        [notice] = [p for e, p in got if e == "room:subscribed"]
        assert notice["headSeq"] == HEAD
        assert notice["replay"] == {"truncated": True, "nextAfter": CAP}
        assert [p["seq"] for e, p in got if "eventId" in p] == list(range(1, CAP + 1))
        paged: list[int] = []
        after = CAP
        while after < HEAD:
            ack = await client.call(
                "room:replay", {"roomId": room_id, "afterSeq": after, "limit": 1000}, timeout=30
            )
            assert ack["success"] is True, ack
            paged.extend(e["payload"]["seq"] for e in ack["data"]["events"])
            after = ack["data"]["nextAfter"]
        assert paged == list(range(CAP + 1, HEAD + 1))
    finally:
        await client.disconnect()
