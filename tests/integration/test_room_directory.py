"""The room directory (schema.sql): kept by the log's trigger, rebuilt from the log on
first migration, and read through its index."""

from __future__ import annotations

import asyncpg

from roomcast.domain import commands
from roomcast.outbox.database import migrate
from roomcast.outbox.directory import RoomDirectoryStore
from roomcast.service.directory import RoomDirectory
from roomcast.service.rooms import RoomService

from ..helpers import create_room, now, rename, unique, user


async def _listing(pool: asyncpg.Pool, user_id: str) -> list[tuple[str, str, str, str, int]]:
    page = await RoomDirectory(RoomDirectoryStore(pool)).rooms_of(user_id, limit=100)
    return [(r.id, r.name, r.status, r.role, r.head_seq) for r in page.rooms]


async def test_the_first_migration_fills_the_directory_from_the_existing_log(pool, store):
    service = RoomService(store)
    org, member = user(unique("org")), user(unique("member"))
    rooms = [unique("room") for _ in range(3)]
    for room_id in rooms:
        await service.execute(room_id, create_room(room_id, org))
    await service.execute(rooms[0], rename(org, "renamed"))
    await service.execute(
        rooms[1], commands.JoinRoom(actor=member, at=now(), participant_id=unique("part"))
    )
    await service.execute(rooms[2], commands.DeleteRoom(actor=org, at=now()))
    before = (await _listing(pool, org.id), await _listing(pool, member.id))
    assert [r[0] for r in before[0]] == [rooms[1], rooms[0]]
    assert before[1] == [(rooms[1], "Lottery", "draft", "participant", 2)]

    # A database from before the directory existed: the next start rebuilds it.
    await pool.execute("DROP TABLE room_members, room_directory, roomcast_migrations")
    await migrate(pool)
    assert (await _listing(pool, org.id), await _listing(pool, member.id)) == before
    await migrate(pool)  # and a second run changes nothing
    assert (await _listing(pool, org.id), await _listing(pool, member.id)) == before


async def test_a_page_reads_one_users_index_range(pool):
    """With many users' rows, a page reads one user's index range: no full scan."""
    await pool.execute(
        """
        INSERT INTO streams (stream_id, version, last_hash)
        SELECT 'bulk_' || g, 1, '\\x00' FROM generate_series(1, 20000) g ON CONFLICT DO NOTHING;
        INSERT INTO room_directory (stream_id, name, status, organizer_id, created_at)
        SELECT 'bulk_' || g, 'bulk', 'draft', 'bulk_user_' || (g % 500), now() - g * interval '1s'
        FROM generate_series(1, 20000) g ON CONFLICT DO NOTHING;
        INSERT INTO room_members (user_id, stream_id, role, room_created_at)
        SELECT 'bulk_user_' || (g % 500), 'bulk_' || g, 'organizer', now() - g * interval '1s'
        FROM generate_series(1, 20000) g ON CONFLICT DO NOTHING;
        ANALYZE streams; ANALYZE room_members; ANALYZE room_directory;
        """
    )
    from roomcast.outbox.directory import _FIRST_PAGE, _NEXT_PAGE

    for sql, args in (
        (_FIRST_PAGE, ("bulk_user_7", None, None, 21)),
        (_NEXT_PAGE, ("bulk_user_7", "draft", None, 21, now(), "bulk_9")),
    ):
        plan = "\n".join(r[0] for r in await pool.fetch(f"EXPLAIN {sql}", *args))
        assert "Index Scan using room_members_page on room_members" in plan, plan
        assert "Seq Scan" not in plan, plan
