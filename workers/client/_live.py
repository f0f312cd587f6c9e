"""A subscription without I/O: where it resumes, what each Server-Sent Event means, and when a
broken connection starts a new outage. ``AsyncClient`` and ``Client`` read the stream with
httpx-sse and hand each message here."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import httpx
import msgspec
import orjson
from httpx_sse import ServerSentEvent, SSEError

from workers.client._base import AnswerError, ClientError, TransportError
from workers.client._calls import path_of, type_path
from workers.client._wire import Call, answered, no_answer
from workers.client.errors import BY_CODE, error_from_answer
from workers.client.models import Event, Json

__all__ = ["Feed", "subscribe", "subscribe_type"]

T = TypeVar("T")


def _as_is(sse_id: str | None, event: Event) -> Event:
    return event


class Feed(Generic[T]):
    """One subscription across its connections. ``last_id`` is the id of the last event taken:
    a new connection sends it as ``Last-Event-ID``, so the fleet resumes after it (the header
    wins over the query) and nothing is skipped or repeated. ``made`` turns each event and its
    id into what the subscription hands out (None: nothing, a copy seen before)."""

    def __init__(
        self,
        path: str,
        params: dict[str, str],
        made: Callable[[str | None, Event], T | None],
    ) -> None:
        self.call = Call("GET", path, params)
        self.last_id: str | None = None
        self.taken = 0
        """Events taken since ``progressed`` was last asked."""
        self._made = made

    def headers(self) -> dict[str, str]:
        resume = {"Last-Event-ID": self.last_id} if self.last_id is not None else {}
        return {"Accept": "text/event-stream", **resume}

    def refused(self, response: httpx.Response, raw: bytes) -> None:
        """Raise the error a subscription answered other than 200 stands for (``raw``: its body)."""
        answered(self.call, response.status_code, raw, response.headers.get("Retry-After"))
        raise AnswerError(
            f"GET {self.call.path} answered {response.status_code}, not a stream.",
            status=response.status_code,
        )

    def take(self, sse: ServerSentEvent) -> T | None:
        """What a message hands out (None: nothing); a closing notice (any other event name)
        raised."""
        if sse.event != "message":
            raise _notice(sse)
        try:
            event = msgspec.json.decode(sse.data, type=Event)
        except msgspec.DecodeError as e:
            raise AnswerError(
                f"GET {self.call.path}: the fleet sent {sse.data[:200]!r} where an event belongs "
                f"({e}).",
                status=200,
            ) from e
        self.last_id, self.taken = sse.id, self.taken + 1
        return self._made(sse.id, event)

    def progressed(self) -> bool:
        """Whether events were taken since this was last asked (a new outage starts if so)."""
        taken, self.taken = self.taken, 0
        return taken > 0

    @contextlib.contextmanager
    def connection(self, base_url: str) -> Iterator[None]:
        """One connection's life: however it ends, as the ``ClientError`` to judge (the end of
        the stream too: a subscription is read until it is closed)."""
        try:
            yield
        except SSEError as e:
            raise AnswerError(
                f"GET {self.call.path} answered 200 but not as a stream ({e}).", status=200
            ) from e
        except httpx.HTTPError as e:
            raise no_answer(self.call, base_url, e, None) from e
        raise TransportError(f"GET {self.call.path}: the fleet ended the stream.")


def subscribe(aggregate_type: str, aggregate_id: str, *, after_version: int = 0) -> Feed[Event]:
    """``GET .../subscribe`` as Server-Sent Events: the stored events after
    ``after_version``, then each as it is stored, for as long as it is iterated.

    When the stream ends or breaks (a deploy drains the process, a proxy cuts it, a slow
    reader is let go), it reconnects with ``Last-Event-ID`` set to the last event it yielded,
    so nothing is skipped or repeated; waits between tries follow ``reconnect`` (bounded per
    outage: its last error is raised once spent); a refusal no retry helps (401, 403, 404) is
    raised at once. Close it (``aclose()``, or ``close()`` for ``Client``'s) to end the
    connection at once; one only dropped is closed when it is collected.
    """
    path = path_of(aggregate_type, aggregate_id, "subscribe")
    return Feed(path, {"after_version": str(after_version)}, _as_is)


def subscribe_type(aggregate_type: str, *, after: str = "") -> Feed[Event]:
    """``GET /v1/{type}/subscribe``: every stored event of a type from ``after``
    (``partition:offset,...``; empty: each partition from its start), resumed as
    ``subscribe`` is."""
    return Feed(type_path(aggregate_type, "subscribe"), {"after": after} if after else {}, _as_is)


def _notice(sse: ServerSentEvent) -> ClientError:
    """The exception a closing notice stands for; ``slow_client`` is one to reconnect after."""
    try:
        body: Json = orjson.loads(sse.data)
    except orjson.JSONDecodeError:
        body = sse.data[:200]
    fields = body if isinstance(body, dict) else {}
    code = fields.get("error")
    if sse.event == "slow_client" or code == "slow_client":
        return TransportError(f"the fleet let a slow subscriber go: {fields.get('message')}")
    known = BY_CODE.get(code) if isinstance(code, str) else None
    return error_from_answer(known.status if known is not None else 503, body)
