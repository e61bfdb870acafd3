"""The pure domain: commands, events, state and the room decider. Depends on msgspec only."""

from roomcast.domain import commands, draw, errors, events, room, state

__all__ = ["commands", "draw", "errors", "events", "room", "state"]
