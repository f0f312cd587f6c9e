"""HTTP on a raw socket, as a slow or hostile client sends it: a request's head and its body in
writes of the test's choosing (chunked or not, paused between), and the answer read back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from tests.fleet import FleetProcess
from tests.tokens import shared_issuer
from tests.waiting import within

PAUSE_S = 0.2
MAX_BODY_BYTES = 64 * 1024  # EVENTFLEET_MAX_BODY_BYTES's default


def chunked(*parts: bytes) -> list[bytes]:
    """``parts`` as the writes of a chunked body, the last (empty) chunk its own write."""
    return [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts] + [b"0\r\n\r\n"]


def post_head(path: str, **headers: str) -> bytes:
    """A POST's head, with the test principal's token (fleets here run with auth on)."""
    token = f"Bearer {shared_issuer().token()}"
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json"]
    lines.append(f"Authorization: {token}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def raw_http(
    port: int, head: bytes, parts: list[bytes], *, gap_s: float = 0.0
) -> tuple[int, Any]:
    """Send a request as a slow client does: the head, then each part in its own write."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        for part in parts:
            if gap_s:
                await asyncio.sleep(gap_s)  # the slow client itself, not a wait for a result
            writer.write(part)
            await writer.drain()
        status_line = await within(reader.readline(), timeout_s=30, what="the status line")
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), orjson.loads(body) if body else None
    finally:
        writer.close()


async def post_in_writes(
    fleet: FleetProcess,
    path: str,
    head: dict[str, str],
    writes: Sequence[bytes],
    *,
    half_close: bool = False,
    answer_first: bool = False,
    with_head: bool = False,
) -> tuple[int, Any]:
    """POST ``writes`` one by one, ``PAUSE_S`` apart; the answer (status, JSON), or (0, None)
    when the fleet closed without one. ``answer_first``: read the answer before any write;
    ``with_head``: the whole body in the head's own write (it is there when the route starts)."""
    parts = urlsplit(fleet.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in head.items()]
        first = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if with_head:
            first, writes = first + b"".join(writes), []
        writer.write(first)
        await writer.drain()
        if not answer_first:
            for n, write in enumerate(writes):
                if n:
                    await asyncio.sleep(PAUSE_S)
                writer.write(write)
                await writer.drain()
            if half_close:
                writer.write_eof()
        try:
            answered = await within(reader.readuntil(b"\r\n\r\n"), timeout_s=30, what="the head")
        except asyncio.IncompleteReadError:
            return 0, None  # closed without an answer
        length = next(
            (int(line.split(b":", 1)[1]) for line in answered.split(b"\r\n")
             if line.lower().startswith(b"content-length:")),
            0,
        )  # fmt: skip
        body = await within(reader.readexactly(length), timeout_s=30, what="the body")
    finally:
        writer.close()
    status = int(answered.split(b" ", 2)[1])
    try:
        return status, orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return status, body.decode(errors="replace")
