"""HTTP server spans: every request continues the caller's W3C trace context, when tracing is on.

An incoming ``traceparent``/``tracestate`` is continued; a malformed one is ignored and the
request starts a new trace (never a 4xx). Installed only when tracing is on, outermost, so
the span covers authentication and error answers too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from workers import tracing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(web_app: web.Application) -> None:
    """Put the tracing middleware in front of every other (only when tracing is on)."""
    if tracing.enabled():
        web_app.middlewares.insert(0, traced)


@web.middleware
async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.resource
    template = route.canonical if route is not None else request.path
    attributes = {
        "http.request.method": request.method,
        "url.path": request.path,
        "http.route": template,
    }
    with tracing.span(
        f"{request.method} {template}",
        parent=request.headers,
        kind=tracing.SpanKind.SERVER,
        attributes=attributes,
    ) as span:
        response = await handler(request)
        if span is not None:
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                tracing.fail(span, f"http_{response.status}", request.path)
        return response
