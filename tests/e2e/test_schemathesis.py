"""schemathesis over the OpenAPI document, against the live server, every check on.

Every operation of ``/api/docs/openapi.json`` is called with generated requests,
valid (positive) and invalid (negative), each with a valid token of a user of its
own (so that no two cases share an Idempotency-Key scope), and every answer goes
through all of schemathesis's checks: no 5xx, the status listed, the content
type and the body matching the document, the declared response headers present
and valid, valid data accepted, invalid data refused, and a request without its
token refused with 401. Bounded: a fixed number of examples per operation and
mode, derandomized, so it runs in well under a minute.

The two event streams are left out: a valid request opens a stream that does not
end, which schemathesis's transport would wait on. tests/e2e/test_openapi.py and
tests/e2e/test_sse.py call them for real.

A wrong answer is reported as it was seen, once per operation, never tried again;
only schemathesis's own case generation, when hypothesis calls it flaky, is run a
second time (``GENERATION_TRIES``).

schemathesis is driven through its Python API (operations as hypothesis
strategies), not its pytest plugin, which does not load under pytest 9.
"""

from __future__ import annotations

import itertools
import traceback
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Flaky, Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.generation import GenerationMode

from .support import user_id

EXAMPLES = 8
"""Per operation and mode: 30 operations × 2 modes × 8 ≈ 480 requests."""

OPAQUE = "cursor"
"""``GET /api/rooms``'s page cursor: only the server makes valid ones."""

CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            # A body over the size limit is refused with 413 PAYLOAD_TOO_LARGE, the
            # envelope's code for it: a refusal like the default list's 400 or 422.
            "negative_data_rejection": {
                "expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
            }
        }
    }
)

ENDLESS = ("/api/rooms/{roomId}/stream", "/api/notifications/stream")


def call_and_check(server: Any, case: Any) -> None:
    """One generated request, as a user of its own, and every check on its answer."""
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and case.query and OPAQUE in case.query:
        # Schema-valid is not server-made: a cursor not given out is refused (400);
        # the negative cases still send made-up ones.
        del case.query[OPAQUE]
    headers = {**(case.headers or {}), **server.auth(user_id())}
    response = case.call(base_url=server.url, headers=headers, timeout=30)
    try:
        # No `checks=`: every check schemathesis has, as its CLI's `--checks all`.
        case.validate_response(response, headers=headers)
    except Exception as exc:
        # What was sent and answered, so that a failure seen once can be read.
        sent = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise AssertionError(
            f"{case.method} {case.formatted_path} query={case.query!r} headers={sent!r} "
            f"body={case.body!r} -> {response.status_code} {dict(response.headers)!r} "
            f"{response.text[:600]!r}"
        ) from exc


@pytest.fixture(scope="module")
def operations(server) -> list[Any]:
    document = httpx.get(f"{server.url}/api/docs/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    found = [result.ok() for result in schema.get_all_operations()]
    kept = [op for op in found if op.path not in ENDLESS]
    assert len(found) - len(kept) == len(ENDLESS), "the streams are in the document"
    assert len(kept) > 25, "the OpenAPI document lists the routes"
    return kept


GENERATION_TRIES = 2
"""Times an operation's cases are generated when schemathesis's own generation is
flaky (hypothesis's ``Flaky`` raised while drawing cases, before or without any of
our checks failing: it was seen once in the coverage phase). Our server's answers
are never tried again: the first wrong one is the failure."""


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_every_check_holds_for_generated_requests(server, operations, mode):
    failures: list[str] = []
    calls = 0
    for operation in operations:
        wrong: list[str] = []

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            if wrong:  # noqa: B023 - run within this iteration only
                return  # one report per operation
            try:
                call_and_check(server, case)
            except Exception as exc:
                # Kept, not raised: hypothesis would replay the case and call an
                # answer it could not reproduce "flaky" instead of reporting it.
                wrong.append(_explained(exc))  # noqa: B023 - as above

        try:
            _generated(check)
        except Unsatisfiable:
            continue  # nothing of this operation can be made invalid (no parameters)
        except Exception as exc:  # collected: one report for every operation
            failures.append(f"{operation.label}: generation: {_explained(exc)}")
        failures.extend(f"{operation.label}: {text}" for text in wrong[:1])
    assert calls > len(operations) * 2
    assert failures == [], "\n\n".join(failures)


def _generated(run: Any) -> Any:
    for attempt in range(1, GENERATION_TRIES + 1):
        try:
            return run()
        except Flaky:
            if attempt == GENERATION_TRIES:
                raise
    return None


COVERAGE_CASES = 25
"""Per operation: the first boundary cases of schemathesis's coverage phase."""


def test_every_check_holds_for_the_coverage_phase(server, operations):
    """The coverage phase: boundary values, a missing required header, a method the
    document does not list (405 with ``Allow``), each checked as above."""
    failures: list[str] = []
    calls = 0
    for operation in operations:
        config = operation.schema.config.generation_for(operation=operation)

        def cases(operation: Any = operation, config: Any = config) -> list[Any]:
            generated = operation.schema.iter_coverage_cases(
                operation, generation_modes=list(GenerationMode), generation_config=config
            )
            return list(itertools.islice(generated, COVERAGE_CASES))

        try:
            generated = _generated(cases)
        except Exception as exc:
            failures.append(f"{operation.label}: generation: {_explained(exc)}")
            continue
        for case in generated:
            calls += 1
            try:
                call_and_check(server, case)
            except Exception as exc:
                failures.append(f"{operation.label}: {_explained(exc)}")
                break  # one report per operation
    assert calls > len(operations)
    assert failures == [], "\n\n".join(failures)


def _explained(exc: BaseException) -> str:
    """The failure with what it wraps and groups (hypothesis reports a flaky one as a
    group whose members say what failed the first time)."""
    text = "".join(traceback.format_exception(exc))
    return text[-4000:]
