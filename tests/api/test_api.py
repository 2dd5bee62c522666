"""The HTTP API in-process: routes, the error shape, input validation, the OpenAPI document."""

from __future__ import annotations

import asyncio
import json

import pytest

from axd import API_VERSION, __version__
from axd.daemon.app import ROUTE_TABLES
from axd.events import TypeFilter
from tests.conftest import REPO


def assert_error(doc, code):
    assert set(doc) == {"error"}
    assert set(doc["error"]) == {"code", "message", "details"}
    assert doc["error"]["code"] == code
    assert doc["error"]["message"]


async def test_status_describes_the_daemon(api):
    resp = await api.get("/v1/status")
    assert resp.status == 200
    assert resp.headers["Axd-Version"] == __version__
    assert resp.headers["Axd-Api"] == str(API_VERSION)
    doc = await resp.json()
    for key in (
        "version",
        "pid",
        "uptime_s",
        "socket",
        "state_dir",
        "config_files",
        "components",
        "health",
        "loop",
    ):
        assert key in doc
    assert {"api", "config", "events", "loop"} <= set(doc["components"])
    assert all("health" in c for c in doc["components"].values())


async def test_openapi_lists_exactly_the_routes_that_exist(api):
    doc = await (await api.get("/v1/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {
        (r.method, r.resource.canonical)
        for r in api.server.app.router.routes()
        if r.method != "HEAD"
    }
    assert documented == served
    declared = {(r.method, r.path) for t in ROUTE_TABLES for r in t.routes}
    assert declared == served
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (method, path)
            assert "400" in op["responses"] and "403" in op["responses"]


async def test_every_documented_route_answers_json_not_404(api):
    doc = await (await api.get("/v1/openapi.json")).json()
    for path, ops in doc["paths"].items():
        for method in ops:
            if path == "/v1/shutdown":
                continue
            target = path.replace("{name}", "x") + ("?follow=false" if path == "/v1/events" else "")
            resp = await api.request(method.upper(), target, json={} if method == "post" else None)
            if resp.status == 404:  # a missing resource is fine; a missing route is not
                assert (await resp.json())["error"]["code"] != "not_found", (method, path)


async def test_unknown_route_is_a_json_404(api):
    resp = await api.get("/v1/nope")
    assert resp.status == 404
    doc = await resp.json()
    assert_error(doc, "not_found")
    assert "/v1/openapi.json" in doc["error"]["message"]


async def test_wrong_method_is_a_json_405_listing_the_allowed(api):
    resp = await api.delete("/v1/status")
    assert resp.status == 405
    doc = await resp.json()
    assert_error(doc, "method_not_allowed")
    assert "GET" in doc["error"]["details"]["allowed"]


async def test_malformed_json_is_a_400_with_position(api):
    resp = await api.post(
        "/v1/config/validate", data=b'{"text": ', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    doc = await resp.json()
    assert_error(doc, "invalid_json")
    assert doc["error"]["details"]["line"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": 5}, "body.text"),
        ({"txt": "a"}, "body.txt"),
        ([1, 2], "body"),
        ("text", "body"),
    ],
)
async def test_wrong_types_are_a_422_naming_the_field(api, body, field):
    resp = await api.post("/v1/config/validate", json=body)
    assert resp.status == 422
    doc = await resp.json()
    assert_error(doc, "invalid_value")
    assert doc["error"]["details"]["field"] == field


def strict_json(text: str):
    """What a browser's JSON.parse or jq accepts: no NaN, no Infinity."""

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


async def test_non_finite_numbers_are_answered_in_strict_json(api, tmp_path):
    body = json.dumps({"query": "x", "path": str(tmp_path), "limit": 1}).replace(
        '"limit": 1}', '"limit": 1e400}'
    )
    resp = await api.post("/v1/search", data=body)
    assert resp.status == 422
    doc = strict_json(await resp.text())
    assert doc["error"]["details"]["field"] == "body.limit"
    assert doc["error"]["details"]["value"] == "Infinity"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_non_json_literals_in_a_body_are_a_400(api, literal):
    resp = await api.post("/v1/config/validate", data=f'{{"text": {literal}}}')
    assert resp.status == 400
    doc = strict_json(await resp.text())
    assert_error(doc, "invalid_json")
    assert literal in doc["error"]["message"]


async def test_oversized_body_is_refused_with_413(api):
    big = json.dumps({"text": "x" * (2 << 20)})
    resp = await api.post("/v1/config/validate", data=big)
    assert resp.status == 413
    assert_error(await resp.json(), "body_too_large")

    async def chunks():
        for _ in range(40):
            yield b"x" * 65536

    resp = await api.post("/v1/config/validate", data=chunks())
    assert resp.status == 413
    # and the daemon keeps serving
    assert (await api.get("/v1/status")).status == 200


async def test_body_limit_follows_live_config(api, services):
    services.config._env["AXD_API_MAX_BODY_SIZE"] = "2KiB"
    services.config.reload("test")
    resp = await api.post("/v1/config/validate", json={"text": "#" * 4096})
    assert resp.status == 413
    assert (await resp.json())["error"]["details"]["limit"] == 2048


async def test_unexpected_handler_failure_is_a_json_500_and_serving_goes_on(api, services):
    services.components["broken"] = lambda: 1 / 0
    resp = await api.get("/v1/status")
    assert resp.status == 500
    assert_error(await resp.json(), "internal_error")
    del services.components["broken"]
    assert (await api.get("/v1/status")).status == 200


async def test_events_history_with_type_filter(api, services):
    services.bus.publish("plugin.started", name="a")
    services.bus.publish("config.reloaded", changed=[])
    services.bus.publish("plugin.crashed", name="a")
    resp = await api.get("/v1/events", params={"types": "plugin.*"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert [e["type"] for e in lines] == ["plugin.started", "plugin.crashed"]
    assert all({"ts", "type"} <= set(e) for e in lines)


async def test_events_follow_streams_live_events(api, services):
    resp = await api.get("/v1/events", params={"follow": "true", "limit": "0", "types": "x.wanted"})
    assert resp.status == 200
    services.bus.publish("x.unwanted")
    services.bus.publish("x.wanted", n=1)
    line = await asyncio.wait_for(resp.content.readline(), 5)
    assert json.loads(line)["n"] == 1
    services.bus.close()  # what shutdown does: the stream ends cleanly
    rest = await asyncio.wait_for(resp.content.read(), 5)
    assert rest == b""


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"types": "Bad Type"}, "query.types"),
        ({"follow": "maybe"}, "query.follow"),
        ({"limit": "-1"}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
    ],
)
async def test_events_bad_query_is_422(api, params, field):
    resp = await api.get("/v1/events", params=params)
    assert resp.status == 422
    doc = await resp.json()
    assert_error(doc, "invalid_value")
    assert doc["error"]["details"]["field"] == field


async def test_config_document(api):
    doc = await (await api.get("/v1/config")).json()
    assert doc["values"]["daemon.log_level"] == "info"
    assert doc["values"]["api.max_body_size"] == "1MiB"
    assert doc["sources"]["daemon.log_level"] == "default"
    assert {o["key"] for o in doc["options"]} == set(doc["values"])


async def test_config_reload_applies_and_publishes(api, services):
    services.config._env["AXD_EVENTS_HISTORY"] = "7"
    resp = await api.post("/v1/config/reload")
    assert resp.status == 200
    assert (await resp.json())["changed"] == ["events.history"]
    [event] = services.bus.recent(TypeFilter(["config.*"]))
    assert event["type"] == "config.reloaded" and event["changed"] == ["events.history"]


async def test_invalid_reload_is_422_and_keeps_the_old_config(api, services):
    services.config._env["AXD_DAEMON_LOG_LEVEL"] = "loud"
    resp = await api.post("/v1/config/reload")
    assert resp.status == 422
    doc = await resp.json()
    assert_error(doc, "config_invalid")
    assert doc["error"]["details"]["problems"][0]["key"] == "daemon.log_level"
    assert services.config["daemon.log_level"] == "info"
    status = await (await api.get("/v1/status")).json()
    assert status["components"]["config"]["health"] == "degraded"


async def test_validate_text(api):
    ok = await (await api.post("/v1/config/validate", json={"text": "[daemon]\n"})).json()
    assert ok["valid"] is True
    body = {"text": "[daemon]\nlog_level = 3\n", "name": "f.toml"}
    bad = await (await api.post("/v1/config/validate", json=body)).json()
    assert bad["valid"] is False
    assert bad["problems"][0] == {
        "key": "daemon.log_level",
        "value": 3,
        "allowed": "must be one of debug, info, warning, error",
        "source": "f.toml",
    }


async def test_shutdown_answers_before_stopping(api, services):
    resp = await api.post("/v1/shutdown")
    assert resp.status == 202
    assert (await resp.json())["stopping"] is True
    await asyncio.sleep(0)
    assert services.shutdowns == ["api"]


def test_every_route_module_renders_through_the_strict_encoder():
    """`web.json_response` and `json.dumps` default to writing NaN/Infinity: the API's
    modules go through axd/api/render.py instead."""
    api_dir = REPO / "axd" / "api"
    for module in api_dir.glob("*.py"):
        if module.name == "render.py":
            continue
        text = module.read_text()
        assert "web.json_response(" not in text and "json.dumps(" not in text, module.name
