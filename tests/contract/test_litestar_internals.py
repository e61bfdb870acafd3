"""Litestar's private parts: ``BodyRequest`` (http/requests.py) and the response bypass
(``SuccessResponse`` in http/responses.py, ``EventStream`` in http/sse.py).

``BodyRequest`` replaces ``Request.body`` and relies on:

* ``Request._body`` (``Empty`` until read) and ``Request._connection_state.body``, where
  Litestar itself keeps a read body so that a ``Request`` made again for the same scope
  (its error handlers, ``json()``) does not read ``receive`` twice;
* ``route_handler.resolve_request_max_body_size()`` (the limit Litestar applies),
  ``RequestEntityTooLarge`` (413) and ``is_connected``;
* the app's ``request_class`` being what every handler's ``Request`` is.

``SuccessResponse`` / ``EventStream`` subclass ``ASGIResponse`` without calling its
``__init__`` and rely on Litestar sending a handler's return value *as it is* when the
handler's return annotation is an ASGI callable (``create_generic_asgi_response_handler``):
no header merging, no ``to_asgi_response``, no attribute of ``ASGIResponse.__init__`` read.
"""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar, Request, get, post
from litestar.types import Empty, Receive, Scope, Send

from roomcast.http.requests import BodyRequest
from roomcast.http.responses import SuccessResponse, ok
from roomcast.http.sse import EventStream

from .conftest import broken, serving

BODY_REQUEST = "BodyRequest (src/http/requests.py)"
SUCCESS = "SuccessResponse (src/http/responses.py)"
STREAM = "EventStream (src/http/sse.py)"
LIMIT = 64


def _scope(body_chunks: list[bytes]) -> tuple[Scope, Receive]:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1}
        for i, c in enumerate(body_chunks)
    ]

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    @post("/", request_max_body_size=LIMIT)
    async def handler() -> None:
        return None

    Litestar([handler])
    scope = {"type": "http", "headers": [], "route_handler": handler, "state": {}}
    return scope, receive  # type: ignore[return-value]


async def test_BodyRequest_relies_on_litestar_keeping_a_read_body_in_the_connection_state():
    scope, receive = _scope([b'{"a":', b"1}"])
    theirs = Request(scope, receive)
    assert getattr(theirs, "_body", None) is Empty, broken(
        BODY_REQUEST, "Request._body is gone or no longer starts as Empty"
    )
    body = await theirs.body()
    state = getattr(theirs, "_connection_state", None)
    cached = getattr(state, "body", None)
    assert cached == body == b'{"a":1}', broken(
        BODY_REQUEST, "Litestar's Request.body no longer caches the body in _connection_state.body"
    )
    again = BodyRequest(scope, receive)  # receive is spent: only the cache can answer
    assert await again.body() == body, broken(BODY_REQUEST, "a body Litestar read is not seen")
    assert await again.json() == {"a": 1}, broken(BODY_REQUEST, "Request.json no longer uses body")


async def test_BodyRequest_reads_what_litestar_resolves_as_the_limit():
    scope, receive = _scope([b"x" * (LIMIT + 1)])
    handler = scope["route_handler"]
    assert handler.resolve_request_max_body_size() == LIMIT, broken(
        BODY_REQUEST, "route_handler.resolve_request_max_body_size() changed"
    )
    request = BodyRequest(scope, receive)
    assert request.is_connected is True, broken(BODY_REQUEST, "Request.is_connected is gone")


@post("/echo", request_max_body_size=LIMIT, status_code=200)
async def _echo(request: Request[Any, Any, Any]) -> SuccessResponse:
    return ok({"kind": type(request).__name__, "body": (await request.body()).decode()}, etag=3)


class _Probe(EventStream):
    """An EventStream that writes a fixed frame (the real one needs the app's services)."""

    def __init__(self) -> None:  # EventStream's and ASGIResponse's __init__ both skipped
        self.status_code = 200

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"id: 1\n\n", "more_body": False})


@get("/stream")
async def _stream() -> EventStream:
    return _Probe()


async def test_SuccessResponse_and_EventStream_are_sent_as_is_and_BodyRequest_is_the_request():
    app = Litestar([_echo, _stream], request_class=BodyRequest)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.post("/echo", content=b"hello")
        streamed = await client.get("/stream")
        refused = await client.post("/echo", content=b"x" * (LIMIT + 1))
    assert answer.status_code == 200
    assert answer.json()["data"] == {"kind": "BodyRequest", "body": "hello"}, broken(
        BODY_REQUEST, "the app's request_class is not what the handler gets"
    )
    # Exactly the headers ok() wrote: Litestar merged nothing of its own in.
    assert sorted(answer.headers.keys()) == ["content-length", "content-type", "etag"], broken(
        SUCCESS,
        f"Litestar changed the response on its way out (headers {sorted(answer.headers)}):"
        " a handler's ASGIResponse is no longer sent unchanged",
    )
    assert answer.headers["etag"] == '"3"'
    assert (streamed.status_code, streamed.content) == (200, b"id: 1\n\n"), broken(
        STREAM, "an ASGIResponse annotated return is no longer sent as it is"
    )
    assert sorted(streamed.headers.keys()) == ["content-type", "transfer-encoding"], broken(
        STREAM, f"Litestar added headers {sorted(streamed.headers)}"
    )
    assert refused.status_code == 413, broken(
        BODY_REQUEST, f"a body over the limit got {refused.status_code}, not 413"
    )
