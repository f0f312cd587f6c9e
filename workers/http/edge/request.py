"""One HTTP request (or WebSocket handshake) as the routes read it, over an ASGI scope.

Everything is read lazily and once: the headers into a dict (lower-case names), the query and
the cookies on first use. The body is read by ``read_body`` within a size and a time bound;
nothing else of the connection is buffered here (the server holds what arrived).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import TypeVar, cast, overload
from urllib.parse import parse_qsl

from topics.envelope import Actor
from topics.errors import InvalidInput
from workers.http.edge.wire import Wire, transport_of, wire_of
from workers.roles.command.requests import PayloadTooLarge

Scope = MutableMapping[str, object]
"""An ASGI connection scope (``type``, ``path``, ``headers``, ``query_string``, ``client``…)."""
Message = dict[str, object]
"""An ASGI event: ``{"type": "http.request", "body": b"…", "more_body": False}``, …"""
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI application."""

_T = TypeVar("_T")
CHUNK = 65536
_COUNT_UP_TO = 16


class BodyTimeout(InvalidInput):
    """The body did not arrive whole in time (a stalled or truncated sender)."""

    code = "request_timeout"


class BodyIncomplete(InvalidInput):
    """The sender closed the connection before the body it announced was whole."""


class MultiValues(Mapping[str, str]):
    """Name → first value, and ``getall`` for every value of a name, in the order sent."""

    __slots__ = ("_all", "_first")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._all = pairs
        first: dict[str, str] = {}
        for name, value in pairs:
            first.setdefault(name, value)
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, name: str, default: Sequence[str] | None = None) -> list[str]:
        found = [value for key, value in self._all if key == name]
        return found if found or default is None else list(default)

    def repeated(self) -> list[str]:
        """Names given more than once."""
        if len(self._all) == len(self._first):
            return []
        return sorted({name for name in self._first if len(self.getall(name)) > 1})


class Headers(MultiValues):
    """Request headers: names are matched without regard to case."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, default: str, /) -> str: ...

    @overload
    def get(self, name: str, default: _T, /) -> str | _T: ...

    def get(self, name: str, default: object = None, /) -> object:
        return self._first.get(name.lower(), default)

    def getall(self, name: str, default: Sequence[str] | None = None) -> list[str]:
        return super().getall(name.lower(), default)


EMPTY_QUERY = MultiValues([])


class Request:
    """What a route sees of one request: method, path, its parameters, headers, query, cookies,
    the caller the door admitted (``actor``), and the body, read on demand."""

    __slots__ = (
        "_cookies",
        "_headers",
        "_query",
        "_receive",
        "_send",
        "actor",
        "expires",
        "method",
        "params",
        "path",
        "route",
        "scope",
        "state",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.method = str(scope.get("method", "GET"))
        self.path = str(scope["path"])
        self.params: dict[str, str] = {}
        """The path's parameters by name, as matched (``{aggregate_id}``)."""
        self.route: str = ""
        """The template of the route that matched (``/v1/{aggregate_type}/...``); '' if none."""
        self.actor: Actor | None = None
        """Who calls, as the door admitted them (None on the open paths)."""
        self.expires: float | None = None
        """Until when the caller's credential is accepted (seconds since the epoch)."""
        self.state: dict[str, object] = {}
        self._headers: Headers | None = None
        self._query: MultiValues | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def websocket(self) -> bool:
        return bool(self.scope["type"] == "websocket")

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(
                [(n.decode("latin-1"), v.decode("latin-1")) for n, v in _pairs(self.scope)]
            )
        return headers

    @property
    def query(self) -> MultiValues:
        query = self._query
        if query is None:
            raw = _bytes(self.scope.get("query_string"))
            if not raw:
                query = EMPTY_QUERY
            else:
                text = raw.decode("latin-1")
                query = MultiValues(
                    parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")
                )
            self._query = query
        return query

    @property
    def query_string(self) -> str:
        return _bytes(self.scope.get("query_string")).decode("latin-1")

    @property
    def path_qs(self) -> str:
        qs = self.query_string
        return f"{self.path}?{qs}" if qs else self.path

    @property
    def cookies(self) -> dict[str, str]:
        cookies = self._cookies
        if cookies is None:
            cookies = {}
            for raw in self.headers.getall("cookie"):
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(raw)
                except CookieError:
                    continue  # a malformed cookie header: as if none was sent
                for name, morsel in jar.items():
                    cookies.setdefault(name, morsel.value)
            self._cookies = cookies
        return cookies

    @property
    def remote(self) -> str | None:
        """The peer's address (the proxy's, behind one)."""
        client = self.scope.get("client")
        return str(client[0]) if isinstance(client, list | tuple) and client else None

    @property
    def host(self) -> str:
        return str(self.headers.get("host", ""))

    @property
    def secure(self) -> bool:
        return self.scope.get("scheme") in ("https", "wss")

    @property
    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            return None

    @property
    def body_exists(self) -> bool:
        """Whether a body follows the headers (a length above 0, or chunks)."""
        length = self.content_length
        if length is not None:
            return length > 0
        return "chunked" in str(self.headers.get("transfer-encoding", "")).lower()

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's socket transport (``workers.http.edge.wire``); None if it is not
        reachable."""
        return transport_of(self._send)

    def wire(self) -> Wire | None:
        """The socket for bytes the route frames itself, once its answer began (the live
        pushes): ``workers.http.edge.wire``."""
        return wire_of(self._send, websocket=self.websocket)

    def gone(self) -> bool:
        """Whether the client has left (its connection is closing or closed)."""
        transport = self.transport
        return transport is None or transport.is_closing()

    async def read_body(self, limit: int, within_s: float) -> bytes:
        """The whole body, however it arrives (Content-Length or chunked, in any number of
        writes), checked against ``limit`` as it comes.

        Raises PayloadTooLarge once more than ``limit`` bytes are announced or received, with
        the body's real size: the rest is read (and dropped) up to ``_COUNT_UP_TO`` times the
        limit, beyond which the message says "more than" that bound. BodyIncomplete if the
        sender leaves before the body is whole; BodyTimeout if it is not whole ``within_s``
        seconds after reading began (EVENTFLEET_BODY_TIMEOUT_S).
        """
        announced = self.content_length
        if announced is not None and announced > limit:
            raise PayloadTooLarge(_too_large(f"has {announced} bytes", limit))
        receive = self._receive
        message = await receive()  # the common case: the whole body came with the headers
        if message["type"] == "http.request" and not message.get("more_body"):
            body = _bytes(message.get("body"))
            if len(body) > limit:
                raise PayloadTooLarge(_too_large(f"has {len(body)} bytes", limit))
            return body
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(within_s):
                while True:
                    if message["type"] != "http.request":
                        raise BodyIncomplete(
                            f"the body ended after {size} bytes, before it was whole (the "
                            "client closed the connection); send the whole body (as many bytes "
                            "as Content-Length says, or every chunk and the last, empty one)."
                        )
                    chunk = _bytes(message.get("body"))
                    size += len(chunk)
                    more = bool(message.get("more_body"))
                    if size > limit:  # the rest is counted only if more is coming
                        has = await self._count_rest(size, limit) if more else f"has {size} bytes"
                        raise PayloadTooLarge(_too_large(has, limit))
                    chunks.append(chunk)
                    if not more:
                        break
                    message = await receive()
        except TimeoutError:
            raise BodyTimeout(
                f"the body was not whole {within_s:g} s after the request began ({size} bytes "
                "came); send it without pausing (EVENTFLEET_BODY_TIMEOUT_S)."
            ) from None
        return b"".join(chunks)

    async def _count_rest(self, size: int, limit: int) -> str:
        """How big the body is: read on up to a bound; never report a size not seen."""
        bound = _COUNT_UP_TO * limit
        while size <= bound:
            message = await self._receive()
            if message["type"] != "http.request":
                break
            size += len(_bytes(message.get("body")))
            if not message.get("more_body"):
                break
        if size > bound:
            return f"has more than {bound} bytes"
        return f"has {size} bytes"


def _bytes(value: object) -> bytes:
    """An ASGI field that holds bytes (a body, the query string), or none."""
    return value if isinstance(value, bytes) else b""


def _pairs(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The scope's headers, as the server gives them: (name, value) byte pairs."""
    found = scope.get("headers")
    return cast("list[tuple[bytes, bytes]]", found) if isinstance(found, list) else []


def _too_large(has: str, limit: int) -> str:
    return (
        f"the body {has}; the limit is {limit} bytes (EVENTFLEET_MAX_BODY_BYTES): send at most "
        f"{limit}."
    )
