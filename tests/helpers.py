"""Test helpers: unique ids, actors, and commands applied through the real service."""

from __future__ import annotations

import os
import pathlib
import uuid
from datetime import UTC, datetime

from roomcast.domain import commands
from roomcast.domain.state import UserRef


def unique(prefix: str) -> str:
    """An id no other test uses, so tests share one database without truncating it."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def user(name: str) -> UserRef:
    return UserRef(id=f"usr_{name}", name=name.title())


def now() -> datetime:
    return datetime.now(UTC)


def create_room(room_id: str, organizer: UserRef, name: str = "Lottery") -> commands.CreateRoom:
    return commands.CreateRoom(actor=organizer, at=now(), room_id=room_id, name=name)


def rename(organizer: UserRef, name: str) -> commands.UpdateRoom:
    return commands.UpdateRoom(actor=organizer, at=now(), name=name)


def process_alive(pid: int) -> bool:
    """Whether pid runs; a zombie (never reaped by some containers' PID 1) counts as gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"
