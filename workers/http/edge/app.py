"""The fleet's HTTP edge as one ASGI application: route, ask the door, bind, run, answer.

For every request, in this order: the tracing span (when tracing is on), a query parameter
given twice (``400``), the door (``workers.runtime.door.auth``: cross-site checks on every path,
who calls on the closed ones), the route (``404 route_not_found``, ``405 method_not_allowed``:
only a caller the door let in learns which routes exist), the path's parameters by their
declared patterns, the query bound to the route's Struct, then the route. Every error is JSON of one
shape; an exception no route caught is a
``500 internal`` with its traceback in the log. A WebSocket refused before it opens gets the
same answers as an HTTP request (status, headers, JSON body).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import unquote

import msgspec

from topics.errors import EventfleetError, Forbidden
from workers import tracing
from workers.http.edge.params import bind_query
from workers.http.edge.request import Receive, Request, Scope, Send
from workers.http.edge.responses import Redirect, Response, json_response
from workers.http.edge.routes import Api, Route
from workers.http.edge.streaming import STREAMED, deny
from workers.runtime.answers import Answer, error
from workers.runtime.door.auth import OPEN_PATHS, OPEN_PREFIXES, Door, Refusal

log = logging.getLogger(__name__)

Failure = Callable[[EventfleetError], Answer]
"""Our errors as answers (``workers.runtime.answers.failure``)."""


class Edge:
    """The ASGI application of one process: its routes behind its door."""

    def __init__(self, api: Api, door: Door, failure: Failure) -> None:
        self.api = api
        self.door = door
        self.failure = failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return  # lifespan: the fleet starts and stops its own parts
        request = Request(scope, receive, send)
        if not tracing.enabled():
            response = await self.answer(request)
        else:
            response = await self._traced(request)
        if response is STREAMED:
            return
        if request.websocket:
            await deny(request, response)
            return
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response.raw_headers(),
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _traced(self, request: Request) -> Response:
        attributes: dict[str, str | int | bool] = {
            "http.request.method": request.method,
            "url.path": request.path,
        }
        with tracing.span(
            f"{request.method} {request.path}",
            parent=request.headers,
            kind=tracing.SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            response = await self.answer(request)
            if span is not None:
                template = request.route or request.path
                span.update_name(f"{request.method} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    tracing.fail(span, f"http_{response.status}", request.path)
            return response

    async def answer(self, request: Request) -> Response:
        """The answer to ``request``: every error as JSON, never an exception."""
        try:
            return await self._dispatch(request)
        except Redirect as e:
            return e.response
        except Forbidden as e:  # a console form's CSRF or Origin check, the login form's
            return json_response(self.door.refused(e))
        except EventfleetError as e:
            return json_response(self.failure(e))
        except ConnectionError:
            raise  # the client left: nobody to answer
        except Exception as e:
            log.error("unexpected error answering %s %s", request.method, request.path, exc_info=e)
            message = (
                f"{request.method} {request.path} failed unexpectedly (a bug in the fleet); the "
                "process log has the traceback."
            )
            return json_response(error(500, "internal", message))

    async def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/":
            raise Redirect("/console", 302)
        raw = _slashed(request.scope)
        found = self.api.find(request.method, path if raw is None else raw)
        route = None
        if not isinstance(found, list):
            route, request.params = found
            if raw is not None:
                request.params = {k: unquote(v) for k, v in request.params.items()}
            request.route = route.template
        repeated = request.query.repeated()
        if repeated:
            name = repeated[0]
            message = (
                f"query parameter {name} is given {len(request.query.getall(name))} times; "
                "give each parameter once."
            )
            return json_response(error(400, "bad_request", message))
        # The door before the route's absence: who may not call learns nothing of the routes.
        open_path = (route is not None and route.open) or path in OPEN_PATHS
        refused = await self.door.check(
            request, open_path=open_path or path.startswith(OPEN_PREFIXES)
        )
        if refused is not None:
            return refusal_response(refused)
        if route is None:
            assert isinstance(found, list)
            return self._no_route(request, found)
        route.check(request.params)
        return await call(route, request)

    def _no_route(self, request: Request, allowed: list[str]) -> Response:
        if allowed:
            message = (
                f"{request.method} is not allowed on {request.path}; use {' or '.join(allowed)}."
            )
            answer = error(405, "method_not_allowed", message, allowed_methods=allowed)
            return json_response(answer, headers={"Allow": ",".join(allowed)})
        routes = sorted(self.api.templates())
        message = (
            f"no route matches {request.method} {request.path}; this process serves "
            f"{', '.join(routes)}."
        )
        return json_response(error(404, "route_not_found", message))


async def call(route: Route, request: Request) -> Response:
    """Run the route with its declared query bound."""
    kwargs: dict[str, msgspec.Struct] = {}
    if route.query is not None:
        kwargs["query"] = bind_query(route.query, request.query)
    return await route.handler(request, **kwargs)


def refusal_response(refused: Refusal) -> Response:
    """What the door decided, as an answer."""
    if refused.location is not None:
        return Redirect(refused.location, refused.answer.status).response
    return json_response(refused.answer, headers=dict(refused.headers))


def _slashed(scope: Scope) -> str | None:
    """The raw path when it carries an encoded slash (``%2F``), else None: the server decodes
    it to a separator, so a parameter holding a slash (a subject such as ``team/alice``, as
    the client sends it) is matched on the raw path and decoded after, to reach its route whole."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and b"%2f" in raw.lower():
        return raw.decode("latin-1")
    return None
