"""The browser side: the SDK bundle at ``/client/``, the live room page at ``/`` and the
operator page at ``/ops``.

The files ship inside the package (``src/static/``), built from ``clients/js`` and
copied from ``clients/web`` by ``clients/js/build.mjs``, so ``pip install`` needs no
npm. Every file is sent with ``Cache-Control: no-cache`` (the browser keeps it but
revalidates with its ETag), so a server upgrade is never answered by a stale SDK,
and the pages carry a Content-Security-Policy that lets them load nothing from
another host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import MediaType, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

__all__ = ["STATIC_DIR", "web_routes"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
"""``src/static``: ``client/roomcast.js`` (+ ``.d.ts``) and ``web/`` (the pages)."""

_REVALIDATE = CacheControlHeader(no_cache=True)
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    # Same-origin only: scripts, styles, fetch and the socket (ws: to the same host).
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def _shareable(response: Response[Any]) -> Response[Any]:
    """The SDK is public code: any origin may load it as a module (module scripts are
    fetched with CORS), e.g. an app served by a dev server on another port."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def _page(name: str) -> Response[bytes]:
    return Response(
        content=(STATIC_DIR / "web" / name).read_bytes(),
        media_type=MediaType.HTML,
        headers=_PAGE_HEADERS,
    )


@get("/", include_in_schema=False)
async def room_page() -> Response[bytes]:
    """The live room page (sign in, my rooms, a room followed through the SDK)."""
    return _page("index.html")


@get("/ops", include_in_schema=False)
async def ops_page() -> Response[bytes]:
    """The operator page (admin role): nodes, connections, rooms, relay and outbox."""
    return _page("ops.html")


def web_routes() -> list[ControllerRouterHandler]:
    """The route handlers to add to the app."""
    return [
        create_static_files_router(
            path="/client",
            directories=[STATIC_DIR / "client"],
            name="client",
            cache_control=_REVALIDATE,
            after_request=_shareable,
        ),
        create_static_files_router(
            path="/web",
            directories=[STATIC_DIR / "web"],
            name="web",
            cache_control=_REVALIDATE,
        ),
        room_page,
        ops_page,
    ]
