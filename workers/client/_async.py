"""``AsyncClient``: the fleet's HTTP API for asyncio code, on ``httpx.AsyncClient``."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeAlias, TypeVar

import httpx
from httpx_sse import aconnect_sse

from workers.client import _calls, _global, _live, _processes
from workers.client._base import ClientError
from workers.client._live import Feed
from workers.client._shared import Shared, bind
from workers.client._wire import Answer, Call, Done, Op, Steps, answer_of, no_answer, resume, start

__all__ = ["AsyncClient", "TokenSource"]

T = TypeVar("T")
Item = TypeVar("Item")
TokenSource: TypeAlias = "str | Callable[[], str] | Callable[[], Awaitable[str]]"
"""A bearer token, or a function asked for one before each request (one that refreshes)."""


class AsyncClient(Shared[httpx.AsyncClient, TokenSource]):
    """The fleet's HTTP API for asyncio code. One per base URL, shared; close it (or use
    ``async with``) when done.

    Every request carries ``Content-Type: application/json`` and the bearer token. A failure a
    retry can help with (a 503, a 429, ``command_in_progress``, no answer at all) is retried
    within ``retry``; ``append`` always sends a command id, so its retries are the same
    command, stored at most once. Everything else raises its ``ApiError`` subclass at once.
    ``http``: an ``httpx.AsyncClient`` of your own (proxies, TLS, limits), yours to close.
    """

    def _fresh(self) -> httpx.AsyncClient:
        return httpx.AsyncClient()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections (an ``http`` client passed in is the caller's to close)."""
        if self._own:
            await self._http.aclose()

    async def _run(self, op: Op[T]) -> T:
        step = start(op)
        while not isinstance(step, Done):
            step = resume(op, await self._answer(step))
        return step.value

    async def _walk(self, walk: Steps[Item]) -> AsyncGenerator[Item, None]:
        step = start(walk)
        while not isinstance(step, Done):
            got = await self._answer(step) if isinstance(step, Call) else (yield step)
            step = resume(walk, got)  # after an event yielded: None, take the next step

    async def _answer(self, call: Call) -> Answer | ClientError:
        """The call's answer within ``retry``; the error it ended with, to raise in the call."""
        try:
            async for attempt in self._settings.retry.tries():
                with attempt:
                    return await self._try(call)
        except ClientError as e:
            return e
        raise AssertionError("stamina ended its tries without an answer or an error")

    async def _try(self, call: Call) -> Answer:
        request = self._settings.request(self._http, call, await self._bearer())
        try:
            return answer_of(call, await self._http.send(request))
        except httpx.HTTPError as e:
            raise no_answer(call, self.base_url, e, self._settings.bound_s(call)) from e

    async def _follow(self, feed: Feed[T]) -> AsyncGenerator[T, None]:
        async for attempt in self._settings.reconnect.tries(fresh=feed.progressed):
            with attempt, feed.connection(self.base_url):
                opening = self._settings.stream(feed.call, feed.headers(), await self._bearer())
                async with aconnect_sse(self._http, "GET", **opening) as source:
                    if source.response.status_code != 200:
                        feed.refused(source.response, await source.response.aread())
                    async for sse in source.aiter_sse():
                        item = feed.take(sse) if sse.data else None  # an id alone: nothing
                        if item is not None:
                            yield item

    async def _bearer(self) -> str | None:
        token = self._token
        if callable(token):
            made = token()
            return await made if inspect.isawaitable(made) else made
        return token

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
