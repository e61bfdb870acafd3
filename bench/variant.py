"""``python -m bench.variant NAME``: ``roomcast serve`` with one override switched off.

O1 (bench/scenarios/o1_overrides.py) runs the same commands against the app as it
ships and against each of these, to show whether an override of a library's private
part still pays for itself. Each variant puts back what the library does without it
and nothing else:

* ``shipped``: nothing switched off (the same launcher, so both sides start alike);
* ``no-body-request``: Litestar's ``Request`` as the app's request class;
* ``no-success-bypass``: every ``SuccessResponse`` goes through a Litestar
  ``Response`` and ``to_asgi_response``, as a handler returning ``Response`` would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.types import Receive, Scope, Send

from roomcast.http.responses import SuccessResponse

__all__ = ["VARIANTS", "through_litestar"]


def _no_body_request() -> None:
    from roomcast.http import app

    setattr(app, "BodyRequest", Request)  # noqa: B010  (read when build_app runs)


async def through_litestar(
    response: SuccessResponse, scope: Scope, receive: Receive, send: Send
) -> None:
    """Send ``response`` the way Litestar sends a handler's ``Response``: a ``Response``
    made from it, then ``to_asgi_response``, then that ``ASGIResponse``."""
    headers = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in response._raw_headers
        if k not in (b"content-type", b"content-length")
    }
    converted: Response[Any] = Response(
        content=response.body, status_code=response.status_code, headers=headers
    )
    asgi = converted.to_asgi_response(
        app=None,
        request=Request(scope, receive),
        cookies=[],
        headers={},
        media_type="application/json",
        status_code=response.status_code,
    )
    await asgi(scope, receive, send)


def _no_success_bypass() -> None:
    SuccessResponse.__call__ = through_litestar  # type: ignore[method-assign, assignment]


VARIANTS: dict[str, Callable[[], None]] = {
    "shipped": lambda: None,
    "no-body-request": _no_body_request,
    "no-success-bypass": _no_success_bypass,
}


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in VARIANTS:
        print(f"bench.variant: one of {sorted(VARIANTS)}", file=sys.stderr)
        return 2
    VARIANTS[name]()
    from roomcast.cli import main as serve

    return serve(["serve"])


if __name__ == "__main__":
    sys.exit(main())
