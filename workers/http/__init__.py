"""The HTTP room: everything the fleet serves to people and programs over HTTP.

The edge (``edge/``: routes declared once, the ASGI dispatcher, uvicorn in the process's loop),
the API (``routes``: append, state, events, snapshot, outcome, the probes, the domains' query
routes; ``queries``, ``ryw`` (read your writes), ``subjects``, ``processes``: the process
managers' instances, deadlines and retries, ``global_read``: every stored event from a
position, paged and live), its contract (``contract``,
``openapi*``), request bodies (``bodies``), browsers' tickets for live routes (``tickets``), live
subscriptions and chat (``live/``) and the operator console (``console/``). The door every
request passes is the runtime's (``workers.runtime.door.auth``): the fleet owns it. The runtime
imports nothing from here; the command that serves hands ``register`` to
``workers.runtime.serve``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from workers.http.console import register_console
from workers.http.contract import register_contract
from workers.http.edge.app import Edge
from workers.http.edge.routes import Api
from workers.http.edge.server import Limits, Serving
from workers.http.global_read import global_reader, register_global_read
from workers.http.live.chat import register_chat
from workers.http.live.streams import LiveServer
from workers.http.processes import register_processes
from workers.http.routes import register_views
from workers.http.subjects import register_erase
from workers.runtime.answers import failure
from workers.runtime.fleet import Fleet

__all__ = ["FleetHttp", "register"]

Hook = Callable[[], Awaitable[None]]


class FleetHttp:
    """The HTTP server of one process: its routes, its door, and what starts and stops with it.

    ``api`` is what the API's port serves; ``operator`` what the operator's port serves (the
    probes, metrics and the console): the same routes, unless EVENTFLEET_OPERATOR_PORT names a
    port of their own, where ``operator_serving`` listens."""

    def __init__(
        self, api: Api, serving: Serving, operator: Api, operator_serving: Serving | None = None
    ) -> None:
        self.api = api
        self.serving = serving
        self.operator = operator
        self.operator_serving = operator_serving
        self.port = serving.port
        self.operator_port = operator_serving.port if operator_serving else serving.port
        self.on_start: list[Hook] = []
        self.on_stop: list[Callable[[], object]] = []
        """Run first when the server stops (the live connections are ended there)."""
        self.on_cleanup: list[Hook] = []

    @property
    def servings(self) -> list[Serving]:
        return [self.serving] + ([self.operator_serving] if self.operator_serving else [])

    async def start(self) -> None:
        for serving in self.servings:
            await serving.start()
        for hook in self.on_start:
            await hook()

    async def stop(self) -> None:
        for closing in self.on_stop:
            closing()
        try:
            await asyncio.gather(*(serving.stop() for serving in self.servings))
        finally:
            for hook in self.on_cleanup:
                await hook()

    def close_now(self) -> None:
        for serving in self.servings:
            serving.close_now()


def register(fleet: Fleet) -> FleetHttp:
    """Every route of ``fleet``'s process on a server bound to its port: the API, the console,
    the chat room's live routes (before the generic ``/v1/{type}/{id}/subscribe``) and the live
    subscriptions, behind the fleet's door."""
    settings = fleet.runtime.settings
    limits = Limits(
        header_timeout_s=settings.http_header_timeout_s,
        max_header_bytes=settings.http_max_header_bytes,
        keep_alive_s=settings.http_keep_alive_s,
        max_ws_message_bytes=settings.max_body_bytes,
        ws_ping_s=settings.ws_ping_s,
        max_connections=settings.http_max_connections or None,
    )
    api = Api()
    serving = Serving(
        Edge(api, fleet.door, failure), settings.http_host, settings.http_port, limits
    )
    operator, operator_serving = api, None
    if settings.operator_port is not None:
        operator = Api()
        operator_serving = Serving(
            Edge(operator, fleet.door, failure), settings.http_host, settings.operator_port, limits
        )
    http = FleetHttp(api, serving, operator, operator_serving)
    register_views(fleet, api, operator)
    register_erase(fleet, api)
    register_processes(fleet, api)
    live = LiveServer(fleet, http)
    register_chat(fleet, live, api)
    live.register(api)
    reader, close_reader = global_reader(fleet)
    register_global_read(fleet, api, live, reader)
    http.on_cleanup.append(close_reader)
    register_contract(fleet, api)
    register_console(fleet, http, reader)
    return http
