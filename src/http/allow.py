"""``OPTIONS`` on the API's paths with more than one method: ``Allow`` lists them all.

Litestar answers ``OPTIONS`` with a handler it makes per route, whose ``Allow``
is the methods of the route as it was when that handler was made; when a path's
methods are registered one handler at a time (a controller's ``GET /`` and
``POST /``), later ones are missing (``OPTIONS /api/rooms`` said ``OPTIONS, POST``;
found by schemathesis's ``allow_header_conformance``). Each controller serving such a
path declares its own ``OPTIONS`` handler (``options_route``), which reads the
app's route map when asked, so it is never stale. It must be named ``allow``: a
controller's handlers are registered in the order of their names, and one
registered after another handler of its path would lose to the handler Litestar
made (tests/e2e/test_openapi.py checks ``Allow`` on every documented path).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_204_NO_CONTENT

__all__ = ["allowed", "options_route"]

_HTTP_METHODS = frozenset(m.value for m in HttpMethod)


def allowed(request: Request[Any, Any, Any]) -> Response[None]:
    """The answer to ``OPTIONS``: every method the app serves on the request's route."""
    template = request.scope["path_template"]  # the route's path_format, e.g. /api/rooms/{room_id}
    served = (r.methods for r in request.app.routes if r.path_format == template)
    methods = sorted(_HTTP_METHODS & set(next(served, ())))
    return Response(
        content=None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": ", ".join(methods)}
    )


def options_route(*paths: str) -> HTTPRouteHandler:
    """The decorator of a controller's ``OPTIONS`` handler for ``paths``."""
    return route(
        list(paths), http_method=[HttpMethod.OPTIONS], include_in_schema=False, sync_to_thread=False
    )
