"""The OpenAPI document against what the live server really answers, route by route.

Every operation of ``/api/docs/openapi.json`` is called for real, at least once
successfully and once refused; each answer is checked against the document: its
status is listed, its body matches the schema of that status and media type, the
headers the document requires are there, every header it sends of the ones the
API defines (ETag, Idempotent-Replayed, Retry-After, X-Request-ID) is declared
for that response, and each value matches its schema. The last test fails if an
operation of the document was not called both ways, so a new route must join.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
import jsonschema_rs
import pytest

from ..conftest import RunningServer
from .sse_client import open_stream
from .support import bearer, token, user_id

API_HEADERS = ("etag", "idempotent-replayed", "retry-after", "x-request-id", "cache-control")
"""Response headers with a meaning in the API: when sent, the document must declare them."""

SKIPPED_HEADERS = frozenset({"cache-control"})
"""Sent by Litestar's static and docs routes too; declared where the API promises it."""


def _essence(media_type: str) -> str:
    return media_type.split(";", 1)[0].strip().lower()


class Document:
    """The served document, and which operations were seen succeeding and refusing."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.seen: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._validators: dict[int, Any] = {}

    def operations(self) -> set[tuple[str, str]]:
        return {
            (method.upper(), path)
            for path, item in self.raw["paths"].items()
            for method in item
            if method in ("get", "post", "put", "patch", "delete")
        }

    def _validator(self, schema: dict[str, Any]) -> Any:
        key = id(schema)
        if key not in self._validators:
            # Refs are "#/components/schemas/…": resolved against this root.
            root = {**schema, "components": self.raw["components"]}
            self._validators[key] = jsonschema_rs.Draft202012Validator(root)
        return self._validators[key]

    def check(self, response: httpx.Response, path: str) -> httpx.Response:
        method = response.request.method
        label = f"{method} {path} → {response.status_code}"
        operation = self.raw["paths"][path][method.lower()]
        declared = operation["responses"].get(str(response.status_code))
        assert declared is not None, f"{label}: status not in the document ({response.text[:300]})"
        content_type = _essence(response.headers.get("content-type", ""))
        media = {_essence(name): value for name, value in declared.get("content", {}).items()}
        assert content_type in media, f"{label}: {content_type} not declared ({list(media)})"
        schema = media[content_type]["schema"]
        if content_type.endswith("json"):
            errors = [e.message for e in self._validator(schema).iter_errors(response.json())]
            assert errors == [], f"{label}: the body breaks its schema: {errors[:5]}"
        else:
            assert schema.get("type") == "string", label
        headers = {name.lower(): value for name, value in declared.get("headers", {}).items()}
        for name, header in headers.items():
            if header.get("required"):
                assert name in response.headers, f"{label}: required header {name} missing"
            if name in response.headers:
                value: Any = response.headers[name]
                if header["schema"].get("type") == "integer":
                    assert value.isdigit(), f"{label}: {name}: {value!r}"
                    value = int(value)
                errors = [e.message for e in self._validator(header["schema"]).iter_errors(value)]
                assert errors == [], f"{label}: header {name}={value!r}: {errors}"
        for name in API_HEADERS:
            if name in response.headers and name not in SKIPPED_HEADERS:
                assert name in headers, f"{label}: sends {name}, which the document omits"
        self.seen[(method, path)].add("success" if response.status_code < 400 else "error")
        return response


@pytest.fixture(scope="module")
def document(server: RunningServer) -> Document:
    response = httpx.get(f"{server.url}/api/docs/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    return Document(response.json())


def test_the_document_describes_bodies_headers_and_security(document: Document):
    raw = document.raw
    schemes = raw["components"]["securitySchemes"]
    assert schemes["userBearer"]["scheme"] == schemes["appBearer"]["scheme"] == "bearer"
    assert schemes["appId"] == {**schemes["appId"], "in": "header", "name": "X-App-Id"}
    create = raw["paths"]["/api/rooms"]["post"]
    assert {"userBearer": []} in create["security"]
    assert {"appBearer": [], "appId": []} in create["security"]
    assert raw["paths"]["/api/rooms/{roomId}/events"]["post"]["security"] == [
        {"appBearer": [], "appId": []}
    ]
    assert raw["paths"]["/health"]["get"]["security"] == []
    names = {p["name"] for p in create["parameters"] if p["in"] == "header"}
    assert {"If-Match", "Idempotency-Key", "X-Request-ID"} <= names
    created = create["responses"]["201"]
    assert {"ETag", "Idempotent-Replayed", "X-Request-ID"} <= set(created["headers"])
    data = created["content"]["application/json"]["schema"]["properties"]["data"]
    assert data == {"$ref": "#/components/schemas/RoomReply"}
    reply = raw["components"]["schemas"]["RoomReply"]
    assert reply["properties"]["room"] == {"$ref": "#/components/schemas/RoomInfo"}
    assert "organizerId" in raw["components"]["schemas"]["RoomInfo"]["required"]
    assert "Retry-After" in create["responses"]["429"]["headers"]
    conflict = create["responses"]["409"]["content"]["application/json"]["schema"]
    assert conflict["allOf"] == [{"$ref": "#/components/schemas/Failure"}]
    assert "CONFLICT" in conflict["properties"]["error"]["properties"]["code"]["enum"]
    for method, path in document.operations():
        responses = raw["paths"][path][method.lower()]["responses"]
        for status, answer in responses.items():
            for media in answer["content"].values():
                if int(status) >= 400 and (path, status) != ("/health", "503"):
                    assert media["schema"]["allOf"] == [{"$ref": "#/components/schemas/Failure"}]
                elif media["schema"] == {"type": "string"}:
                    assert path in ("/metrics",) or path.endswith("/stream"), (method, path)


async def test_every_route_answers_what_the_document_says(
    server: RunningServer, document: Document
):
    check = document.check
    org, guest, leaver, outsider = user_id(), user_id(), user_id(), user_id()
    admin = bearer(token(server, user_id(), roles=["admin"]))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def call(method: str, path: str, url: str, **kwargs: Any) -> httpx.Response:
            return check(await http.request(method, url, **kwargs), path)

        # -- rooms -------------------------------------------------------------------
        created = await call(
            "POST",
            "/api/rooms",
            "/api/rooms",
            json={"name": "Doc"},
            headers={**server.auth(org), "Idempotency-Key": "create-1"},
        )
        assert created.status_code == 201
        room = created.json()["data"]["room"]["id"]
        replayed = await call(
            "POST",
            "/api/rooms",
            "/api/rooms",
            json={"name": "Doc"},
            headers={**server.auth(org), "Idempotency-Key": "create-1"},
        )
        assert replayed.headers["idempotent-replayed"] == "true"
        assert (
            await call("POST", "/api/rooms", "/api/rooms", json={"name": "x"})
        ).status_code == 401
        r = "/api/rooms/{roomId}"
        assert (
            await call("GET", "/api/rooms", "/api/rooms", headers=server.auth(org))
        ).status_code == 200
        bad = await call("GET", "/api/rooms", "/api/rooms?limit=0", headers=server.auth(org))
        assert bad.status_code == 400
        read = await call("GET", r, f"/api/rooms/{room}", headers=server.auth(org))
        version = read.headers["etag"]
        unknown = await call("GET", r, "/api/rooms/room_nope", headers=server.auth(org))
        assert unknown.status_code == 404
        renamed = await call(
            "PATCH",
            r,
            f"/api/rooms/{room}",
            json={"name": "Doc 2"},
            headers={**server.auth(org), "If-Match": version},
        )
        assert renamed.status_code == 200
        stale = await call(
            "PATCH",
            r,
            f"/api/rooms/{room}",
            json={"name": "Doc 3"},
            headers={**server.auth(org), "If-Match": version},
        )
        assert stale.status_code == 409

        # -- participants ------------------------------------------------------------
        p = "/api/rooms/{roomId}/participants"
        joined = await call(
            "POST", p, f"/api/rooms/{room}/participants", headers=server.auth(guest)
        )
        guest_part = joined.json()["data"]["participant"]["id"]
        again = await call("POST", p, f"/api/rooms/{room}/participants", headers=server.auth(guest))
        assert again.status_code == 409
        leaver_joined = await call(
            "POST", p, f"/api/rooms/{room}/participants", headers=server.auth(leaver)
        )
        leaver_part = leaver_joined.json()["data"]["participant"]["id"]
        one = p + "/{participantId}"
        role = await call(
            "PATCH",
            one,
            f"/api/rooms/{room}/participants/{guest_part}",
            json={"role": "moderator"},
            headers=server.auth(org),
        )
        assert role.status_code == 200
        same = await call(
            "PATCH",
            one,
            f"/api/rooms/{room}/participants/{guest_part}",
            json={"role": "moderator"},
            headers=server.auth(org),
        )
        assert same.json()["data"]["events"] == []  # a no-op: no entity, still the schema
        nobody = await call(
            "PATCH",
            one,
            f"/api/rooms/{room}/participants/part_nope",
            json={"role": "moderator"},
            headers=server.auth(org),
        )
        assert nobody.status_code == 404

        # -- prizes, activation, draws --------------------------------------------------
        z = "/api/rooms/{roomId}/prizes"
        prize = await call(
            "POST", z, f"/api/rooms/{room}/prizes", json={"name": "Cup"}, headers=server.auth(org)
        )
        prize_id = prize.json()["data"]["prize"]["id"]
        invalid = await call(
            "POST", z, f"/api/rooms/{room}/prizes", json={"name": ""}, headers=server.auth(org)
        )
        assert invalid.status_code == 400
        spare = await call(
            "POST", z, f"/api/rooms/{room}/prizes", json={"name": "Mug"}, headers=server.auth(org)
        )
        spare_id = spare.json()["data"]["prize"]["id"]
        zz = z + "/{prizeId}"
        await call(
            "PATCH",
            zz,
            f"/api/rooms/{room}/prizes/{prize_id}",
            json={"quantity": 2},
            headers=server.auth(org),
        )
        missing_prize = await call(
            "PATCH",
            zz,
            f"/api/rooms/{room}/prizes/prize_nope",
            json={"quantity": 2},
            headers=server.auth(org),
        )
        assert missing_prize.status_code == 404
        s = "/api/rooms/{roomId}/status"
        active = await call(
            "POST",
            s,
            f"/api/rooms/{room}/status",
            json={"status": "active"},
            headers=server.auth(org),
        )
        assert active.status_code == 200
        not_mine = await call(
            "POST",
            s,
            f"/api/rooms/{room}/status",
            json={"status": "closed"},
            headers=server.auth(guest),
        )
        assert not_mine.status_code == 403
        d = "/api/rooms/{roomId}/draws"
        # The inboxes of both who may win, live: the draw's notification is awaited.
        inbox_path = "/api/notifications/stream"
        async with (
            open_stream(http, inbox_path, headers=server.auth(guest)) as guest_notes,
            open_stream(http, inbox_path, headers=server.auth(leaver)) as leaver_notes,
        ):
            check(guest_notes.response, inbox_path)
            drawn = await call(
                "POST",
                d,
                f"/api/rooms/{room}/draws",
                json={"prizeId": prize_id},
                headers=server.auth(org),
            )
            lucky = drawn.json()["data"]["winner"]["participant"]["user"]["id"]
            notes = guest_notes if lucky == guest else leaver_notes
            await notes.wait(lambda s: any(e.event == "notification:received" for e in s.events))
        winner = drawn.json()["data"]["winner"]["id"]
        no_prize = await call(
            "POST",
            d,
            f"/api/rooms/{room}/draws",
            json={"prizeId": "prize_nope"},
            headers=server.auth(org),
        )
        assert no_prize.status_code == 404
        w = "/api/rooms/{roomId}/winners/{winnerId}"
        removed = await call(
            "DELETE", w, f"/api/rooms/{room}/winners/{winner}", headers=server.auth(org)
        )
        assert removed.status_code == 200
        gone = await call(
            "DELETE", w, f"/api/rooms/{room}/winners/{winner}", headers=server.auth(org)
        )
        assert gone.status_code == 404
        await call("DELETE", zz, f"/api/rooms/{room}/prizes/{spare_id}", headers=server.auth(org))
        assert (
            await call(
                "DELETE", zz, f"/api/rooms/{room}/prizes/prize_nope", headers=server.auth(org)
            )
        ).status_code == 404

        # -- quiz ----------------------------------------------------------------------
        q = "/api/rooms/{roomId}/quiz/questions"
        question = {"question": "2 + 2?", "options": ["3", "4"], "answer": "4", "timeLimit": 60}
        published = await call(
            "POST", q, f"/api/rooms/{room}/quiz/questions", json=question, headers=server.auth(org)
        )
        question_id = published.json()["data"]["question"]["questionId"]
        refused = await call(
            "POST",
            q,
            f"/api/rooms/{room}/quiz/questions",
            json=question,
            headers=server.auth(outsider),
        )
        assert refused.status_code == 403
        c = q + "/{questionId}/close"
        closed = await call(
            "POST",
            c,
            f"/api/rooms/{room}/quiz/questions/{question_id}/close",
            headers=server.auth(org),
        )
        assert closed.status_code == 200
        assert (
            await call(
                "POST",
                c,
                f"/api/rooms/{room}/quiz/questions/q_nope/close",
                headers=server.auth(org),
            )
        ).status_code == 404
        b = "/api/rooms/{roomId}/quiz/leaderboard"
        await call("GET", b, f"/api/rooms/{room}/quiz/leaderboard", headers=server.auth(guest))
        assert (await call("GET", b, f"/api/rooms/{room}/quiz/leaderboard")).status_code == 401

        # -- an app's event; the log and the chain --------------------------------------
        e = "/api/rooms/{roomId}/events"
        app = server.app_auth("docapp")
        await call(
            "POST",
            e,
            f"/api/rooms/{room}/events",
            json={"event": "docapp:ping", "data": {"n": 1}},
            headers=app,
        )
        as_user = await call(
            "POST",
            e,
            f"/api/rooms/{room}/events",
            json={"event": "docapp:ping"},
            headers=server.auth(org),
        )
        assert as_user.status_code == 403
        log = await call("GET", e, f"/api/rooms/{room}/events", headers=server.auth(org))
        names = {event["event"] for event in log.json()["data"]["events"]}
        assert {"room:created", "winner:selected", "quiz:question_closed", "docapp:ping"} <= names
        assert (
            await call("GET", e, f"/api/rooms/{room}/events?after=x", headers=server.auth(org))
        ).status_code == 400
        ch = "/api/rooms/{roomId}/chain"
        await call("GET", ch, f"/api/rooms/{room}/chain", headers=server.auth(org))
        assert (
            await call("GET", ch, f"/api/rooms/{room}/chain", headers=server.auth(outsider))
        ).status_code in (403, 404)

        # -- notifications (the draw notified the guest) ---------------------------------
        n = "/api/notifications"
        inbox = await call("GET", n, n, headers=server.auth(lucky))
        [note] = inbox.json()["data"]["notifications"]
        assert (await call("GET", n, f"{n}?limit=0", headers=server.auth(lucky))).status_code == 400
        mark = n + "/{notificationId}/read"
        await call("POST", mark, f"{n}/{note['id']}/read", headers=server.auth(lucky))
        assert (
            await call("POST", mark, f"{n}/{note['id']}/read", headers=server.auth(outsider))
        ).status_code == 404

        # -- leaving, removing, deleting -------------------------------------------------
        me = p + "/me"
        await call("DELETE", me, f"/api/rooms/{room}/participants/me", headers=server.auth(leaver))
        assert (
            await call(
                "DELETE", me, f"/api/rooms/{room}/participants/me", headers=server.auth(leaver)
            )
        ).status_code == 409
        await call(
            "DELETE", one, f"/api/rooms/{room}/participants/{guest_part}", headers=server.auth(org)
        )
        assert (
            await call(
                "DELETE",
                one,
                f"/api/rooms/{room}/participants/{leaver_part}",
                headers=server.auth(org),
            )
        ).status_code in (404, 409)

        # -- the live streams: headers and status, then closed ---------------------------
        for path, url in (
            ("/api/rooms/{roomId}/stream", f"/api/rooms/{room}/stream"),
            (inbox_path, inbox_path),
        ):
            async with http.stream("GET", url, headers=server.auth(org)) as stream:
                check(stream, path)
            assert (await call("GET", path, url)).status_code == 401

        deleted = await call("DELETE", r, f"/api/rooms/{room}", headers=server.auth(org))
        assert deleted.status_code == 200
        assert (
            await call("DELETE", r, f"/api/rooms/{room}", headers=server.auth(org))
        ).status_code == 404

        # -- operations ------------------------------------------------------------------
        await call("GET", "/health", "/health")
        assert (await call("GET", "/health", "/health?x=%00")).status_code == 400
        await call("GET", "/metrics", "/metrics")
        assert (await call("GET", "/metrics", "/metrics?x=%01")).status_code == 400
        await call("GET", "/api/admin/stats", "/api/admin/stats", headers=admin)
        assert (
            await call("GET", "/api/admin/stats", "/api/admin/stats", headers=server.auth(org))
        ).status_code == 403
        await call("GET", "/api/admin/rooms", f"/api/admin/rooms?roomId={room}", headers=admin)
        assert (
            await call("GET", "/api/admin/rooms", "/api/admin/rooms", headers=server.auth(org))
        ).status_code == 403

        # -- tokens ----------------------------------------------------------------------
        signed = await call("POST", "/api/auth/token", "/api/auth/token", json={"name": "Doc User"})
        pair = signed.json()["data"]
        assert (
            await call("POST", "/api/auth/token", "/api/auth/token", json={"name": ""})
        ).status_code == 400
        refreshed = await call(
            "POST",
            "/api/auth/refresh",
            "/api/auth/refresh",
            json={"refreshToken": pair["refreshToken"]},
        )
        assert refreshed.status_code == 200
        reused = await call(
            "POST",
            "/api/auth/refresh",
            "/api/auth/refresh",
            json={"refreshToken": pair["refreshToken"]},
        )
        assert reused.status_code == 401
        throwaway = bearer(server.token(user_id()))
        await call("POST", "/api/auth/revoke", "/api/auth/revoke", headers=throwaway)
        assert (
            await call(
                "POST",
                "/api/auth/revoke",
                "/api/auth/revoke",
                json={"jti": "someone-else"},
                headers=server.auth(org),
            )
        ).status_code == 403


async def test_a_refusal_that_says_when_to_retry_is_declared(
    server: RunningServer, document: Document
):
    """429 with Retry-After, from a server of its own with a tiny REST rate limit."""
    from roomcast.config import Settings

    from ..conftest import JWT_SECRET, run_server

    settings = Settings(
        database_url=server.settings.database_url,
        jwt_secret=JWT_SECRET,
        data_dir=server.settings.data_dir,
        rest_rate_limit=1,
    )
    with run_server(settings) as limited:
        who = limited.auth(user_id())
        async with httpx.AsyncClient(base_url=limited.url, timeout=30) as http:
            first, second = [await http.get("/api/rooms", headers=who) for _ in range(2)]
        document.check(first, "/api/rooms")
        document.check(second, "/api/rooms")
        assert second.status_code == 429
        assert int(second.headers["retry-after"]) >= 1


async def test_options_lists_exactly_the_documented_methods(
    server: RunningServer, document: Document
):
    """Litestar's own OPTIONS answer left methods out on paths with several
    (``Allow: OPTIONS, POST`` on /api/rooms); roomcast.http.allow answers instead."""
    by_path: dict[str, set[str]] = defaultdict(set)
    for method, path in document.operations():
        by_path[path].add(method)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for path, methods in sorted(by_path.items()):
            url = path.replace("{roomId}", "room_x").replace("{", "").replace("}", "")
            response = await http.options(url)
            assert response.status_code == 204, (path, response.text)
            allow = {m.strip() for m in response.headers["allow"].split(",")}
            assert allow == {*methods, "OPTIONS"}, path


def test_every_operation_was_called_succeeding_and_refused(document: Document):
    missing = {
        f"{method} {path}": sorted({"success", "error"} - document.seen.get((method, path), set()))
        for method, path in document.operations()
        if document.seen.get((method, path), set()) != {"success", "error"}
    }
    assert missing == {}


def test_the_yaml_document_and_the_pages_serve_the_same_completed_document(
    server: RunningServer, document: Document
):
    import yaml

    as_yaml = httpx.get(f"{server.url}/api/docs/openapi.yaml", timeout=30)
    assert as_yaml.status_code == 200
    assert yaml.safe_load(as_yaml.text) == document.raw
    for page in ("/api/docs", "/api/docs/swagger", "/api/docs/redoc"):
        response = httpx.get(f"{server.url}{page}", timeout=30)
        assert response.status_code == 200, page
        # Swagger fetches the JSON; Redoc (also at /api/docs) embeds the document.
        assert "/api/docs/openapi.json" in response.text or "RoomReply" in response.text, page
