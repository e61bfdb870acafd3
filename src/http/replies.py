"""The shapes of a command's ``data``, per route, for the OpenAPI document only.

A command route answers ``commands.Reply``, whose entity fields are ``msgspec.Raw``
(lifted from the event's stored payload, never re-encoded), so ``Reply`` itself says
nothing about them. These Structs say what each route puts there; they are never
instantiated. ``roomcast.http.openapi`` turns them into JSON Schema with msgspec's
own generator, so the document describes what msgspec encodes.

An entity field is ``UNSET`` (absent, not null) when a command can succeed without
the event it is lifted from: a no-op (a role changed to the one it was) answers
``events: []`` and no entity.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from roomcast.domain.state import Participant, Prize, RoomInfo, Winner
from roomcast.outbox.codec import Envelope

__all__ = [
    "APP_EVENT_PAYLOAD",
    "AppEventReply",
    "CommandReply",
    "JoinReply",
    "ParticipantReply",
    "PrizeCreatedReply",
    "PrizeReply",
    "QuestionClosedReply",
    "QuestionReply",
    "RoomReply",
    "WinnerReply",
    "payload_ref",
]

APP_EVENT_PAYLOAD = "AppEventPayload"
"""The component of an app event's wire payload (flat: the app's fields beside ours)."""


def payload_ref(component: str) -> Meta:
    """A wire payload (``msgspec.Raw`` at run time) described by ``component``."""
    return Meta(extra_json_schema={"$ref": f"#/components/schemas/{component}"})


class CommandReply(msgspec.Struct, frozen=True, kw_only=True):
    """A command's ``data``: the room's version after it and the events it appended."""

    version: int
    events: list[Envelope]


class RoomReply(CommandReply, frozen=True, kw_only=True):
    room: RoomInfo


class JoinReply(CommandReply, frozen=True, kw_only=True):
    participant: Participant


class ParticipantReply(CommandReply, frozen=True, kw_only=True):
    participant: Participant | UnsetType = UNSET


class PrizeCreatedReply(CommandReply, frozen=True, kw_only=True):
    prize: Prize


class PrizeReply(CommandReply, frozen=True, kw_only=True):
    prize: Prize | UnsetType = UNSET


class WinnerReply(CommandReply, frozen=True, kw_only=True):
    winner: Winner


class AppEventReply(CommandReply, frozen=True, kw_only=True):
    event: Annotated[msgspec.Raw, payload_ref(APP_EVENT_PAYLOAD)]


class QuestionReply(CommandReply, frozen=True, kw_only=True):
    question: Annotated[msgspec.Raw, payload_ref("QuestionPublishedPayload")]


class QuestionClosedReply(CommandReply, frozen=True, kw_only=True):
    question: Annotated[msgspec.Raw, payload_ref("QuestionClosedPayload")] | UnsetType = UNSET
