"""The fleet's root URL leads to the console: ``GET /`` is a redirect, not Faust's status JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

CONSOLE = "/console"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(web_app: web.Application) -> None:
    """Redirect ``GET /`` to the console (before the app is frozen)."""
    web_app.middlewares.append(root_to_console)


@web.middleware
async def root_to_console(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/" and request.method in ("GET", "HEAD"):
        raise web.HTTPFound(CONSOLE)
    return await handler(request)
