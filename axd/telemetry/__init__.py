"""OpenTelemetry for axd: spans, metrics and log records; OTLP when configured, Prometheus
text always (GET /v1/metrics)."""

from axd.telemetry.service import Telemetry

__all__ = ["Telemetry"]
