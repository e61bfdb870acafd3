"""A change to a state's shape comes with a bump of its state version (ADR 0016).

A snapshot is the state encoded as JSON; the store uses it only when it was written
at the decider's ``state_version``. Forgetting the bump after changing ``Room`` (or
anything inside it) would let a load decode an old snapshot into the new shape. The
fingerprint is the state's JSON Schema as msgspec derives it, without the prose, so
a docstring edit does not count. A change to ``evolve`` that keeps the shape is not
seen here: bump the version for that by hand.

If every line fails at once after a msgspec upgrade, msgspec renders schemas
differently while the JSON of a state is what it was: record the new fingerprints
for the versions as they are, without a bump.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest

from roomcast.domain.notifications import INBOXES
from roomcast.domain.room import ROOMS

# Every (decider, state version) ever released, with its shape's fingerprint. After
# changing a state: bump its *_STATE_VERSION and ADD a line; never edit a line.
RELEASED = {
    ("room", 1): "965d1a42a290accc",
    ("inbox", 1): "e641d738cae3987e",
}

_PROSE = {"title", "description"}


def _without_prose(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_prose(v) for k, v in node.items() if k not in _PROSE}
    if isinstance(node, list):
        return [_without_prose(v) for v in node]
    return node


def fingerprint(state_type: Any) -> str:
    schema = _without_prose(msgspec.json.schema(state_type))
    return hashlib.sha256(msgspec.json.encode(schema, order="sorted")).hexdigest()[:16]


@pytest.mark.parametrize("decider", [ROOMS, INBOXES], ids=lambda d: d.name)
def test_the_state_version_names_the_states_shape(decider):
    key = (decider.name, decider.state_version)
    assert key in RELEASED, f"record {key}: {fingerprint(decider.state_type)!r} in RELEASED"
    assert fingerprint(decider.state_type) == RELEASED[key], (
        f"{decider.state_type.__name__}'s shape changed but its state version is still "
        f"{decider.state_version}: bump it and add {(decider.name, decider.state_version + 1)}"
        f": {fingerprint(decider.state_type)!r} to RELEASED"
    )


def test_the_fingerprint_sees_a_field_and_not_a_docstring():
    class A(msgspec.Struct):
        """One."""

        x: int

    class B(msgspec.Struct):
        """Two, with other words."""

        x: int

    class C(msgspec.Struct):
        x: int
        y: str = ""

    A.__name__ = B.__name__ = C.__name__ = "S"
    A.__qualname__ = B.__qualname__ = C.__qualname__ = "S"
    assert fingerprint(A) == fingerprint(B) != fingerprint(C)
