"""An OTLP/HTTP trace receiver for tests: a real aiohttp server decoding what the fleet exports.

It answers ``POST /v1/traces`` as a collector does (protobuf in, an empty
``ExportTraceServiceResponse`` out) and keeps every span it decoded, so a test can ask which
spans one trace holds. Nothing is mocked: the fleet's own OTLP exporter talks to it over HTTP.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from workers.devtools.embedded import free_port


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One span as the collector saw it: ids in hex, times in ns, attributes as text."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    start_ns: int
    end_ns: int
    kind: int
    attributes: dict[str, str]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    links: tuple[str, ...] = ()  # the trace ids linked to

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


@dataclass
class Receiver:
    """The spans received so far, and the URL to export them to."""

    port: int
    spans: list[ReceivedSpan] = field(default_factory=list)
    posts: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if request.content_type != "application/x-protobuf":
            self.refused.append(request.content_type)
            return web.Response(status=415, text="expected application/x-protobuf")
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        self.posts += 1
        for resource_spans in export.resource_spans:
            resource = {a.key: _text(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            kind=s.kind,
                            attributes={
                                **{f"resource.{k}": v for k, v in resource.items()},
                                **{a.key: _text(a.value) for a in s.attributes},
                            },
                            status_code=s.status.code,
                            status_message=s.status.message,
                            links=tuple(link.trace_id.hex() for link in s.links),
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    """A receiver listening on a free port for the block."""
    receiver = Receiver(port=free_port())
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", receiver.port)
    await site.start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


def traced_env(receiver: Receiver) -> dict[str, str]:
    """What a fleet's environment needs to export every trace to ``receiver``."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # spans leave every 50 ms: the test waits less
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }


def tree(spans: list[ReceivedSpan]) -> str:
    """The spans of one trace drawn as text: children indented under parents, with durations."""
    by_parent: dict[str, list[ReceivedSpan]] = {}
    ids = {s.span_id for s in spans}
    for s in sorted(spans, key=lambda s: s.start_ns):
        parent = s.parent_span_id if s.parent_span_id in ids else ""
        by_parent.setdefault(parent, []).append(s)
    start = min((s.start_ns for s in spans), default=0)
    lines: list[str] = []

    def draw(parent: str, depth: int) -> None:
        for s in by_parent.get(parent, []):
            at = (s.start_ns - start) / 1e6
            lines.append(
                f"{'  ' * depth}{s.name} [{s.service}] +{at:.1f} ms, {s.duration_ms:.1f} ms"
                + (f" ERROR {s.status_message}" if s.status_code == 2 else "")
            )
            draw(s.span_id, depth + 1)

    draw("", 0)
    return "\n".join(lines)
