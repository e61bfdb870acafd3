"""Contract tests for the private parts of python-socketio roomcast relies on.

Each test names the override it guards; an upgrade that changes what it relies
on fails here, loudly, instead of silently breaking delivery.
"""

from __future__ import annotations

import inspect

import socketio

from roomcast.gateway.server import Gateway


def test_gateway_start_relies_on_asyncserver_initialising_its_manager_once_behind_a_flag():
    """``Gateway.start`` sets ``manager_initialized`` and calls ``manager.initialize()``
    itself, the way ``AsyncServer._handle_eio_connect`` does on the first connection."""
    source = inspect.getsource(socketio.AsyncServer._handle_eio_connect)
    assert "if not self.manager_initialized:" in source, (
        "Gateway.start: python-socketio no longer guards manager.initialize() "
        "with manager_initialized in _handle_eio_connect"
    )
    assert "self.manager.initialize()" in source, "Gateway.start: initialize() moved"
    gateway = Gateway()
    calls: list[int] = []
    gateway.sio.manager.initialize = lambda: calls.append(1)
    assert gateway.sio.manager_initialized is False
    gateway.start()
    gateway.start()
    assert gateway.sio.manager_initialized is True
    assert calls == [1]
