"""``Client``: the same API for code without an event loop, on ``httpx.Client``: the same calls
(``_calls``, ``_live``) driven by blocking I/O."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Self, TypeAlias, TypeVar

import httpx
from httpx_sse import connect_sse

from workers.client import _calls, _global, _live, _processes
from workers.client._base import ClientError
from workers.client._live import Feed
from workers.client._shared import Shared, bind
from workers.client._wire import Answer, Call, Done, Op, Steps, answer_of, no_answer, resume, start

__all__ = ["Client", "Stream"]

T = TypeVar("T")
Item = TypeVar("Item")
BlockingToken: TypeAlias = "str | Callable[[], str]"
"""A bearer token, or a function asked for one before each request."""


class _Closing:
    """Closed (``close()``) on leaving its ``with`` block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Stream(Iterator[T], _Closing):
    """A blocking iterator over events (pages of them, a subscription); ``close()`` (or leaving
    its ``with`` block) ends it and its connection."""

    def __init__(self, source: Generator[T, None, None]) -> None:
        self._source = source

    def __next__(self) -> T:
        return next(self._source)

    def close(self) -> None:
        self._source.close()


class Client(Shared[httpx.Client, "BlockingToken"], _Closing):
    """The fleet's HTTP API for blocking code: every method of ``AsyncClient``, the same calls
    and retries, on ``httpx.Client`` (safe to share between threads). ``token`` may be a
    function that returns a fresh token. Close it (or use ``with``) when done. ``http``: an
    ``httpx.Client`` of your own, yours to close."""

    def _fresh(self) -> httpx.Client:
        return httpx.Client()

    def close(self) -> None:
        """Close the connections (an ``http`` client passed in is the caller's to close)."""
        if self._own:
            self._http.close()

    def _run(self, op: Op[T]) -> T:
        step = start(op)
        while not isinstance(step, Done):
            step = resume(op, self._answer(step))
        return step.value

    def _walk(self, walk: Steps[Item]) -> Stream[Item]:
        def steps() -> Generator[Item, None, None]:
            step = start(walk)
            while not isinstance(step, Done):
                got = self._answer(step) if isinstance(step, Call) else (yield step)
                step = resume(walk, got)  # after an event yielded: None, take the next step

        return Stream(steps())

    def _answer(self, call: Call) -> Answer | ClientError:
        """The call's answer within ``retry``; the error it ended with, to raise in the call."""
        if self._http.is_closed:
            raise RuntimeError("this Client is closed; make a new one.")
        try:
            for attempt in self._settings.retry.tries():
                with attempt:
                    return self._try(call)
        except ClientError as e:
            return e
        raise AssertionError("stamina ended its tries without an answer or an error")

    def _try(self, call: Call) -> Answer:
        request = self._settings.request(self._http, call, self._bearer())
        try:
            return answer_of(call, self._http.send(request))
        except httpx.HTTPError as e:
            raise no_answer(call, self.base_url, e, self._settings.bound_s(call)) from e

    def _follow(self, feed: Feed[T]) -> Stream[T]:
        return Stream(self._following(feed))

    def _following(self, feed: Feed[T]) -> Generator[T, None, None]:
        for attempt in self._settings.reconnect.tries(fresh=feed.progressed):
            with attempt, feed.connection(self.base_url):
                opening = self._settings.stream(feed.call, feed.headers(), self._bearer())
                with connect_sse(self._http, "GET", **opening) as source:
                    if source.response.status_code != 200:
                        feed.refused(source.response, source.response.read())
                    for sse in source.iter_sse():
                        item = feed.take(sse) if sse.data else None  # an id alone: nothing
                        if item is not None:
                            yield item

    def _bearer(self) -> str | None:
        return self._token() if callable(self._token) else self._token

    append = bind(_calls.append, _run)
    append_many = bind(_calls.append_many, _run)
    state = bind(_calls.state, _run)
    events_page = bind(_calls.events_page, _run)
    events = bind(_calls.events, _walk)
    outcome = bind(_calls.outcome, _run)
    erase = bind(_calls.erase, _run)
    processes = bind(_processes.processes, _run)
    process_instances = bind(_processes.process_instances, _run)
    process_instance = bind(_processes.process_instance, _run)
    process_deadlines = bind(_processes.process_deadlines, _run)
    retry_instance = bind(_processes.retry_instance, _run)
    subscribe = bind(_live.subscribe, _follow)
    subscribe_type = bind(_live.subscribe_type, _follow)
    global_page = bind(_global.global_page, _run)
    global_events = bind(_global.global_events, _walk)
    subscribe_all = bind(_global.subscribe_all, _follow)
