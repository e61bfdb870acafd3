"""``roomcast audit``: log, follow, verify, rooms. Reads PostgreSQL directly, never writes.

Exit status: 0 success (verify: everything checked out), 1 a failed verification
or an error reported in one line (unknown room, unreachable database), 2 bad
arguments. Output is a table on a terminal and JSON lines otherwise (``--json``
and ``--table`` force either).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn, TextIO

if TYPE_CHECKING:
    import asyncpg

    from roomcast.audit.chain import Row
    from roomcast.audit.source import LogFilter
    from roomcast.config import Settings

__all__ = ["configure", "run"]


class _Parser(argparse.ArgumentParser):
    """Bad arguments end in one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        _one_line_error(self, message)


def _one_line_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")


def _instant(text: str) -> datetime:
    """ISO 8601 date or time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2025-01-31 or 2025-01-31T12:00:00Z)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {value}")
        return value

    parse.__name__ = "number"
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.05 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0.05 and 60 seconds: {value}")
    return value


def _output(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="JSON lines (default in pipes)")
    group.add_argument("--table", action="store_true", help="a table (default on a terminal)")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        metavar="TYPE",
        help="only events of this type, e.g. winner:selected (repeatable)",
    )
    parser.add_argument("--actor", help="only events appended by this user id")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the audit subcommands to ``parser`` (the ``audit`` subparser of ``roomcast``)."""
    parser.error = lambda message: _one_line_error(parser, message)  # type: ignore[method-assign]
    sub = parser.add_subparsers(
        dest="audit_command", required=True, metavar="SUBCOMMAND", parser_class=_Parser
    )

    log = sub.add_parser("log", help="a room's events in seq order, filtered")
    log.add_argument("room", help="the room id")
    _filters(log)
    log.add_argument("--since", type=_instant, help="recorded at or after (ISO 8601; UTC if bare)")
    log.add_argument("--until", type=_instant, help="recorded at or before (ISO 8601)")
    log.add_argument("--after-seq", type=_count(0), default=0, metavar="SEQ", help="seq > SEQ")
    log.add_argument("--until-seq", type=_count(1), metavar="SEQ", help="seq <= SEQ")
    log.add_argument("--limit", type=_count(1), metavar="N", help="at most N events")
    _output(log)

    follow = sub.add_parser("follow", help="print a room's events as they commit, like tail -f")
    follow.add_argument("room", help="the room id")
    _filters(follow)
    start = follow.add_mutually_exclusive_group()
    start.add_argument(
        "-n",
        "--lines",
        type=_count(0),
        default=10,
        metavar="N",
        help="start with the last N events of the log (default 10)",
    )
    start.add_argument("--after-seq", type=_count(0), metavar="SEQ", help="start after SEQ")
    follow.add_argument(
        "--poll",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="look for new events at least this often (default 1; NOTIFY wakes it sooner)",
    )
    _output(follow)

    verify = sub.add_parser(
        "verify", help="recompute the hash chain and every draw; exit 1 at the first break"
    )
    verify.add_argument("room", nargs="?", help="the room id (or --all)")
    verify.add_argument("--all", action="store_true", help="every room")
    verify.add_argument("--json", action="store_true", help="one JSON object per room")
    verify.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr even when it is not a terminal",
    )
    verify.set_defaults(verify_parser=verify)

    rooms = sub.add_parser("rooms", help="rooms with event counts, head seq and last activity")
    rooms.add_argument("--limit", type=_count(1), metavar="N", help="the N most recently active")
    _output(rooms)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the parsed ``roomcast audit`` command; the exit status."""
    from roomcast.audit.source import AuditError

    if args.audit_command == "verify" and (args.room is None) == (not args.all):
        _one_line_error(args.verify_parser, "give a room id or --all (not both)")
    try:
        return asyncio.run(_main(args, settings))
    except AuditError as exc:
        print(f"roomcast audit: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter's
        # final flush of stdout from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


@contextlib.asynccontextmanager
async def _dsn(settings: Settings) -> AsyncIterator[str]:
    if settings.database_url:
        yield settings.database_url
        return
    from roomcast.bootstrap import database  # the embedded server (slow to import and start)
    from roomcast.logconfig import configure_logging

    # Its start and stop are logged: to stderr, and only when something is wrong, so
    # stdout carries nothing but the command's output.
    configure_logging(level="warning", fmt=settings.log_format)
    async with database(settings) as dsn:
        yield dsn


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    from roomcast.audit import source

    async with _dsn(settings) as dsn, source.connected(dsn) as conn:
        match args.audit_command:
            case "log":
                return await _log(conn, args, sys.stdout)
            case "follow":
                return await _follow(conn, args, sys.stdout)
            case "verify":
                return await _verify(conn, args, sys.stdout)
            case "rooms":
                return await _rooms(conn, args, sys.stdout)
    raise AssertionError(args.audit_command)  # pragma: no cover - argparse checks


def _as_json(args: argparse.Namespace, out: TextIO) -> bool:
    if args.json:
        return True
    return not args.table and not out.isatty()


def _printer(args: argparse.Namespace, out: TextIO, head_seq: int) -> Callable[[Row], None]:
    from roomcast.audit.render import Table, event_json

    if _as_json(args, out):

        def json_line(row: Row) -> None:
            print(event_json(row), file=out, flush=True)

        return json_line
    table = Table(out, seq_width=len(str(head_seq)))
    table.header()
    return table.row


def _filter(args: argparse.Namespace) -> LogFilter:
    from roomcast.audit.source import LogFilter

    return LogFilter(types=args.types, actor=args.actor)


async def _log(conn: asyncpg.Connection, args: argparse.Namespace, out: TextIO) -> int:
    from roomcast.audit import source
    from roomcast.audit.chain import Row

    head = await source.head(conn, args.room)
    where = replace(
        _filter(args),
        since=args.since,
        until=args.until,
        after_seq=args.after_seq,
        until_seq=args.until_seq,
    )
    sql, params = source.log_query(args.room, where, args.limit)
    show = _printer(args, out, head.version)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for record in conn.cursor(sql, *params, prefetch=1000):
            show(Row._make(record))
    return 0


_PAGE = 1000


async def _follow(conn: asyncpg.Connection, args: argparse.Namespace, out: TextIO) -> int:
    """Print the room's events from the start point on, then each new one as it commits.

    Woken by the NOTIFY that appends send after committing, and polling anyway
    (a NOTIFY is only a wake-up), always for ``seq > last printed``: no event
    is missed or printed twice. SIGINT and SIGTERM end it cleanly.
    """
    from roomcast.audit import source
    from roomcast.audit.chain import Row
    from roomcast.outbox.sql import NOTIFY_CHANNEL

    head = await source.head(conn, args.room)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    wake = asyncio.Event()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (ValueError, RuntimeError):  # not the main thread: the caller handles signals
            continue
        handled.append(signum)

    def notified(*_: object) -> None:
        wake.set()

    try:
        # LISTEN before the first read: a commit after that read always wakes us.
        await conn.add_listener(NOTIFY_CHANNEL, notified)
        last = args.after_seq if args.after_seq is not None else max(head.version - args.lines, 0)
        show = _printer(args, out, max(head.version, 9999))
        where = _filter(args)
        stopping = asyncio.ensure_future(stop.wait())
        while not stop.is_set():
            wake.clear()
            sql, params = source.log_query(args.room, replace(where, after_seq=last), _PAGE)
            records = await conn.fetch(sql, *params)
            for record in records:
                row = Row._make(record)
                show(row)
                last = row.seq
            if len(records) == _PAGE:
                continue
            waking = asyncio.ensure_future(wake.wait())
            await asyncio.wait({stopping, waking}, timeout=args.poll, return_when="FIRST_COMPLETED")
            waking.cancel()
        stopping.cancel()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    return 0


async def _verify(conn: asyncpg.Connection, args: argparse.Namespace, out: TextIO) -> int:
    from roomcast.audit.verify import RoomReport, verify

    def report(result: RoomReport) -> None:
        if args.json:
            print(result.json(), file=out, flush=True)
        elif args.room or not result.ok:
            print(result.line(), file=out, flush=True)

    reports = await verify(
        conn,
        args.room,
        progress=args.progress or sys.stderr.isatty(),
        report=report,
    )
    failed = [r for r in reports if not r.ok]
    if args.all and not args.json:
        verified = sum(r.verified for r in reports)
        pending = sum(r.pending for r in reports)
        summary = (
            f"{len(reports)} rooms, {sum(r.events for r in reports)} events, "
            f"{verified} draws verified"
        )
        if pending:
            summary += f", {pending} draws not yet verifiable: seed not revealed"
        questions = sum(r.questions for r in reports)
        if questions:
            judged = sum(r.questions_verified for r in reports)
            summary += f", {judged}/{questions} quiz questions re-judged"
        if failed:
            print(f"FAIL: {len(failed)} of {summary}", file=out)
        else:
            print(f"OK: {summary}", file=out)
    return 1 if failed else 0


async def _rooms(conn: asyncpg.Connection, args: argparse.Namespace, out: TextIO) -> int:
    from roomcast.audit import source
    from roomcast.audit.render import RoomsTable, room_json

    found = await source.rooms(conn, args.limit)
    if _as_json(args, out):
        for room in found:
            print(room_json(room), file=out)
    else:
        RoomsTable(out).show(found)
    return 0
