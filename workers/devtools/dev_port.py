"""The port ``eventfleet dev`` serves on, checked before anything heavy is imported or started: a
port another process holds is refused at once, not after the stack and the fleet have loaded."""

from __future__ import annotations

import errno
import socket

from topics.errors import EventfleetError
from workers.runtime.settings import Settings

DEFAULT_PORT = 8080


class PortTaken(EventfleetError):
    """The HTTP port dev was asked for is held by another process."""


def http_port(settings: Settings, requested: int | None) -> int:
    """The port to serve on: ``--port``, else EVENTFLEET_HTTP_PORT, else 8080; 0 picks a free
    one."""
    if requested is None:
        requested = settings.http_port if "http_port" in settings.explicit else DEFAULT_PORT
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.http_host, requested))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            raise PortTaken(
                f"port {requested} on {settings.http_host} is already in use (another "
                "`eventfleet dev`?); pass --port N, or --port 0 for any free port"
            ) from None
        return int(sock.getsockname()[1])
