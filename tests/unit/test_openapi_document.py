"""The completed OpenAPI document, built without a server: every route declared, every
schema compiles with its references resolved, and the NUL rule it states is the one
``BodyRequest`` applies."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar, get

from roomcast.http.app import create_app
from roomcast.http.openapi import answers, complete
from roomcast.http.requests import holds_nul


def _document() -> dict[str, Any]:
    litestar = create_app(open_services=None).app.app  # type: ignore[arg-type]
    return complete(litestar.openapi_schema.to_schema(), litestar)


DOCUMENT = _document()


def _schemas(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                for media in answer.get("content", {}).values():
                    found.append((f"{method} {path} {status}", media["schema"]))
                for name, header in answer.get("headers", {}).items():
                    found.append((f"{method} {path} {status} {name}", header["schema"]))
            for parameter in operation.get("parameters", []):
                found.append((f"{method} {path} {parameter['name']}", parameter["schema"]))
            body = operation.get("requestBody")
            if body is not None:
                found.append(
                    (f"{method} {path} body", body["content"]["application/json"]["schema"])
                )
    return found


def test_every_schema_compiles_with_its_references_resolved():
    broken = []
    for where, schema in _schemas(DOCUMENT):
        try:  # jsonschema-rs resolves every $ref when it builds the validator
            jsonschema_rs.Draft202012Validator({**schema, "components": DOCUMENT["components"]})
        except (jsonschema_rs.ValidationError, ValueError) as exc:
            broken.append(f"{where}: {str(exc)[:200]}")
    assert len(_schemas(DOCUMENT)) > 200
    assert broken == []


def test_a_dangling_reference_would_be_found():
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.Draft202012Validator(
            {"$ref": "#/components/schemas/Nope", "components": DOCUMENT["components"]}
        )


def test_every_response_says_its_request_id_and_every_refusal_is_the_envelope():
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (method, path)
            for status, answer in operation["responses"].items():
                assert answer["headers"]["X-Request-ID"]["required"] is True, (method, path)
                if int(status) >= 400 and (path, status) != ("/health", "503"):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema["allOf"] == [{"$ref": "#/components/schemas/Failure"}]


def test_a_route_that_declares_nothing_is_refused():
    @get("/declared", opt=answers(set()))
    async def declared() -> None:
        return None

    @get("/silent")
    async def silent() -> None:
        return None

    app = Litestar([declared, silent])
    with pytest.raises(LookupError, match="GET /silent"):
        complete(app.openapi_schema.to_schema(), app)


@given(st.text() | st.dictionaries(st.text(), st.text()) | st.lists(st.text()))
def test_a_nul_is_found_in_any_string_of_a_json_text_and_only_there(value: Any):
    text = msgspec.json.encode(value)
    strings = value if isinstance(value, list) else [value]
    if isinstance(value, dict):
        strings = [*value, *value.values()]
    assert holds_nul(text) == any("\x00" in s for s in strings)
