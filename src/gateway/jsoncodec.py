"""A ``json`` module for python-socketio backed by msgspec.

Relayed payloads are already-encoded JSON (``msgspec.Raw``); msgspec writes them
into the packet as they are, so a broadcast is encoded once, not once per hop.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

__all__ = ["dumps", "loads"]

_encoder = msgspec.json.Encoder()


def dumps(obj: Any, **_: Any) -> str:
    return _encoder.encode(obj).decode()


def loads(text: str | bytes, **_: Any) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.ValidationError:
        # An integer beyond 64 bits is valid JSON msgspec will not hold: the stdlib
        # reads it, so the payload's own validation refuses it with a typed error.
        try:
            return json.loads(text)
        except RecursionError:
            raise ValueError("JSON nested too deep") from None
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    except msgspec.DecodeError as exc:
        # The libraries catch ValueError, as the stdlib json module raises.
        raise ValueError(str(exc)) from None
