"""A reaction that always fails (a poison row) must not stop the other rooms.

The winner of a draw gets a notification, written by a reaction the relay runs
for ``winner:selected``. Here that write always fails: a trigger in this
module's own database refuses the poisoned user's inbox. Other rooms must keep
being delivered. Today the relay itself still retries the poison row's batch
(issue 19's separate reaction consumer with a dead-letter table has not landed),
and the other rooms reach their followers through each node's position check,
which refills a room behind the log's head from the log (gateway/roomwatch.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from roomcast.client import RoomcastClient
from roomcast.config import Settings

from ..conftest import JWT_SECRET, RunningServer, run_server
from ..e2e.support import Recorder, create_room, rename_many, user_id
from ..e2e.test_notifications import active_room_with, draw

POISONED = user_id()

_POISON = f"""
CREATE FUNCTION poison_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'poisoned inbox (test fault)';
END $$;
CREATE TRIGGER poison_inbox BEFORE INSERT ON streams
    FOR EACH ROW WHEN (NEW.stream_id = 'user:{POISONED}') EXECUTE FUNCTION poison_inbox();
"""


@pytest.fixture(scope="module")
async def poisoned_database(own_database_url: str) -> str:
    conn = await asyncpg.connect(own_database_url)
    try:
        await conn.execute(_POISON)
    finally:
        await conn.close()
    return own_database_url


@pytest.fixture(scope="module")
def node(
    poisoned_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    settings = Settings(
        database_url=poisoned_database,
        jwt_secret=JWT_SECRET,
        data_dir=Path(tmp_path_factory.mktemp("poison")),
        rest_rate_limit=0,
        relay_poll_seconds=0.05,
    )
    with run_server(settings) as running:
        yield running


async def test_a_reaction_that_always_fails_does_not_stop_other_rooms(node: RunningServer):
    org = user_id()
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        other = await create_room(http, node, org)
        client = RoomcastClient(node.url, node.token(org))
        recorder = Recorder()
        client.on("*", recorder)
        await client.connect()
        try:
            await client.subscribe(other, last_seq=0)
            room, prize = await active_room_with(http, node, org, POISONED)
            winner = await draw(http, node, org, room, prize)  # its reaction always fails
            assert winner["participant"]["user"]["id"] == POISONED
            await rename_many(http, node, org, other, 5, concurrency=1)
            await recorder.wait_for_seq(6, within=15)
            assert recorder.seqs == [1, 2, 3, 4, 5, 6]
            conn = await asyncpg.connect(node.settings.database_url)
            try:  # the poison row is still there: it was not dropped to get here
                inbox = await conn.fetchval(
                    "SELECT count(*) FROM streams WHERE stream_id = $1", f"user:{POISONED}"
                )
            finally:
                await conn.close()
            assert inbox == 0
        finally:
            await client.close()
