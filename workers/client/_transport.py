"""The HTTP under the client: one try of a request, retries within a ``Backoff``, and an SSE
stream that reconnects with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeAlias, TypeVar

import aiohttp
import orjson

from workers.client._base import ApiError, ClientError, TransportError
from workers.client._catalogue import BY_CODE, NotYetStoredError
from workers.client.backoff import Backoff, Retrying
from workers.client.errors import error_from_answer
from workers.client.models import Json, JsonObject
from workers.client.sse import SseMessage, SseParser

__all__ = ["Query", "TokenSource", "Transport", "parse_object", "retry_delay"]

T = TypeVar("T")
TokenSource: TypeAlias = "str | Callable[[], str] | Callable[[], Awaitable[str]]"
"""A bearer token, or a function asked for one before each request (one that refreshes)."""
Query: TypeAlias = "dict[str, str]"
JSON = "application/json"


class Transport:
    """Requests to one fleet with its token: answers as JSON objects, errors as exceptions."""

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource | None,
        timeout_s: float,
        idle_timeout_s: float,
        retry: Backoff,
        reconnect: Backoff,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.retry = retry
        self.reconnect = reconnect
        self._token = token
        self._session = session
        self._own_session = session is None

    async def close(self) -> None:
        """Close the connections (a session passed in is the caller's to close)."""
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def call(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        *,
        payload: bytes | None = None,
        wait_ms: int | None = None,
    ) -> tuple[int, JsonObject]:
        """The request, retried within ``retry`` while a retry can help."""
        return await self._retrying(
            lambda: self._send(method, path, query, payload=payload, wait_ms=wait_ms)
        )

    def stream(self, path: str, query: Query) -> AsyncGenerator[SseMessage, None]:
        """The SSE messages of ``path``, reconnecting with ``Last-Event-ID`` across breaks."""
        return self._stream(path, query)

    async def _headers(self) -> dict[str, str]:
        headers = {"Accept": JSON, "Content-Type": JSON}
        token = self._token
        if callable(token):
            made = token()
            token = await made if inspect.isawaitable(made) else made
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def _send(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        *,
        payload: bytes | None = None,
        wait_ms: int | None = None,
    ) -> tuple[int, JsonObject]:
        """One try: the answer's status and JSON object, or the error it stands for."""
        total_s = self.timeout_s + (wait_ms or 0) / 1000  # a read that waits is not late
        try:
            async with self._client_session().request(
                method, self.base_url + path, params=query, data=payload,
                headers=await self._headers(), timeout=aiohttp.ClientTimeout(total=total_s),
            ) as response:  # fmt: skip
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except aiohttp.ClientConnectorError as e:
            raise TransportError(
                f"{method} {path}: cannot connect to {self.base_url} ({e}); nothing was sent."
            ) from e
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise TransportError(
                f"{method} {path}: no answer from {self.base_url} within {total_s:g} s "
                f"({type(e).__name__}: {e}); whether it was applied is unknown."
            ) from e
        try:
            body: Json = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw[:200].decode(errors="replace")
        if 200 <= status < 300 and isinstance(body, dict):
            return status, body
        raise error_from_answer(status, body, retry_after=retry_after)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt`` until it answers, a failure no retry can help, or ``retry`` is spent."""
        policy = self.retry
        deadline = time.monotonic() + policy.budget_s
        tries = 0
        while True:
            tries += 1
            try:
                return await attempt()
            except ClientError as e:
                delay_s = retry_delay(policy, tries, e, deadline)
                if delay_s is None:
                    raise
                if policy.on_retry is not None:
                    policy.on_retry(Retrying(tries, e, delay_s))
                await asyncio.sleep(delay_s)  # the backoff itself

    async def _stream(self, path: str, query: Query) -> AsyncGenerator[SseMessage, None]:
        """The SSE messages of ``path``, reconnecting with ``Last-Event-ID`` across breaks."""
        last_id: str | None = None
        policy = self.reconnect
        failures, deadline = 0, 0.0
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s,
                                        sock_read=self.idle_timeout_s)  # fmt: skip
        while True:
            headers = await self._headers() | {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id  # the fleet resumes after it (header wins)
            error: ClientError
            try:
                async with self._client_session().get(
                    self.base_url + path, params=query, headers=headers, timeout=timeout
                ) as response:
                    if response.status != 200:
                        body = await _json_or_text(response)
                        raise error_from_answer(response.status, body,
                                                retry_after=response.headers.get("Retry-After"))  # fmt: skip
                    parser = SseParser(last_id=last_id)
                    error = TransportError(f"GET {path}: the fleet ended the stream.")
                    async for raw in response.content:
                        message = parser.line(raw.decode(errors="replace").rstrip("\r\n"))
                        if message is None:
                            continue
                        if message.event == "message":
                            last_id, failures = message.id, 0
                            yield message
                        else:  # the fleet's closing notice: slow_client, or an error
                            error = _notice(message)
                            break
            except ApiError as e:
                error = e
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                error = TransportError(f"GET {path}: {type(e).__name__}: {e}")
            failures += 1
            if failures == 1:
                deadline = time.monotonic() + policy.budget_s
            delay_s = retry_delay(policy, failures, error, deadline)
            if delay_s is None:
                raise error
            if policy.on_retry is not None:
                policy.on_retry(Retrying(failures, error, delay_s))
            await asyncio.sleep(delay_s)  # the backoff itself


def retry_delay(policy: Backoff, tries: int, error: ClientError, deadline: float) -> float | None:
    """How long to wait before the next try, or None when no retry may follow ``error``."""
    if not error.retriable or isinstance(error, NotYetStoredError) or tries >= policy.attempts:
        return None  # not_yet_stored: the caller's wait_ms was the bound it chose
    retry_after = error.retry_after_s if isinstance(error, ApiError) else None
    delay_s = policy.delay_s(tries, retry_after)
    return None if time.monotonic() + delay_s > deadline else delay_s


def _notice(message: SseMessage) -> ClientError:
    """The exception a closing notice stands for; ``slow_client`` is one to reconnect after."""
    body = parse_object(message.data)
    code = body.get("error")
    if message.event == "slow_client" or code == "slow_client":
        text = body.get("message")
        return TransportError(f"the fleet let a slow subscriber go: {text}")
    known = BY_CODE.get(code) if isinstance(code, str) else None
    return error_from_answer(known.status if known is not None else 503, body)


def parse_object(text: str) -> JsonObject:
    """The JSON object in ``text``, as the fleet sends in each SSE message."""
    try:
        value: Json = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise TransportError(f"the fleet sent {text[:200]!r} where a JSON object belongs.")
    return value


async def _json_or_text(response: aiohttp.ClientResponse) -> Json:
    raw = await response.read()
    try:
        body: Json = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode(errors="replace")
    return body
