"""Request bodies, read whole on every route: however they arrive, within the size limit.

``read_body`` reads until the body ends (Content-Length or chunked, in any number of writes, from
a slow sender too), and stops with ``PayloadTooLarge`` (413) as soon as more than the limit is
announced or received; ``json_body`` first refuses a body that is not declared as JSON
(``UnsupportedMediaType``, 415): a page on another site can send ``text/plain``, a form or
multipart body without asking the fleet first (no CORS preflight), never ``application/json``.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import PayloadEncodingError
from multidict import MultiDict, MultiDictProxy

from topics.errors import InvalidInput
from workers.roles.command.requests import PayloadTooLarge

CHUNK = 65536
FORM = "application/x-www-form-urlencoded"
_FORM_KEY = "eventfleet.form"
_COUNT_UP_TO = 16


class UnsupportedMediaType(InvalidInput):
    """A JSON route got a body declared as something else (or as nothing)."""


class BodyTimeout(InvalidInput):
    """The body did not arrive whole in time (a stalled or truncated sender)."""


class BodyIncomplete(InvalidInput):
    """The sender closed the connection before the body it announced was whole."""


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<something>+json``, parameters (charset) aside."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        return True
    family, _, sub = kind.partition("/")
    return family == "application" and sub.endswith("+json") and len(sub) > len("+json")


def check_json(request: web.Request) -> None:
    """Raises UnsupportedMediaType unless the body is declared JSON; a request without a body
    (``Content-Length: 0``, none) has no media type to judge, whatever its header says."""
    declared = request.headers.get("Content-Type")
    if declared is not None and is_json(declared):
        return
    if request.content_length == 0 or not request.body_exists:
        return
    sent = f"Content-Type: {declared[:80]}" if declared is not None else "no Content-Type"
    raise UnsupportedMediaType(
        f"{request.method} {request.path} takes a JSON body and this one was sent with {sent}; "
        "send it with Content-Type: application/json (curl: -H 'Content-Type: application/json' "
        "or --json)."
    )


async def json_body(request: web.Request, limit: int, within_s: float) -> bytes:
    """The whole body of a JSON route, its content type checked first (nothing read if wrong)."""
    check_json(request)
    return await read_body(request, limit, within_s)


async def read_form(request: web.Request, limit: int, within_s: float) -> MultiDictProxy[str]:
    """A console form (``application/x-www-form-urlencoded``), read whole by ``read_body`` once
    per request and kept on it: ``posted`` gives it to the view after the CSRF check."""
    found: MultiDictProxy[str] | None = request.get(_FORM_KEY)
    if found is not None:
        return found
    if request.content_length == 0 or not request.body_exists:
        fields: MultiDict[str] = MultiDict()
    else:
        declared = request.headers.get("Content-Type", "")
        if declared.split(";", 1)[0].strip().lower() != FORM:
            raise UnsupportedMediaType(
                f"{request.method} {request.path} takes a form and this body was sent as "
                f"{declared[:80] or 'nothing'}; submit the console's own form (Content-Type: "
                f"{FORM})."
            )
        raw = await read_body(request, limit, within_s)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("the form is not UTF-8; submit the console's own form.") from None
        fields = MultiDict(parse_qsl(text, keep_blank_values=True))
    request[_FORM_KEY] = found = MultiDictProxy(fields)
    return found


def posted(request: web.Request) -> MultiDictProxy[str]:
    """The form ``read_form`` read for this request (empty if none was)."""
    found: MultiDictProxy[str] | None = request.get(_FORM_KEY)
    return found if found is not None else MultiDictProxy(MultiDict())


async def read_body(request: web.Request, limit: int, within_s: float) -> bytes:
    """The whole body, however it arrives (Content-Length or chunked, in any number of writes).

    Raises PayloadTooLarge once more than ``limit`` bytes are announced or received, with the
    body's real size: the rest is read (and dropped) up to ``_COUNT_UP_TO`` times the limit,
    beyond which the message says "more than" that bound instead of a number it never saw.
    BodyIncomplete if the sender closes before the body is whole; BodyTimeout if it is not whole
    ``within_s`` seconds after the handler started reading (EVENTFLEET_BODY_TIMEOUT_S): a sender
    that stalls holds no handler, and no drain, for longer.
    """
    announced = request.content_length
    if announced is not None and announced > limit:
        raise PayloadTooLarge(_too_large(f"has {announced} bytes", limit))
    content = request.content
    if content.is_eof():  # the whole body came with the request: nothing to wait for
        body = content.read_nowait()
        if len(body) > limit:
            raise PayloadTooLarge(_too_large(f"has {len(body)} bytes", limit))
        return body
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within_s):
            while chunk := await request.content.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        _too_large(await _count_rest(request, size, limit), limit)
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(
            f"the body was not whole {within_s:g} s after the request began ({size} bytes "
            "came); send it without pausing (EVENTFLEET_BODY_TIMEOUT_S)."
        ) from None
    except PayloadEncodingError as e:  # a short body, or a malformed chunk
        raise BodyIncomplete(
            f"the body ended after {size} bytes, before it was whole ({type(e).__name__}); "
            "send the whole body (as many bytes as Content-Length says, or every chunk and the "
            "last, empty one)."
        ) from e
    return b"".join(chunks)


async def _count_rest(request: web.Request, size: int, limit: int) -> str:
    """How big the body is: read on up to a bound; never report a size that was not seen."""
    bound = _COUNT_UP_TO * limit
    while size <= bound and (chunk := await request.content.read(CHUNK)):
        size += len(chunk)
    if size > bound:
        return f"has more than {bound} bytes"
    return f"has {size} bytes"


def _too_large(has: str, limit: int) -> str:
    return (
        f"the body {has}; the limit is {limit} bytes (EVENTFLEET_MAX_BODY_BYTES): send at most "
        f"{limit}."
    )
