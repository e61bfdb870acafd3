"""docs/protocol.md is the wire contract: its examples are the real shapes, and it
names every event, ack and error code the server has.

An example is the ```json block right after a line that starts with the
event's name in backticks. Event examples are decoded into the Struct the
server encodes and encoded again: a field the Struct lacks, or a Struct field
the example lacks, fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from roomcast.domain.errors import ErrorCode
from roomcast.domain.events import EVENT_TYPES, AppEvent, decode_event
from roomcast.domain.notifications import INBOXES
from roomcast.gateway.protocol import (
    AnswerAck,
    AnswerRequest,
    MarkReadRequest,
    NotificationReplayRequest,
)
from roomcast.outbox import codec
from roomcast.outbox.codec import encode_event

PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
ENVELOPE = ("eventId", "seq")


def examples(name: str, label: str = "") -> list[Any]:
    """Every ```json block under a line that starts with `name` and then ``label``
    (up to the block, only prose lines that start with neither ` nor ```)."""
    pattern = re.compile(
        rf"^`{re.escape(name)}`{re.escape(label)}(?:\n| \(|$)[^\n]*\n"
        r"(?:(?!`)[^\n]*\n)*?```json\n(.*?)```",
        re.M | re.S,
    )
    return [msgspec.json.decode(block) for block in pattern.findall(PROTOCOL)]


def without_envelope(payload: dict[str, Any]) -> dict[str, Any]:
    assert all(key in payload for key in ENVELOPE), f"no eventId/seq in {payload}"
    return {k: v for k, v in payload.items() if k not in ENVELOPE}


def re_encoded(event: object) -> Any:
    return msgspec.json.decode(msgspec.json.encode(event))


ROOM_EVENTS = [str(t.__struct_config__.tag) for t in EVENT_TYPES]


@pytest.mark.parametrize("name", ROOM_EVENTS)
def test_every_room_event_has_an_example_that_is_its_struct(name: str):
    found = examples(name)
    assert found, f"docs/protocol.md has no example of {name}"
    for example in found:
        payload = without_envelope(example)
        event = decode_event(msgspec.json.encode(payload))
        assert re_encoded(event) == payload


def test_the_app_event_example_is_an_app_event_sent_flat():
    [example] = examples("lottery:draw_started")
    payload = without_envelope(example)
    ours = {k: payload[k] for k in ("type", "roomId", "timestamp", "appId")}
    stored = {**ours, "data": {k: v for k, v in payload.items() if k not in ours}}
    event = decode_event(msgspec.json.encode(stored))
    assert isinstance(event, AppEvent)
    # What the server sends for that stored event is the example, byte for byte.
    wire = codec.wire_payload(example["eventId"], example["seq"], encode_event(event), event.type)
    assert msgspec.json.decode(wire) == example


@pytest.mark.parametrize("name", ["notification:received", "notification:read"])
def test_notification_examples_are_inbox_events(name: str):
    [example] = examples(name)
    payload = without_envelope(example)
    assert re_encoded(INBOXES.decode_event(msgspec.json.encode(payload))) == payload


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("quiz:answer_submit", AnswerRequest),
        ("notification:mark_read", MarkReadRequest),
        ("notification:replay", NotificationReplayRequest),
    ],
)
def test_client_event_examples_are_accepted_requests(name: str, kind: type[Any]):
    request, *_ = examples(name)
    msgspec.convert(request, kind)  # raises if the server would refuse it


def test_the_quiz_ack_example_is_the_ack_struct():
    [ack] = examples("quiz:answer_submit", " ack")
    assert re_encoded(msgspec.convert(ack, AnswerAck)) == ack


def test_every_error_code_is_documented_in_the_error_table():
    table = PROTOCOL[PROTOCOL.index("\n## Error codes\n") :]
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in table]
    assert not missing, f"docs/protocol.md's error codes lack {missing}"


def test_every_event_a_client_may_send_is_documented():
    from roomcast.gateway.server import Gateway

    handled = set(Gateway().sio.handlers["/"]) - {"connect", "disconnect", "*"}
    glance = PROTOCOL[PROTOCOL.index("## At a glance") : PROTOCOL.index("## Connecting")]
    missing = sorted(name for name in handled if f"`{name}`" not in glance)
    assert not missing, f"docs/protocol.md's table lacks {missing}"
    assert {"room:subscribe", "quiz:answer_submit", "presence:get_online"} <= handled
