"""Running a command from a request: headers in (If-Match, Idempotency-Key), envelope out."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request

from roomcast import logfields
from roomcast.domain.commands import Command
from roomcast.domain.errors import AppPermissionDenied, InvalidPayload
from roomcast.domain.state import AppGrant, UserRef
from roomcast.http.headers import header
from roomcast.http.responses import SuccessResponse, ok
from roomcast.outbox.codec import Envelope
from roomcast.service.draws import RoomSeeds
from roomcast.service.rooms import CommandResult, Idempotency, Outcome, RoomService, fingerprint
from roomcast.service.sources import Sources

__all__ = ["CommandContext", "Reply", "take"]

_MAX_KEY_LENGTH = 255
_KEY = re.compile(r"[!-~]([ -~]*[!-~])?")
"""Printable ASCII, no space at either end: what the OpenAPI document states."""


class Reply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``data`` of a command's success envelope; the entity field depends on the route."""

    version: int
    events: list[Envelope]
    room: msgspec.Raw | None = None
    participant: msgspec.Raw | None = None
    prize: msgspec.Raw | None = None
    winner: msgspec.Raw | None = None
    question: msgspec.Raw | None = None
    event: msgspec.Raw | None = None


Render = Callable[[CommandResult], Reply]


def plain(result: CommandResult) -> Reply:
    return Reply(version=result.version, events=result.events)


def take(event: str, field: str | None, into: str) -> Render:
    """A renderer that lifts ``payload[field]`` (the whole payload if ``field`` is None)
    of the first ``event`` into ``data[into]``."""

    def render(result: CommandResult) -> Reply:
        for envelope in result.events:
            if envelope.event == event:
                if field is None:
                    value = envelope.payload
                else:
                    payload = msgspec.json.decode(envelope.payload)
                    value = msgspec.Raw(msgspec.json.encode(payload[field]))
                return Reply(version=result.version, events=result.events, **{into: value})
        return plain(result)

    return render


_IF_MATCH = re.compile(r'(?:W/)?"(\d{1,19})"|(\d{1,19})')


def expected_version(request: Request[Any, Any, Any]) -> int | None:
    """``If-Match: "7"`` (or 7, or W/"7") → 7; anything else (``"7``, 5,000 digits) refused."""
    raw = header(request.scope, b"if-match")
    if raw is None:
        return None
    match = _IF_MATCH.fullmatch(raw.strip())
    version = int(match[1] or match[2]) if match else -1
    if not 0 <= version <= 2**63 - 1:
        raise InvalidPayload(
            'If-Match must be the room\'s version, e.g. If-Match: "7"', {"header": "If-Match"}
        )
    return version


async def idempotency(request: Request[Any, Any, Any], caller: UserRef) -> Idempotency | None:
    key = header(request.scope, b"idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if len(key) > _MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise InvalidPayload(
            f"Idempotency-Key must be 1 to {_MAX_KEY_LENGTH} printable ASCII characters",
            {"header": "Idempotency-Key"},
        )
    body = await request.body()
    return Idempotency(
        principal=caller.id,
        key=key,
        fingerprint=fingerprint(request.method, request.url.path, body),
    )


class CommandContext(msgspec.Struct, frozen=True):
    """Everything a command route needs besides its body: the caller, the services and
    the request's headers. Built per request by ``CommandContext.of(request)``.
    """

    request: Request[Any, Any, Any]
    caller: UserRef
    app: AppGrant | None
    """Set when the caller is an app (its token's grant), None for a user."""
    service: RoomService
    sources: Sources
    seeds: RoomSeeds

    @staticmethod
    def of(request: Request[Any, Any, Any]) -> CommandContext:
        """The context of a command route's request; authenticates (and counts) the caller.

        Called by the handler rather than injected as a Litestar dependency: resolving
        one cost ~7 % of a command's CPU (P1 at concurrency 32, bench/README.md).
        """
        build: Callable[[Request[Any, Any, Any]], CommandContext]
        build = request.app.state.command_context
        return build(request)

    def require_app(self) -> AppGrant:
        if self.app is None:
            raise AppPermissionDenied(
                "this route is for apps: use an app token and X-App-Id", {"appId": None}
            )
        return self.app

    async def idempotency(self) -> Idempotency | None:
        return await idempotency(self.request, self.caller)

    def respond(
        self, outcome: Outcome, render: Render = plain, status_code: int = 200
    ) -> SuccessResponse:
        """The success envelope of an executed command, with ETag and replay headers."""
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        return ok(
            render(outcome.result),
            etag=outcome.result.version,
            status_code=status_code,
            headers=headers,
        )

    def now(self) -> datetime:
        return self.sources.now()

    def new_id(self, prefix: str) -> str:
        return self.sources.new_id(prefix)

    async def run(
        self,
        room_id: str,
        command: Command,
        *,
        render: Render = plain,
        status_code: int = 200,
    ) -> SuccessResponse:
        """Execute with the request's If-Match and Idempotency-Key; answer the envelope."""
        outcome = await self.service.execute(
            room_id,
            command,
            expected_version=expected_version(self.request),
            idempotency=await self.idempotency(),
        )
        if not outcome.replayed and outcome.result.events:
            # Carried by the request's one log line (request_finished), not a line of its own.
            logfields.bind(
                command=type(command).__struct_config__.tag,
                room_id=room_id,
                seq=outcome.result.version,
                events=len(outcome.result.events),
            )
        return self.respond(outcome, render, status_code)
