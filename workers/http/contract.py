"""Serving the contract: ``GET /openapi.json``, ``GET /v1/types`` and ``GET /v1/types/{type}``.

The document is built on its first request from the routes the process registered by then
(every route is registered before the server starts) and kept: the routes and the domains do
not change while it runs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import orjson

from topics.jsonvalue import JsonObject
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.http.openapi import document
from workers.http.openapi_schemas import type_listing
from workers.runtime.answers import Answer
from workers.runtime.fleet import Fleet

__all__ = ["Contract", "register_contract"]


def package_version() -> str:
    try:
        return version("eventfleet")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


class Contract:
    """The document of one process, built once from its router."""

    def __init__(self, fleet: Fleet, api: Api) -> None:
        self._fleet = fleet
        self._api = api
        self._built: JsonObject | None = None
        self._bytes: bytes | None = None

    def document(self) -> JsonObject:
        if self._built is None:
            self._built = document(
                self._fleet.runtime.domains,
                self._api.templates(),
                auth=self._fleet.door.mode,
                version=package_version(),
            )
        return self._built

    def as_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = orjson.dumps(self.document())
        return self._bytes


def register_contract(fleet: Fleet, api: Api) -> Contract:
    """Add the contract's routes (before the server starts); the console's API page reads it."""
    contract = Contract(fleet, api)
    domains = fleet.runtime.domains

    @api.get("/openapi.json", tags=("contract",), summary="This document.")
    async def openapi(request: Request) -> Response:
        return Response(contract.as_bytes())

    @api.get("/v1/types", tags=("contract",), summary="The enabled aggregate types.")
    async def types(request: Request) -> Response:
        listing = [type_listing(domain) for domain in domains]
        return json_response(Answer(200, {"types": listing}))

    @api.get(
        "/v1/types/{aggregate_type}",
        name="one_type",
        tags=("contract",),
        summary="One aggregate type: its events, schemas and routes.",
        errors=("unknown_aggregate_type", "bad_request"),
    )
    async def one_type(request: Request) -> Response:
        domain = domains.get(request.params["aggregate_type"])
        return json_response(Answer(200, type_listing(domain)))

    return contract
