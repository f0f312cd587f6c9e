"""What both clients share: their fleet and bounds (``Settings``), their httpx client and
token (``Shared``), and how each of their methods drives one of the API's calls (``bind``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Concatenate, Generic, ParamSpec, TypedDict, TypeVar

import httpx

from workers.client._base import ArgumentError
from workers.client._wire import JSON, Call, Query, bearer
from workers.client.backoff import RECONNECT, Backoff

__all__ = ["Opening", "Settings", "Shared", "bind"]

P = ParamSpec("P")
X = TypeVar("X")
R = TypeVar("R")
C = TypeVar("C")
H = TypeVar("H", httpx.AsyncClient, httpx.Client)
K = TypeVar("K")


class Opening(TypedDict):
    """What ``httpx_sse.connect_sse`` is given to open a subscription's stream."""

    url: str
    params: Query
    headers: dict[str, str]
    timeout: httpx.Timeout


@dataclass(frozen=True, slots=True)
class Settings:
    """A client's fleet, bounds and retry policies, and the requests it makes of them."""

    base_url: str
    timeout_s: float
    idle_timeout_s: float
    retry: Backoff
    reconnect: Backoff

    @classmethod
    def of(
        cls,
        base_url: str,
        timeout_s: float,
        idle_timeout_s: float,
        retry: Backoff | None,
        reconnect: Backoff | None,
    ) -> Settings:
        if not base_url.startswith(("http://", "https://")):
            raise ArgumentError(
                f"base_url {base_url!r} must start with http:// or https:// "
                "(e.g. http://127.0.0.1:8080)."
            )
        if timeout_s <= 0 or idle_timeout_s <= 0:
            raise ArgumentError("timeout_s and idle_timeout_s must be positive numbers of seconds.")
        return cls(
            base_url.rstrip("/"),
            timeout_s,
            idle_timeout_s,
            retry or Backoff(),
            reconnect or RECONNECT,
        )

    def bound_s(self, call: Call) -> float:
        """How long one try may take: ``timeout_s``, plus ``wait_ms`` for a read that waits."""
        return self.timeout_s + (call.wait_ms or 0) / 1000

    def request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call, token: str | None
    ) -> httpx.Request:
        """One try of ``call``, with the token and JSON headers, bounded by ``bound_s``."""
        return http.build_request(
            call.method,
            self.base_url + call.path,
            params=call.params,
            content=call.body,
            headers=bearer(token, JSON),
            timeout=self.bound_s(call),
        )

    def stream(self, call: Call, headers: Mapping[str, str], token: str | None) -> Opening:
        """How to open a subscription's next connection, bounded by ``idle_timeout_s``."""
        return Opening(
            url=self.base_url + call.path,
            params=call.params,
            headers=bearer(token, headers),
            timeout=httpx.Timeout(self.timeout_s, read=self.idle_timeout_s),
        )


class Shared(Generic[H, K]):
    """A client's fleet, bounds, token source (``K``) and httpx client (``H``): its own unless
    ``http`` is given (then the caller's to close)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: K | None = None,
        timeout_s: float = 10.0,
        retry: Backoff | None = None,
        reconnect: Backoff | None = None,
        idle_timeout_s: float = 60.0,
        http: H | None = None,
    ) -> None:
        self._settings = Settings.of(base_url, timeout_s, idle_timeout_s, retry, reconnect)
        self.base_url, self._token = self._settings.base_url, token
        self._own = http is None
        self._http: H = http if http is not None else self._fresh()

    def _fresh(self) -> H:
        raise NotImplementedError


def bind(call: Callable[P, X], drive: Callable[[C, X], R]) -> Callable[Concatenate[C, P], R]:
    """A client's method: ``call``'s arguments (checked at once), its result ``drive``n by the
    client (``AsyncClient._run`` awaits it, ``Client._run`` blocks on it); typed as ``call``."""

    def method(self: C, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return drive(self, call(*args, **kwargs))

    _like(call, method)
    return method


def _like(call: Callable[..., object], method: Callable[..., object]) -> None:
    """Give ``method`` ``call``'s name, docstring and signature (``self`` first): what
    ``help()`` and editors show."""
    method.__name__, method.__qualname__ = call.__name__, call.__name__
    method.__doc__ = call.__doc__
    signature = inspect.signature(call)
    self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    shown = signature.replace(
        parameters=[self, *signature.parameters.values()],
        return_annotation=inspect.Signature.empty,  # the call's generator: not what it answers
    )
    method.__signature__ = shown  # type: ignore[attr-defined]  # what inspect.signature reads
