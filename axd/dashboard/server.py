"""The dashboard: a loopback-only HTTP listener for one page of live charts.

Off until `axctl dashboard` asks for it (`POST /v1/dashboard` on the Unix socket). It
listens on 127.0.0.1 only, and every request passes three checks before any handler:

- **Host** must be `127.0.0.1:<port>` or `localhost:<port>`: a page on an attacker's
  domain that rebinds its name to 127.0.0.1 (DNS rebinding) sends its own name and is
  refused;
- **Origin** (and `Sec-Fetch-Site: cross-site`): requests from another origin are refused;
  no CORS header is ever sent;
- **a session**: `axctl dashboard` prints a URL with a one-time token (valid for five
  minutes); `/login` exchanges it for an HttpOnly, SameSite=Strict cookie and redirects to
  the page without it, so the token is gone from the address bar and the history. Anything
  else without the cookie is 401. Prometheus scrapes `/metrics` with a bearer token read
  from a file instead.

The page gets the last minutes of samples at once (`/api/snapshot`), then samples, events
and alert changes as they happen over server-sent events (`/api/stream`). The listener
closes after `dashboard.idle_timeout` without a request or an open page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from axd import __version__
from axd.events import TypeFilter
from axd.monitoring.sampler import Sample

if TYPE_CHECKING:
    from axd.daemon.services import Services

log = logging.getLogger("axd.dashboard")

COOKIE = "axd_dashboard"
TOKEN_TTL_S = 300.0
STATIC = {
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
    "vendor/uPlot.iife.min.js": "application/javascript",
    "vendor/uPlot.min.css": "text/css",
    "vendor/uPlot.LICENSE": "text/plain",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
STREAM_QUEUE = 256
KEEPALIVE_S = 15.0


class Dashboard:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.opened_at: float | None = None
        self._tokens: dict[str, float] = {}  # one-time token -> expiry (monotonic)
        self._sessions: set[str] = set()
        self._streams = 0
        self._last_activity = time.monotonic()
        self._idle_task: asyncio.Task[None] | None = None
        self.requests = 0
        self.refused: dict[str, int] = {}

    # ---- lifecycle (the Unix-socket API calls these) ----------------------------------

    async def open(self, port: int | None = None) -> dict[str, Any]:
        """Start listening (or keep listening) and hand out a new one-time login URL."""
        wanted = self.services.config.integer("dashboard.port") if port is None else port
        if self.runner is not None and port is not None and port != self.port:
            await self.close("another port was asked for")
        if self.runner is None:
            app = web.Application(middlewares=[self._guard])
            app.router.add_get("/login", self._login)
            app.router.add_get("/", self._page)
            app.router.add_get("/static/{name:.+}", self._static)
            app.router.add_get("/api/snapshot", self._snapshot)
            app.router.add_get("/api/stream", self._stream)
            app.router.add_get("/metrics", self._metrics)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", wanted, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                await runner.cleanup()
                from axd import errors

                raise errors.conflict(
                    "port_unavailable",
                    f"the dashboard cannot listen on 127.0.0.1:{wanted}: {exc.strerror or exc}",
                    port=wanted,
                ) from None
            self.runner = runner
            self.port = int(runner.addresses[0][1])
            self.opened_at = time.time()
            self._sessions.clear()
            self._idle_task = asyncio.get_running_loop().create_task(
                self._close_when_idle(), name="dashboard-idle"
            )
            self.metrics_token()  # the scrape token's file exists once there is a listener
            self.services.bus.publish("dashboard.opened", port=self.port)
            log.info("dashboard listening", extra={"port": self.port})
        self._touch()
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        self._tokens[token] = now + TOKEN_TTL_S
        return {**self.describe(), "login_url": f"{self.url}login?token={token}"}

    async def close(self, reason: str = "asked") -> dict[str, Any]:
        was = self.port
        runner, self.runner = self.runner, None
        if self._idle_task is not None and self._idle_task is not asyncio.current_task():
            self._idle_task.cancel()
        self._idle_task = None
        self._tokens.clear()
        self._sessions.clear()
        if runner is not None:
            await runner.cleanup()
            self.services.bus.publish("dashboard.closed", port=was, reason=reason)
            log.info("dashboard closed", extra={"port": was, "reason": reason})
        self.port = None
        return {"running": False, "closed": was is not None, "port": was}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def describe(self) -> dict[str, Any]:
        if self.runner is None:
            return {"running": False}
        return {
            "running": True,
            "url": self.url,
            "port": self.port,
            "opened_at": self.opened_at,
            "pages_open": self._streams,
            "idle_s": round(time.monotonic() - self._last_activity, 1) if not self._streams else 0,
            "idle_timeout_s": self.services.config.number("dashboard.idle_timeout"),
            "requests": self.requests,
            "refused": dict(self.refused),
        }

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    async def _close_when_idle(self) -> None:
        while self.runner is not None:
            timeout = self.services.config.number("dashboard.idle_timeout")
            idle = time.monotonic() - self._last_activity
            if not self._streams and idle >= timeout:
                await self.close("idle")
                return
            left = timeout - idle if not self._streams else timeout
            await asyncio.sleep(min(5.0, max(0.05, left)))

    # ---- the guard ----------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        self._touch()
        refusal = self._refusal(request)
        if refusal is not None:
            status, code, message = refusal
            self.refused[code] = self.refused.get(code, 0) + 1
            return _error(status, code, message)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    def _refusal(self, request: web.Request) -> tuple[int, str, str] | None:
        allowed = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        if request.headers.get("Host", "") not in allowed:
            return 403, "bad_host", "this listener answers to 127.0.0.1 only (Host refused)"
        origin = request.headers.get("Origin")
        if origin is not None and origin not in {f"http://{h}" for h in allowed}:
            return 403, "cross_origin", "requests from another origin are refused"
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            return 403, "cross_origin", "requests from another site are refused"
        if request.path in ("/login", "/metrics"):
            return None  # they authenticate themselves
        if request.cookies.get(COOKIE) not in self._sessions:
            return 401, "unauthorized", "open the dashboard with the link `axctl dashboard` prints"
        return None

    # ---- handlers -----------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        expiry = self._tokens.pop(token, None)
        if expiry is None or expiry < time.monotonic():
            self.refused["bad_token"] = self.refused.get("bad_token", 0) + 1
            return _error(
                401,
                "bad_token",
                "this link was used already or has expired; run `axctl dashboard` for a new one",
            )
        session = secrets.token_urlsafe(32)
        self._sessions.add(session)
        response = web.HTTPSeeOther("/")
        response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/")
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            return _error(404, "not_found", f"no such file: {name}")
        return web.Response(body=_asset(name), content_type=STATIC[name])

    async def _snapshot(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot(), dumps=_dumps)

    def snapshot(self) -> dict[str, Any]:
        monitoring = self.services.monitoring
        history = [s.doc() for s in monitoring.sampler.history] if monitoring else []
        events = [dict(e) for e in self.services.bus.recent(TypeFilter(), 100)]
        return {
            "version": __version__,
            "pid": os.getpid(),
            "interval_s": monitoring.sampler.interval if monitoring else None,
            "history": history,
            "alerts": monitoring.describe() if monitoring else None,
            "events": events,
        }

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `sample` each tick, `event` for each bus event, `alerts`
        after each alert change. A slow page loses samples, never blocks the daemon."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", **SECURITY_HEADERS}
        )
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(STREAM_QUEUE)

        def offer(kind: str, data: Any) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((kind, data))

        def on_sample(sample: Sample) -> None:
            offer("sample", sample.doc())

        monitoring = self.services.monitoring
        if monitoring is not None:
            monitoring.sampler.listeners.append(on_sample)
        subscription = self.services.bus.subscribe(TypeFilter())
        forward = asyncio.get_running_loop().create_task(self._forward(subscription, offer))
        self._streams += 1
        try:
            while True:
                try:
                    kind, data = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                await response.write(f"event: {kind}\ndata: {_dumps(data)}\n\n".encode())
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass  # the page went away: normal
        finally:
            self._streams -= 1
            self._touch()
            forward.cancel()
            subscription.close()
            if monitoring is not None and on_sample in monitoring.sampler.listeners:
                monitoring.sampler.listeners.remove(on_sample)
        return response

    async def _forward(self, subscription: Any, offer: Any) -> None:
        monitoring = self.services.monitoring
        async for event in subscription:
            offer("event", dict(event))
            if event["type"].startswith("alert.") and monitoring is not None:
                offer("alerts", monitoring.describe())

    async def _metrics(self, request: web.Request) -> web.Response:
        session_ok = request.cookies.get(COOKIE) in self._sessions
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not session_ok and not (given and hmac.compare_digest(given, self.metrics_token())):
            return _error(401, "unauthorized", "send `Authorization: Bearer <token>` (see docs)")
        telemetry = self.services.telemetry
        body = telemetry.prometheus_text() if telemetry is not None else b""
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    def metrics_token_file(self) -> str:
        configured = self.services.config.text("dashboard.metrics_token_file")
        if configured:
            return os.path.expanduser(configured)
        return os.path.join(self.services.info.state_dir, "metrics.token")

    def metrics_token(self) -> str:
        """The scrape token: read from its file, which is created 0600 on first use."""
        path = self.metrics_token_file()
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except FileNotFoundError:
            token = secrets.token_urlsafe(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(token + "\n")
            return token


def _asset(name: str) -> bytes:
    return resources.files("axd.dashboard").joinpath("static", name).read_bytes()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)


def _error(status: int, code: str, message: str) -> web.Response:
    body = _dumps({"error": {"code": code, "message": message, "details": {}}})
    response = web.Response(status=status, text=body, content_type="application/json")
    response.headers.update(SECURITY_HEADERS)
    return response
