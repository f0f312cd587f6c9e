"""The embedded real stack for development and tests: Tansu (Kafka), SecantusDB (MongoDB), Redis.

``async with EmbeddedStack() as stack:`` starts every part whose URL is not given, on free
loopback ports (Redis only when no system Redis answers, or with ``start_redis=True``), and
``stack.urls`` says where each answers; ``stack.process(name)`` stops, pauses, kills or
restarts a part it started. A part that cannot start raises ``StackStartError``
(``PortInUse`` when its port is taken), naming the part and the fix.
"""

from __future__ import annotations

from workers.devtools.embedded.common import (
    HOST,
    INSTALL_FIX,
    SYSTEM_REDIS_URL,
    PortInUse,
    StackStartError,
)
from workers.devtools.embedded.probes import free_port
from workers.devtools.embedded.process import ServiceProcess
from workers.devtools.embedded.stack import EmbeddedStack, StackUrls

__all__ = [
    "HOST",
    "INSTALL_FIX",
    "SYSTEM_REDIS_URL",
    "EmbeddedStack",
    "PortInUse",
    "ServiceProcess",
    "StackStartError",
    "StackUrls",
    "free_port",
]
