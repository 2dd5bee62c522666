"""The monitoring service: the sampler, the alert engine and its sinks, wired once.

Rules come from the alerts file (`alerts.file`, else `$XDG_CONFIG_HOME/axd/alerts.toml`),
or the shipped defaults when there is none. A file that does not parse, or holds a rule
that cannot work, is refused whole: the rules in force stay, the reason is logged, kept for
`axctl alerts` and `status`, and published as `alerts.rules_refused`.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from axd.alerts import rules as rules_mod
from axd.alerts.engine import AlertEngine
from axd.alerts.sinks import DesktopSink, WebhookSink
from axd.config.live import LiveConfig
from axd.config.schema import Config
from axd.monitoring.recorders import Recorders
from axd.monitoring.sampler import Sample, Sampler, base_name

if TYPE_CHECKING:
    from axd.daemon.services import Services

log = logging.getLogger("axd.monitoring")

# (signal, OpenTelemetry instrument, unit, description): exported as Prometheus gauges.
EXPORTED = (
    ("index.lag_s", "axd.index.lag", "s", "Oldest file change not yet indexed"),
    ("index.pending_changes", "axd.index.pending_changes", "1", "File changes waiting"),
    ("index.rate_mb_s", "axd.index.rate", "MBy/s", "Indexing throughput now"),
    ("watcher.heartbeat_age_s", "axd.watcher.heartbeat_age", "s", "Since the watcher came round"),
    ("daemon.loop_lag_ms", "axd.daemon.loop_lag", "ms", "Event loop lag, P99"),
    ("plugin.up", "axd.plugin.up", "1", "1 while the plugin runs"),
    ("plugin.cpu_budget_percent", "axd.plugin.cpu_budget", "%", "Plugin CPU budget"),
    ("plugin.memory_budget_bytes", "axd.plugin.memory_budget", "By", "Plugin memory budget"),
    ("plugin.restarts", "axd.plugin.restarts", "1", "Plugin restarts since axd started"),
)


def _labels(key: str) -> dict[str, str]:
    if "{" not in key:
        return {}
    name, _, value = key[key.index("{") + 1 : key.rindex("}")].partition("=")
    return {name: value.strip('"')}


def rules_file(config: LiveConfig) -> str:
    """The alerts file: `alerts.file`, else `$XDG_CONFIG_HOME/axd/alerts.toml`."""
    configured = config.text("alerts.file")
    if configured:
        return os.path.expanduser(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "axd", "alerts.toml")


class Monitoring:
    def __init__(self, services: Services, recorders: Recorders) -> None:
        self.services = services
        self.config = services.config
        self.recorders = recorders
        self.sampler = Sampler(
            services,
            recorders,
            self.config.number("monitoring.interval"),
            self.config.number("monitoring.window"),
        )
        self.engine = AlertEngine(services.bus, [])
        self.rules_source = "defaults"
        self.rules_error: str | None = None
        self.webhook: WebhookSink | None = None
        self.desktop = DesktopSink()
        self.load_rules(announce=False)
        self._configure_sinks(self.config.current)
        services.bus.listeners.append(self._on_event)
        self.sampler.listeners.append(self._evaluate)
        self.config.on_change(self._config_changed)
        if services.telemetry is not None:
            self._export(services.telemetry)

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.sampler.start()

    async def stop(self) -> None:
        await self.sampler.stop()
        if self.webhook is not None:
            await self.webhook.close()

    # ---- rules ----------------------------------------------------------------------

    def rules_file(self) -> str:
        return rules_file(self.config)

    def load_rules(self, announce: bool = True) -> dict[str, Any]:
        """(Re)read the rules; on any problem keep the rules in force and say why.
        `announce`: publish `alerts.rules_loaded` (a reload; the start only logs)."""
        path = self.rules_file()
        try:
            with open(path, encoding="utf-8") as fh:
                text, source = fh.read(), path
        except FileNotFoundError:
            text, source = rules_mod.defaults_text(), "defaults"
        except OSError as exc:
            return self._refused(path, [f"{path} cannot be read: {exc.strerror or exc}"])
        try:
            rules = rules_mod.parse(text, source)
        except rules_mod.RuleError as exc:
            return self._refused(source, exc.problems)
        self.engine.set_rules(rules)
        self.rules_source, self.rules_error = source, None
        log.info("alert rules loaded", extra={"source": source, "rules": len(rules)})
        if announce:
            self.services.bus.publish("alerts.rules_loaded", source=source, rules=len(rules))
        return {"source": source, "rules": len(rules)}

    async def reload_rules(self) -> dict[str, Any]:
        """The alerts file changed (the config watcher calls this)."""
        return self.load_rules()

    def _refused(self, source: str, problems: list[str]) -> dict[str, Any]:
        self.rules_error = "; ".join(problems)
        log.error("alert rules refused", extra={"source": source, "problems": problems})
        self.services.bus.publish("alerts.rules_refused", source=source, problems=problems)
        return {"source": source, "refused": problems}

    def _export(self, telemetry: Any) -> None:
        """The signals the exported instruments do not already carry, as gauges of the
        latest sample: what Prometheus and Grafana need for the same alerts and panels
        (config/prometheus/axd-rules.yml, config/grafana/axd-dashboard.json)."""
        for signal, name, unit, description in EXPORTED:

            def read(signal: str = signal) -> list[tuple[float, dict[str, Any]]]:
                latest = self.sampler.latest
                if latest is None:
                    return []
                return [
                    (value, _labels(key))
                    for key, value in latest.values.items()
                    if base_name(key) == signal
                ]

            telemetry.gauge(name, description, unit, read)

    # ---- evaluation -----------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.config.flag("alerts.enabled"):
            self.engine.on_event(event)

    def _evaluate(self, sample: Sample) -> None:
        if not self.config.flag("alerts.enabled"):
            return
        exported = self._exported() if self.engine.wants_exported() else None
        self.engine.on_sample(sample, exported)

    def _exported(self) -> dict[str, float]:
        """The daemon's exported series (/v1/metrics) by Prometheus name and labels."""
        telemetry = self.services.telemetry
        if telemetry is None:
            return {}
        out: dict[str, float] = {}
        for family in telemetry.registry.collect():
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
        return out

    # ---- config ---------------------------------------------------------------------

    def _configure_sinks(self, cfg: Config) -> None:
        url = cfg.text("alerts.webhook")
        sinks: list[Any] = [self.desktop] if cfg.flag("alerts.desktop") else []
        if url:
            if self.webhook is None or self.webhook.url != url:
                self.webhook = WebhookSink(url, cfg.number("alerts.webhook_timeout"))
            self.webhook.timeout = cfg.number("alerts.webhook_timeout")
            sinks.append(self.webhook)
        else:
            self.webhook = None
        self.engine.sinks = sinks

    def _config_changed(self, cfg: Config, changed: list[str]) -> None:
        if any(k.startswith("alerts.") for k in changed):
            self._configure_sinks(cfg)
        if "alerts.file" in changed:
            self.load_rules()
        if "monitoring.interval" in changed:
            self.sampler.interval = cfg.number("monitoring.interval")
        if "monitoring.window" in changed:
            self.sampler.window = cfg.number("monitoring.window")

    # ---- reading --------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            **self.engine.describe(),
            "source": self.rules_source,
            "error": self.rules_error,
            "sinks": [s.describe() for s in self.engine.sinks],
        }

    def health(self) -> dict[str, Any]:
        firing = sum(1 for a in self.engine.alerts.values() if a.state == "firing")
        doc: dict[str, Any] = {
            "health": "degraded" if self.rules_error else "ok",
            "rules": len(self.engine.rules),
            "firing": firing,
            "samples": len(self.sampler.history),
            "sampler_cpu_s": round(self.sampler.busy_s, 3),
        }
        if self.rules_error:
            doc["reason"] = f"alert rules refused: {self.rules_error}"
            doc["advice"] = f"fix {self.rules_file()}; the rules in force stay until then"
        return doc
