"""What the door reads of a request: any HTTP server's request seen through this protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, overload

from topics.envelope import Actor


class HeaderValues(Protocol):
    """Request headers, matched without regard to case."""

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, default: str, /) -> str: ...

    def getall(self, name: str, default: Sequence[str] = (), /) -> list[str]: ...


class Incoming(Protocol):
    """One request as the door sees it; the door sets ``actor`` and ``expires``."""

    method: str
    path: str
    route: str
    """The template of the route that matched (``/v1/{aggregate_type}/...``)."""
    params: dict[str, str]
    actor: Actor | None
    expires: float | None

    @property
    def headers(self) -> HeaderValues: ...

    @property
    def query(self) -> Mapping[str, str]: ...

    @property
    def cookies(self) -> Mapping[str, str]: ...

    @property
    def path_qs(self) -> str: ...

    @property
    def remote(self) -> str | None: ...

    @property
    def host(self) -> str: ...

    @property
    def secure(self) -> bool: ...
