"""Which browser origins may call the API and open sockets (CORS), for both edges.

Production allows exactly ``ROOMCAST_CORS_ORIGINS``. Development also allows
any ``http://localhost:<port>`` and ``http://127.0.0.1:<port>``, so a front end
on its own dev server (Vite on :5173) works with no configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

__all__ = ["LOCAL_ORIGINS", "OriginPolicy"]

LOCAL_ORIGINS = r"http://(?:localhost|127\.0\.0\.1)(?::[0-9]{1,5})?"
"""A regular expression (for a full match) of the development origins."""

_local = re.compile(LOCAL_ORIGINS)


class OriginPolicy(msgspec.Struct, frozen=True, kw_only=True):
    explicit: tuple[str, ...] = ()
    """Origins allowed in every environment."""
    local: bool = False
    """Also allow local development origins (``LOCAL_ORIGINS``)."""

    @classmethod
    def of(cls, origins: Sequence[str], *, development: bool) -> OriginPolicy:
        return cls(explicit=tuple(origins), local=development)

    @property
    def regex(self) -> str | None:
        """``LOCAL_ORIGINS`` when local origins are allowed (for Litestar's CORS)."""
        return LOCAL_ORIGINS if self.local else None

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        return origin in self.explicit or (self.local and _local.fullmatch(origin) is not None)

    def socketio(self) -> Any:
        """python-socketio's ``cors_allowed_origins``: the list as before, or with local
        origins a check that also keeps same-origin pages working."""
        if not self.local:
            # None = same origin only; [] would switch the Origin check off entirely.
            return list(self.explicit) if self.explicit else None

        def check(origin: str | None, environ: Mapping[str, Any]) -> bool:
            if self.allows(origin):
                return True
            host = environ.get("HTTP_HOST")
            scheme = environ.get("wsgi.url_scheme", "http")
            return host is not None and origin == f"{scheme}://{host}"

        return check
