"""Request bodies, read whole on every route: however they arrive, within the size limit.

``Request.read_body`` (``workers.http.edge.request``) reads until the body ends and stops with
``PayloadTooLarge`` (413) as soon as more than the limit is announced or received;
``json_body`` first refuses a body that is not declared as JSON (``UnsupportedMediaType``,
415): a page on another site can send ``text/plain``, a form or multipart body without asking
the fleet first (no CORS preflight), never ``application/json``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from topics.errors import InvalidInput
from workers.http.edge.request import BodyIncomplete, BodyTimeout, MultiValues, Request

FORM = "application/x-www-form-urlencoded"
_FORM_KEY = "eventfleet.form"

__all__ = [
    "FORM",
    "BodyIncomplete",
    "BodyTimeout",
    "UnsupportedMediaType",
    "is_json",
    "json_body",
    "posted",
    "read_form",
]


class UnsupportedMediaType(InvalidInput):
    """A JSON route got a body declared as something else (or as nothing)."""

    code = "unsupported_media_type"


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/<something>+json``, parameters (charset) aside."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        return True
    family, _, sub = kind.partition("/")
    return family == "application" and sub.endswith("+json") and len(sub) > len("+json")


def check_json(request: Request) -> None:
    """Raises UnsupportedMediaType unless the body is declared JSON; a request without a body
    (``Content-Length: 0``, none) has no media type to judge, whatever its header says."""
    declared = request.headers.get("content-type")
    if declared is not None and is_json(declared):
        return
    if not request.body_exists:
        return
    sent = f"Content-Type: {declared[:80]}" if declared is not None else "no Content-Type"
    raise UnsupportedMediaType(
        f"{request.method} {request.path} takes a JSON body and this one was sent with {sent}; "
        "send it with Content-Type: application/json (curl: -H 'Content-Type: application/json' "
        "or --json)."
    )


async def json_body(request: Request, limit: int, within_s: float) -> bytes:
    """The whole body of a JSON route, its content type checked first (nothing read if wrong)."""
    check_json(request)
    return await request.read_body(limit, within_s)


async def read_form(request: Request, limit: int, within_s: float) -> MultiValues:
    """A console form (``application/x-www-form-urlencoded``), read whole once per request and
    kept on it: ``posted`` gives it to the view after the CSRF check."""
    found = request.state.get(_FORM_KEY)
    if isinstance(found, MultiValues):
        return found
    if not request.body_exists:
        fields = MultiValues([])
    else:
        declared = request.headers.get("content-type", "")
        if declared.split(";", 1)[0].strip().lower() != FORM:
            raise UnsupportedMediaType(
                f"{request.method} {request.path} takes a form and this body was sent as "
                f"{declared[:80] or 'nothing'}; submit the console's own form (Content-Type: "
                f"{FORM})."
            )
        raw = await request.read_body(limit, within_s)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("the form is not UTF-8; submit the console's own form.") from None
        fields = MultiValues(parse_qsl(text, keep_blank_values=True))
    request.state[_FORM_KEY] = fields
    return fields


def posted(request: Request) -> MultiValues:
    """The form ``read_form`` read for this request (empty if none was)."""
    found = request.state.get(_FORM_KEY)
    return found if isinstance(found, MultiValues) else MultiValues([])
