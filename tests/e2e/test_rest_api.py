"""The REST contract end to end: uvicorn on a free port, real PostgreSQL, httpx."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx
import pytest
import structlog
import structlog.testing

from roomcast import logfields

from ..conftest import RunningServer
from .support import user_id


class Api:
    """Thin caller: asserts the status and the envelope, returns ``data``."""

    def __init__(self, http: httpx.AsyncClient, server: RunningServer) -> None:
        self.http = http
        self.server = server

    async def call(self, method: str, path: str, who: str, status: int = 200, **kwargs: Any) -> Any:
        headers = {**self.server.auth(who, who.title()), **kwargs.pop("headers", {})}
        response = await self.http.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, response.text
        body = response.json()
        assert body["success"] is (status < 400)
        return body["data"] if body["success"] else body["error"]


@pytest.fixture
def api(http: httpx.AsyncClient, server: RunningServer) -> Api:
    return Api(http, server)


async def new_room(api: Api, organizer: str) -> str:
    data = await api.call("POST", "/api/rooms", organizer, 201, json={"name": "Lottery"})
    return str(data["room"]["id"])


class TestRoomLifecycle:
    async def test_a_whole_draw_from_room_creation_to_winner_removal(self, api: Api):
        org, ann, bob = user_id(), user_id(), user_id()
        created = await api.call(
            "POST", "/api/rooms", org, 201, json={"name": "New Year", "description": "d"}
        )
        room_id = created["room"]["id"]
        assert room_id.startswith("room_")
        assert created["room"] == {
            "id": room_id,
            "name": "New Year",
            "description": "d",
            "status": "draft",
            "settings": {},
            "organizerId": org,
            "createdAt": created["room"]["createdAt"],
        }
        assert created["version"] == 1
        assert created["events"][0]["event"] == "room:created"
        assert created["events"][0]["payload"]["seq"] == 1

        joined = await api.call("POST", f"/api/rooms/{room_id}/participants", ann, 201)
        assert joined["participant"]["userId"] == ann
        assert joined["participant"]["id"].startswith("part_")
        await api.call("POST", f"/api/rooms/{room_id}/participants", bob, 201)
        prize = await api.call(
            "POST",
            f"/api/rooms/{room_id}/prizes",
            org,
            201,
            json={"name": "iPhone", "quantity": 1, "imageUrl": "https://x/y.png"},
        )
        prize_id = prize["prize"]["id"]
        assert prize["prize"]["quantityRemaining"] == 1
        await api.call("POST", f"/api/rooms/{room_id}/status", org, json={"status": "active"})

        drawn = await api.call(
            "POST", f"/api/rooms/{room_id}/draws", org, 201, json={"prizeId": prize_id}
        )
        winner = drawn["winner"]
        assert winner["participant"]["user"]["id"] in {ann, bob}
        assert winner["prize"]["id"] == prize_id
        state = await api.call("GET", f"/api/rooms/{room_id}", org)
        assert state["prizes"][0]["quantityRemaining"] == 0
        assert [w["id"] for w in state["winners"]] == [winner["id"]]

        await api.call("DELETE", f"/api/rooms/{room_id}/winners/{winner['id']}", org)
        state = await api.call("GET", f"/api/rooms/{room_id}", org)
        assert state["winners"] == []
        assert state["prizes"][0]["quantityRemaining"] == 1
        assert state["version"] == 7

        log = await api.call("GET", f"/api/rooms/{room_id}/events?after=0&limit=100", ann)
        assert [e["event"] for e in log["events"]] == [
            "room:created",
            "participant:joined",
            "participant:joined",
            "prize:created",
            "room:status_changed",
            "winner:selected",
            "winner:removed",
        ]
        assert [e["payload"]["seq"] for e in log["events"]] == list(range(1, 8))
        assert log["headSeq"] == 7
        assert all(e["payload"]["roomId"] == room_id for e in log["events"])
        assert len({e["payload"]["eventId"] for e in log["events"]}) == 7

    async def test_the_log_pages_in_seq_order(self, api: Api):
        org = user_id()
        room_id = await new_room(api, org)
        for i in range(4):
            await api.call("PATCH", f"/api/rooms/{room_id}", org, json={"name": f"n{i}"})
        page = await api.call("GET", f"/api/rooms/{room_id}/events?after=1&limit=2", org)
        assert [e["payload"]["seq"] for e in page["events"]] == [2, 3]
        assert page["nextAfter"] == 3

    async def test_participants_leave_are_removed_and_change_role(self, api: Api):
        org, ann, bob = user_id(), user_id(), user_id()
        room_id = await new_room(api, org)
        await api.call("POST", f"/api/rooms/{room_id}/participants", ann, 201)
        bob_part = (await api.call("POST", f"/api/rooms/{room_id}/participants", bob, 201))[
            "participant"
        ]["id"]
        updated = await api.call(
            "PATCH",
            f"/api/rooms/{room_id}/participants/{bob_part}",
            org,
            json={"role": "moderator"},
        )
        assert updated["participant"]["role"] == "moderator"
        left = await api.call("DELETE", f"/api/rooms/{room_id}/participants/me", ann)
        assert left["events"][0]["event"] == "participant:left"
        removed = await api.call("DELETE", f"/api/rooms/{room_id}/participants/{bob_part}", org)
        assert removed["events"][0]["payload"]["reason"] == "removed"
        state = await api.call("GET", f"/api/rooms/{room_id}", org)
        assert state["participants"] == []

    async def test_a_deleted_room_is_gone_for_commands_and_reads(self, api: Api):
        org = user_id()
        room_id = await new_room(api, org)
        await api.call("DELETE", f"/api/rooms/{room_id}", org)
        error = await api.call("GET", f"/api/rooms/{room_id}", org, 404)
        assert error["code"] == "ROOM_NOT_FOUND"
        error = await api.call("PATCH", f"/api/rooms/{room_id}", org, 404, json={"name": "x"})
        assert error["code"] == "ROOM_NOT_FOUND"


class TestConcurrencyHeaders:
    async def test_if_match_with_a_stale_version_is_409_with_the_current_version(self, api: Api):
        org = user_id()
        room_id = await new_room(api, org)
        ok = await api.call(
            "PATCH", f"/api/rooms/{room_id}", org, json={"name": "b"}, headers={"If-Match": '"1"'}
        )
        assert ok["version"] == 2
        error = await api.call(
            "PATCH",
            f"/api/rooms/{room_id}",
            org,
            409,
            json={"name": "c"},
            headers={"If-Match": '"1"'},
        )
        assert error["code"] == "CONFLICT"
        assert error["details"]["currentVersion"] == 2

    async def test_the_read_returns_the_version_as_etag(self, http, server, api: Api):
        org = user_id()
        room_id = await new_room(api, org)
        response = await http.get(f"/api/rooms/{room_id}", headers=server.auth(org))
        assert response.headers["etag"] == '"1"'

    async def test_a_retried_idempotency_key_returns_the_first_response(self, http, server):
        org = user_id()
        headers = {**server.auth(org), "Idempotency-Key": str(uuid.uuid4())}
        first = await http.post("/api/rooms", json={"name": "Once"}, headers=headers)
        again = await http.post("/api/rooms", json={"name": "Once"}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        room_id = first.json()["data"]["room"]["id"]
        log = await http.get(f"/api/rooms/{room_id}/events", headers=server.auth(org))
        assert len(log.json()["data"]["events"]) == 1

    async def test_an_idempotency_key_reused_for_another_body_is_refused(self, http, server):
        headers = {**server.auth(user_id()), "Idempotency-Key": str(uuid.uuid4())}
        await http.post("/api/rooms", json={"name": "One"}, headers=headers)
        response = await http.post("/api/rooms", json={"name": "Two"}, headers=headers)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert "Traceback" not in response.text
    return dict(body["error"])


class TestErrorEnvelope:
    async def test_no_token_a_bad_token_and_an_expired_token_are_401(self, http, server):
        _error(await http.post("/api/rooms", json={"name": "x"}), 401, "AUTHENTICATION_FAILED")
        bad = {"Authorization": "Bearer not.a.jwt"}
        _error(
            await http.post("/api/rooms", json={"name": "x"}, headers=bad),
            401,
            "AUTHENTICATION_FAILED",
        )
        expired = {"Authorization": f"Bearer {server.token('usr_x', ttl=-60)}"}
        error = _error(
            await http.get("/api/rooms/room_x", headers=expired), 401, "AUTHENTICATION_FAILED"
        )
        assert "expired" in error["message"]

    async def test_a_token_for_another_audience_is_401(self, http, server):
        from roomcast.tokens import mint

        from ..conftest import JWT_SECRET

        token = mint(
            secret=JWT_SECRET,
            sub="u",
            name=None,
            issuer="roomcast",
            audience="someone-else",
            ttl_seconds=60,
        )
        response = await http.get("/api/rooms/r", headers={"Authorization": f"Bearer {token}"})
        _error(response, 401, "AUTHENTICATION_FAILED")

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            (b'{"name": ', 400, "INVALID_PAYLOAD"),
            (b"[1, 2]", 400, "INVALID_PAYLOAD"),
            (b'{"name": 5}', 400, "INVALID_PAYLOAD"),
            (b'{"name": ""}', 400, "INVALID_PAYLOAD"),
            (b'{"name": "x", "unknown": 1}', 400, "INVALID_PAYLOAD"),
            (b'{"name": "' + b"x" * 20_000 + b'"}', 413, "PAYLOAD_TOO_LARGE"),
        ],
    )
    async def test_malformed_and_oversized_bodies_are_typed_4xx(
        self, http, server, body, status, code
    ):
        headers = {**server.auth(user_id()), "content-type": "application/json"}
        _error(await http.post("/api/rooms", content=body, headers=headers), status, code)

    async def test_unknown_ids_are_404_with_their_resource_code(self, http, server, api: Api):
        org = user_id()
        room_id = await new_room(api, org)
        auth = server.auth(org)
        _error(await http.get("/api/rooms/room_nope", headers=auth), 404, "ROOM_NOT_FOUND")
        _error(
            await http.patch(
                f"/api/rooms/{room_id}/prizes/prize_nope", json={"name": "x"}, headers=auth
            ),
            404,
            "PRIZE_NOT_FOUND",
        )
        _error(
            await http.delete(f"/api/rooms/{room_id}/participants/part_nope", headers=auth),
            404,
            "PARTICIPANT_NOT_FOUND",
        )
        _error(
            await http.delete(f"/api/rooms/{room_id}/winners/winner_nope", headers=auth),
            404,
            "WINNER_NOT_FOUND",
        )
        _error(await http.get("/api/nothing-here", headers=auth), 404, "NOT_FOUND")

    async def test_rules_refused_by_the_domain_carry_their_codes(self, http, server, api: Api):
        org, stranger = user_id(), user_id()
        room_id = await new_room(api, org)
        _error(
            await http.get(f"/api/rooms/{room_id}", headers=server.auth(stranger)),
            403,
            "PERMISSION_DENIED",
        )
        _error(
            await http.post(
                f"/api/rooms/{room_id}/prizes", json={"name": "p"}, headers=server.auth(stranger)
            ),
            403,
            "PERMISSION_DENIED",
        )
        _error(
            await http.post(
                f"/api/rooms/{room_id}/status", json={"status": "draft"}, headers=server.auth(org)
            ),
            409,
            "INVALID_STATUS_TRANSITION",
        )
        _error(
            await http.post(
                f"/api/rooms/{room_id}/status", json={"status": "paused"}, headers=server.auth(org)
            ),
            400,
            "INVALID_PAYLOAD",
        )
        _error(
            await http.post(
                f"/api/rooms/{room_id}/draws", json={"prizeId": "prize_x"}, headers=server.auth(org)
            ),
            409,
            "ROOM_NOT_ACTIVE",
        )

    async def test_a_malformed_if_match_or_idempotency_key_is_400(self, http, server, api: Api):
        org = user_id()
        room_id = await new_room(api, org)
        headers = {**server.auth(org), "If-Match": "soon"}
        _error(
            await http.patch(f"/api/rooms/{room_id}", json={"name": "x"}, headers=headers),
            400,
            "INVALID_PAYLOAD",
        )
        headers = {**server.auth(org), "Idempotency-Key": "k" * 300}
        _error(
            await http.patch(f"/api/rooms/{room_id}", json={"name": "x"}, headers=headers),
            400,
            "INVALID_PAYLOAD",
        )

    async def test_a_wrong_method_is_405_in_the_envelope(self, http, server):
        _error(
            await http.put("/api/rooms", headers=server.auth(user_id())), 405, "METHOD_NOT_ALLOWED"
        )


class TestOperations:
    async def test_health_reports_the_database(self, http):
        response = await http.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["checks"]["database"]["ok"] is True
        assert body["node"]["relay"]["enabled"] is True
        assert isinstance(body["node"]["relay"]["active"], bool)  # False on a standby node
        assert isinstance(body["node"]["relay"]["published"], int)
        assert isinstance(body["node"]["sockets"]["connected"], int)

    async def test_openapi_is_served(self, http):
        response = await http.get("/api/docs/openapi.json")
        assert response.status_code == 200
        assert "/api/rooms/{roomId}/draws" in response.json()["paths"]

    async def test_every_response_carries_a_request_id(self, http):
        response = await http.get("/health", headers={"X-Request-ID": "abc123"})
        assert response.headers["x-request-id"] == "abc123"

    async def test_request_ids_stay_unique_when_the_process_seeds_random(self, http):
        # The server runs in this process: random.seed here is any library's seeding.
        ids = set()
        for _ in range(3):
            random.seed(0)
            ids.add((await http.get("/health")).headers["x-request-id"])
        assert len(ids) == 3

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [("GET", "/api/no-such-route", 404), ("PUT", "/api/rooms/room_x", 405)],
    )
    async def test_an_unrouted_request_has_a_request_id_and_an_access_line(
        self, http, method, path, status
    ):
        with structlog.testing.capture_logs(processors=[logfields.merge]) as lines:
            response = await http.request(method, path, headers={"X-Request-ID": "unrouted"})
            # The access line is written once the response has left, in the server's
            # thread: the client may hold the response first. A log list has nothing to
            # await, so look again until it is there (bounded).
            async with asyncio.timeout(10):
                while not any(line.get("request_id") == "unrouted" for line in lines):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        assert response.status_code == status
        assert response.headers["x-request-id"] == "unrouted"
        assert response.json()["success"] is False
        mine = [line for line in lines if line.get("request_id") == "unrouted"]
        assert [(line["event"], line["status"]) for line in mine] == [("request_finished", status)]

    async def test_a_command_logs_one_line_that_names_the_command_and_its_seq(self, api):
        org = user_id()
        room_id = await new_room(api, org)
        with structlog.testing.capture_logs(processors=[logfields.merge]) as lines:
            await api.call(
                "PATCH", f"/api/rooms/{room_id}", org, headers={"X-Request-ID": "one-line"},
                json={"name": "Renamed"},
            )  # fmt: skip
        # At info and above (the level shipped): debug lines are filtered out by then.
        mine = [
            line
            for line in lines
            if line.get("request_id") == "one-line" and line["log_level"] != "debug"
        ]
        assert [line["event"] for line in mine] == ["request_finished"]
        assert mine[0]["command"] == "update_room"
        assert mine[0]["room_id"] == room_id
        assert mine[0]["seq"] == 2
        assert mine[0]["events"] == 1
        assert mine[0]["status"] == 200
