"""The browser side is served by the app: the SDK bundle, the pages, their headers."""

from __future__ import annotations

from roomcast.http.web import STATIC_DIR


async def test_the_sdk_bundle_is_served_as_javascript(http):
    response = await http.get("/client/roomcast.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers.get("etag")
    assert response.content == (STATIC_DIR / "client" / "roomcast.js").read_bytes()
    assert b"export{" in response.content.replace(b" ", b"")  # an ES module
    assert response.headers.get("last-modified")
    assert response.headers["access-control-allow-origin"] == "*"  # importable from any origin


async def test_the_type_declarations_are_served(http):
    response = await http.get("/client/roomcast.d.ts")
    assert response.status_code == 200
    assert b"export declare class RoomcastClient" in response.content


async def test_the_pages_are_html_with_a_same_origin_policy(http):
    for path, name in (("/", "index.html"), ("/ops", "ops.html")):
        response = await http.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.content == (STATIC_DIR / "web" / name).read_bytes()


async def test_a_missing_static_file_is_a_404_in_the_envelope(http):
    response = await http.get("/client/nope.js")
    assert response.status_code == 404
    assert response.json()["success"] is False
