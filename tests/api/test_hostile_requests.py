"""Requests the fuzzer (tests/stress/fuzz_api.py) found answered with a 500, each now a
refusal in the documented error shape, and the body timeout that bounds a trickled body.
In-process: the daemon's own connection handling is tested over its socket in
tests/stress/test_hostile_socket.py."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.test_api import assert_error

BAD_PATHS = ["\x00", "/tmp/\x00x", "\ud800"]  # NUL, a lone surrogate: valid JSON strings


@pytest.mark.parametrize("path", BAD_PATHS, ids=["nul", "nul-inside", "surrogate"])
@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("POST", "/v1/search", {"query": "find"}),
        ("POST", "/v1/search/batch", {"queries": ["find"]}),
        ("POST", "/v1/definitions", {"name": "f"}),
        ("POST", "/v1/references", {"name": "f"}),
        ("POST", "/v1/symbols", {}),
        ("POST", "/v1/workspaces", {}),
        ("POST", "/v1/workspaces/remove", {}),
        ("GET", "/v1/index/status", None),
    ],
)
async def test_a_path_no_file_can_have_is_a_422(api, path, method, route, body):
    """These were 500s: os.path.realpath raised ValueError (embedded null byte) or
    UnicodeEncodeError (surrogates not allowed)."""
    if body is None:
        if path == "\ud800":
            pytest.skip("a URL cannot carry a lone surrogate (UTF-8 has none)")
        resp = await api.request(method, route, params={"path": path})
    else:
        resp = await api.request(method, route, json={**body, "path": path})
    assert resp.status == 422, await resp.text()
    assert_error(await resp.json(), "invalid_path")


async def test_json_nested_past_the_stack_is_a_400(api):
    """json.loads raises RecursionError (a 500) for `[[[[...` a few thousand deep, well
    within api.max_body_size."""
    for body in ("[" * 100_000, '{"a":' * 100_000):
        resp = await api.post("/v1/search", data=body)
        assert resp.status == 400
        assert_error(await resp.json(), "invalid_json")
    assert (await api.get("/v1/status")).status == 200


async def test_a_body_that_stops_arriving_is_a_408_after_the_idle_timeout(api, services):
    """A client that sends its head and then a byte at a time would hold its handler for
    ever; the body must arrive within api.idle_timeout."""
    services.config._env["AXD_API_IDLE_TIMEOUT"] = "300ms"
    services.config.reload("test")

    async def trickle():
        yield b'{"query": '
        await asyncio.sleep(5)  # the daemon gives up long before
        yield b'"x"}'

    resp = await asyncio.wait_for(api.post("/v1/search", data=trickle()), 4)
    assert resp.status == 408
    doc = await resp.json()
    assert_error(doc, "request_timeout")
    assert doc["error"]["details"]["received"] == len(b'{"query": ')
