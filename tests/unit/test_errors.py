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


@pytest.mark.parametrize(
    "cls",
    [
        c
        for c in _subclasses(Rejected)
        if c is not errors.RuleViolated and c.__module__ == errors.__name__
    ],
)
def test_every_refusal_has_a_code_and_keeps_its_details(cls):
    exc = cls("message", {"roomId": "room_1"})
    assert isinstance(exc.code, ErrorCode)
    assert exc.message == "message"
    retry = {"retryAfter": 1} if issubclass(cls, errors.ServiceUnavailable) else {}
    assert exc.details == {"roomId": "room_1", **retry}


def test_a_503_always_says_when_to_retry_and_keeps_a_given_delay():
    assert errors.ServiceUnavailable("down").details == {"retryAfter": 1}
    assert errors.ServiceUnavailable("down", {"retryAfter": 5}).details == {"retryAfter": 5}


def test_asyncpg_client_state_errors_count_as_the_database_being_unavailable():
    import asyncpg

    from roomcast.outbox.errors import is_unavailable, map_db_errors

    for exc in (
        asyncpg.InternalClientError("cannot switch to state 11"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionResetError(),
    ):
        assert is_unavailable(exc)
        with pytest.raises(errors.ServiceUnavailable) as raised, map_db_errors():
            raise exc
        assert raised.value.details["retryAfter"] == 1
    assert not is_unavailable(ValueError("a bug of ours"))


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
