"""Schemathesis against a real daemon: every route of `GET /v1/openapi.json`, over the
Unix socket, with schema-valid (positive) and schema-breaking (negative) requests.

What must hold for every request: no 5xx (but one: the 504 `plugin_timeout` of a plugin
call whose own `timeout` was shorter than the plugin's answer, what the caller asked for;
counted apart), the daemon still running, every error in the
documented shape (`{"error": {"code", "message", "details"}}`, JSON), every success a
JSON document (or NDJSON lines for streams), an answer within the timeout. Failures are
collected, not raised, so one run reports all of them with what was sent.

Routes with side effects are confined so the run stays meaningful and local:
  - POST /v1/shutdown runs last, once: the daemon must then exit 0.
  - POST /v1/drills only gets negative (refused) bodies: a valid one runs a real fault
    drill for seconds (they have their own tests).
  - POST /v1/workspaces and /v1/workspaces/remove: a string `path` is replaced by one of
    the run's own (the workspace, a folder and a file in it, a missing path), chosen by
    the generated value: any other would index whatever it names (`/`).
  - POST /v1/perf/profile: `seconds` capped at 0.1 (up to 600 is valid; 5 when absent),
    and a fifth of the cases (py-spy takes seconds to attach).
  - POST /v1/marketplace/install: an `https://` spec loses a slash (the run sends
    nothing off this machine); no catalog source is configured but the repository's.
  - POST /v1/dashboard: a port becomes 0 (a free one; a fixed port may be another's).
  - `follow` query parameters are false: a followed stream never ends.
  - Plugin routes: read-only ones address the test plugin `echo` for half the cases
    (random names are all 404s); the ones that change a plugin's state never do.

CI runs a short, derandomized variant (tests/stress/test_fuzz_api.py); `make stress`
(AXD_STRESS=full) runs it with at least 10,000 requests and a random seed, which it
prints; `python -m tests.stress.fuzz_api --requests N --seed S` runs (or replays) one
on its own.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from axd.daemon.launcher import PrivateDaemon, PrivateHome
from tests.stress import unix_http

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
TIMEOUT_S = 30.0
CODE = re.compile(r"^[a-z][a-z0-9_]*$")
SHUTDOWN = ("POST", "/v1/shutdown")
POSITIVE_EXCLUDED = {("POST", "/v1/drills")}
PLUGIN = "echo"
# Plugin routes that only read: half their cases name the running test plugin.
PLUGIN_READS = {
    ("GET", "/v1/plugins/{name}"),
    ("POST", "/v1/plugins/{name}/call"),
    ("GET", "/v1/plugins/{name}/timeline"),
    ("GET", "/v1/plugins/{name}/logs"),
    ("GET", "/v1/plugins/{name}/stats"),
}
PROFILE = ("POST", "/v1/perf/profile")
# A profile samples for its `seconds` (capped) after py-spy attaches: ~3 s a case.
FEWER_CASES = {PROFILE: 5}
WORKSPACE_ROUTES = {("POST", "/v1/workspaces"), ("POST", "/v1/workspaces/remove")}


@dataclass
class Report:
    """What a run sent and what it found; `failures` lists each problem with its request."""

    requests: int = 0
    operations: int = 0
    crashes: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    shutdown_exit: int | None = None
    # Seconds spent waiting for answers, per operation: where a run's time goes.
    waited: collections.Counter[str] = field(default_factory=collections.Counter)

    # 504 plugin_timeout answers to a call's own deadline: documented, not server errors.
    deadlines: int = 0

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500) - self.deadlines

    def fail(self, what: str, op: str, case: Any, detail: str = "") -> None:
        sent = f"query={_short(case.query)} body={_short(case.body)}"
        if case.path_parameters:
            sent = f"path={_short(case.path_parameters)} {sent}"
        self.failures.append(f"{what}: {op} {sent}" + (f": {detail}" if detail else ""))

    def lines(self) -> list[str]:
        """One summary line per figure (the bench scripts' format)."""
        return [
            f"fuzz requests: {self.requests} ({self.operations} operations, {self.seconds:.0f} s)",
            f"fuzz 5xx: {self.server_errors}",
            f"fuzz 504 plugin_timeout (the call's own deadline, documented): {self.deadlines}",
            f"fuzz daemon crashes: {self.crashes}",
            f"fuzz failures: {len(self.failures)}",
            "fuzz statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(self.statuses.items())),
            f"fuzz shutdown last: exit {self.shutdown_exit}",
        ]


def prepare(home: PrivateHome) -> Path:
    """Set up `home` for a fuzzed daemon: the test plugin `echo` running, the
    repository's signed catalog as the only marketplace source, and a small workspace
    (returned) to add before the run."""
    plugins = home.root / "plugins"
    shutil.copytree(DATA / "plugins" / PLUGIN, plugins / PLUGIN)
    market = REPO / "marketplace"
    key = (market / "PUBLIC_KEY").read_text().strip()
    home.env.update(
        AXD_PLUGINS_ENABLED="true",
        AXD_PLUGINS_BUILTIN="false",
        AXD_PLUGINS_PATHS=str(plugins),
        AXD_ALERTS_DESKTOP="false",
        AXD_MARKETPLACE_SOURCES=f"{market / 'catalog.json'} {key}",
    )
    workspace = home.root / "ws"
    shutil.copytree(DATA / "polyglot", workspace)
    return workspace


def fuzz(
    daemon: PrivateDaemon,
    workspace: Path,
    *,
    requests_wanted: int,
    examples: int,
    run_seed: int | None = None,
    shutdown_last: bool = True,
) -> Report:
    """Run rounds over every operation, `examples` cases per operation and mode, until
    `requests_wanted` requests were sent; then shut the daemon down through the API."""
    report = Report()
    started = time.monotonic()
    with unix_http.session(daemon.socket) as http:
        _wait_for_plugin(http)
        _add_workspace(http, workspace)
        doc = http.get(unix_http.BASE_URL + "/v1/openapi.json", timeout=TIMEOUT_S).json()
        schema = schemathesis.openapi.from_dict(doc)
        operations = [result.ok() for result in schema.get_all_operations()]
        report.operations = len(operations)
        round_no = 0
        while report.requests < requests_wanted and not report.crashes:
            sent_before = report.requests
            for op in operations:
                if (op.method.upper(), op.path) == SHUTDOWN:
                    continue
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    if report.crashes:
                        break
                    if mode is GenerationMode.POSITIVE and _key(op) in POSITIVE_EXCLUDED:
                        continue
                    round_seed = None if run_seed is None else run_seed + round_no
                    cases = max(1, examples // FEWER_CASES.get(_key(op), 1))
                    _run_operation(http, daemon, op, mode, cases, round_seed, workspace, report)
            round_no += 1
            if report.requests == sent_before:
                break  # nothing left to generate
        if not report.crashes:
            status = http.get(unix_http.BASE_URL + "/v1/status", timeout=TIMEOUT_S)
            if status.status_code != 200:
                report.failures.append(f"GET /v1/status after the run: {status.status_code}")
        if shutdown_last and not report.crashes:
            _shutdown(http, daemon, report)
    report.seconds = time.monotonic() - started
    return report


def _key(op: Any) -> tuple[str, str]:
    return op.method.upper(), op.path


def _wait_for_plugin(http: requests.Session, timeout: float = 60.0) -> None:
    """Until `echo` runs: a call to it while it starts is a 503, rightly, but no finding."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(f"{unix_http.BASE_URL}/v1/plugins/{PLUGIN}", timeout=TIMEOUT_S)
        if answer.ok and answer.json().get("state") == "running":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"plugin {PLUGIN} did not start: {answer.text[:500]}")
        time.sleep(0.05)


def _add_workspace(http: requests.Session, workspace: Path) -> None:
    answer = http.post(
        unix_http.BASE_URL + "/v1/workspaces",
        json={"path": str(workspace), "wait": True},
        timeout=120,
    )
    answer.raise_for_status()


def _run_operation(
    http: requests.Session,
    daemon: PrivateDaemon,
    op: Any,
    mode: GenerationMode,
    examples: int,
    run_seed: int | None,
    workspace: Path,
    report: Report,
) -> None:
    name = f"{op.method.upper()} {op.path} ({mode.value})"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=run_seed is None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        if report.crashes:
            return
        confine(case, workspace)
        report.requests += 1
        sent = time.monotonic()
        try:
            response = case.call(base_url=unix_http.BASE_URL, session=http, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            report.statuses[0] += 1
            if daemon.running:
                report.fail("no answer", name, case, f"{type(exc).__name__}: {exc}")
            else:
                _crashed(daemon, name, case, report)
            return
        report.waited[name] += time.monotonic() - sent
        report.statuses[response.status_code] += 1
        if asked_deadline(response):
            report.deadlines += 1
        for problem in check(response, streams=_streams(op)):
            report.fail(problem, name, case, f"status {response.status_code}: {_answer(response)}")
        if not daemon.running:
            _crashed(daemon, name, case, report)

    run = seed(run_seed)(one) if run_seed is not None else one
    with contextlib.suppress(Unsatisfiable):  # no negative case for an operation without inputs
        run()


def _crashed(daemon: PrivateDaemon, name: str, case: Any, report: Report) -> None:
    report.crashes += 1
    code = daemon.proc.poll() if daemon.proc else None
    report.fail("daemon died", name, case, f"exit {code}; {daemon.stderr_text()[-2000:]}")


def _streams(op: Any) -> bool:
    return any(
        "application/x-ndjson" in r.get("content", {})
        for r in op.definition.raw.get("responses", {}).values()
        if isinstance(r, dict)
    )


def media_type(response: Any) -> str:
    """The Content-Type without parameters, from a requests or a schemathesis response
    (whose headers are lists under lowercase names)."""
    value = response.headers.get("content-type") or response.headers.get("Content-Type") or ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).split(";")[0].strip()


def asked_deadline(response: Any) -> bool:
    """A 504 `plugin_timeout`: the plugin did not answer within the call's own `timeout`
    (the fuzzer sends down to 1 ms), the documented answer to what the caller asked."""
    if response.status_code != 504:
        return False
    try:
        return response.json()["error"]["code"] == "plugin_timeout"
    except (ValueError, KeyError, TypeError):
        return False


def check(response: Any, streams: bool = False) -> list[str]:
    """What is wrong with one answer (nothing, for most)."""
    problems = []
    status = response.status_code
    media = media_type(response)
    if status >= 500 and not asked_deadline(response):
        problems.append(f"server error {status}")
    if status >= 400:
        problems += error_shape(response, media)
    elif media == "application/json":
        try:
            response.json()
        except ValueError:
            problems.append("a success that is not JSON")
    elif media == "application/x-ndjson" or streams:
        try:
            for line in response.text.splitlines():
                if not isinstance(json.loads(line), dict):
                    problems.append("an NDJSON line that is not an object")
                    break
        except ValueError:
            problems.append("a stream line that is not JSON")
    elif media not in ("text/plain", "image/svg+xml", "text/html"):
        problems.append(f"a success of type {media!r}")
    return problems


def error_shape(response: Any, media: str) -> list[str]:
    """The documented error shape: `{"error": {"code", "message", "details"}}`, JSON."""
    if media != "application/json":
        return [f"an error of type {media!r}, not JSON"]
    try:
        doc = response.json()
    except ValueError:
        return ["an error body that is not JSON"]
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict) or set(doc) != {"error"}:
        return ["an error body without the one `error` object"]
    problems = []
    if not isinstance(error.get("code"), str) or not CODE.match(error["code"]):
        problems.append("an error code that is not snake_case")
    if not isinstance(error.get("message"), str) or not error["message"].strip():
        problems.append("an error without a message")
    if not isinstance(error.get("details"), dict):
        problems.append("an error whose details are not an object")
    return problems


def confine(case: Any, workspace: Path) -> None:
    """Keep a generated case's side effects inside this run (see the module docstring)."""
    key = (case.method.upper(), case.path)
    body = case.body if isinstance(case.body, dict) else None
    if isinstance(case.query, dict) and "follow" in case.query:
        case.query["follow"] = "false"
    if key in WORKSPACE_ROUTES and body is not None and isinstance(body.get("path"), str):
        choices = [workspace, workspace / "README.md", workspace / "nested", REPO / "missing"]
        body["path"] = str(_pick(body["path"], choices))
    elif key == PROFILE:
        if body is None and not isinstance(case.body, bytes | str):  # no body: 5 s
            case.body, case.media_type = {"seconds": 0.1}, "application/json"
        elif body is not None and (_number(body.get("seconds")) or "seconds" not in body):
            body["seconds"] = min(body.get("seconds", 0.1), 0.1)
    elif key == ("POST", "/v1/marketplace/install") and body is not None:
        spec = body.get("spec")
        if isinstance(spec, str) and spec.startswith("https://"):
            body["spec"] = "https:/" + spec[len("https://") :]
    elif key == ("POST", "/v1/dashboard") and body is not None and _number(body.get("port")):
        body["port"] = 0
    params = case.path_parameters
    if isinstance(params, dict) and isinstance(params.get("name"), str):
        if key in PLUGIN_READS and zlib.crc32(params["name"].encode()) % 2:
            params["name"] = PLUGIN
        elif key not in PLUGIN_READS and params["name"] == PLUGIN:
            params["name"] = PLUGIN + "-not-installed"


def _pick(generated: str, choices: list[Path]) -> Path:
    return choices[zlib.crc32(generated.encode("utf-8", "surrogatepass")) % len(choices)]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shutdown(http: requests.Session, daemon: PrivateDaemon, report: Report) -> None:
    """The one route that ends the run: it must answer, then the daemon must exit 0."""
    answer = http.post(unix_http.BASE_URL + "/v1/shutdown", timeout=TIMEOUT_S)
    report.requests += 1
    report.statuses[answer.status_code] += 1
    if answer.status_code not in (200, 202):
        report.failures.append(f"POST /v1/shutdown: {answer.status_code} {_answer(answer)}")
    try:
        report.shutdown_exit = daemon.wait(30)
    except Exception as exc:  # subprocess.TimeoutExpired: it did not stop
        report.failures.append(f"POST /v1/shutdown: the daemon did not exit ({exc})")
        return
    if report.shutdown_exit != 0:
        report.failures.append(f"POST /v1/shutdown: the daemon exited {report.shutdown_exit}")


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _answer(response: Any) -> str:
    return _short(response.text, 400)


@dataclass
class Run:
    """A private home and daemon for one fuzz run (the CLI's; tests use the fixtures)."""

    home: PrivateHome = field(default_factory=lambda: PrivateHome.create("axdfz-"))

    def __enter__(self) -> tuple[PrivateDaemon, Path]:
        self.home.env.update(XDG_RUNTIME_DIR=str(self.home.root), PYTHONUNBUFFERED="1")
        workspace = prepare(self.home)
        self.daemon = PrivateDaemon(self.home)
        self.daemon.start()
        return self.daemon, workspace

    def __exit__(self, *_: object) -> None:
        self.daemon.stop()
        self.home.remove()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="send at least this many")
    parser.add_argument("--examples", type=int, default=60, help="cases per operation and mode")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    run_seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    print(f"fuzz seed: {run_seed}", flush=True)
    with Run() as (daemon, workspace):
        rss_before = rss_mib(daemon.pid)
        report = fuzz(
            daemon,
            workspace,
            requests_wanted=args.requests,
            examples=args.examples,
            run_seed=run_seed,
        )
    for line in report.lines():
        print(line)
    print(f"fuzz daemon RSS at start: {rss_before:.0f} MiB")
    for failure in report.failures[:50]:
        print("FAIL", failure)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seed": run_seed,
                    "requests": report.requests,
                    "server_errors": report.server_errors,
                    "crashes": report.crashes,
                    "failures": report.failures,
                    "statuses": dict(report.statuses),
                    "seconds": report.seconds,
                },
                indent=1,
            )
        )
    ok = not report.failures and report.requests >= args.requests
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
