"""A loopback TCP proxy that can pause, drop or delay traffic, for network fault tests.

With ``ssl`` it also terminates TLS (a real handshake, certificate and optional client
certificate checks) in front of a plaintext server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.devtools.embedded import free_port
from workers.devtools.embedded.binaries import tansu_bin
from workers.devtools.embedded.process import ServiceProcess

HOST = "127.0.0.1"
_CHUNK = 65536


@dataclass(frozen=True, slots=True, eq=False)
class _Link:
    """One proxied connection: both ends and the task that pumps them."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    task: asyncio.Task[Any] | None

    def abort(self) -> None:
        # abort() sends RST at once, as a lost peer or a dead middlebox would.
        self.client.transport.abort()
        self.upstream.transport.abort()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to a target; tests pause, drop or delay it to inject faults."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.ssl = ssl
        self.target_host = target_host
        self.target_port = target_port
        self.port = port
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._dropping = False
        self._delay_s = 0.0
        self._hold_after: bytes | None = None
        self._replies_held = asyncio.Event()
        self._replies_held.set()
        self.held_requests = 0
        """Requests that matched ``hold_replies_after`` (they reached the server)."""
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    async def start(self) -> int:
        """Listen on a free loopback port and return it."""
        self._server = await asyncio.start_server(self._accept, HOST, self.port, ssl=self.ssl)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def pause(self) -> None:
        """Stop forwarding; bytes already sent are held and delivered on ``resume()``."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, and accept new connections again after ``drop()``."""
        self._dropping = False
        self._flowing.set()

    def drop(self) -> None:
        """Reset every open connection, and reset new ones until ``resume()``."""
        self._dropping = True
        for link in list(self._links):
            link.abort()

    def hold_replies_after(self, marker: bytes) -> None:
        """Once a request containing ``marker`` passed to the server, hold every reply.

        The server gets and applies the request; its client never hears back until
        ``release_replies()``: a write whose outcome is unknown to the caller.
        """
        self._hold_after = marker

    def release_replies(self) -> None:
        self._hold_after = None
        self._replies_held.set()

    def delay(self, seconds: float) -> None:
        """Hold each forwarded chunk for ``seconds`` (0 turns the delay off)."""
        self._delay_s = seconds

    async def stop(self) -> None:
        """Close the listener and every connection."""
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dropping:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()  # the target is down: the client sees a reset, as it would
            return
        link = _Link(writer, up_writer, asyncio.current_task())
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, request=True),
                self._pump(up_reader, writer, request=False),
            )
        except asyncio.CancelledError:
            pass  # drop() or stop() cancelled this link; the transports are already aborted
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, request: bool
    ) -> None:
        try:
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()
                if not request:
                    await self._replies_held.wait()
                if self._delay_s:
                    await asyncio.sleep(self._delay_s)  # the injected latency itself
                writer.write(data)
                await writer.drain()
                if request and self._hold_after is not None and self._hold_after in data:
                    self.held_requests += 1
                    self._replies_held.clear()
        except OSError:  # a reset, or a TLS error on the terminated side
            pass
        finally:
            # One side closing ends the link, so the other side learns of it at once.
            with contextlib.suppress(RuntimeError, ConnectionError):
                writer.close()


async def tansu_broker(
    workdir: Path, *, advertised_port: int, extra: Sequence[str] = ()
) -> ServiceProcess:
    """A private Tansu broker on a free port of its own that advertises ``advertised_port``,
    where the test puts a ``TcpProxy`` (clients reconnect to the advertised address, so every
    connection after the first also passes the proxy)."""
    port = free_port()

    async def accepts() -> None:
        _, writer = await asyncio.open_connection(HOST, port)
        writer.close()
        await writer.wait_closed()

    argv = [
        tansu_bin(), "broker",
        "--listener-url", f"tcp://{HOST}:{port}",
        "--advertised-listener-url", f"tcp://{HOST}:{advertised_port}",
        "--storage-engine", "memory://tansu/", *extra,
    ]  # fmt: skip
    process = ServiceProcess(
        "kafka", argv, port=port, workdir=workdir, probe=accepts, ready_timeout_s=30
    )
    await process.start()
    return process


@contextlib.asynccontextmanager
async def proxied_broker(workdir: Path) -> AsyncIterator[tuple[str, TcpProxy]]:
    """A private Tansu reachable only through a ``TcpProxy``: (bootstrap address, proxy)."""
    port = free_port()
    process = await tansu_broker(workdir, advertised_port=port)
    proxy = TcpProxy(HOST, process.port, port=port)
    await proxy.start()
    try:
        yield proxy.address, proxy
    finally:
        await proxy.stop()
        process.kill()
