"""schemathesis over the OpenAPI document, against the live server: no input gets a 500.

Every operation of ``/api/docs/openapi.json`` is called with generated requests,
valid (positive) and invalid (negative), with a valid token of a user of its
own. The server must never answer 5xx (``not_a_server_error``: a 500 is a bug)
and every refusal under ``/api/`` must be the protocol's JSON envelope.
Bounded: a fixed number of examples per operation and mode, derandomized.

schemathesis is driven through its Python API (operations as hypothesis
strategies), not its pytest plugin, which does not load under pytest 9.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from .support import user_id


@pytest.fixture(scope="module")
def operations(server) -> list[Any]:
    document = httpx.get(f"{server.url}/api/docs/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) > 10, "the OpenAPI document lists the routes"
    return found


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_no_generated_request_gets_a_server_error(server, operations, mode):
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            headers = {**(case.headers or {}), **server.auth(user_id())}
            response = case.call(base_url=server.url, headers=headers, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])
            if case.path.startswith("/api/") and response.status_code >= 400:
                body = response.json()
                assert body["success"] is False, body
                assert isinstance(body["error"]["code"], str), body

        try:
            check()
        except Unsatisfiable:
            continue  # nothing of this operation can be made invalid (no parameters)
        except Exception as exc:  # collected: one report for every operation
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert failures == [], "\n\n".join(failures)
