"""Telemetry: a real OTLP/HTTP receiver on loopback decodes what the daemon sends; a dead
collector changes nothing for clients; Prometheus text; `axctl --trace`."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import threading

import pytest
from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import DATA, wait_for

POLYGLOT = DATA / "polyglot"


class Collector:
    """An OTLP/HTTP receiver in a thread: decodes protobuf payloads and keeps them."""

    def __init__(self, hang: bool = False) -> None:
        self.spans: list = []
        self.metrics: set[str] = set()
        self.logs: list[str] = []
        self.hang = hang
        self.port = _free_port()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        app.router.add_post("/v1/logs", self._logs)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    async def _body(self, request: web.Request) -> bytes:
        if self.hang:
            await asyncio.sleep(3600)
        return await request.read()

    async def _traces(self, request: web.Request) -> web.Response:
        msg = ExportTraceServiceRequest.FromString(await self._body(request))
        for rs in msg.resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append((service.get("service.name"), span.name, attrs))
        return web.Response(content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        msg = ExportMetricsServiceRequest.FromString(await self._body(request))
        for rm in msg.resource_metrics:
            for sm in rm.scope_metrics:
                self.metrics.update(m.name for m in sm.metrics)
        return web.Response(content_type="application/x-protobuf")

    async def _logs(self, request: web.Request) -> web.Response:
        msg = ExportLogsServiceRequest.FromString(await self._body(request))
        for rl in msg.resource_logs:
            for sl in rl.scope_logs:
                self.logs += [r.body.string_value for r in sl.log_records]
        return web.Response(content_type="application/x-protobuf")


def _value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _search(home, root, query):
    resp = home.client(30).request("POST", "/v1/search", {"query": query, "path": str(root)})
    assert resp.status == 200, resp.body
    return resp.json()


@pytest.mark.e2e
def test_spans_metrics_and_events_reach_a_real_collector(home, daemon_factory):
    collector = Collector()
    root = home.root / "project"
    shutil.copytree(POLYGLOT, root)
    d = daemon_factory()
    d.start(
        env={
            "AXD_TELEMETRY_ENABLED": "true",
            "AXD_TELEMETRY_ENDPOINT": f"http://127.0.0.1:{collector.port}",
            "AXD_TELEMETRY_EXPORT_INTERVAL": "200ms",
        }
    )
    assert home.client(60).request("POST", "/v1/workspaces", {"path": str(root)}).status == 200
    assert _search(home, root, "terminal size")["cache"] == "miss"
    assert _search(home, root, "terminal size")["cache"] == "hit"

    def has_span(name, **attrs):
        return any(
            n == name and all(a.get(k) == v for k, v in attrs.items())
            for _, n, a in collector.spans
        )

    wait_for(
        lambda: (
            has_span("codeintel.search", cache="hit") and has_span("codeintel.search", cache="miss")
        ),
        timeout=20,
    )
    assert has_span(
        "POST /v1/search", **{"http.route": "/v1/search", "http.response.status_code": 200}
    )
    assert has_span("codeintel.index_batch")
    assert {s for s, _, _ in collector.spans} == {"axd"}
    wait_for(
        lambda: (
            {
                "axd.search.duration",
                "axd.search.cache",
                "axd.http.server.duration",
                "axd.index.chunks",
            }
            <= collector.metrics
        ),
        timeout=20,
    )
    wait_for(lambda: "index.updated" in collector.logs, timeout=20)


@pytest.mark.e2e
def test_a_dead_or_hung_collector_changes_nothing_for_clients(home, daemon_factory):
    hung = Collector(hang=True)
    root = home.root / "project"
    shutil.copytree(POLYGLOT, root)
    for endpoint in (f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{hung.port}"):
        d = daemon_factory()
        d.start(
            env={
                "AXD_TELEMETRY_ENABLED": "true",
                "AXD_TELEMETRY_ENDPOINT": endpoint,
                "AXD_TELEMETRY_EXPORT_INTERVAL": "100ms",
                "AXD_TELEMETRY_TIMEOUT": "1s",
                "AXD_TELEMETRY_QUEUE_SIZE": "16",
            }
        )
        assert home.client(60).request("POST", "/v1/workspaces", {"path": str(root)}).status == 200
        for i in range(40):  # more spans than the queue holds
            assert _search(home, root, f"terminal {i}")["results"] is not None
            assert home.client(5).request("GET", "/v1/status").status == 200
        text = home.client().request("GET", "/v1/metrics").body.decode()
        dropped = re.search(
            r"otel_sdk_processor_span_processed_total\{[^}]*error_type="
            r'"queue_full"[^}]*\} (\d+)',
            text,
        )
        assert dropped and int(dropped.group(1)) > 0, "spans past the queue are counted"
        home.client().request("POST", "/v1/shutdown")
        assert d.wait() == 0


@pytest.mark.e2e
def test_a_stop_does_not_wait_for_an_unreachable_collector(home, daemon_factory):
    """Exports retry with backoff for their whole timeout, signal after signal: a stop
    gives the final flush a bounded time and says what it dropped."""
    d = daemon_factory()
    d.start(
        env={
            "AXD_TELEMETRY_ENABLED": "true",
            "AXD_TELEMETRY_ENDPOINT": f"http://127.0.0.1:{_free_port()}",
            "AXD_TELEMETRY_EXPORT_INTERVAL": "1h",  # all of it is still queued at the stop
            "AXD_TELEMETRY_TIMEOUT": "60s",
        }
    )
    assert home.client().request("GET", "/v1/status").status == 200
    home.client().request("POST", "/v1/shutdown")
    assert d.wait(timeout=30) == 0  # with a 60 s export timeout, only the deadline ends it
    assert any("telemetry not flushed at stop" in r.get("msg", "") for r in d.log_records())


async def test_prometheus_text(api):
    await api.get("/v1/status")
    resp = await api.get("/v1/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await resp.text()
    assert "axd_http_server_duration_milliseconds_bucket{" in text
    assert 'http_route="/v1/status"' in text


@pytest.mark.e2e
def test_axctl_trace_prints_the_phases(home, daemon):
    out = home.axctl("--trace", "status", "--json")
    assert out.returncode == 0
    line = out.stderr.strip().splitlines()[-1]
    assert re.match(
        r"trace: imports [\d.]+ ms, config [\d.]+ ms, connect [\d.]+ ms, "
        r"request [\d.]+ ms, render [\d.]+ ms; total [\d.]+ ms",
        line,
    ), line
    assert "trace:" not in home.axctl("status", "--json").stderr
