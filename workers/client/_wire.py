"""The client's requests and answers without I/O: a ``Call`` and its ``Answer``, how a call's
generator is driven (``start``, ``resume``), what an error answer or no answer raises, and the
headers every request carries."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeAlias, TypeVar

import httpx
import msgspec
import orjson

from workers.client._base import AnswerError, ClientError, TransportError
from workers.client.errors import error_from_answer
from workers.client.models import Event, Json

__all__ = [
    "JSON",
    "Answer",
    "Call",
    "Done",
    "Op",
    "Query",
    "Steps",
    "Walk",
    "answer_of",
    "answered",
    "bearer",
    "given",
    "no_answer",
    "relay",
    "resume",
    "start",
]

T = TypeVar("T")
Item = TypeVar("Item")
Y = TypeVar("Y")
S = TypeVar("S")
V = TypeVar("V")
Query: TypeAlias = "dict[str, str]"
JSON = {"Accept": "application/json", "Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Call:
    """One request: method, path (quoted), query, JSON body; ``wait_ms`` lengthens its bound."""

    method: str
    path: str
    params: Query = field(default_factory=dict)
    body: bytes | None = None
    wait_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A success answer of a ``Call``: its status and body."""

    call: Call
    status: int
    raw: bytes

    def decode(self, kind: type[T]) -> T:
        """The body as ``kind``, or ``AnswerError`` naming what did not fit."""
        try:
            return msgspec.json.decode(self.raw, type=kind)
        except msgspec.DecodeError as e:
            raise AnswerError(
                f"{self.call.method} {self.call.path} answered {self.status} with what this "
                f"client cannot read ({e}): {self.raw[:200]!r}; a proxy's page, or a fleet of "
                "another version.",
                status=self.status,
            ) from e


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """A call's generator returned: its result."""

    value: T


Op: TypeAlias = Generator[Call, Answer, T]
Steps: TypeAlias = Generator["Call | Item", "Answer | None", None]
"""A walk over pages: it yields the calls to make and the items (``I``) to hand out."""
Walk: TypeAlias = "Steps[Event]"


def start(op: Generator[Y, S, T]) -> Y | Done[T]:
    try:
        return next(op)
    except StopIteration as done:
        return Done(done.value)


def resume(op: Generator[Y, S, T], got: S | ClientError) -> Y | Done[T]:
    """Send ``got`` (an answer, or the error to raise where the call waits) and take the next."""
    try:
        return op.throw(got) if isinstance(got, ClientError) else op.send(got)
    except StopIteration as done:
        return Done(done.value)


def relay(op: Op[T]) -> Generator[Call, Answer | None, T]:
    """``op`` run inside a walk (``yield from relay(op)``): its calls yielded, each answer sent
    back (an error thrown at the walk's yield); its result."""
    step = start(op)
    while isinstance(step, Call):
        got = yield step
        if got is None:
            raise RuntimeError("a page's call was sent no answer")
        step = resume(op, got)
    return step.value


def answer_of(call: Call, response: httpx.Response) -> Answer:
    """``answered`` for an httpx response read whole."""
    retry_after = response.headers.get("Retry-After")
    return answered(call, response.status_code, response.content, retry_after)


def answered(call: Call, status: int, raw: bytes, retry_after: str | None) -> Answer:
    """A 2xx as its ``Answer``; anything else raised as the error it stands for."""
    if 200 <= status < 300:
        return Answer(call, status, raw)
    try:
        body: Json = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = raw[:200].decode(errors="replace")
    raise error_from_answer(status, body, retry_after=retry_after)


def no_answer(
    call: Call, base_url: str, error: httpx.HTTPError, bound_s: float | None
) -> TransportError:
    """What a request that got no answer raises: retriable, with whether anything was sent."""
    if isinstance(error, httpx.ConnectError):
        return TransportError(
            f"{call.method} {call.path}: cannot connect to {base_url} ({error}); nothing was sent."
        )
    within = f" within {bound_s:g} s" if bound_s is not None else ""
    return TransportError(
        f"{call.method} {call.path}: no answer from {base_url}{within} "
        f"({type(error).__name__}: {error}); whether it was applied is unknown."
    )


def given(**fields: V | None) -> dict[str, V]:
    """The fields that are not None, in their order: what a request sends of its optional ones."""
    return {name: value for name, value in fields.items() if value is not None}


def bearer(token: str | None, headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the token's ``Authorization`` (none without a token)."""
    return {**headers, "Authorization": f"Bearer {token}"} if token is not None else dict(headers)
