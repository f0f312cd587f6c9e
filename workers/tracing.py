"""Traces across the fleet: OpenTelemetry, off unless configured, W3C context in Kafka headers.

``configure`` sets up the SDK's tracer provider from the standard ``OTEL_*`` variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_SAMPLER`` and ``_ARG``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``; the SDK reads them itself) when an OTLP endpoint is named or
``EVENTFLEET_TRACING`` is on. Until then ``enabled()`` is False and every helper here returns
at once: no span is made, no header added, no byte of a record changes.

The context of an event travels as ``traceparent``/``tracestate`` record headers (W3C Trace
Context): the commands role writes it, each role that consumes a record continues it with a
span of its own and writes its span's context into what it produces. A malformed
``traceparent`` is ignored (the propagator's rule): a new trace starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, Status, StatusCode
from opentelemetry.trace import Span as Span
from opentelemetry.trace import SpanKind as SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACE_HEADERS = ("traceparent", "tracestate")
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_on = False

Headers = Sequence[tuple[str, bytes]]


def wanted(environ: Mapping[str, str], *, switch: bool = False) -> bool:
    """Whether tracing is configured: an OTLP endpoint named, or EVENTFLEET_TRACING on."""
    return switch or any(environ.get(name) for name in ENDPOINT_VARIABLES)


def configure(
    service: str,
    *,
    switch: bool = False,
    environ: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
) -> bool:
    """Set up tracing for this process if configured; returns whether it is on.

    ``service`` names the process unless ``OTEL_SERVICE_NAME`` (or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``) does. Spans leave in batches over OTLP/HTTP protobuf to the
    endpoint ``environ`` names (``exporter``: elsewhere, e.g. the SDK's in-memory one).
    """
    global _on, _provider, _tracer
    environ = os.environ if environ is None else environ
    if not wanted(environ, switch=switch) and exporter is None:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (which win over
    # the defaults given here); TracerProvider reads OTEL_TRACES_SAMPLER and its argument.
    resource = Resource.create({} if named else {SERVICE_NAME: service})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=_endpoint(environ)))
        )
    _provider, _tracer = provider, provider.get_tracer("eventfleet")
    _on = True
    return True


def _endpoint(environ: Mapping[str, str]) -> str | None:
    """Where spans go, by the OTLP rules: the traces endpoint as given, or the base endpoint
    with /v1/traces; None leaves the SDK its default (http://localhost:4318/v1/traces)."""
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None


def shutdown() -> None:
    """Send the spans still buffered, then stop (bounded by the exporter's timeout)."""
    global _on, _provider, _tracer
    provider, _provider, _tracer, _on = _provider, None, None, False
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _on


def _the_tracer() -> trace.Tracer:
    if _tracer is None:
        raise RuntimeError("tracing is off: call workers.tracing.configure first")
    return _tracer


def _carrier(headers: Headers) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in headers:
        if name in TRACE_HEADERS:
            try:
                found[name] = value.decode("ascii")
            except (UnicodeDecodeError, AttributeError):
                continue  # not text: ignored as any malformed context is
    return found


def parent_of(headers: Headers | Mapping[str, str]) -> otel_context.Context | None:
    """The remote context named by ``traceparent``/``tracestate`` (record headers as pairs of
    bytes, or HTTP headers); None if absent or malformed: the span starts a new trace."""
    carrier = (
        _carrier(headers)
        if not isinstance(headers, Mapping)
        else {k: headers[k] for k in TRACE_HEADERS if k in headers}
    )
    if "traceparent" not in carrier:
        return None
    found = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(found).get_span_context().is_valid:
        return None
    return found


def trace_id_of(headers: Headers) -> str | None:
    """The trace id a record's valid, sampled ``traceparent`` names (32 hex digits), or None
    (a stored event names only a trace that was kept, as the commands role does)."""
    found = parent_of(headers)
    if found is None:
        return None
    context = trace.get_current_span(found).get_span_context()
    return format(context.trace_id, "032x") if context.trace_flags.sampled else None


def current_trace_id() -> str | None:
    """The trace id of the current span when tracing is on and it is sampled, else None."""
    context = _sampled()
    return None if context is None else format(context.trace_id, "032x")


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, for log lines and exemplars; None outside one."""
    if not _on:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def headers_of(span: Span | None = None) -> list[tuple[str, bytes]]:
    """``traceparent`` (and ``tracestate``) of ``span`` (default: the current one) as record
    headers; empty when tracing is off or no span is recording."""
    if not _on:
        return []
    carrier: dict[str, str] = {}
    ctx = trace.set_span_in_context(span) if span is not None else None
    _PROPAGATOR.inject(carrier, context=ctx)
    return [(name, carrier[name].encode()) for name in TRACE_HEADERS if name in carrier]


def with_context(headers: Headers, span: Span | None = None) -> Headers:
    """``headers`` with their trace headers replaced by ``span``'s (default: the current
    span's); ``headers`` themselves when tracing is off."""
    if not _on:
        return headers
    own = headers_of(span)
    if not own:
        return headers
    return [(n, v) for n, v in headers if n not in TRACE_HEADERS] + own


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Headers | Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | bool] | None = None,
    links: Sequence[Headers] = (),
) -> Iterator[Span | None]:
    """A span, current inside the block, child of the context ``parent`` headers name (else of
    the current span); an exception escaping the block marks it failed. None when off."""
    if not _on:
        yield None
        return
    ctx = parent_of(parent) if parent is not None else None
    linked = [
        Link(trace.get_current_span(c).get_span_context()) for c in map(parent_of, links) if c
    ]
    with _the_tracer().start_as_current_span(
        name, context=ctx, kind=kind, attributes=attributes, links=linked
    ) as current:
        yield current


def start(
    name: str,
    *,
    parent: Headers | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | bool] | None = None,
    start_time_ns: int | None = None,
) -> Span | None:
    """A span not made current (the caller ends it): one per record of a batch. None when off."""
    if not _on:
        return None
    ctx = parent_of(parent) if parent is not None else None
    return _the_tracer().start_span(
        name, context=ctx, kind=kind, attributes=attributes, start_time=start_time_ns
    )


def fail(target: Span | None, reason: str, message: str) -> None:
    """Mark ``target`` failed with ``reason`` (e.g. a dead letter's reason) and its message."""
    if target is None:
        return
    target.set_attribute("eventfleet.reason", reason)
    target.set_status(Status(StatusCode.ERROR, f"{reason}: {message}"))


def end(spans: Sequence[Span | None]) -> None:
    for s in spans:
        if s is not None:
            s.end()


@contextlib.contextmanager
def consumed(
    role: str, records: Sequence[tuple[Headers, Mapping[str, str | int | bool]]]
) -> Iterator[list[Span | None]]:
    """One consumer span per record (``<role> process``), each the child of its record's
    context, open while the block runs; a failure of the block fails them all. A record of an
    unsampled trace gets none (None in its place)."""
    if not _on:
        yield []
        return
    spans = [
        start(f"{role} process", parent=headers, kind=SpanKind.CONSUMER, attributes=attributes)
        if sampled(headers) is not False
        else None  # an unsampled trace: no span, at no cost
        for headers, attributes in records
    ]
    try:
        yield spans
    except BaseException as e:
        for s in spans:
            if s is not None:
                s.record_exception(e)
                s.set_status(Status(StatusCode.ERROR, f"{type(e).__name__}: {e}"))
        raise
    finally:
        end(spans)


def parent_for(trace_id: str | None, event_id: str, headers: Headers = ()) -> Headers | None:
    """The parent of a span about one event: its record's context if it carries a valid one;
    else the current span (None) if it is in that trace; else, from the trace id its stored metadata
    keeps, a remote parent whose span id derives from the event id (the trace goes on where a record
    lost its headers: the outbox relay, a replay from the store)."""
    if headers and parent_of(headers) is not None:
        return headers
    if trace_id is None:
        return None
    current = trace.get_current_span().get_span_context()
    if current.is_valid and format(current.trace_id, "032x") == trace_id:
        return None  # the request's own span (sync mode): its child
    span_id = hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()
    if span_id == "0" * 16:  # not a valid span id; as unlikely as it is harmless
        span_id = "1" * 16
    return [("traceparent", f"00-{trace_id}-{span_id}-01".encode())]


def carried(headers: Headers, source: Headers) -> Headers:
    """``headers`` with the trace headers of ``source`` (a record whose event this one is
    derived from), so the derived record stays in its trace; ``headers`` when off."""
    if not _on:
        return headers
    context = [(n, v) for n, v in source if n in TRACE_HEADERS]
    return (
        [*[(n, v) for n, v in headers if n not in TRACE_HEADERS], *context] if context else headers
    )


def exemplar() -> dict[str, str] | None:
    """The current span as a histogram exemplar (``trace_id``, ``span_id``): shown in the
    OpenMetrics output, where a dashboard links the sample to its trace. None outside a
    sampled span, or when tracing is off."""
    context = _sampled()
    if context is None:
        return None
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


def _sampled() -> SpanContext | None:
    """The current span's context when tracing is on and the span is valid and sampled."""
    if not _on:
        return None
    context = trace.get_current_span().get_span_context()
    return context if context.is_valid and context.trace_flags.sampled else None


def delivered(trace_id: str, event_id: str, made_s: float, via: str) -> None:
    """A span ``live deliver`` in the trace a stored event names, from when it was made
    (stored) to its delivery to one live subscriber: how long the live feed took."""
    span = start(
        "live deliver",
        parent=parent_for(trace_id, event_id),
        kind=SpanKind.PRODUCER,
        attributes={"eventfleet.event_id": event_id, "eventfleet.delivery": via},
        start_time_ns=int(made_s * 1e9),
    )
    end([span])


def sampled(headers: Headers) -> bool | None:
    """Whether a record's context was sampled; None when it carries no valid context. An
    unsampled one is passed on as it is (``carried``), with no span of ours: at a low ratio,
    most records cost one header parse here instead of a span."""
    found = parent_of(headers)
    if found is None:
        return None
    return bool(trace.get_current_span(found).get_span_context().trace_flags.sampled)


def recording() -> bool:
    """Whether the current span records (tracing on and its trace sampled)."""
    return _on and trace.get_current_span().is_recording()
