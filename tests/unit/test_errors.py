"""One error hierarchy, one status table: no code can fall through to a 500."""

from __future__ import annotations

import pytest

from roomcast.domain import errors
from roomcast.domain.errors import ErrorCode, Rejected
from roomcast.http.errors import STATUS


def _subclasses(cls: type[Rejected]) -> list[type[Rejected]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def test_every_error_code_has_an_http_status():
    assert set(STATUS) == set(ErrorCode)


def test_only_internal_error_maps_to_500():
    assert [code for code, status in STATUS.items() if status >= 500 and status != 503] == [
        ErrorCode.INTERNAL_ERROR
    ]


@pytest.mark.parametrize("cls", [c for c in _subclasses(Rejected) if c is not errors.RuleViolated])
def test_every_refusal_has_a_code_and_keeps_its_details(cls):
    exc = cls("message", {"roomId": "room_1"})
    assert isinstance(exc.code, ErrorCode)
    assert exc.message == "message"
    assert exc.details == {"roomId": "room_1"}


def test_seed_003_codes_are_all_present():
    seed = {
        "AUTHENTICATION_FAILED",
        "PERMISSION_DENIED",
        "ROOM_NOT_FOUND",
        "INVALID_PAYLOAD",
        "RATE_LIMIT_EXCEEDED",
        "APP_PERMISSION_DENIED",
    }
    assert seed <= {c.value for c in ErrorCode}
