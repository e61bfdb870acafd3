"""A replay's ready frame is the packet ``RoomDelivery.event_packet`` writes for it."""

from __future__ import annotations

import msgspec
import pytest

from roomcast.gateway import outlet
from roomcast.gateway.delivery import BATCH_EVENT, RoomDelivery

BODY = '[{"replayed":true,"eventId":"e1","seq":1,"name":"ünïcode ✓ 🎉"},{"replayed":true,"seq":2}]'


@pytest.mark.parametrize("namespace", ["/", "/rooms/room_1"])
def test_the_frame_packet_is_the_event_packet_of_the_same_array(namespace: str) -> None:
    # event_packet reads nothing of its instance: the class's function is enough.
    expected = RoomDelivery.event_packet(None, namespace, BATCH_EVENT, msgspec.Raw(BODY.encode()))
    got = outlet._frame_packet(namespace, BODY)
    assert got.encode() == expected.encode()
    assert msgspec.json.decode(got.encode()[2 + (namespace != "/") * (len(namespace) + 1) :]) == [
        BATCH_EVENT,
        msgspec.json.decode(BODY),
    ]
