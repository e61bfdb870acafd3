"""App events: permission, name prefix, reserved namespaces, stored verbatim."""

from __future__ import annotations

import pytest

from roomcast.domain import apps, room
from roomcast.domain.commands import PublishAppEvent
from roomcast.domain.errors import AppPermissionDenied, InvalidPayload, RoomClosed, RoomNotFound
from roomcast.domain.events import PLATFORM_NAMES, AppEvent, RoomDeleted, decode_event, event_name
from roomcast.domain.state import AppGrant, UserRef
from roomcast.outbox.codec import encode_event
from tests.unit.builders import AT, active_room, closed_room, then


def publish(name: str, app_id: str = "lottery", permissions=("realtime:publish",), data=None):
    return PublishAppEvent(
        actor=UserRef(id=f"app:{app_id}", name=app_id),
        at=AT,
        app=AppGrant(app_id=app_id, permissions=tuple(permissions)),
        name=name,
        data={"drawNumber": 1} if data is None else data,
    )


def test_published_verbatim_under_its_own_name_and_round_trips():
    [event] = room.decide(
        publish("lottery:draw_started", data={"a": [1, {"b": None}]}), active_room()
    )
    assert isinstance(event, AppEvent)
    assert event_name(event) == "lottery:draw_started"
    assert event.data == {"a": [1, {"b": None}]}
    assert decode_event(encode_event(event)) == event
    assert then(active_room(), event) == active_room()  # no room rule looks at it


def test_needs_realtime_publish():
    with pytest.raises(AppPermissionDenied) as refused:
        room.decide(publish("lottery:x", permissions=("quiz:read",)), active_room())
    assert refused.value.details["permission"] == "realtime:publish"


@pytest.mark.parametrize("name", ["other:x", "lottery", "lottery:", "lotteryx:y", "lottery: x"])
def test_name_must_carry_the_app_prefix(name: str):
    with pytest.raises(InvalidPayload) as refused:
        room.decide(publish(name), active_room())
    assert refused.value.details["field"] == "event"


@pytest.mark.parametrize("platform", sorted(PLATFORM_NAMES))
def test_an_app_can_never_forge_a_platform_event(platform: str):
    app_id = platform.split(":")[0]
    assert not apps.valid_app_id(app_id)
    with pytest.raises(InvalidPayload):
        room.decide(publish(platform, app_id=app_id), active_room())


def test_closed_and_deleted_rooms_refuse():
    with pytest.raises(RoomClosed):
        room.decide(publish("lottery:x"), closed_room())
    deleted = then(active_room(), RoomDeleted(room_id="room_1", timestamp=AT))
    with pytest.raises(RoomNotFound):
        room.decide(publish("lottery:x"), deleted)
