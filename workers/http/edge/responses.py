"""What a route answers: a status, headers and a body of bytes, sent in one piece.

Streams (SSE) and WebSockets are ``workers.http.edge.streaming``. Every answer also carries the
security headers (``SECURITY_HEADERS``) unless the route set its own value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http.cookies import SimpleCookie
from typing import Literal

import orjson

from workers.runtime.answers import Answer

JSON = "application/json"
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send Origin: null
}
"""Sent with every answer of the HTTP server, console pages and API alike."""

RawHeaders = list[tuple[bytes, bytes]]
SECURITY_RAW: RawHeaders = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


class Response:
    """An answer sent whole: ``body`` with its ``Content-Type`` and any other headers."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        body: bytes = b"",
        status: int = 200,
        *,
        content_type: str | None = JSON,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        if content_type is not None:
            pairs.insert(0, ("Content-Type", content_type))
        self.headers: list[tuple[str, str]] = pairs

    @classmethod
    def text(cls, text: str, status: int = 200, *, content_type: str = TEXT) -> Response:
        return cls(text.encode(), status, content_type=content_type)

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(text.encode(), status, content_type=HTML)

    def set_header(self, name: str, value: str) -> None:
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        self.headers.append((name, value))

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        path: str = "/",
        max_age: int | None = None,
        httponly: bool = True,
        secure: bool = False,
        samesite: Literal["Strict", "Lax"] = "Strict",
    ) -> None:
        jar: SimpleCookie = SimpleCookie()
        jar[name] = value
        morsel = jar[name]
        morsel["path"] = path
        morsel["samesite"] = samesite
        if httponly:
            morsel["httponly"] = True
        if secure:
            morsel["secure"] = True
        if max_age is not None:
            morsel["max-age"] = str(max_age)
        self.headers.append(("Set-Cookie", morsel.OutputString()))

    def del_cookie(self, name: str, *, path: str = "/") -> None:
        """Tell the browser to forget cookie ``name`` (of ``path``)."""
        self.headers.append(
            (
                "Set-Cookie",
                f"{name}=; Path={path}; Max-Age=0; expires=Thu, 01 Jan 1970 00:00:00 GMT",
            )
        )

    def raw_headers(self) -> RawHeaders:
        """Every header as the server sends it: ours, then the security headers not set."""
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        names = {name for name, _ in raw}
        raw.extend(pair for pair in SECURITY_RAW if pair[0] not in names)
        raw.append((b"content-length", str(len(self.body)).encode()))
        return raw


def json_response(answer: Answer, *, headers: Mapping[str, str] | None = None) -> Response:
    """An answer as JSON; a ``429`` naming its ``retry_after_s`` also gets ``Retry-After``."""
    extra = dict(headers or {})
    if answer.status == 429:
        seconds = answer.body.get("retry_after_s")
        if isinstance(seconds, int) and "Retry-After" not in extra:
            extra["Retry-After"] = str(seconds)
    return Response(orjson.dumps(answer.body), answer.status, headers=extra)


class Redirect(Exception):  # raised to answer, as aiohttp's HTTPFound is
    """Raised by a route to answer with a redirect (``303 See Other`` unless said)."""

    def __init__(self, location: str, status: int = 303, *, response: Response | None = None):
        super().__init__(location)
        self.location = location
        self.status = status
        self.response = response or Response(b"", status, content_type=None)
        self.response.status = status
        self.response.set_header("Location", location)


PREBUILT_JSON: RawHeaders = [(b"content-type", b"application/json"), *SECURITY_RAW]
"""The headers of a JSON answer with no others, built once (the append route's)."""


def fast_headers(length: int) -> RawHeaders:
    """``PREBUILT_JSON`` and the body's length: the hot routes' whole header list."""
    return [*PREBUILT_JSON, (b"content-length", str(length).encode())]


__all__ = [
    "HTML",
    "JSON",
    "SECURITY_HEADERS",
    "SECURITY_RAW",
    "Redirect",
    "Response",
    "fast_headers",
    "json_response",
]
