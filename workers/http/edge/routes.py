"""Routes declared once: path, method, parameters, body, answers and error codes in one place.

A route is an async function of ``(request, ...)`` registered on an ``Api`` with its
declaration::

    @api.get("/v1/{aggregate_type}/{aggregate_id}/events", query=EventsQuery,
             answers={200: EventsPage}, errors=("not_found", ...), summary="...")
    async def events(request: Request, query: EventsQuery) -> Response: ...

The dispatcher (``workers.http.edge.app``) matches the path, checks the path's parameters by
their declared patterns (``PATH_PARAMS``), binds the query to its Struct
(``workers.http.edge.params``) and calls the function with it. The OpenAPI document
(``workers.http.openapi``) reads the same declarations: nothing about a route is restated.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

import msgspec

from topics.envelope import AGGREGATE_ID_RE, AGGREGATE_TYPE_RE
from topics.errors import InvalidInput
from topics.jsonvalue import Json, JsonObject
from workers.http.edge.responses import Response

Handler = Callable[..., Awaitable[Response]]
_PARAM = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


@dataclass(frozen=True, slots=True)
class PathParam:
    """What a path parameter of that name must look like, wherever it appears."""

    pattern: re.Pattern[str] | None
    what: str
    description: str

    def check(self, value: str) -> None:
        if self.pattern is not None and not self.pattern.match(value):
            raise InvalidInput(f"{self.what} {value!r} must match {self.pattern.pattern}.")


PATH_PARAMS: Mapping[str, PathParam] = {
    "aggregate_type": PathParam(AGGREGATE_TYPE_RE, "aggregate type", "An enabled aggregate type."),
    "aggregate_id": PathParam(AGGREGATE_ID_RE, "aggregate id", "The aggregate's id."),
}
"""Path parameters checked by the dispatcher before the route runs (others: the route's own)."""


Schema = JsonObject


@dataclass(frozen=True, slots=True)
class Param:
    """A header parameter of a route (its query parameters are its query Struct's fields)."""

    name: str
    schema: Schema
    where: str = "header"
    description: str = ""


@dataclass(frozen=True, slots=True)
class Success:
    """A non-error answer: its status, media type and body schema (a components ref or inline)."""

    status: int
    schema: Schema
    media: str = "application/json"
    description: str = "OK"
    link: bool = False
    """The answer may carry ``Link: <…>; rel="next"`` (a page of more)."""


@dataclass(frozen=True, slots=True)
class Doc:
    """What the OpenAPI document says of a route beyond its path, method and query."""

    summary: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    ok: tuple[Success, ...] = ()
    """Every answer that is not an error."""
    errors: tuple[str, ...] = ()
    """Error codes (``ERROR_CODES``) the route may answer, besides the door's and the server's."""
    headers: tuple[Param, ...] = ()
    """Header parameters the route reads (``Last-Event-ID``)."""
    body_schema: Schema | None = None
    """The request body's schema, when the route takes one that is not a command."""
    body_required: bool = True
    command: bool = False
    """The route takes a command: its body is the domain's declared event types."""
    per_type: bool = False
    """Documented once per enabled aggregate type, ``{aggregate_type}`` filled in."""
    hidden: bool = False
    """Not in the document (the console's pages, the chat page)."""
    domain: str | None = None
    """The domain whose declared read route this is (its query's handler reads the query)."""
    extra: Mapping[str, Json] = field(default_factory=dict)
    """OpenAPI fields of the operation set as given (``x-…``, a streaming answer's content)."""


class DocFields(TypedDict, total=False):
    """``Doc``'s fields, as keywords of ``Api.route``."""

    summary: str
    description: str
    tags: tuple[str, ...]
    ok: tuple[Success, ...]
    errors: tuple[str, ...]
    headers: tuple[Param, ...]
    body_schema: Schema | None
    body_required: bool
    command: bool
    per_type: bool
    hidden: bool
    domain: str | None
    extra: Mapping[str, Json]


class RouteFields(DocFields, total=False):
    """``Api.get``'s and ``Api.post``'s keywords: the declaration besides its path."""

    query: type[msgspec.Struct] | None
    open: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class Declared:
    """A route's whole declaration, without its function: what the document is made of, and
    what the dispatcher checks before the function runs (``Api.bind`` joins the two)."""

    method: str
    template: str
    name: str
    query: type[msgspec.Struct] | None = None
    open: bool = False
    doc: Doc = field(default_factory=Doc)


@dataclass(slots=True)
class Route:
    """One declared route: where it is, what it takes, who may call, and its function."""

    method: str
    template: str
    handler: Handler
    name: str
    query: type[msgspec.Struct] | None = None
    open: bool = False
    """Served without the door asking who calls (probes, metrics, the console's login)."""
    doc: Doc = field(default_factory=Doc)
    check_path: bool = True
    """Check ``PATH_PARAMS`` before the function runs (False: the route checks them itself and
    answers a bad one its own way, e.g. the console's HTML pages)."""
    regex: re.Pattern[str] | None = None
    checked: tuple[tuple[str, PathParam], ...] = ()

    def __post_init__(self) -> None:
        names = [m.group(1) for m in _PARAM.finditer(self.template)]
        if names:
            self.regex = compile_template(self.template)
        if self.check_path:
            self.checked = tuple((n, PATH_PARAMS[n]) for n in names if n in PATH_PARAMS)

    def match(self, path: str) -> dict[str, str] | None:
        if self.regex is None:
            return {} if path == self.template else None
        found = self.regex.match(path)
        return found.groupdict() if found is not None else None

    def check(self, params: Mapping[str, str]) -> None:
        for name, param in self.checked:
            param.check(params[name])


def compile_template(template: str) -> re.Pattern[str]:
    """``/v1/{aggregate_type}/{aggregate_id}/events`` as a regex of its named segments
    (``{name}`` is one segment without braces; ``{name:regex}`` is that regex)."""
    out, at = [], 0
    for found in _PARAM.finditer(template):
        out.append(re.escape(template[at : found.start()]))
        pattern = found.group(2) or r"[^{}/]+"
        out.append(f"(?P<{found.group(1)}>{pattern})")
        at = found.end()
    out.append(re.escape(template[at:]))
    return re.compile("".join(out) + r"\Z")


class Api:
    """Every route a process serves, in the order they are tried (specific first)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._static: dict[tuple[str, str], Route] = {}

    def bind(self, declared: Declared, handler: Handler) -> Route:
        """Serve ``declared`` with ``handler``."""
        return self.add(
            Route(
                declared.method,
                declared.template,
                handler,
                declared.name,
                query=declared.query,
                open=declared.open,
                doc=declared.doc,
            )
        )

    def add(self, route: Route) -> Route:
        self.routes.append(route)
        if route.regex is None:
            self._static.setdefault((route.method, route.template), route)
        return route

    def route(
        self,
        method: str,
        template: str,
        *,
        query: type[msgspec.Struct] | None = None,
        open: bool = False,  # the door's word for it
        name: str | None = None,
        **doc: Unpack[DocFields],
    ) -> Callable[[Handler], Handler]:
        """Declare ``handler`` as ``method template`` (see the module)."""

        def register(handler: Handler) -> Handler:
            named = name or handler.__name__
            self.bind(Declared(method, template, named, query, open, Doc(**doc)), handler)
            return handler

        return register

    def get(self, template: str, **kwargs: Unpack[RouteFields]) -> Callable[[Handler], Handler]:
        return self.route("GET", template, **kwargs)

    def post(self, template: str, **kwargs: Unpack[RouteFields]) -> Callable[[Handler], Handler]:
        return self.route("POST", template, **kwargs)

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | list[str]:
        """The route and its parameters; else the methods the path allows ([]: no route)."""
        route = self._static.get((method, path))
        if route is not None:
            return route, {}
        if method == "HEAD":
            route = self._static.get(("GET", path))
            if route is not None:
                return route, {}
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, params
            allowed.append(route.method)
            if route.method == "GET":
                allowed.append("HEAD")
        return sorted(set(allowed))

    def templates(self) -> list[str]:
        return list(dict.fromkeys(route.template for route in self.routes))

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)
