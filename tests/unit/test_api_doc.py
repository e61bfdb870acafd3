"""docs/api.md's examples of the sign-in, refresh and my-rooms routes are the real shapes.

An example is the ```json block after a line that starts with the route in
backticks and then the label. Each is decoded into the Struct the server
encodes (or accepts) and encoded again: a field the Struct lacks, or a field
the example lacks, fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from roomcast.http.signin import RefreshBody, SignInBody, TokenResponse
from roomcast.service.auth import user_id_for
from roomcast.service.directory import RoomPage
from roomcast.wire import Success

API = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


def example(route: str, label: str) -> Any:
    pattern = re.compile(
        rf"^`{re.escape(route)}` {re.escape(label)}[^\n]*\n(?:(?!`)[^\n]*\n)*?```json\n(.*?)```",
        re.M | re.S,
    )
    [block] = pattern.findall(API)
    return msgspec.json.decode(block)


def round_trip(value: Any, kind: type[Any]) -> Any:
    return msgspec.json.decode(msgspec.json.encode(msgspec.convert(value, kind)))


@pytest.mark.parametrize(
    ("route", "kind"),
    [("POST /api/auth/token", SignInBody), ("POST /api/auth/refresh", RefreshBody)],
)
def test_request_examples_are_accepted_bodies(route: str, kind: type[Any]):
    body = example(route, "request")
    assert round_trip(body, kind) | body == round_trip(body, kind)


def test_the_token_response_example_is_the_response_struct():
    body = example("POST /api/auth/token", "response")
    assert round_trip(body, TokenResponse) == body
    assert body["data"]["user"]["id"] == user_id_for(body["data"]["user"]["name"])


def test_the_my_rooms_example_is_a_room_page():
    body = example("GET /api/rooms", "response")
    assert body["success"] is True
    page = msgspec.convert(body["data"], RoomPage)
    assert msgspec.json.decode(msgspec.json.encode(Success(data=page))) == body
