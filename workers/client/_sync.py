"""``Client``: the same API for code without an event loop, run on a private loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TypeVar

from workers.client._async import AsyncClient
from workers.client.backoff import Backoff
from workers.client.models import Appended, Erased, Event, EventPage, Outcome, State

__all__ = ["Client", "Stream"]

T = TypeVar("T")


class Stream(Iterator[T]):
    """A blocking iterator over one of the client's async iterators (events, a subscription);
    ``close()`` (or leaving its ``with`` block) ends it and its connection."""

    def __init__(self, client: Client, source: AsyncGenerator[T, None]) -> None:
        self._client, self._source = client, source

    def __iter__(self) -> Stream[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._client._run(_next(self._source))
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._client._run(self._source.aclose())

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _next(source: AsyncGenerator[T, None]) -> T:
    return await source.__anext__()


class Client:
    """The fleet's HTTP API for blocking code: every method of ``AsyncClient``, each call run
    to its end on the client's own event loop thread (so it works from any thread, and from
    inside another event loop's thread too, blocking it). ``token`` may be a function that
    returns a fresh token. Close it (or use ``with``) when done: it stops the thread."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | Callable[[], str] | None = None,
        timeout_s: float = 10.0,
        retry: Backoff | None = None,
        reconnect: Backoff | None = None,
        idle_timeout_s: float = 60.0,
    ) -> None:
        self._async = AsyncClient(base_url, token=token, timeout_s=timeout_s, retry=retry,
                                  reconnect=reconnect, idle_timeout_s=idle_timeout_s)  # fmt: skip
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="eventfleet-client", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return self._async.base_url

    def _run(self, work: Coroutine[object, None, T]) -> T:
        if self._loop.is_closed():
            work.close()
            raise RuntimeError("this Client is closed; make a new one.")
        running = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return running.result()
        except BaseException:
            running.cancel()  # interrupted (Ctrl-C): the work stops too; done: nothing
            raise

    def close(self) -> None:
        """Close the connections and stop the loop thread (again: nothing)."""
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        event_type: str,
        data: Mapping[str, object] | None = None,
        *,
        command_id: str | None = None,
        client_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Appended:
        """See ``AsyncClient.append``: a command id is made here unless given."""
        return self._run(self._async.append(
            aggregate_type, aggregate_id, event_type, data, command_id=command_id,
            client_id=client_id, correlation_id=correlation_id, causation_id=causation_id,
        ))  # fmt: skip

    def state(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        at_version: int | None = None,
        as_of: datetime | str | None = None,
        min_version: int | None = None,
        command_id: str | None = None,
        wait_ms: int | None = None,
    ) -> State:
        """See ``AsyncClient.state``."""
        return self._run(self._async.state(
            aggregate_type, aggregate_id, at_version=at_version, as_of=as_of,
            min_version=min_version, command_id=command_id, wait_ms=wait_ms,
        ))  # fmt: skip

    def events_page(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        after_version: int = 0,
        limit: int = 100,
        min_version: int | None = None,
        command_id: str | None = None,
        wait_ms: int | None = None,
    ) -> EventPage:
        """See ``AsyncClient.events_page``."""
        return self._run(self._async.events_page(
            aggregate_type, aggregate_id, after_version=after_version, limit=limit,
            min_version=min_version, command_id=command_id, wait_ms=wait_ms,
        ))  # fmt: skip

    def events(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        after_version: int = 0,
        page_size: int = 100,
        min_version: int | None = None,
        command_id: str | None = None,
        wait_ms: int | None = None,
    ) -> Stream[Event]:
        """See ``AsyncClient.events``: every event, page after page, each once."""
        return Stream(self, self._async.events(
            aggregate_type, aggregate_id, after_version=after_version, page_size=page_size,
            min_version=min_version, command_id=command_id, wait_ms=wait_ms,
        ))  # fmt: skip

    def outcome(
        self,
        aggregate_type: str,
        aggregate_id: str,
        *,
        command_id: str | None = None,
        event_id: str | None = None,
    ) -> Outcome:
        """See ``AsyncClient.outcome``."""
        return self._run(self._async.outcome(
            aggregate_type, aggregate_id, command_id=command_id, event_id=event_id
        ))  # fmt: skip

    def erase(self, subject: str, *, operator: str | None = None) -> Erased:
        """See ``AsyncClient.erase``."""
        return self._run(self._async.erase(subject, operator=operator))

    def subscribe(
        self, aggregate_type: str, aggregate_id: str, *, after_version: int = 0
    ) -> Stream[Event]:
        """See ``AsyncClient.subscribe``: blocks in ``next()`` until the next event."""
        return Stream(
            self, self._async.subscribe(aggregate_type, aggregate_id, after_version=after_version)
        )

    def subscribe_type(self, aggregate_type: str, *, after: str = "") -> Stream[Event]:
        """See ``AsyncClient.subscribe_type``."""
        return Stream(self, self._async.subscribe_type(aggregate_type, after=after))
