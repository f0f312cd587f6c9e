"""Serving the contract: ``GET /openapi.json``, ``GET /v1/types`` and ``GET /v1/types/{type}``.

The document is built on its first request from the routes the process registered by then
(every route is registered before the server starts) and kept: the routes and the domains do
not change while it runs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import orjson
from aiohttp import web

from topics.envelope import AGGREGATE_TYPE_RE
from topics.errors import EventfleetError, InvalidInput
from topics.jsonvalue import JsonObject
from workers.http.openapi import document
from workers.http.openapi_schemas import type_listing
from workers.http.queries import failure
from workers.runtime.answers import Answer
from workers.runtime.door.auth import json_response
from workers.runtime.fleet import Fleet

__all__ = ["Contract", "register_contract"]


def package_version() -> str:
    try:
        return version("eventfleet")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


class Contract:
    """The document of one process, built once from its router."""

    def __init__(self, fleet: Fleet, web_app: web.Application) -> None:
        self._fleet = fleet
        self._web_app = web_app
        self._built: JsonObject | None = None
        self._bytes: bytes | None = None

    def routes(self) -> list[str]:
        return [resource.canonical for resource in self._web_app.router.resources()]

    def document(self) -> JsonObject:
        if self._built is None:
            self._built = document(
                self._fleet.runtime.domains,
                self.routes(),
                auth=self._fleet.door.mode,
                version=package_version(),
            )
        return self._built

    def as_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = orjson.dumps(self.document())
        return self._bytes


def register_contract(fleet: Fleet) -> Contract:
    """Add the contract's routes (before the server starts); the console's API page reads it."""
    web_app = fleet.web_app
    contract = Contract(fleet, web_app)
    domains = fleet.runtime.domains

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=contract.as_bytes(), content_type="application/json")

    async def types(request: web.Request) -> web.Response:
        listing = [type_listing(domain) for domain in domains]
        return json_response(Answer(200, {"types": listing}))

    async def one_type(request: web.Request) -> web.Response:
        name = request.match_info["aggregate_type"]
        try:
            if not AGGREGATE_TYPE_RE.match(name):
                raise InvalidInput(
                    f"aggregate type {name!r} must match {AGGREGATE_TYPE_RE.pattern}."
                )
            domain = domains.get(name)
        except EventfleetError as e:
            return json_response(failure(e))
        return json_response(Answer(200, type_listing(domain)))

    web_app.router.add_get("/openapi.json", openapi)
    web_app.router.add_get("/v1/types", types)
    web_app.router.add_get("/v1/types/{aggregate_type}", one_type)
    return contract
