"""Runs one drill at a time against the running daemon and keeps what it measured.

The clock starts when the fault is injected. Time to detect (MTTD): until an alert of
the scenario's rules fires (for the scenario's labels, e.g. its plugin). Then the "fix"
is applied (for faults the daemon does not heal itself), and time to recover (MTTR) runs
until the signal is back to normal and none of those alerts is firing any more. Whatever
happens (a timeout, an error, the client going away), `restore` puts everything back.
Results are appended to `<state dir>/drills.jsonl`: `axctl drill history` reads them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from axd import errors
from axd.drills.scenarios import SCENARIOS, Scenario

if TYPE_CHECKING:
    from axd.daemon.services import Services

log = logging.getLogger("axd.drills")

POLL_S = 0.1


class DrillRunner:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.running: str | None = None
        self._lock = asyncio.Lock()

    @property
    def history_file(self) -> str:
        return os.path.join(self.services.info.state_dir, "drills.jsonl")

    async def run(
        self, name: str, options: dict[str, Any], emit: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        if name not in SCENARIOS:
            raise errors.invalid(
                "unknown_scenario", f"no drill named {name!r}", scenarios=sorted(SCENARIOS)
            )
        if self._lock.locked():
            raise errors.conflict(
                "drill_running", f"the drill {self.running} is running; one at a time"
            )
        monitoring = self.services.monitoring
        if monitoring is None or not self.services.config.flag("alerts.enabled"):
            raise errors.unavailable(
                "alerts_off", "alerts are off (alerts.enabled): a drill needs them to detect"
            )
        async with self._lock:
            self.running = name
            try:
                return await self._run(SCENARIOS[name], options, emit)
            finally:
                self.running = None

    async def _run(
        self,
        kind: type[Scenario],
        options: dict[str, Any],
        emit: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        began = time.monotonic()
        steps: list[dict[str, Any]] = []

        def say(message: str) -> None:
            step = {"t": round(time.monotonic() - began, 3), "message": message}
            steps.append(step)
            emit({"type": "step", **step})

        timeout = float(options.get("timeout", 600))
        scenario = kind(self.services, say, options)
        report: dict[str, Any] = {
            "scenario": kind.name,
            "started_at": time.time(),
            "rules": list(kind.rules),
            "outcome": "error",
            "mttd_s": None,
            "mttr_s": None,
        }
        self.services.bus.publish("drill.started", scenario=kind.name)
        try:
            await scenario.prepare()
            report["labels"] = scenario.labels
            start = time.monotonic()
            await scenario.inject()
            fired = await self._until(lambda: self._firing(scenario), scenario, timeout)
            if fired is None:
                report["outcome"] = "undetected"
                say(f"no alert of {', '.join(kind.rules)} fired within {timeout:g} s")
                return report
            report["mttd_s"] = round(time.monotonic() - start, 3)
            report["detected_by"] = fired
            say(f"detected after {report['mttd_s']} s: alert {fired} fired")
            await scenario.after_detection()

            async def healed() -> bool:
                return not self._firing(scenario) and await scenario.recovered()

            if await self._until_async(healed, scenario, timeout) is None:
                report["outcome"] = "unrecovered"
                say(f"not recovered within {timeout:g} s")
                return report
            report["mttr_s"] = round(time.monotonic() - start, 3)
            report["outcome"] = "ok"
            say(f"recovered after {report['mttr_s']} s: the alert resolved, the signal is normal")
            return report
        except asyncio.CancelledError:
            report["outcome"] = "interrupted"
            raise
        except errors.AxdError as exc:
            report["error"] = exc.message
            say(f"failed: {exc.message}")
            raise
        finally:
            await _to_the_end(scenario.restore())
            report["took_s"] = round(time.monotonic() - began, 3)
            report["steps"] = steps
            self._keep(report)
            self.services.bus.publish(
                "drill.finished",
                scenario=kind.name,
                outcome=report["outcome"],
                mttd_s=report["mttd_s"],
                mttr_s=report["mttr_s"],
            )

    def _firing(self, scenario: Scenario) -> str | None:
        monitoring = self.services.monitoring
        assert monitoring is not None
        for alert in monitoring.engine.alerts.values():
            if alert.rule.name not in scenario.rules or alert.state != "firing":
                continue
            if all(alert.labels.get(k, v) == v for k, v in scenario.labels.items()):
                return alert.rule.name
        return None

    async def _until(self, check: Callable[[], Any], scenario: Scenario, timeout: float) -> Any:
        async def wrapped() -> Any:
            return check()

        return await self._until_async(wrapped, scenario, timeout)

    async def _until_async(self, check: Any, scenario: Scenario, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        next_tick = 0.0
        while time.monotonic() < deadline:
            result = await check()
            if result:
                return result
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + 0.05
                await scenario.tick()
            await asyncio.sleep(POLL_S)
        return None

    def _keep(self, report: dict[str, Any]) -> None:
        line = {k: v for k, v in report.items() if k != "steps"}
        try:
            fd = os.open(self.history_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        except OSError as exc:
            log.error("a drill result could not be kept", extra={"error": str(exc)})

    def history(self) -> list[dict[str, Any]]:
        try:
            with open(self.history_file, encoding="utf-8") as fh:
                lines = fh.readlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash: skip it
        return out


async def _to_the_end(restore: Coroutine[Any, Any, None]) -> None:
    """Run `restore` to its end even if the request is cancelled again meanwhile: the
    drill counts as finished (and `running` clears) only once everything is back."""
    task = asyncio.ensure_future(restore)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break
    if not task.cancelled() and task.exception() is not None:
        log.error("a drill could not restore everything", exc_info=task.exception())
    if cancelled:
        raise asyncio.CancelledError
