"""A client of the fleet's HTTP API: ``AsyncClient`` (asyncio, aiohttp) and ``Client`` (blocking).

Appends always carry a command id made on this side, so a retry is the same command; reads
page, wait for your own writes, and subscribe over Server-Sent Events with resume; every error
answer is raised as its own exception class, one per code of the fleet's error catalogue
(``workers.client.errors``). It imports nothing of the server: the exception classes are
generated from the catalogue (``python -m workers.client.codegen``) and a test keeps them equal.
"""

from workers.client._async import RECONNECT, AsyncClient, TokenSource
from workers.client._base import ApiError, ArgumentError, ClientError, TransportError
from workers.client._sync import Client, Stream
from workers.client.backoff import Backoff, Retrying
from workers.client.models import (
    Appended,
    Erased,
    Event,
    EventPage,
    Json,
    JsonObject,
    Outcome,
    State,
)

__all__ = [
    "RECONNECT",
    "ApiError",
    "Appended",
    "ArgumentError",
    "AsyncClient",
    "Backoff",
    "Client",
    "ClientError",
    "Erased",
    "Event",
    "EventPage",
    "Json",
    "JsonObject",
    "Outcome",
    "Retrying",
    "State",
    "Stream",
    "TokenSource",
    "TransportError",
    "errors",
]
