"""The protocol's error codes and the one exception tree every edge maps from.

Clients act on ``code``; the message is for people. The HTTP status of each code
lives in ``roomcast.http.errors`` and the Socket.IO envelope in
``roomcast.gateway.errors``; both read this tree and nothing else.

* Rejected                        refused; nothing was written
  + InvalidPayload                INVALID_PAYLOAD          malformed or ill-typed input
    - PayloadTooLarge             PAYLOAD_TOO_LARGE
  + AuthenticationFailed          AUTHENTICATION_FAILED    missing, bad, expired or revoked token
  + PermissionDenied              PERMISSION_DENIED        authenticated, but not allowed
    - AppPermissionDenied         APP_PERMISSION_DENIED
  + NotFound                      NOT_FOUND                an unknown route or resource
                                  (METHOD_NOT_ALLOWED: REST only, a known route with another verb)
    - RoomNotFound                ROOM_NOT_FOUND           also for deleted rooms
    - ParticipantNotFound         PARTICIPANT_NOT_FOUND
    - PrizeNotFound               PRIZE_NOT_FOUND
    - WinnerNotFound              WINNER_NOT_FOUND
    - QuestionNotFound            QUESTION_NOT_FOUND
    - NotificationNotFound        NOTIFICATION_NOT_FOUND
  + RuleViolated                  per rule, raised by decide() when the room's state forbids it
    - (one class per rule: INVALID_STATUS_TRANSITION … QUESTION_CLOSED, ALREADY_ANSWERED)
  + VersionConflict               CONFLICT                 If-Match did not match the stream head
  + IdempotencyKeyReused          IDEMPOTENCY_KEY_REUSED   same key, different request
  + RateLimitExceeded             RATE_LIMIT_EXCEEDED
  + TooManyConnections            TOO_MANY_CONNECTIONS     a user's sockets on a node, at the limit
  + TooManySubscriptions          TOO_MANY_SUBSCRIPTIONS   a socket's rooms, at the limit
  + SlowConsumer                  SLOW_CONSUMER            a socket's unsent output passed its limit
  + ServiceUnavailable            SERVICE_UNAVAILABLE      the database cannot be reached; retry
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

__all__ = [
    "AlreadyAnswered",
    "AlreadyParticipant",
    "AppPermissionDenied",
    "AuthenticationFailed",
    "ErrorCode",
    "IdempotencyKeyReused",
    "InvalidPayload",
    "InvalidStatusTransition",
    "NoEligibleParticipants",
    "NotFound",
    "NotParticipant",
    "NotificationNotFound",
    "ParticipantNotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PrizeExhausted",
    "PrizeNotFound",
    "PrizeQuantityTooLow",
    "QuestionClosed",
    "QuestionNotFound",
    "RateLimitExceeded",
    "Rejected",
    "RoomClosed",
    "RoomNotActive",
    "RoomNotFound",
    "RuleViolated",
    "ServiceUnavailable",
    "SlowConsumer",
    "TooManyConnections",
    "TooManySubscriptions",
    "VersionConflict",
    "WinnerNotFound",
]

Details = Mapping[str, object]


class ErrorCode(StrEnum):
    """Every code a client can receive, over REST and Socket.IO alike."""

    # seed 003's table
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    ROOM_NOT_FOUND = "ROOM_NOT_FOUND"
    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    APP_PERMISSION_DENIED = "APP_PERMISSION_DENIED"
    # ours, documented in docs/protocol.md
    CONFLICT = "CONFLICT"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PARTICIPANT_NOT_FOUND = "PARTICIPANT_NOT_FOUND"
    PRIZE_NOT_FOUND = "PRIZE_NOT_FOUND"
    WINNER_NOT_FOUND = "WINNER_NOT_FOUND"
    QUESTION_NOT_FOUND = "QUESTION_NOT_FOUND"
    NOTIFICATION_NOT_FOUND = "NOTIFICATION_NOT_FOUND"
    INVALID_STATUS_TRANSITION = "INVALID_STATUS_TRANSITION"
    ROOM_NOT_ACTIVE = "ROOM_NOT_ACTIVE"
    ROOM_CLOSED = "ROOM_CLOSED"
    ALREADY_PARTICIPANT = "ALREADY_PARTICIPANT"
    NOT_PARTICIPANT = "NOT_PARTICIPANT"
    PRIZE_EXHAUSTED = "PRIZE_EXHAUSTED"
    PRIZE_QUANTITY_TOO_LOW = "PRIZE_QUANTITY_TOO_LOW"
    NO_ELIGIBLE_PARTICIPANTS = "NO_ELIGIBLE_PARTICIPANTS"
    QUESTION_CLOSED = "QUESTION_CLOSED"
    ALREADY_ANSWERED = "ALREADY_ANSWERED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class Rejected(Exception):
    """A request was refused; nothing was written. Clients act on ``code``."""

    code: ClassVar[ErrorCode]

    def __init__(self, message: str, details: Details | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.details!r})"


class InvalidPayload(Rejected):
    """The input does not have the documented shape or types."""

    code = ErrorCode.INVALID_PAYLOAD


class PayloadTooLarge(InvalidPayload):
    """The body or message is larger than the configured limit."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class AuthenticationFailed(Rejected):
    """The token is missing, malformed, expired, for another audience, or revoked."""

    code = ErrorCode.AUTHENTICATION_FAILED


class PermissionDenied(Rejected):
    """The caller is known but their role in the room does not allow the action."""

    code = ErrorCode.PERMISSION_DENIED


class AppPermissionDenied(PermissionDenied):
    """An app token lacks the permission the action needs."""

    code = ErrorCode.APP_PERMISSION_DENIED


class NotFound(Rejected):
    """No such route or resource."""

    code = ErrorCode.NOT_FOUND


class RoomNotFound(NotFound):
    """The room never existed or was deleted."""

    code = ErrorCode.ROOM_NOT_FOUND


class ParticipantNotFound(NotFound):
    """No current participant has that id in this room."""

    code = ErrorCode.PARTICIPANT_NOT_FOUND


class PrizeNotFound(NotFound):
    """No (undeleted) prize has that id in this room."""

    code = ErrorCode.PRIZE_NOT_FOUND


class WinnerNotFound(NotFound):
    """No current winner has that id in this room."""

    code = ErrorCode.WINNER_NOT_FOUND


class QuestionNotFound(NotFound):
    """No quiz question with that id in this room."""

    code = ErrorCode.QUESTION_NOT_FOUND


class NotificationNotFound(NotFound):
    """No notification with that id in the caller's inbox."""

    code = ErrorCode.NOTIFICATION_NOT_FOUND


class RuleViolated(Rejected):
    """The room's current state forbids the command; subclasses name the rule."""


class InvalidStatusTransition(RuleViolated):
    """Status only moves forward: draft → active → closed (or draft → closed)."""

    code = ErrorCode.INVALID_STATUS_TRANSITION


class RoomNotActive(RuleViolated):
    """Draws need an active room."""

    code = ErrorCode.ROOM_NOT_ACTIVE


class RoomClosed(RuleViolated):
    """A closed room accepts nothing but deletion."""

    code = ErrorCode.ROOM_CLOSED


class AlreadyParticipant(RuleViolated):
    """The caller is already a member (or is the organizer)."""

    code = ErrorCode.ALREADY_PARTICIPANT


class NotParticipant(RuleViolated):
    """The caller is not a current participant of the room."""

    code = ErrorCode.NOT_PARTICIPANT


class PrizeExhausted(RuleViolated):
    """The prize has no quantity left to draw."""

    code = ErrorCode.PRIZE_EXHAUSTED


class PrizeQuantityTooLow(RuleViolated):
    """A prize's quantity cannot drop below the number already awarded."""

    code = ErrorCode.PRIZE_QUANTITY_TOO_LOW


class NoEligibleParticipants(RuleViolated):
    """Nobody can win: no current participant without a prize."""

    code = ErrorCode.NO_ELIGIBLE_PARTICIPANTS


class QuestionClosed(RuleViolated):
    """The question was closed or its time limit has passed: answers are no longer taken."""

    code = ErrorCode.QUESTION_CLOSED


class AlreadyAnswered(RuleViolated):
    """One answer per participant per question."""

    code = ErrorCode.ALREADY_ANSWERED


class VersionConflict(Rejected):
    """The stream moved past the version the caller expected (If-Match)."""

    code = ErrorCode.CONFLICT


class IdempotencyKeyReused(Rejected):
    """An Idempotency-Key was sent again with a different request."""

    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class RateLimitExceeded(Rejected):
    """Too many requests; ``details['retryAfter']`` says when to try again (seconds)."""

    code = ErrorCode.RATE_LIMIT_EXCEEDED


class ServiceUnavailable(Rejected):
    """A dependency (PostgreSQL) cannot be reached; the request may be retried.

    ``details['retryAfter']`` (whole seconds, 1 unless given) is always set: REST
    sends it as ``Retry-After`` too, the socket in the error's details.
    """

    code = ErrorCode.SERVICE_UNAVAILABLE

    def __init__(self, message: str, details: Details | None = None) -> None:
        super().__init__(message, details)
        self.details.setdefault("retryAfter", 1)


class TooManyConnections(Rejected):
    """The user has ``ROOMCAST_MAX_CONNECTIONS_PER_USER`` sockets open on this node."""

    code = ErrorCode.TOO_MANY_CONNECTIONS


class TooManySubscriptions(Rejected):
    """The socket is in ``ROOMCAST_MAX_SUBSCRIPTIONS_PER_SOCKET`` rooms already."""

    code = ErrorCode.TOO_MANY_SUBSCRIPTIONS


class SlowConsumer(Rejected):
    """The socket's unsent output passed its high-water mark: the connection is ended
    and the client resumes from its last seq when it reconnects."""

    code = ErrorCode.SLOW_CONSUMER
