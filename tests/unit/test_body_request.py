"""BodyRequest reads a body exactly as Litestar's Request does: same bytes, same 413s."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar, Request, post
from litestar.exceptions import InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from roomcast.domain.errors import InvalidPayload
from roomcast.http.requests import BodyRequest, holds_nul

LIMIT = 64


@post("/", request_max_body_size=LIMIT)
async def handler() -> None:
    return None


Litestar([handler])  # gives the handler its owner, where the limit is resolved


def _request(cls: type[Request[Any, Any, Any]], chunks: list[bytes], announce: bool) -> Any:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    headers = [(b"content-length", str(sum(map(len, chunks))).encode())] if announce else []
    scope = {"type": "http", "headers": headers, "route_handler": handler, "state": {}}
    return cls(scope, receive)  # type: ignore[arg-type]


async def _outcome(request: Any) -> bytes | str:
    try:
        return bytes(await request.body())
    except RequestEntityTooLarge:
        return "413"
    except InvalidPayload:
        return "NUL"


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=40), max_size=5), announce=st.booleans())
async def test_the_same_body_or_the_same_413_as_litestar(chunks: list[bytes], announce: bool):
    ours = await _outcome(_request(BodyRequest, chunks, announce))
    theirs = await _outcome(_request(Request, chunks, announce))
    # Ours also refuses a JSON text with an escaped NUL (its one difference).
    assert ours == ("NUL" if isinstance(theirs, bytes) and holds_nul(theirs) else theirs)
    if ours not in ("413", "NUL"):
        assert ours == b"".join(chunks)


async def test_the_body_is_read_once_and_kept_for_json_and_later_requests():
    request = _request(BodyRequest, [b'{"name":', b'"x"}'], announce=True)
    assert await request.body() == b'{"name":"x"}'
    assert await request.json() == {"name": "x"}
    # A Request made again for the same scope (as Litestar's error handlers do) sees it too.
    again = BodyRequest(request.scope, request.receive)
    assert await again.body() == b'{"name":"x"}'


async def test_an_announced_length_over_the_limit_is_refused_before_reading():
    read: list[bytes] = []

    async def receive() -> Any:
        read.append(b"")
        return {"type": "http.request", "body": b"x", "more_body": False}

    headers = [(b"content-length", str(LIMIT + 1).encode())]
    scope = {"type": "http", "headers": headers, "route_handler": handler, "state": {}}
    with pytest.raises(RequestEntityTooLarge):
        await BodyRequest(scope, receive).body()  # type: ignore[arg-type]
    assert read == []


async def test_a_client_that_leaves_mid_body_is_not_taken_for_a_whole_body():
    request = _request(BodyRequest, [b"{", b"}"], announce=False)
    request.receive = _leaving(request.receive)
    with pytest.raises(InternalServerException):
        await request.body()


def _leaving(receive: Any) -> Any:
    first = True

    async def once() -> Any:
        nonlocal first
        if first:
            first = False
            return await receive()
        return {"type": "http.disconnect"}

    return once
