"""One `Telemetry` per daemon: providers, instruments, and the export pipeline.

Nothing here may slow or break serving. Spans and log records go through bounded batch
queues exported on background threads; a collector that is down, slow or failing costs at
most the queue (then spans are dropped and counted in
`otel_sdk_processor_span_processed_total{error_type="queue_full"}`), never request latency.
With export off (the default), no network traffic at all: tracing is a no-op tracer and
metrics only feed the local Prometheus endpoint.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from axd import __version__
from axd.config.live import LiveConfig

log = logging.getLogger("axd.telemetry")

# How long a stop may spend flushing telemetry, all signals together.
SHUTDOWN_DEADLINE_S = 2.0
LATENCY_BUCKETS_MS = (0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
ENV_ENDPOINTS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


def export_wanted(config: LiveConfig, env: dict[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return config.flag("telemetry.enabled") or any(env.get(k) for k in ENV_ENDPOINTS)


class Telemetry:
    def __init__(self, config: LiveConfig, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.config = config
        self.exporting = export_wanted(config, env)
        self.endpoint = _endpoint(config, env)
        resource = Resource.create(
            {
                "service.name": config.text("telemetry.service_name"),
                "service.version": __version__,
                "process.pid": os.getpid(),
            }
        )
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry(auto_describe=True)
        readers: list[Any] = [PrometheusMetricReader(registry=self.registry)]
        if self.exporting:
            readers.append(self._otlp_metric_reader(config))
        views = [
            View(
                instrument_name="axd.*.duration",
                aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS_MS),
            )
        ]
        self.meter_provider = MeterProvider(metric_readers=readers, resource=resource, views=views)
        self.meter = self.meter_provider.get_meter("axd", __version__)
        self.tracer_provider: TracerProvider | None = None
        self.logger_provider: Any = None
        if self.exporting:
            # The SDK counts its own drops and export failures only when asked to; we want
            # them in /v1/metrics (a dead collector must be visible, not silent).
            os.environ.setdefault("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
            self._start_tracing(config, resource)
            self._start_logs(config, resource)
            self.tracer: trace.Tracer = self.tracer_provider.get_tracer(  # type: ignore[union-attr]
                "axd", __version__
            )
        else:
            self.tracer = trace.NoOpTracer()
        self._make_instruments()
        for name in ("opentelemetry.sdk._shared_internal", "opentelemetry.exporter"):
            logging.getLogger(name).setLevel(logging.ERROR)  # failures are counted instead

    # ---- pipeline -----------------------------------------------------------------------

    def _start_tracing(self, config: LiveConfig, resource: Resource) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = OTLPSpanExporter(
            endpoint=_signal(self.endpoint, "traces"),
            timeout=config.number("telemetry.timeout"),
            headers=_headers(config),
            meter_provider=self.meter_provider,
        )
        self.tracer_provider = TracerProvider(resource=resource)
        queue = config.integer("telemetry.queue_size")
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=queue,
                max_export_batch_size=min(512, queue),
                schedule_delay_millis=config.number("telemetry.export_interval") * 1000,
                meter_provider=self.meter_provider,
            )
        )

    def _start_logs(self, config: LiveConfig, resource: Resource) -> None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        exporter = OTLPLogExporter(
            endpoint=_signal(self.endpoint, "logs"),
            timeout=config.number("telemetry.timeout"),
            headers=_headers(config),
        )
        self.logger_provider = LoggerProvider(resource=resource)
        queue = config.integer("telemetry.queue_size")
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                exporter,
                max_queue_size=queue,
                max_export_batch_size=min(512, queue),
                schedule_delay_millis=config.number("telemetry.export_interval") * 1000,
            )
        )
        self.event_logger = self.logger_provider.get_logger("axd.events", __version__)

    def _otlp_metric_reader(self, config: LiveConfig) -> Any:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        exporter = OTLPMetricExporter(
            endpoint=_signal(self.endpoint, "metrics"),
            timeout=config.number("telemetry.timeout"),
            headers=_headers(config),
        )
        return PeriodicExportingMetricReader(
            exporter, export_interval_millis=config.number("telemetry.export_interval") * 1000
        )

    def shutdown(self, deadline: float = SHUTDOWN_DEADLINE_S) -> None:
        """Flush what is queued, for `deadline` seconds at most in all: the exporters retry
        an unreachable collector with backoff for their whole timeout, signal after
        signal, and a stop must not wait for that. What is not sent by then is dropped
        (and said so in the log)."""
        providers = [
            p
            for p in (self.tracer_provider, self.logger_provider, self.meter_provider)
            if p is not None
        ]
        threads = [
            threading.Thread(target=_shutdown_quietly, args=(p,), name="otel-shutdown", daemon=True)
            for p in providers
        ]
        for t in threads:
            t.start()
        end = time.monotonic() + deadline
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        if any(t.is_alive() for t in threads):
            log.warning(
                "telemetry not flushed at stop: the collector did not answer in time",
                extra={"endpoint": self.endpoint, "deadline_s": deadline},
            )

    def describe(self) -> dict[str, Any]:
        return {
            "health": "ok",
            "exporting": self.exporting,
            "endpoint": self.endpoint if self.exporting else None,
        }

    # ---- instruments --------------------------------------------------------------------

    def _make_instruments(self) -> None:
        m = self.meter
        self.http_duration = m.create_histogram(
            "axd.http.server.duration", unit="ms", description="API request latency"
        )
        self.search_duration = m.create_histogram(
            "axd.search.duration", unit="ms", description="Search latency in the daemon"
        )
        self.search_cache = m.create_counter(
            "axd.search.cache", description="Searches by cache result (hit, miss)"
        )
        self.index_batch_duration = m.create_histogram(
            "axd.index.batch.duration", unit="ms", description="Indexing batch latency"
        )
        self.plugin_call_duration = m.create_histogram(
            "axd.plugin.call.duration", unit="ms", description="Plugin RPC latency"
        )
        self.plugin_reload_duration = m.create_histogram(
            "axd.plugin.reload.duration",
            unit="ms",
            description="From the file event to the new version serving",
        )
        self.events = m.create_counter("axd.events", description="Events published, by type")
        self._gauges: list[Callable[[], Iterable[tuple[float, dict[str, Any]]]]] = []

    def gauge(
        self,
        name: str,
        description: str,
        unit: str,
        read: Callable[[], Iterable[tuple[float, dict[str, Any]]]],
    ) -> None:
        """An observable gauge whose values `read()` yields as (value, attributes)."""

        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            try:
                return [Observation(v, a) for v, a in read()]
            except Exception:
                return []

        self.meter.create_observable_gauge(name, [callback], unit=unit, description=description)

    def span(self, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        if not self.exporting:
            return nullcontext()
        return self.tracer.start_as_current_span(name, attributes=_clean(attributes))

    def event(self, event: dict[str, Any]) -> None:
        """A bus event as a metric point and, when exporting, an OTel log record."""
        self.events.add(1, {"type": event["type"]})
        if self.logger_provider is None:
            return
        from opentelemetry._logs import LogRecord, SeverityNumber

        self.event_logger.emit(
            LogRecord(
                timestamp=int(event["ts"] * 1e9),
                observed_timestamp=time.time_ns(),
                body=event["type"],
                severity_text="INFO",
                severity_number=SeverityNumber.INFO,
                event_name=event["type"],
                attributes=_clean({k: v for k, v in event.items() if k not in ("ts",)}),
            )
        )

    def prometheus_text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _endpoint(config: LiveConfig, env: dict[str, str]) -> str:
    configured = config.text("telemetry.endpoint")
    return configured or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")


def _signal(base: str, signal: str) -> str | None:
    """Per-signal env vars win (the exporter reads them when given None)."""
    if os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"):
        return None
    return base.rstrip("/") + f"/v1/{signal}"


def _headers(config: LiveConfig) -> dict[str, str] | None:
    pairs = [h.split("=", 1) for h in config.strings("telemetry.headers") if "=" in h]
    return {k.strip(): v.strip() for k, v in pairs} or None


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OTel attributes are scalars or lists of scalars; everything else becomes a string."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            out[key] = list(value)[:50]
        else:
            out[key] = str(value)[:500]
    return out


def _shutdown_quietly(provider: Any) -> None:
    try:
        provider.shutdown()
    except Exception:
        log.debug("telemetry shutdown failed", exc_info=True)
