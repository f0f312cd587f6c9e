"""The one reach into uvicorn's per-connection objects: the socket under a request, and whether
bytes framed by the caller may be written on it now (the live pushes, ``workers.http.live.push``).

What it relies on (uvicorn 0.54; ``tests/unit/test_private_apis.py`` checks the attributes are
there, ``tests/integration/test_live_writer.py`` that a wire is found on both kinds of
connection):

- the ASGI ``send`` uvicorn hands the application is a bound method of its per-connection
  object: a ``RequestResponseCycle`` for an HTTP request (``httptools_impl``), the
  ``WebSocketsSansIOProtocol`` for a WebSocket (``websockets_sansio_impl``); each keeps the
  connection's asyncio ``transport``;
- every ``send`` writes what it sends in one ``transport.write`` (a whole HTTP/1.1 chunk, a
  whole WebSocket frame), so a write of whole chunks or frames between two sends never splits
  one of uvicorn's;
- HTTP: ``response_started`` and ``response_complete`` (the head went out; the last chunk,
  ``0\\r\\n\\r\\n``, went out), ``chunked_encoding`` (True: the body goes out as chunks, a response
  without Content-Length; never for HEAD), ``disconnected``;
- WebSocket: ``handshake_complete``, ``close_sent`` (the close frame went out: no frame may
  follow it) and ``disconnected``; a ``send`` waits while the transport is paused (over its
  high-water mark, ``writable``), as aiohttp's drain did.
"""

from __future__ import annotations

import asyncio
from typing import cast


def transport_of(send: object) -> asyncio.Transport | None:
    """The socket transport of the connection ``send`` answers on (None: not uvicorn's).

    Not checked with ``isinstance(..., asyncio.Transport)``: uvloop's transports implement the
    interface without deriving from it (the check made every request under uvloop look gone).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "get_write_buffer_size"):
        return None
    return cast(asyncio.Transport, transport)


class Wire:
    """A connection's socket for bytes its user frames itself: whole SSE chunks (``chunked``)
    of a response that started and has not ended, or whole WebSocket frames of an accepted
    WebSocket whose close frame has not gone out."""

    __slots__ = ("_owner", "chunked", "transport", "websocket")

    def __init__(self, owner: object, transport: asyncio.Transport, *, websocket: bool) -> None:
        """``owner``: uvicorn's per-connection object (see the module)."""
        self._owner = owner
        self.transport = transport
        self.websocket = websocket
        self.chunked = not websocket
        """Each write must be one HTTP/1.1 chunk (``%x\\r\\n…\\r\\n``)."""

    def ended(self) -> bool:
        """Nothing more may be written: the answer ended (or never began), or the client left."""
        owner = self._owner
        if getattr(owner, "disconnected", True) or self.transport.is_closing():
            return True
        if self.websocket:
            return bool(
                getattr(owner, "close_sent", True) or not getattr(owner, "handshake_complete", 0)
            )
        return bool(
            getattr(owner, "response_complete", True) or not getattr(owner, "response_started", 0)
        )


def wire_of(send: object, *, websocket: bool) -> Wire | None:
    """The wire under ``send`` once its answer began: an accepted WebSocket, or a response sent
    in chunks (None otherwise: not uvicorn's, ended, or not chunked, e.g. HEAD)."""
    owner = getattr(send, "__self__", None)
    transport = transport_of(send)
    if owner is None or transport is None:
        return None
    wire = Wire(owner, transport, websocket=websocket)
    if wire.ended() or (not websocket and getattr(owner, "chunked_encoding", None) is not True):
        return None
    return wire
