"""docs/protocol.md's presence, typing, limits and token-expiry examples are the real shapes.

Each example is decoded with the Struct the server encodes and encoded again:
a field the Struct lacks, or a Struct field the example lacks, fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from roomcast import wire
from roomcast.gateway.live import OnlineList, PresenceOffline, PresenceOnline, RoomAck, TypingNotice
from roomcast.gateway.sessions import TokenExpired

PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def section(title: str) -> str:
    start = PROTOCOL.index(f"\n## {title}\n")
    end = PROTOCOL.find("\n## ", start + 1)
    return PROTOCOL[start : end if end != -1 else None]


def json_after(text: str, marker: str) -> Any:
    """The first ```json block after ``marker`` in ``text``."""
    at = text.index(marker)
    block = re.search(r"```json\n(.*?)```", text[at:], re.S)
    assert block is not None, marker
    return msgspec.json.decode(block.group(1))


def round_trip(kind: type[Any], example: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(msgspec.convert(example, kind)))


@pytest.mark.parametrize(
    ("title", "marker", "kind"),
    [
        ("Presence", "`presence:user_online`\n", PresenceOnline),
        ("Presence", "`presence:user_offline`\n", PresenceOffline),
        ("Typing", "| `typing:user_stopped` |", TypingNotice),
        ("Token expiry", "When it fires", TokenExpired),
    ],
)
def test_notice_examples_decode_into_the_structs_the_server_sends(title, marker, kind):
    example = json_after(section(title), marker)
    assert round_trip(kind, example) == example


def test_the_presence_list_example_is_an_ack_of_online_users():
    example = json_after(section("Presence"), "### `presence:get_online`")
    assert example["success"] is True
    assert round_trip(OnlineList, example["data"]) == example["data"]
    assert example["data"]["count"] == len(example["data"]["users"])


def test_the_typing_ack_example_is_the_real_ack():
    match = re.search(r"Both ack `(\{.*?\})`", section("Typing"), re.S)
    assert match is not None
    example = msgspec.json.decode(match.group(1))
    assert round_trip(RoomAck, example["data"]) == example["data"]


@pytest.mark.parametrize("code", ["RATE_LIMIT_EXCEEDED", "PAYLOAD_TOO_LARGE"])
def test_the_limit_refusals_are_failure_envelopes(code):
    marker = f'"{code}"'
    text = section("Limits: events per minute, message size")
    block = text[: text.index(marker)].rsplit("```json\n", 1)[1] + text[text.index(marker) :]
    example = msgspec.json.decode(block.split("```", 1)[0])
    failure = msgspec.convert(example, wire.Failure)
    assert failure.error.code == code
    assert msgspec.json.decode(wire.encode(failure)) == example
