"""Live subscription clients for tests: an SSE reader and a WebSocket reader over aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson


@dataclass
class SseMessage:
    id: str | None
    event: str | None
    data: Any


@dataclass
class LiveReader:
    """Reads one subscription in the background; ``messages`` grows as events arrive."""

    messages: list[SseMessage] = field(default_factory=list)
    comments: int = 0
    status: int | None = None
    body: Any = None
    closed: bool = False
    task: asyncio.Task[None] | None = None
    _session: aiohttp.ClientSession | None = None

    def versions(self) -> list[int]:
        return [m.data["version"] for m in self.messages if m.event is None and "version" in m.data]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        if self._session is not None:
            await self._session.close()


async def sse(url: str, *, headers: Mapping[str, str] | None = None) -> LiveReader:
    """Open an SSE subscription; its answer's status is known when this returns."""
    reader = LiveReader()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    reader._session = session
    response = await session.get(url, headers={"Accept": "text/event-stream", **(headers or {})})
    reader.status = response.status
    if response.status != 200:
        reader.body = await response.json(content_type=None)
        response.release()
        return reader

    async def read() -> None:
        fields: dict[str, str] = {}
        try:
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    reader.comments += 1
                elif line == "":
                    if "data" in fields:
                        reader.messages.append(SseMessage(
                            fields.get("id"), fields.get("event"), orjson.loads(fields["data"])
                        ))  # fmt: skip
                    fields = {}
                else:
                    name, _, value = line.partition(": ")
                    fields[name] = value
        finally:
            reader.closed = True

    reader.task = asyncio.create_task(read())
    return reader


async def websocket(url: str, *, headers: Mapping[str, str] | None = None) -> LiveReader:
    """Open a WebSocket subscription; every text message is kept as an SseMessage (no id)."""
    reader = LiveReader()
    session = aiohttp.ClientSession()
    reader._session = session
    try:
        ws = await session.ws_connect(url, headers=headers)
    except aiohttp.WSServerHandshakeError as e:
        reader.status = e.status
        return reader
    reader.status = 101

    async def read() -> None:
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    data = orjson.loads(message.data)
                    kind = "error" if "error" in data else None
                    reader.messages.append(SseMessage(None, kind, data))
        finally:
            reader.closed = True

    reader.task = asyncio.create_task(read())
    return reader


@dataclass
class ChatClient:
    """A chat socket: ``send`` a command, ``received`` collects every message in order."""

    ws: aiohttp.ClientWebSocketResponse
    session: aiohttp.ClientSession
    received: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def send(self, command: Mapping[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(command).decode())

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("kind") == kind]

    def answer(self, command_id: str | None) -> dict[str, Any] | None:
        found = [m for m in self.of_kind("answer") if m["command_id"] == command_id]
        return found[0] if found else None

    def versions(self) -> list[int]:
        return [m["event"]["version"] for m in self.of_kind("event")]

    async def close(self) -> None:
        await self.ws.close()
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await self.task
        await self.session.close()


async def chat(url: str, *, headers: Mapping[str, str] | None = None) -> ChatClient:
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, headers=headers)
    except BaseException:
        await session.close()
        raise
    client = ChatClient(ws, session)

    async def read() -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                client.received.append(orjson.loads(message.data))

    client.task = asyncio.create_task(read())
    return client
