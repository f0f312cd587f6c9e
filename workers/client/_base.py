"""The root of the client's errors: an answer the fleet refused, and what never got one."""

from __future__ import annotations

from collections.abc import Mapping

from workers.client.models import Json

__all__ = ["AnswerError", "ApiError", "ArgumentError", "ClientError", "TransportError"]

RETRIABLE_STATUSES = (429, 502, 503, 504)
"""Too many requests, a proxy that could not reach the fleet, unavailable, not yet: each says
"later", never "not like this"."""


class ClientError(Exception):
    """Every error this client raises; ``retriable`` says whether sending again can help."""

    retriable: bool = False


class ArgumentError(ClientError, ValueError):
    """Caught before anything was sent: an argument the fleet would refuse anyway."""


class TransportError(ClientError):
    """No answer: the connection failed or timed out. Whether the fleet acted is unknown, so a
    retry is safe only with the same command id (which ``append`` always sends)."""

    retriable = True


class AnswerError(ClientError):
    """A success answer this client cannot read (a proxy's page, a body of another shape): what
    the fleet did is unknown to the caller, so it is raised, never guessed at."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ApiError(ClientError):
    """An error answer of the fleet: ``{"error": code, "message": ..., ...}`` with its status.

    One subclass per code of the fleet's error catalogue (``workers.client.errors``), each
    declared as ``class XError(ApiError, code=..., status=..., retriable=...)``; a code this
    client does not know yet (a newer fleet) is raised as ``ApiError`` itself, its ``code`` and
    ``status`` as answered and ``retriable`` judged by the status.
    """

    code: str = ""
    status: int = 0

    def __init_subclass__(
        cls, *, code: str = "", status: int = 0, retriable: bool = False, **kwargs: object
    ) -> None:
        super().__init_subclass__(**kwargs)
        if code:
            cls.code, cls.status, cls.retriable = code, status, retriable

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        body: Mapping[str, Json] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type(self) is ApiError:  # a code this client does not know: judged by its status
            self.retriable = self.status in RETRIABLE_STATUSES
        self.body: Mapping[str, Json] = dict(body or {})
        """The whole answer: the fields a code names (``current``, ``allowed``, ``reason``...)."""
        self.retry_after_s = retry_after_s
        """How long the fleet asked to wait (``Retry-After`` or ``retry_after_s``), if it did."""

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    @property
    def reason(self) -> str | None:
        """The answer's ``reason`` field (``forbidden``, ``unauthenticated``, ``refused``...)."""
        value = self.body.get("reason")
        return value if isinstance(value, str) else None
