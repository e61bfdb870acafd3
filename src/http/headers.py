"""Reading one request header straight from the ASGI scope.

Litestar's ``request.headers`` builds a multi-dict of every header on first use
(~2 % of a command's CPU); a command route reads three or four names. ASGI
servers hand header names over lower-cased, as bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["header"]


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case), decoded as Latin-1; None if absent."""
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None
