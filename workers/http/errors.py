"""Every error the HTTP server answers is JSON of one shape, the router's and aiohttp's too.

An aiohttp middleware turns the router's 404/405, aiohttp's own 400/413 (raised as
``HTTPException``) and any unexpected exception into ``{"error": code, "message": ...}`` with a
code of ``ERROR_CODES``. What aiohttp's protocol layer answers before any middleware runs (a
request line or headers it cannot parse) stays its plain text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from workers.runtime.answers import Answer, error
from workers.runtime.door.auth import json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(web_app: web.Application) -> None:
    """Put the JSON error middleware in front of every route (before the app is frozen)."""
    web_app.middlewares.append(json_errors)
    web_app.middlewares.append(single_query_values)


@web.middleware
async def single_query_values(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A query parameter given twice is refused: the views read one value, and which one a
    proxy or a client library means by ``?a=1&a=2`` differs (parameter pollution)."""
    refused = repeated_query(request)
    return refused if refused is not None else await handler(request)


def repeated_query(request: web.Request) -> web.Response | None:
    """``400 bad_request`` for a query parameter given twice; None to go on."""
    query = request.query
    if not query or len(query) == len(set(query.keys())):
        return None
    repeated = sorted({name for name in query if len(query.getall(name)) > 1})
    message = (
        f"query parameter {repeated[0]} is given {len(query.getall(repeated[0]))} times; "
        "give each parameter once."
    )
    return json_response(error(400, "bad_request", message))


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConnectionError:
        raise  # the client left: nobody to answer
    except Exception as e:
        return json_error(request, e)


def json_error(request: web.Request, e: Exception) -> web.Response:
    """The JSON answer of an exception a route raised (re-raised: a redirect)."""
    if isinstance(e, web.HTTPException):
        if e.status < 400:
            raise e  # a redirect is not an error
        answer = http_error(request, e)
        headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        return json_response(answer, headers=headers)
    log.error("unexpected error answering %s %s", request.method, request.path, exc_info=e)
    message = (
        f"{request.method} {request.path} failed unexpectedly (a bug in the fleet); the "
        "process log has the traceback."
    )
    return json_response(error(500, "internal", message))


def http_error(request: web.Request, e: web.HTTPException) -> Answer:
    """Our answer for an ``HTTPException`` the router or aiohttp raised."""
    if isinstance(e, web.HTTPNotFound):
        routes = sorted(_routes(request.app))
        message = (
            f"no route matches {request.method} {request.path}; this process serves "
            f"{', '.join(routes)}."
        )
        return error(404, "route_not_found", message)
    if isinstance(e, web.HTTPMethodNotAllowed):
        allowed = sorted(e.allowed_methods)
        message = f"{request.method} is not allowed on {request.path}; use {' or '.join(allowed)}."
        return error(405, "method_not_allowed", message, allowed_methods=allowed)
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return error(413, "payload_too_large", f"{_clause(e)}; send a smaller body.")
    if isinstance(e, web.HTTPBadRequest):
        return error(400, "bad_request", f"{_clause(e)}.")
    # A safety net: our routes raise no other HTTPException.
    code = "internal" if e.status >= 500 else "bad_request"
    return error(e.status, code, f"{request.method} {request.path}: {e.reason}.")


def _clause(e: web.HTTPException) -> str:
    """aiohttp's text for ``e`` without its final full stop, to go on with the fix."""
    return (e.text or e.reason).strip().rstrip(".")


def _routes(app: web.Application) -> set[str]:
    return {
        resource.canonical
        for resource in app.router.resources()
        if not resource.canonical.startswith("/_")  # no internal routes in the message
    }
