"""OpenTelemetry bootstrap shared by the gateway and every service.

The exporter is chosen by the standard ``OTEL_TRACES_EXPORTER`` variable (``zipkin``,
``otlp``, ``console`` or ``none``) and configured by the standard ``OTEL_EXPORTER_*``
variables, so operators can point traces anywhere without code changes.
"""

import logging
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

_configured = False

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] [trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s"


class _TraceContextFilter(logging.Filter):
    """Stamp every log record with the current trace and span ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.otelTraceID = format(context.trace_id, "032x") if context.is_valid else "0"
        record.otelSpanID = format(context.span_id, "016x") if context.is_valid else "0"
        return True


def _exporter(name: str) -> SpanExporter | None:
    if name == "zipkin":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        return ZipkinExporter()  # reads OTEL_EXPORTER_ZIPKIN_ENDPOINT
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* variables
    if name == "console":
        return ConsoleSpanExporter()
    return None


def configure_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_TraceContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))


def setup_tracing(service_name: str) -> None:
    """Install the tracer provider once per process; safe to call repeatedly."""
    global _configured
    if _configured:
        return
    _configured = True
    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    exporter = _exporter(exporter_name)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    PymongoInstrumentor().instrument()


def instrument_nameko() -> None:
    """Carry the trace context in AMQP headers across RPC calls and events."""
    from nameko_opentelemetry import NamekoInstrumentor

    if not NamekoInstrumentor().is_instrumented_by_opentelemetry:
        NamekoInstrumentor().instrument()
