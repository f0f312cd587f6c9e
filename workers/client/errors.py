"""The client's errors: ``ApiError`` and one subclass per code of the fleet's catalogue
(``_catalogue``, generated), ``TransportError`` for no answer, ``AnswerError`` for an answer it
cannot read, ``ArgumentError`` for what is refused before sending. ``error_from_answer`` turns an
error answer into its exception."""

from __future__ import annotations

import math
from collections.abc import Mapping

from workers.client import _catalogue
from workers.client._base import AnswerError, ApiError, ArgumentError, ClientError, TransportError
from workers.client._catalogue import *  # noqa: F403  (the generated classes, all public)
from workers.client.models import Json

BY_CODE: Mapping[str, type[ApiError]] = {
    found.code: found
    for found in vars(_catalogue).values()
    if isinstance(found, type) and issubclass(found, ApiError) and found is not ApiError
}
"""Each code of the catalogue to its class."""

__all__ = [
    "BY_CODE",
    "AnswerError",
    "ApiError",
    "ArgumentError",
    "ClientError",
    "TransportError",
    "error_from_answer",
    *sorted(found.__name__ for found in BY_CODE.values()),
]


def error_from_answer(status: int, body: Json, *, retry_after: str | None = None) -> ApiError:
    """The exception for an error answer: its code's class, or ``ApiError`` for a code this
    client does not know or a body that is not the fleet's error shape (a proxy's page)."""
    fields: Mapping[str, Json] = body if isinstance(body, dict) else {}
    code = fields.get("error")
    message = fields.get("message")
    if not isinstance(message, str):
        message = f"the fleet answered {status} without an error message: {str(body)[:200]!r}"
    retry_after_s = _seconds(retry_after) if retry_after is not None else None
    if retry_after_s is None:
        in_body = fields.get("retry_after_s")
        if isinstance(in_body, int | float) and not isinstance(in_body, bool):
            retry_after_s = float(in_body)
    known = BY_CODE.get(code) if isinstance(code, str) else None
    if known is not None and known.status == status:
        return known(message, body=fields, retry_after_s=retry_after_s)
    return ApiError(
        message,
        code=code if isinstance(code, str) else f"http_{status}",
        status=status,
        body=fields,
        retry_after_s=retry_after_s,
    )


def _seconds(header: str) -> float | None:
    """``Retry-After`` in seconds (its HTTP-date form is not used by the fleet: ignored)."""
    try:
        value = float(header.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
